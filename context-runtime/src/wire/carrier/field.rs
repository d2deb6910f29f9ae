//! A carrier's fields as they arrived: a field that is valid is kept in its
//! checked form (so the round trip allocates no more than a plain struct),
//! and any other is kept as the JSON it was, for [`Context::from_carrier`]
//! to report and for a dead letter to show.
//!
//! [`Context::from_carrier`]: crate::Context::from_carrier

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Number, Value};

use crate::model::tenant::TenantId;
use crate::model::trace::TraceId;
use crate::model::user::{UserId, UserRef};

/// One field of a carrier.
#[derive(Clone, PartialEq)]
pub(super) enum Field<T> {
    /// The field is valid and checked.
    Valid(T),
    /// The field as written, not valid (its error is reported when the
    /// carrier becomes a context). Boxed: it is rare, and a small carrier
    /// moves faster.
    Raw(Box<Value>),
}

impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Valid(value) => value.serialize(serializer),
            Field::Raw(value) => value.serialize(serializer),
        }
    }
}

/// A valid trace id with its text, so that [`Carrier::trace_id`] can lend it.
///
/// [`Carrier::trace_id`]: crate::Carrier::trace_id
#[derive(Clone, Copy, PartialEq)]
pub(super) struct TraceText {
    pub(super) id: TraceId,
    hex: Hex,
}

/// 32 hex digits, aligned so that checking they are UTF-8 runs a word at a time.
#[derive(Clone, Copy, PartialEq)]
#[repr(align(16))]
struct Hex([u8; 32]);

impl TraceText {
    pub(super) fn new(id: TraceId) -> Self {
        TraceText {
            id,
            hex: Hex(id.to_hex()),
        }
    }

    pub(super) fn as_str(&self) -> &str {
        // Lowercase hex digits are ASCII: this never falls back.
        std::str::from_utf8(&self.hex.0).unwrap_or_default()
    }
}

impl Serialize for TraceText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A field whose valid form is read from a JSON string.
pub(super) trait FromText: Sized {
    fn from_text(text: &str) -> Option<Self>;
}

impl FromText for TraceText {
    fn from_text(text: &str) -> Option<Self> {
        let id = text.parse().ok()?;
        // A valid id is exactly its 32 lowercase hex digits: keep them.
        let hex = Hex(text.as_bytes().try_into().ok()?);
        Some(TraceText { id, hex })
    }
}

impl FromText for TenantId {
    fn from_text(text: &str) -> Option<Self> {
        TenantId::new(text).ok()
    }
}

/// Turns any JSON value into a [`Field`]: a string that `T` accepts is
/// valid, anything else is kept as written.
struct FieldVisitor<T>(PhantomData<T>);

fn raw<T, E>(value: Value) -> Result<Field<T>, E> {
    Ok(Field::Raw(Box::new(value)))
}

macro_rules! visit_scalars {
    () => {
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            raw(Value::Bool(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            raw(Value::Number(v.into()))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            raw(Value::Number(v.into()))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            raw(Number::from_f64(v).map_or(Value::Null, Value::Number))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            raw(Value::Null)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            raw(Value::Null)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            raw(Value::deserialize(SeqAccessDeserializer::new(seq))?)
        }
    };
}

impl<'de, T: FromText> Visitor<'de> for FieldVisitor<T> {
    type Value = Field<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    visit_scalars!();

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(T::from_text(v).map_or_else(
            || Field::Raw(Box::new(Value::String(v.to_owned()))),
            Field::Valid,
        ))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(match T::from_text(&v) {
            Some(valid) => Field::Valid(valid),
            None => Field::Raw(Box::new(Value::String(v))),
        })
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        raw(Value::deserialize(MapAccessDeserializer::new(map))?)
    }
}

impl<'de> Deserialize<'de> for Field<TraceText> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor(PhantomData))
    }
}

impl<'de> Deserialize<'de> for Field<TenantId> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor(PhantomData))
    }
}

/// A `userRef`: an object `{"type", "id"}` read straight into a [`UserRef`]
/// when it is one, else kept as written.
struct UserVisitor;

impl<'de> Visitor<'de> for UserVisitor {
    type Value = Field<UserRef>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    visit_scalars!();

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        raw(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        raw(Value::String(v))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut kind = None;
        let mut id = None;
        let mut others: Option<Map<String, Value>> = None;
        while let Some(key) = map.next_key::<UserKey>()? {
            match key {
                UserKey::Type => kind = Some(map.next_value::<Part<'de>>()?),
                UserKey::Id => id = Some(map.next_value::<Part<'de>>()?),
                UserKey::Other(key) => {
                    let value = map.next_value()?;
                    others.get_or_insert_with(Map::new).insert(key, value);
                }
            }
        }
        if let (Some(Part::Text(kind)), Some(id)) = (&kind, &id) {
            let id = match id {
                Part::Number(n) => Some(UserId::Number(*n)),
                Part::Text(text) => Some(UserId::from(&**text)),
                Part::Other(_) => None,
            };
            // Other members are ignored, as `UserRef`'s own `Deserialize`
            // does; a reference that has some is kept as written (and
            // checked by `UserRef`'s own `Deserialize` when it is read), so
            // that writing it back keeps them.
            if others.is_none() {
                if let Some(Ok(user)) = id.map(|id| UserRef::new(&**kind, id)) {
                    return Ok(Field::Valid(user));
                }
            }
        }
        // Not a valid reference: keep the object as written.
        let mut others = others.unwrap_or_default();
        for (key, part) in [("type", kind), ("id", id)] {
            if let Some(part) = part {
                others.insert(key.to_owned(), part.into_value());
            }
        }
        raw(Value::Object(others))
    }
}

impl<'de> Deserialize<'de> for Field<UserRef> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UserVisitor)
    }
}

/// A key of a `userRef` object.
enum UserKey {
    Type,
    Id,
    Other(String),
}

impl<'de> Deserialize<'de> for UserKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = UserKey;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<UserKey, E> {
                Ok(match v {
                    "type" => UserKey::Type,
                    "id" => UserKey::Id,
                    other => UserKey::Other(other.to_owned()),
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// The `type` or the `id` of a `userRef`, borrowed from the input when it can be.
enum Part<'de> {
    Text(Cow<'de, str>),
    Number(i64),
    Other(Value),
}

impl Part<'_> {
    fn into_value(self) -> Value {
        match self {
            Part::Text(text) => Value::String(text.into_owned()),
            Part::Number(n) => Value::Number(n.into()),
            Part::Other(value) => value,
        }
    }
}

impl<'de> Deserialize<'de> for Part<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PartVisitor;
        impl<'de> Visitor<'de> for PartVisitor {
            type Value = Part<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Part<'de>, E> {
                Ok(Part::Text(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Part<'de>, E> {
                Ok(Part::Text(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Part<'de>, E> {
                Ok(Part::Text(Cow::Owned(v)))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Part<'de>, E> {
                Ok(Part::Number(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Part<'de>, E> {
                Ok(match i64::try_from(v) {
                    Ok(n) => Part::Number(n),
                    Err(_) => Part::Other(Value::Number(v.into())),
                })
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Part<'de>, E> {
                Ok(Part::Other(
                    Number::from_f64(v).map_or(Value::Null, Value::Number),
                ))
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Part<'de>, E> {
                Ok(Part::Other(Value::Bool(v)))
            }

            fn visit_unit<E: de::Error>(self) -> Result<Part<'de>, E> {
                Ok(Part::Other(Value::Null))
            }

            fn visit_none<E: de::Error>(self) -> Result<Part<'de>, E> {
                Ok(Part::Other(Value::Null))
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Part<'de>, D::Error> {
                d.deserialize_any(self)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Part<'de>, A::Error> {
                Ok(Part::Other(Value::deserialize(
                    SeqAccessDeserializer::new(seq),
                )?))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Part<'de>, A::Error> {
                Ok(Part::Other(Value::deserialize(
                    MapAccessDeserializer::new(map),
                )?))
            }
        }
        deserializer.deserialize_any(PartVisitor)
    }
}
