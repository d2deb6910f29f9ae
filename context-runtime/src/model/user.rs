//! The acting principal: [`UserRef`] and [`UserId`].

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A reference to the principal a piece of work acts for: a kind (`"user"`,
/// `"service"`, `"api-key"`, …) and an id.
///
/// Only the reference travels, never an entity: re-resolve it from its id
/// when you need current data. In JSON it is `{"type": "user", "id": 42}`, the
/// shape Node's nestjs-context writes; the id may be a number or a string.
///
/// ```
/// use context_runtime::{UserId, UserRef};
///
/// let user: UserRef = serde_json::from_str(r#"{"type":"user","id":42}"#)?;
/// assert_eq!(user.kind(), "user");
/// assert_eq!(user.id(), &UserId::Number(42));
/// assert_eq!(user.to_string(), "user:42");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UserRef {
    kind: Arc<str>,
    id: UserId,
}

/// The id part of a [`UserRef`]: a number or a string, kept as it came.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum UserId {
    /// A numeric id, such as a database serial.
    Number(i64),
    /// A textual id, such as a UUID or an external subject.
    Text(Arc<str>),
}

/// Why a user reference was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidUserRef {
    /// The `type` is empty.
    EmptyKind,
    /// The textual id is empty.
    EmptyId,
    /// The `type` or the id contains a control character.
    ControlChar,
    /// The `type` or the id is longer than 256 bytes.
    TooLong,
    /// The `type` contains `:`, which separates it from the id in the
    /// compact `type:id` token.
    ColonInKind,
    /// The `type` or the id contains a bidirectional-override (U+202A to
    /// U+202E, U+2066 to U+2069) or zero-width (U+200B to U+200F, U+FEFF)
    /// character, which would disguise it in logs.
    InvisibleChar,
}

impl fmt::Display for InvalidUserRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvalidUserRef::EmptyKind => "a user reference needs a non-empty `type`",
            InvalidUserRef::EmptyId => "a user reference needs a non-empty `id`",
            InvalidUserRef::ControlChar => "a user reference must not contain control characters",
            InvalidUserRef::TooLong => {
                "a user reference's `type` and `id` have at most 256 bytes each"
            }
            InvalidUserRef::ColonInKind => "a user reference's `type` must not contain `:`",
            InvalidUserRef::InvisibleChar => {
                "a user reference must not contain bidirectional-override or zero-width characters"
            }
        })
    }
}

impl std::error::Error for InvalidUserRef {}

fn check_part(s: &str) -> Result<(), InvalidUserRef> {
    if s.len() > 256 {
        return Err(InvalidUserRef::TooLong);
    }
    if s.is_ascii() {
        if s.bytes().any(|c| c.is_ascii_control()) {
            return Err(InvalidUserRef::ControlChar);
        }
        return Ok(());
    }
    for c in s.chars() {
        if c.is_control() {
            return Err(InvalidUserRef::ControlChar);
        }
        if is_invisible(c) {
            return Err(InvalidUserRef::InvisibleChar);
        }
    }
    Ok(())
}

/// Bidirectional overrides and isolates, and zero-width characters.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

impl UserRef {
    /// A validated user reference.
    ///
    /// ```
    /// use context_runtime::UserRef;
    ///
    /// let user = UserRef::new("service", "billing")?;
    /// assert_eq!(user.to_string(), "service:billing");
    /// assert!(UserRef::new("", 1).is_err());
    /// assert!(UserRef::new("svc:admin", 1).is_err()); // `type:id` must stay unambiguous
    /// assert!(UserRef::new("user", "bob\u{202E}nimda").is_err()); // no bidi overrides
    /// # Ok::<(), context_runtime::InvalidUserRef>(())
    /// ```
    pub fn new(kind: impl AsRef<str>, id: impl Into<UserId>) -> Result<Self, InvalidUserRef> {
        let kind = kind.as_ref();
        if kind.is_empty() {
            return Err(InvalidUserRef::EmptyKind);
        }
        check_part(kind)?;
        if kind.contains(':') {
            return Err(InvalidUserRef::ColonInKind);
        }
        let id = id.into();
        if let UserId::Text(text) = &id {
            if text.is_empty() {
                return Err(InvalidUserRef::EmptyId);
            }
            check_part(text)?;
        }
        Ok(UserRef {
            kind: Arc::from(kind),
            id,
        })
    }

    /// A user of kind `"user"`.
    pub fn user(id: impl Into<UserId>) -> Result<Self, InvalidUserRef> {
        UserRef::new("user", id)
    }

    /// The kind of principal (JSON `type`).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The principal's id.
    pub fn id(&self) -> &UserId {
        &self.id
    }
}

impl fmt::Display for UserRef {
    /// The compact `type:id` token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.id)
    }
}

impl fmt::Debug for UserRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserRef({self})")
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserId::Number(n) => write!(f, "{n}"),
            UserId::Text(s) => f.write_str(s),
        }
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserId::Number(n) => write!(f, "{n}"),
            UserId::Text(s) => write!(f, "{s:?}"),
        }
    }
}

impl From<i64> for UserId {
    fn from(n: i64) -> Self {
        UserId::Number(n)
    }
}

impl From<i32> for UserId {
    fn from(n: i32) -> Self {
        UserId::Number(n.into())
    }
}

impl From<u32> for UserId {
    fn from(n: u32) -> Self {
        UserId::Number(n.into())
    }
}

impl From<&str> for UserId {
    fn from(s: &str) -> Self {
        UserId::Text(Arc::from(s))
    }
}

impl From<String> for UserId {
    fn from(s: String) -> Self {
        UserId::Text(Arc::from(s))
    }
}

impl Serialize for UserId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            UserId::Number(n) => serializer.serialize_i64(*n),
            UserId::Text(s) => serializer.serialize_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = UserId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a user id: an integer or a string")
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<UserId, E> {
                Ok(UserId::Number(v))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<UserId, E> {
                i64::try_from(v)
                    .map(UserId::Number)
                    .map_err(|_| E::custom("a numeric user id must fit in an i64"))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<UserId, E> {
                Ok(UserId::Text(Arc::from(v)))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Serialize, Deserialize)]
struct UserRefWire {
    #[serde(rename = "type")]
    kind: String,
    id: UserId,
}

impl Serialize for UserRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("UserRef", 2)?;
        s.serialize_field("type", &*self.kind)?;
        s.serialize_field("id", &self.id)?;
        s.end()
    }
}

impl<'de> Deserialize<'de> for UserRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = UserRefWire::deserialize(deserializer)?;
        UserRef::new(&wire.kind, wire.id)
            .map_err(|e| serde::de::Error::custom(format_args!("invalid user reference: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_number_and_string_ids_round_trip() {
        for json in [
            r#"{"type":"user","id":42}"#,
            r#"{"type":"service","id":"billing"}"#,
            r#"{"type":"user","id":-7}"#,
        ] {
            let user: UserRef = serde_json::from_str(json).expect(json);
            assert_eq!(serde_json::to_string(&user).expect("serialize"), json);
        }
    }

    #[test]
    fn invalid_refs_are_errors() {
        for json in [
            r#"{"type":"","id":1}"#,
            r#"{"type":"user","id":""}"#,
            r#"{"type":"user","id":1.5}"#,
            r#"{"type":"user","id":true}"#,
            r#"{"type":"user"}"#,
            r#"{"type":"user","id":18446744073709551615}"#,
        ] {
            assert!(serde_json::from_str::<UserRef>(json).is_err(), "{json}");
        }
    }
}
