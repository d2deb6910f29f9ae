//! A job's `ctx` member, read straight from the job's JSON into a
//! [`Carrier`] (no intermediate `Value`, no second decode), while anything
//! that is not a carrier still parses, kept as written, so that the job can
//! be dead-lettered with its reason instead of being unreadable.
//!
//! Written back, it is the same JSON the job arrived with (members in the
//! order a `serde_json::Value` writes them: sorted by name), so a job read
//! and enqueued again is unchanged on the wire.

use std::borrow::Cow;
use std::fmt;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Number, Value};

use super::field::{Field, TraceText};
use super::{Carrier, CarrierError, CARRIER_VERSION};
use crate::model::context::Context;
use crate::model::tenant::TenantId;
use crate::model::user::UserRef;
use crate::wire::signature::Keyring;

/// A job's `ctx` as it arrived.
#[derive(Clone, PartialEq)]
pub(crate) enum JobCtx {
    /// An object read as a carrier, with what else was written in it.
    Carrier(Carrier, Written),
    /// Anything else, as written (not an object, or an object whose `v` is
    /// not a format version): reading it is [`CarrierError::Malformed`].
    Raw(Box<Value>),
}

/// What a carrier object held beyond the fields a [`Carrier`] keeps.
#[derive(Clone, PartialEq, Default)]
pub(crate) struct Written {
    /// Whether `v` was written (a nestjs-context carrier has none).
    version: bool,
    /// The members a carrier does not read, and its own written as `null`.
    others: Option<Box<Map<String, Value>>>,
}

impl Written {
    /// Records that the known member `name` was written, as `null` or not
    /// (the last one written wins, as in a `Value`).
    #[inline]
    fn known(&mut self, name: &'static str, null: bool) {
        if null {
            self.others
                .get_or_insert_with(Box::default)
                .insert(name.to_owned(), Value::Null);
        } else if let Some(others) = &mut self.others {
            others.remove(name);
            if others.is_empty() {
                self.others = None;
            }
        }
    }
}

impl From<Carrier> for JobCtx {
    fn from(carrier: Carrier) -> Self {
        JobCtx::Carrier(
            carrier,
            Written {
                version: true,
                others: None,
            },
        )
    }
}

impl JobCtx {
    /// The carrier: `Ok(None)` for a `null` one, an error when it is not a
    /// carrier object.
    pub(crate) fn carrier(&self) -> Result<Option<Cow<'_, Carrier>>, CarrierError> {
        match self {
            JobCtx::Carrier(carrier, _) => Ok(Some(Cow::Borrowed(carrier))),
            JobCtx::Raw(raw) if raw.is_null() => Ok(None),
            JobCtx::Raw(raw) => Carrier::deserialize(&**raw)
                .map(|carrier| Some(Cow::Owned(carrier)))
                .map_err(|e| CarrierError::Malformed {
                    reason: e.to_string(),
                }),
        }
    }

    /// The trace id as written, if it is a string.
    #[cfg(feature = "redis")]
    pub(crate) fn claimed_trace_id(&self) -> Option<&str> {
        match self {
            JobCtx::Carrier(carrier, _) => carrier.trace_id(),
            JobCtx::Raw(raw) => raw.get("traceId")?.as_str(),
        }
    }

    /// Signs the carrier's identity (for `job_id`) in place; a carrier that
    /// does not read, or is not one, is left as it is.
    pub(crate) fn sign(&mut self, keyring: &Keyring, job_id: Option<&str>) {
        let JobCtx::Carrier(carrier, written) = self else {
            return;
        };
        let Ok(cx) = Context::from_carrier(carrier) else {
            return;
        };
        carrier.sig = Some(Box::new(Value::String(keyring.sign(&cx.claims(job_id)))));
        written.known("sig", false);
    }
}

impl fmt::Debug for JobCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobCtx::Raw(raw) => raw.fmt(f),
            JobCtx::Carrier(..) => serde_json::to_value(self).unwrap_or_default().fmt(f),
        }
    }
}

// ------------------------------------------------------------------ writing

/// One member of a carrier object, as written.
enum Member<'a> {
    Trace(&'a Field<TraceText>),
    Tenant(&'a Field<TenantId>),
    User(&'a Field<UserRef>),
    Json(&'a Value),
    Version(u32),
}

impl Serialize for Member<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Member::Trace(field) => field.serialize(serializer),
            Member::Tenant(field) => field.serialize(serializer),
            Member::User(Field::Valid(user)) => {
                // As a `Value` writes it: members sorted by name.
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("id", user.id())?;
                map.serialize_entry("type", user.kind())?;
                map.end()
            }
            Member::User(Field::Raw(raw)) => raw.serialize(serializer),
            Member::Json(value) => value.serialize(serializer),
            Member::Version(v) => serializer.serialize_u32(*v),
        }
    }
}

impl Serialize for JobCtx {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (carrier, written) = match self {
            JobCtx::Raw(raw) => return raw.serialize(serializer),
            JobCtx::Carrier(carrier, written) => (carrier, written),
        };
        // The carrier's members, sorted by name.
        let known = [
            ("baggage", carrier.baggage.as_deref().map(Member::Json)),
            ("sig", carrier.sig.as_deref().map(Member::Json)),
            ("tenantId", carrier.tenant_id.as_ref().map(Member::Tenant)),
            ("traceId", carrier.trace_id.as_ref().map(Member::Trace)),
            ("userRef", carrier.user_ref.as_ref().map(Member::User)),
            (
                "v",
                written.version.then_some(Member::Version(carrier.version)),
            ),
        ];
        let mut known = known
            .into_iter()
            .filter_map(|(name, member)| Some((name, member?)))
            .peekable();
        let mut others = written.others.iter().flat_map(|m| m.iter()).peekable();
        let mut map = serializer.serialize_map(None)?;
        loop {
            let known_first = match (known.peek(), others.peek()) {
                (Some((name, _)), Some((other, _))) => *name < other.as_str(),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if known_first {
                if let Some((name, member)) = known.next() {
                    map.serialize_entry(name, &member)?;
                }
            } else if let Some((name, value)) = others.next() {
                map.serialize_entry(name, value)?;
            }
        }
        map.end()
    }
}

// ------------------------------------------------------------------ reading

impl<'de> Deserialize<'de> for JobCtx {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CtxVisitor)
    }
}

/// A member name of a carrier object.
enum Key {
    Version,
    TraceId,
    TenantId,
    UserRef,
    Baggage,
    Sig,
    Other(String),
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "v" => Key::Version,
                    "traceId" => Key::TraceId,
                    "tenantId" => Key::TenantId,
                    "userRef" => Key::UserRef,
                    "baggage" => Key::Baggage,
                    "sig" => Key::Sig,
                    other => Key::Other(other.to_owned()),
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// A `v` member: a format version, or anything else as written.
enum Version {
    Valid(u32),
    Other(Value),
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct VersionVisitor;
        impl<'de> Visitor<'de> for VersionVisitor {
            type Value = Version;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Version, E> {
                Ok(
                    u32::try_from(v)
                        .map_or(Version::Other(Value::Number(v.into())), Version::Valid),
                )
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Version, E> {
                Ok(
                    u32::try_from(v)
                        .map_or(Version::Other(Value::Number(v.into())), Version::Valid),
                )
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Version, E> {
                Ok(Version::Other(
                    Number::from_f64(v).map_or(Value::Null, Value::Number),
                ))
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Version, E> {
                Ok(Version::Other(Value::Bool(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Version, E> {
                Ok(Version::Other(Value::String(v.to_owned())))
            }

            fn visit_unit<E: de::Error>(self) -> Result<Version, E> {
                Ok(Version::Other(Value::Null))
            }

            fn visit_none<E: de::Error>(self) -> Result<Version, E> {
                Ok(Version::Other(Value::Null))
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Version, D::Error> {
                d.deserialize_any(self)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Version, A::Error> {
                Ok(Version::Other(Value::deserialize(
                    SeqAccessDeserializer::new(seq),
                )?))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Version, A::Error> {
                Ok(Version::Other(Value::deserialize(
                    MapAccessDeserializer::new(map),
                )?))
            }
        }
        deserializer.deserialize_any(VersionVisitor)
    }
}

struct CtxVisitor;

fn raw<E>(value: Value) -> Result<JobCtx, E> {
    Ok(JobCtx::Raw(Box::new(value)))
}

impl<'de> Visitor<'de> for CtxVisitor {
    type Value = JobCtx;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<JobCtx, E> {
        raw(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<JobCtx, E> {
        raw(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<JobCtx, E> {
        raw(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<JobCtx, E> {
        raw(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<JobCtx, E> {
        raw(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<JobCtx, E> {
        raw(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<JobCtx, E> {
        raw(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<JobCtx, E> {
        raw(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<JobCtx, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<JobCtx, A::Error> {
        raw(Value::deserialize(SeqAccessDeserializer::new(seq))?)
    }

    /// The fields as [`Carrier`]'s own `Deserialize` reads them, except that
    /// a duplicated member is not an error (the last one wins, as in a
    /// `Value`) and a `v` that is not a version keeps the object as written.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JobCtx, A::Error> {
        let mut carrier = Carrier {
            version: CARRIER_VERSION,
            trace_id: None,
            tenant_id: None,
            user_ref: None,
            baggage: None,
            sig: None,
        };
        let mut written = Written::default();
        let mut bad_version = None;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Version => {
                    written.version = true;
                    match map.next_value()? {
                        Version::Valid(version) => {
                            carrier.version = version;
                            bad_version = None;
                        }
                        Version::Other(v) => bad_version = Some(v),
                    }
                }
                Key::TraceId => {
                    carrier.trace_id = map.next_value()?;
                    written.known("traceId", carrier.trace_id.is_none());
                }
                Key::TenantId => {
                    carrier.tenant_id = map.next_value()?;
                    written.known("tenantId", carrier.tenant_id.is_none());
                }
                Key::UserRef => {
                    carrier.user_ref = map.next_value()?;
                    written.known("userRef", carrier.user_ref.is_none());
                }
                Key::Baggage => {
                    carrier.baggage = map.next_value()?;
                    written.known("baggage", carrier.baggage.is_none());
                }
                Key::Sig => {
                    carrier.sig = map.next_value()?;
                    written.known("sig", carrier.sig.is_none());
                }
                Key::Other(name) => {
                    let value = map.next_value()?;
                    written
                        .others
                        .get_or_insert_with(Box::default)
                        .insert(name, value);
                }
            }
        }
        let Some(bad_version) = bad_version else {
            return Ok(JobCtx::Carrier(carrier, written));
        };
        // Not a carrier: the object as written, for its error to be read.
        written.version = false;
        let mut object = match serde_json::to_value(JobCtx::Carrier(carrier, written)) {
            Ok(Value::Object(object)) => object,
            _ => Map::new(),
        };
        object.insert("v".to_owned(), bad_version);
        raw(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a job's `ctx` was before it was read straight into a carrier: a
    /// `Value`, read as a carrier from there. The job must write the same
    /// JSON and read the same carrier (or the same error).
    #[test]
    fn a_ctx_reads_and_writes_as_the_json_value_it_is() {
        const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
        let inputs = [
            format!(r#"{{"v":1,"traceId":"{TRACE}","tenantId":"acme","userRef":{{"type":"user","id":42}}}}"#),
            format!(r#"{{"traceId":"{TRACE}","tenantId":"acme"}}"#),
            r#"{"tenantId":"a b","traceId":"XYZ","userRef":{"type":"","id":1}}"#.to_owned(),
            r#"{"userRef":{"type":"user","id":-7,"extra":[1]},"future":{"x":1},"a":true}"#.to_owned(),
            r#"{"traceId":null,"tenantId":null,"userRef":null,"baggage":null,"sig":null}"#.to_owned(),
            r#"{"tenantId":"acme","tenantId":null,"zz":1,"zz":2}"#.to_owned(),
            r#"{"tenantId":null,"tenantId":"acme"}"#.to_owned(),
            r#"{"v":"1","tenantId":"acme","other":[1]}"#.to_owned(),
            r#"{"v":-1,"userRef":{"type":"user","id":7}}"#.to_owned(),
            r#"{"v":null}"#.to_owned(),
            r#"{"v":1.5,"v":2}"#.to_owned(),
            r#"{"v":2,"v":4294967296}"#.to_owned(),
            r#"{"v":{"a":[1]},"tenantId":"acme"}"#.to_owned(),
            r#"{"v":[1],"v":true}"#.to_owned(),
            r#"{"baggage":{"region":"eu","n":1},"sig":7,"tenantId":42,"userRef":"user:1"}"#
                .to_owned(),
            r#"{"traceId":"4BF92F3577B34DA6A3CE929D0E0E4736","userRef":{"id":"b\u00e9","type":"svc"}}"#
                .to_owned(),
            "{}".to_owned(),
            r#""garbage""#.to_owned(),
            "[1,{\"a\":2}]".to_owned(),
            "7".to_owned(),
            "-7".to_owned(),
            "1.5".to_owned(),
            "false".to_owned(),
        ];
        for input in &inputs {
            let value: Value = serde_json::from_str(input).expect(input);
            let ctx: JobCtx = serde_json::from_str(input).expect(input);
            assert_eq!(
                serde_json::to_string(&ctx).expect(input),
                value.to_string(),
                "{input}"
            );
            let expected = Carrier::deserialize(&value).map_err(|e| e.to_string());
            let read = ctx
                .carrier()
                .map(|c| c.map(Cow::into_owned))
                .map_err(|e| match e {
                    CarrierError::Malformed { reason } => reason,
                    e => panic!("{e}"),
                });
            assert_eq!(read, expected.map(Some), "{input}");
            // From a `Value` too (a job read from one, as some brokers' clients do).
            let from_value: JobCtx = serde_json::from_value(value.clone()).expect(input);
            assert_eq!(from_value, ctx, "{input}");
        }
    }

    #[test]
    fn signing_adds_the_signature_where_a_value_would_have_it() {
        let keyring = Keyring::new("k1", &[7u8; 32]).expect("a key");
        let input = r#"{"tenantId":"acme","sig":null,"zz":1}"#;
        let mut ctx: JobCtx = serde_json::from_str(input).expect("json");
        ctx.sign(&keyring, Some("job-1"));
        let written: Value = serde_json::to_value(&ctx).expect("json");
        let sig = written["sig"].as_str().expect("a signature");
        assert!(sig.starts_with("k1:"), "{sig}");
        assert_eq!(written["zz"], 1);
        let text = serde_json::to_string(&ctx).expect("json");
        assert_eq!(text, written.to_string());
        // A ctx that is not a carrier is left as it is.
        let mut garbage: JobCtx = serde_json::from_str("[1]").expect("json");
        garbage.sign(&keyring, None);
        assert_eq!(serde_json::to_string(&garbage).expect("json"), "[1]");
    }
}
