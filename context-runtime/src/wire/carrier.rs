//! [`Carrier`]: the JSON-safe snapshot of a context that crosses process boundaries.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::context::Context;
use crate::model::tenant::{InvalidTenantId, TenantId};
use crate::model::trace::{TraceFlags, TraceId};
use crate::model::user::UserRef;
use crate::model::w3c::{Baggage, LazyTraceState};
use crate::wire::limits::{MAX_BAGGAGE_BYTES, MAX_BAGGAGE_MEMBERS, MAX_CARRIER_BYTES};
use crate::wire::signature::{is_identity_shaped, Claims, Keyring, UntrustedIdentity};

mod envelope;
mod field;

pub(crate) use envelope::JobCtx;
use field::{Field, TraceText};

/// The carrier format this version writes.
pub const CARRIER_VERSION: u32 = 1;

/// A JSON-safe snapshot of a [`Context`], for job payloads and anything else
/// that crosses a process boundary as data.
///
/// It holds the trace id, the tenant, the user reference, the baggage and a
/// format version, under the JSON names Node's nestjs-context uses, so carriers
/// written by `Context.serialize()` are read as they are:
///
/// ```
/// use context_runtime::{Carrier, Context};
///
/// let carrier: Carrier = serde_json::from_str(
///     r#"{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","tenantId":"t1","userRef":{"type":"user","id":42}}"#,
/// )?;
/// let cx = Context::from_carrier(&carrier)?;
/// assert_eq!(cx.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(cx.tenant().unwrap().as_str(), "t1");
/// assert_eq!(cx.user().unwrap().to_string(), "user:42");
///
/// // And back: the same fields, plus `"v": 1`.
/// let json = serde_json::to_value(cx.to_carrier())?;
/// assert_eq!(json["tenantId"], "t1");
/// assert_eq!(json["userRef"]["id"], 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Reading is tolerant where it is safe and strict where it matters:
/// - unknown fields and other format versions are accepted (readers of any
///   version read the fields they know);
/// - a missing or invalid trace id becomes a fresh one, with one `tracing`
///   warning per process (the *trace-id safety net*);
/// - an invalid tenant, user or baggage is a [`CarrierError`], never silently
///   dropped into "no tenant";
/// - a carrier over the [`limits`](crate::limits) (16 KiB of JSON, 64
///   baggage members, 8,192 bytes of baggage) is [`CarrierError::TooLarge`].
///
/// Between your own services the identity is signed:
/// [`Context::to_signed_carrier`] adds a `"sig"` field (which
/// nestjs-context ignores) and [`Context::from_signed_carrier`] verifies it
/// with a [`Keyring`]; [`Context::from_carrier`] alone trusts the carrier as
/// written.
///
/// The fields are checked by [`Context::from_carrier`], not while parsing, so a
/// payload with a bad carrier still parses and can be dead-lettered with its
/// reason and the tenant it claimed ([`CarrierError::tenant`]). (Parsing
/// keeps a valid field in its checked form and any other as the JSON it was,
/// so the common case costs what a plain struct of strings costs.)
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(remote = "Self")]
pub struct Carrier {
    #[serde(rename = "v", default = "default_version")]
    version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trace_id: Option<Field<TraceText>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant_id: Option<Field<TenantId>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_ref: Option<Field<UserRef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    baggage: Option<Box<Value>>,
    /// The signature of the identity (`key-id:issued-at:tag`), see
    /// [`Keyring`]; readers that do not know it (nestjs-context) ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sig: Option<Box<Value>>,
}

impl Serialize for Carrier {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Carrier::serialize(self, serializer)
    }
}

/// Only a JSON object is a carrier (serde would otherwise accept an array).
impl<'de> Deserialize<'de> for Carrier {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectOnly;
        impl<'de> serde::de::Visitor<'de> for ObjectOnly {
            type Value = Carrier;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a context carrier object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Carrier, A::Error> {
                Carrier::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_map(ObjectOnly)
    }
}

fn default_version() -> u32 {
    CARRIER_VERSION
}

impl Carrier {
    /// Parses a carrier from JSON text.
    ///
    /// # Errors
    ///
    /// [`CarrierError::Malformed`] when the text is not a JSON object of the
    /// carrier's shape.
    ///
    /// [`CarrierError::TooLarge`] when the text is longer than
    /// [`MAX_CARRIER_BYTES`](crate::limits::MAX_CARRIER_BYTES).
    pub fn from_json(json: &str) -> Result<Carrier, CarrierError> {
        if json.len() > MAX_CARRIER_BYTES {
            return Err(CarrierError::TooLarge {
                what: "carrier",
                limit: MAX_CARRIER_BYTES,
            });
        }
        serde_json::from_str(json).map_err(|e| CarrierError::Malformed {
            reason: e.to_string(),
        })
    }

    /// The carrier as JSON text.
    pub fn to_json(&self) -> String {
        // A carrier holds only strings, numbers and objects: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The format version the writer used (1 when absent, as in nestjs-context carriers).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The trace id as written, if it is a string (valid or not).
    pub fn trace_id(&self) -> Option<&str> {
        match self.trace_id.as_ref()? {
            Field::Valid(trace) => Some(trace.as_str()),
            Field::Raw(raw) => raw.as_str(),
        }
    }

    /// The tenant id as written, if it is a string (valid or not).
    pub fn tenant_id(&self) -> Option<&str> {
        match self.tenant_id.as_ref()? {
            Field::Valid(tenant) => Some(tenant.as_str()),
            Field::Raw(raw) => raw.as_str(),
        }
    }

    /// Whether the carrier names a user.
    pub fn has_user(&self) -> bool {
        self.user_ref.is_some()
    }

    /// The signature as written, if it is a string (see [`Keyring`]).
    pub fn signature(&self) -> Option<&str> {
        self.sig.as_deref()?.as_str()
    }

    /// The carrier without its signature.
    pub fn without_signature(mut self) -> Carrier {
        self.sig = None;
        self
    }
}

impl fmt::Debug for Carrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

/// Why a carrier could not become a [`Context`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CarrierError {
    /// The carrier is not JSON of the carrier's shape.
    Malformed {
        /// What the parser said.
        reason: String,
    },
    /// The carrier names a tenant that is not a valid [`TenantId`].
    InvalidTenant {
        /// The tenant as written (JSON text when it is not a string).
        value: String,
        /// What is wrong with it.
        error: InvalidTenantId,
    },
    /// The carrier names a user that is not a valid [`UserRef`].
    InvalidUser {
        /// What is wrong with it.
        reason: String,
    },
    /// The carrier's baggage is not an object of string values.
    InvalidBaggage {
        /// What is wrong with it.
        reason: String,
    },
    /// The carrier (or a part of it) is over one of the
    /// [`limits`](crate::limits).
    TooLarge {
        /// What is too large: `"carrier"`, `"baggage"`, `"job payload"`, a
        /// header's name.
        what: &'static str,
        /// The limit it broke (members or bytes, as the limit says).
        limit: usize,
    },
    /// The identity the carrier (or header, or environment) names is not
    /// trusted: unsigned where a signature is required, forged, expired,
    /// signed with an unknown key, or refused by a resolver.
    UntrustedIdentity(UntrustedIdentity),
}

impl From<UntrustedIdentity> for CarrierError {
    fn from(e: UntrustedIdentity) -> Self {
        CarrierError::UntrustedIdentity(e)
    }
}

impl CarrierError {
    /// The tenant the carrier claimed, when one was readable, for a dead
    /// letter's record. It is *not* a validated [`TenantId`]: never run work for it.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            CarrierError::InvalidTenant { value, .. } => Some(value),
            _ => None,
        }
    }
}

impl fmt::Display for CarrierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CarrierError::Malformed { reason } => write!(
                f,
                "the context carrier is malformed ({reason}); expected a JSON object like \
                 {{\"traceId\":\"<32 hex>\",\"tenantId\":\"…\",\"userRef\":{{\"type\":\"user\",\"id\":42}}}}"
            ),
            CarrierError::InvalidTenant { value, error } => write!(
                f,
                "the context carrier names an invalid tenant {value:?}: {error}; \
                 the job must not run for a guessed tenant, fix the producer"
            ),
            CarrierError::InvalidUser { reason } => {
                write!(f, "the context carrier names an invalid user: {reason}")
            }
            CarrierError::InvalidBaggage { reason } => {
                write!(f, "the context carrier has invalid baggage: {reason}")
            }
            CarrierError::TooLarge { what, limit } => {
                write!(f, "the context's {what} is over the limit of {limit}")
            }
            CarrierError::UntrustedIdentity(e) => {
                write!(f, "the context's identity is not trusted: {e}")
            }
        }
    }
}

impl std::error::Error for CarrierError {}

static SAFETY_NET_WARNED: AtomicBool = AtomicBool::new(false);

/// A fresh trace id for a carrier that had none (or an invalid one), with one
/// warning per process.
pub(crate) fn safety_net_trace_id(problem: &str) -> TraceId {
    if !SAFETY_NET_WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            target: "context_runtime::carrier",
            problem,
            "a context carrier arrived without a valid trace id; using a fresh one \
             (the producer should send `traceId`; this is logged once per process)"
        );
    }
    TraceId::random()
}

pub(crate) fn parse_trace_id(raw: Option<&Value>) -> TraceId {
    match raw {
        None | Some(Value::Null) => safety_net_trace_id("missing"),
        Some(Value::String(s)) => match s.parse() {
            Ok(id) => id,
            Err(_) => safety_net_trace_id("invalid"),
        },
        Some(_) => safety_net_trace_id("not a string"),
    }
}

pub(crate) fn parse_tenant(raw: Option<&Value>) -> Result<Option<TenantId>, CarrierError> {
    match raw {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            TenantId::new(s)
                .map(Some)
                .map_err(|error| CarrierError::InvalidTenant {
                    value: s.clone(),
                    error,
                })
        }
        Some(other) => Err(CarrierError::InvalidTenant {
            value: other.to_string(),
            error: InvalidTenantId::NotAString,
        }),
    }
}

fn parse_user(raw: Option<&Value>) -> Result<Option<UserRef>, CarrierError> {
    match raw {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            UserRef::deserialize(value)
                .map(Some)
                .map_err(|e| CarrierError::InvalidUser {
                    reason: e.to_string(),
                })
        }
    }
}

fn parse_baggage(raw: Option<&Value>) -> Result<Baggage, CarrierError> {
    match raw {
        None | Some(Value::Null) => Ok(Baggage::new()),
        Some(Value::Object(map)) if map.len() > MAX_BAGGAGE_MEMBERS => {
            Err(CarrierError::TooLarge {
                what: "baggage",
                limit: MAX_BAGGAGE_MEMBERS,
            })
        }
        Some(Value::Object(map))
            if map
                .iter()
                .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len) + 2)
                .sum::<usize>()
                > MAX_BAGGAGE_BYTES =>
        {
            Err(CarrierError::TooLarge {
                what: "baggage",
                limit: MAX_BAGGAGE_BYTES,
            })
        }
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.as_str(), s.as_str())),
                _ => Err(CarrierError::InvalidBaggage {
                    reason: format!("the value of {k:?} is not a string"),
                }),
            })
            // Identity travels only as the tenant and user (signed where a
            // keyring says so), never as plain baggage: identity-shaped
            // members are not taken in, as they are not written out.
            .filter(|member| {
                member
                    .as_ref()
                    .map_or(true, |(k, _)| !is_identity_shaped(k))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Baggage::from_pairs),
        Some(_) => Err(CarrierError::InvalidBaggage {
            reason: "expected an object of string values".into(),
        }),
    }
}

impl Context {
    /// The carrier for this context: trace id, tenant, user and baggage.
    /// Process-local values and the source do not travel, and neither do
    /// identity-shaped baggage members (see [`Trust`](crate::Trust)): the
    /// identity travels only as the tenant and user.
    pub fn to_carrier(&self) -> Carrier {
        let baggage: serde_json::Map<String, Value> = self
            .baggage()
            .iter()
            .filter(|(k, _)| !is_identity_shaped(k))
            .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
            .collect();
        let baggage = (!baggage.is_empty()).then(|| Box::new(Value::Object(baggage)));
        Carrier {
            version: CARRIER_VERSION,
            trace_id: Some(Field::Valid(TraceText::new(self.trace_id()))),
            tenant_id: self.tenant().cloned().map(Field::Valid),
            user_ref: self.user().cloned().map(Field::Valid),
            baggage,
            sig: None,
        }
    }

    /// The carrier for this context with its identity signed by `keyring`
    /// (the trace id, tenant, user, issue time, and `job_id` when the
    /// carrier rides with a job that has one).
    ///
    /// ```
    /// use context_runtime::{Context, Keyring, TenantId};
    ///
    /// let keyring = Keyring::new("k1", b"0123456789abcdef0123456789abcdef")?;
    /// let cx = Context::root().with_tenant(TenantId::new("acme")?);
    /// let json = cx.to_signed_carrier(&keyring, None).to_json();
    /// assert!(json.contains(r#""sig":"k1:"#));
    ///
    /// let carrier = context_runtime::Carrier::from_json(&json)?;
    /// let back = Context::from_signed_carrier(&carrier, &keyring, None)?;
    /// assert_eq!(back.tenant(), cx.tenant());
    ///
    /// // The tenant edited after signing: refused.
    /// let edited = context_runtime::Carrier::from_json(&json.replace("acme", "victim"))?;
    /// assert!(Context::from_signed_carrier(&edited, &keyring, None).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_signed_carrier(&self, keyring: &Keyring, job_id: Option<&str>) -> Carrier {
        let mut carrier = self.to_carrier();
        let signature = keyring.sign(&self.claims(job_id));
        carrier.sig = Some(Box::new(Value::String(signature)));
        carrier
    }

    /// What a signature of this context covers, with `job_id`.
    pub fn claims<'a>(&'a self, job_id: Option<&'a str>) -> Claims<'a> {
        Claims {
            trace_id: self.trace_id(),
            tenant: self.tenant(),
            user: self.user(),
            job_id,
        }
    }

    /// Like [`from_carrier`](Context::from_carrier), and the identity must
    /// be signed by a key of `keyring` (for `job_id`, when the carrier
    /// rides with a job that has one). A carrier without a tenant, a user
    /// and a signature is read as it is (a trace without identity).
    ///
    /// # Errors
    ///
    /// As [`from_carrier`](Context::from_carrier), and
    /// [`CarrierError::UntrustedIdentity`] when the identity is unsigned,
    /// the signature malformed, made with an unknown key, not matching, or
    /// too old.
    pub fn from_signed_carrier(
        carrier: &Carrier,
        keyring: &Keyring,
        job_id: Option<&str>,
    ) -> Result<Context, CarrierError> {
        let cx = Context::from_carrier(carrier)?;
        let has_identity = cx.tenant().is_some() || cx.user().is_some();
        match (&carrier.sig, has_identity) {
            (None, false) => Ok(cx),
            (None, true) => Err(UntrustedIdentity::Unsigned.into()),
            (Some(sig), _) => {
                let Some(sig) = sig.as_str() else {
                    return Err(UntrustedIdentity::MalformedSignature {
                        reason: "the signature is not a string",
                    }
                    .into());
                };
                keyring.verify(sig, &cx.claims(job_id))?;
                Ok(cx)
            }
        }
    }

    /// Re-establishes a context from a carrier, checking every field.
    ///
    /// # Errors
    ///
    /// An invalid tenant, user or baggage. A missing or invalid trace id is
    /// not an error: it becomes a fresh one (see [`Carrier`]).
    pub fn from_carrier(carrier: &Carrier) -> Result<Context, CarrierError> {
        let tenant = match &carrier.tenant_id {
            Some(Field::Valid(tenant)) => Some(tenant.clone()),
            Some(Field::Raw(raw)) => parse_tenant(Some(raw))?,
            None => None,
        };
        let user = match &carrier.user_ref {
            Some(Field::Valid(user)) => Some(user.clone()),
            Some(Field::Raw(raw)) => parse_user(Some(raw))?,
            None => None,
        };
        let baggage = parse_baggage(carrier.baggage.as_deref())?;
        let trace_id = match &carrier.trace_id {
            Some(Field::Valid(trace)) => trace.id,
            Some(Field::Raw(raw)) => parse_trace_id(Some(raw)),
            None => parse_trace_id(None),
        };
        // Sampled, with no parent span, trace state, source or values, as the
        // builder makes it for a given trace id.
        Ok(Context::from_wire(
            trace_id,
            None,
            TraceFlags::SAMPLED,
            LazyTraceState::checked(None),
            tenant,
            user,
            None,
            baggage,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `carrier_json` fuzz target: an identity-shaped member
    /// was kept when read and dropped when written, so a context did not
    /// survive its own carrier.
    #[test]
    fn identity_shaped_baggage_is_neither_read_nor_written() {
        let carrier = Carrier::from_json(
            r#"{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","baggage":{"userid":"eu","region":"eu"}}"#,
        )
        .expect("a carrier");
        let cx = Context::from_carrier(&carrier).expect("valid");
        assert_eq!(cx.baggage().get("userid"), None);
        assert_eq!(cx.baggage().get("region"), Some("eu"));
        let back = Context::from_carrier(&cx.to_carrier()).expect("valid");
        assert_eq!(back.baggage(), cx.baggage());
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let cx = Context::builder()
            .tenant(TenantId::new("t1").expect("valid"))
            .user(UserRef::new("service", "billing").expect("valid"))
            .baggage([("region", "eu")].into_iter().collect())
            .build();
        let json = cx.to_carrier().to_json();
        let back =
            Context::from_carrier(&Carrier::from_json(&json).expect("parse")).expect("valid");
        assert_eq!(back.trace_id(), cx.trace_id());
        assert_eq!(back.tenant(), cx.tenant());
        assert_eq!(back.user(), cx.user());
        assert_eq!(back.baggage(), cx.baggage());
    }

    #[test]
    fn newer_versions_and_unknown_fields_are_read() {
        let c = Carrier::from_json(
            r#"{"v":7,"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","tenantId":"t1","future":{"x":1}}"#,
        )
        .expect("parse");
        assert_eq!(c.version(), 7);
        let cx = Context::from_carrier(&c).expect("valid");
        assert_eq!(cx.tenant().map(TenantId::as_str), Some("t1"));
    }

    #[test]
    fn invalid_tenants_and_users_are_errors() {
        for (json, tenant) in [
            (r#"{"tenantId":""}"#, Some("")),
            (r#"{"tenantId":"a b"}"#, Some("a b")),
            (r#"{"tenantId":42}"#, Some("42")),
        ] {
            let c = Carrier::from_json(json).expect("parse");
            let err = Context::from_carrier(&c).expect_err(json);
            assert_eq!(err.tenant(), tenant, "{json}");
            assert!(err.to_string().contains("invalid tenant"), "{err}");
        }
        let c = Carrier::from_json(r#"{"userRef":{"type":"user","id":true}}"#).expect("parse");
        assert!(matches!(
            Context::from_carrier(&c),
            Err(CarrierError::InvalidUser { .. })
        ));
        assert!(matches!(
            Carrier::from_json("[1,2]"),
            Err(CarrierError::Malformed { .. })
        ));
    }

    #[test]
    fn fields_are_read_back_as_written_valid_or_not() {
        // Valid fields, from text and from a `serde_json::Value`.
        let json = r#"{"v":1,"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","tenantId":"t1","userRef":{"type":"user","id":42}}"#;
        let from_text = Carrier::from_json(json).expect("parse");
        let value: Value = serde_json::from_str(json).expect("json");
        let from_value: Carrier = serde_json::from_value(value.clone()).expect("parse");
        assert_eq!(from_text, from_value);
        assert_eq!(from_text.to_json(), json);
        assert_eq!(
            from_text.trace_id(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(from_text.tenant_id(), Some("t1"));
        assert!(from_text.has_user());

        // Invalid ones are kept as they came, for a dead letter to show.
        let json = r#"{"v":1,"traceId":"XYZ","tenantId":"a b","userRef":{"type":"user","id":true,"name":"x"}}"#;
        let bad = Carrier::from_json(json).expect("parse");
        assert_eq!(bad.trace_id(), Some("XYZ"));
        assert_eq!(bad.tenant_id(), Some("a b"));
        let written: Value = serde_json::from_str(&bad.to_json()).expect("json");
        assert_eq!(written, serde_json::from_str::<Value>(json).expect("json"));
        let bad = Carrier::from_json(r#"{"traceId":7,"tenantId":[1]}"#).expect("parse");
        assert_eq!((bad.trace_id(), bad.tenant_id()), (None, None));
        assert_eq!(bad.to_json(), r#"{"v":1,"traceId":7,"tenantId":[1]}"#);
    }

    #[test]
    fn user_refs_are_checked_like_user_ref_itself() {
        let user = |json: &str| {
            let carrier = Carrier::from_json(&format!(r#"{{"userRef":{json}}}"#)).expect(json);
            Context::from_carrier(&carrier).map(|cx| cx.user().map(ToString::to_string))
        };
        assert_eq!(
            user(r#"{"type":"user","id":42}"#),
            Ok(Some("user:42".into()))
        );
        assert_eq!(
            user(r#"{"id":"b\u00e9","type":"svc"}"#),
            Ok(Some("svc:bé".into()))
        );
        assert_eq!(
            user(r#"{"type":"user","id":-7,"extra":[1]}"#),
            Ok(Some("user:-7".into()))
        );
        assert_eq!(user("null"), Ok(None));
        for json in [
            r#"{"type":"user"}"#,
            r#"{"id":1}"#,
            r#"{"type":"","id":1}"#,
            r#"{"type":"user","id":""}"#,
            r#"{"type":"user","id":1.5}"#,
            r#"{"type":"user","id":18446744073709551615}"#,
            r#"{"type":7,"id":1}"#,
            r#""user:42""#,
            "[1]",
        ] {
            let err = user(json).expect_err(json);
            let expected = serde_json::from_str::<Value>(json)
                .ok()
                .map(|v| UserRef::deserialize(v).expect_err(json).to_string());
            assert_eq!(
                Some(err.to_string()),
                expected.map(|reason| CarrierError::InvalidUser { reason }.to_string()),
                "{json}"
            );
        }
    }

    #[test]
    fn members_are_read_as_a_derived_deserialize_reads_them() {
        for json in [
            r#"{"tenantId":"a","tenantId":"b"}"#,
            r#"{"v":1,"v":1}"#,
            r#"{"v":null}"#,
            r#"{"v":"1"}"#,
            r#"{"v":-1}"#,
            r#"{"sig":"a","sig":"b"}"#,
            "[]",
            r#""carrier""#,
        ] {
            assert!(
                matches!(
                    Carrier::from_json(json),
                    Err(CarrierError::Malformed { .. })
                ),
                "{json}"
            );
        }
        let c = Carrier::from_json(r#"{"x":1,"x":[2],"tenantId":null,"y\u0041":{}}"#)
            .expect("unknown members are skipped, even twice");
        assert_eq!((c.version(), c.tenant_id()), (1, None));
        assert_eq!(c.to_json(), r#"{"v":1}"#);
    }

    #[test]
    fn missing_or_bad_trace_ids_get_a_fresh_one() {
        let a = Context::from_carrier(&Carrier::from_json("{}").expect("parse")).expect("ok");
        let b = Context::from_carrier(&Carrier::from_json(r#"{"traceId":"zz"}"#).expect("parse"))
            .expect("ok");
        assert_ne!(a.trace_id(), b.trace_id());
        assert!(a.tenant().is_none());
    }
}
