//! The tenant: [`TenantId`], its validation error, and [`TenantRequired`].

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The most bytes a [`TenantId`] may have.
pub const TENANT_ID_MAX_LEN: usize = 128;

/// A validated tenant id.
///
/// Non-empty, at most [`TENANT_ID_MAX_LEN`] bytes of printable ASCII without
/// whitespace, `,`, `;` or `=` (so it is safe in a header, a baggage member, a
/// log field and a SQL setting). Cloning it never allocates. Deserializing
/// rejects anything else: there is no way to hold an invalid or empty tenant.
///
/// ```
/// use context_runtime::TenantId;
///
/// let tenant: TenantId = "acme-eu".parse()?;
/// assert_eq!(tenant.as_str(), "acme-eu");
/// assert!("".parse::<TenantId>().is_err());
/// assert!("a b".parse::<TenantId>().is_err());
/// assert!(serde_json::from_str::<TenantId>(r#""x=y""#).is_err());
/// # Ok::<(), context_runtime::InvalidTenantId>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

impl TenantId {
    /// Validates `value` and makes a tenant id of it.
    pub fn new(value: impl AsRef<str>) -> Result<Self, InvalidTenantId> {
        let value = value.as_ref();
        validate(value)?;
        Ok(TenantId(Arc::from(value)))
    }

    /// The tenant id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn validate(value: &str) -> Result<(), InvalidTenantId> {
    if value.is_empty() {
        return Err(InvalidTenantId::Empty);
    }
    if value.len() > TENANT_ID_MAX_LEN {
        return Err(InvalidTenantId::TooLong { len: value.len() });
    }
    // Byte by byte: every allowed character is ASCII, and the first byte
    // that is not allowed starts the offending character.
    let invalid = value
        .bytes()
        .position(|c| !c.is_ascii_graphic() || matches!(c, b',' | b';' | b'='));
    if let Some(index) = invalid {
        let ch = value
            .get(index..)
            .and_then(|rest| rest.chars().next())
            .unwrap_or(char::REPLACEMENT_CHARACTER);
        return Err(InvalidTenantId::InvalidChar { ch, index });
    }
    Ok(())
}

/// Why a string is not a valid [`TenantId`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidTenantId {
    /// The tenant id is empty.
    Empty,
    /// The tenant id is longer than [`TENANT_ID_MAX_LEN`] bytes.
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The tenant id arrived as something other than a string (a number, an object…).
    NotAString,
    /// The tenant id contains a character that is not allowed.
    InvalidChar {
        /// The offending character.
        ch: char,
        /// Its byte offset.
        index: usize,
    },
}

impl fmt::Display for InvalidTenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidTenantId::Empty => f.write_str("a tenant id must not be empty"),
            InvalidTenantId::NotAString => f.write_str("a tenant id must be a string"),
            InvalidTenantId::TooLong { len } => write!(
                f,
                "a tenant id has at most {TENANT_ID_MAX_LEN} bytes, this one has {len}"
            ),
            InvalidTenantId::InvalidChar { ch, index } => write!(
                f,
                "a tenant id is printable ASCII without whitespace, `,`, `;` or `=`; found {ch:?} at byte {index}"
            ),
        }
    }
}

impl std::error::Error for InvalidTenantId {}

impl FromStr for TenantId {
    type Err = InvalidTenantId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TenantId::new(s)
    }
}

impl TryFrom<&str> for TenantId {
    type Error = InvalidTenantId;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        TenantId::new(value)
    }
}

impl TryFrom<String> for TenantId {
    type Error = InvalidTenantId;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        validate(&value)?;
        Ok(TenantId(Arc::from(value)))
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for TenantId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for TenantId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for TenantId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({:?})", &*self.0)
    }
}

impl Serialize for TenantId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        TenantId::new(&*s)
            .map_err(|e| serde::de::Error::custom(format_args!("invalid tenant id {s:?}: {e}")))
    }
}

/// The error for work that must run for a tenant and has none.
///
/// Returned by [`crate::tenant()`] and by functions annotated with
/// [`#[requires_tenant]`](crate::requires_tenant) before their body runs.
/// There is never a default tenant to fall back on.
///
/// With the `axum` feature it is also a `400 Bad Request` response with a
/// JSON problem body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TenantRequired;

impl fmt::Display for TenantRequired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "no tenant in the current context: this work must run for a tenant; \
             carry the tenant with the job (a `Carrier` or a `#[carrier(tenant)]` field) \
             or scope it with `Context::with_tenant`",
        )
    }
}

impl std::error::Error for TenantRequired {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_printable_ascii() {
        for ok in ["t1", "acme-eu", "a.b_c:d/e@f", &"x".repeat(128)] {
            assert_eq!(TenantId::new(ok).map(|t| t.to_string()), Ok(ok.to_string()));
        }
    }

    #[test]
    fn rejects_the_rest() {
        assert_eq!(TenantId::new(""), Err(InvalidTenantId::Empty));
        assert_eq!(
            TenantId::new("x".repeat(129)),
            Err(InvalidTenantId::TooLong { len: 129 })
        );
        for (bad, ch) in [
            ("a b", ' '),
            ("a,b", ','),
            ("a;b", ';'),
            ("a=b", '='),
            ("a\tb", '\t'),
            ("té", 'é'),
            ("a\u{7f}", '\u{7f}'),
        ] {
            match TenantId::new(bad) {
                Err(InvalidTenantId::InvalidChar { ch: found, .. }) => assert_eq!(found, ch),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn serde_validates() {
        let t: TenantId = serde_json::from_str("\"t1\"").expect("valid");
        assert_eq!(t, "t1");
        let err = serde_json::from_str::<TenantId>("\"\"").expect_err("empty");
        assert!(err.to_string().contains("invalid tenant id"), "{err}");
        assert!(serde_json::from_str::<TenantId>("42").is_err());
    }
}
