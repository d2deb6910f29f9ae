//! The hostile-input catalogue: one table per entry point (HTTP headers,
//! carrier JSON, broker headers, the environment, job payloads), each row an
//! attack (oversized, deeply nested, duplicated, non-UTF-8, forged, expired,
//! replayed under another tenant, smuggled) with its expected typed outcome.
//!
//! Every row checks that nothing panics and that no context comes out with
//! an identity that was not verified (or, for the rows that trust unsigned
//! identity on purpose, not the one the attacker claimed).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::process::Command;

use context_runtime::jobs::{admit, check_payload_size, Job, Policy, Rejection, RejectionKind};
use context_runtime::{
    Carrier, CarrierError, Claims, Context, Keyring, Propagator, TenantId, Trust,
    UntrustedIdentity, UserRef,
};
use http::{HeaderMap, HeaderValue};
use serde_json::Value;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const SECRET: &[u8; 32] = b"an-example-secret-of-32-bytes!!!";

fn keyring() -> Keyring {
    Keyring::new("k1", SECRET).expect("a valid key")
}

fn other_keyring() -> Keyring {
    Keyring::new("k9", b"another-secret-of-at-least-32-by").expect("a valid key")
}

fn acme() -> Context {
    Context::builder()
        .trace_id(TRACE.parse().expect("valid"))
        .tenant(TenantId::new("acme").expect("valid"))
        .user(UserRef::user(7).expect("valid"))
        .build()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// A signature for `cx` issued `ago` seconds ago by `keyring`.
fn signature(keyring: &Keyring, cx: &Context, ago: u64) -> String {
    keyring.sign_at(&cx.claims(None), now() - ago)
}

/// The typed outcome of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// Accepted, with this tenant (or none).
    Tenant(Option<&'static str>),
    /// Refused as untrusted identity, with this [`UntrustedIdentity::code`].
    Untrusted(&'static str),
    /// Refused: an invalid tenant.
    InvalidTenant,
    /// Refused: an invalid user.
    InvalidUser,
    /// Refused: over a limit.
    TooLarge,
    /// Refused: not of the expected shape.
    Malformed,
}

fn outcome(read: Result<Context, CarrierError>) -> Expect {
    match read {
        Ok(cx) => Expect::Tenant(cx.tenant().map(|t| leak(t.as_str()))),
        Err(CarrierError::UntrustedIdentity(e)) => Expect::Untrusted(e.code()),
        Err(CarrierError::InvalidTenant { .. }) => Expect::InvalidTenant,
        Err(CarrierError::InvalidUser { .. }) => Expect::InvalidUser,
        Err(CarrierError::TooLarge { .. }) => Expect::TooLarge,
        Err(CarrierError::Malformed { .. }) => Expect::Malformed,
        Err(other) => panic!("an unexpected error: {other:?}"),
    }
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

/// Many members, as a `baggage` value.
fn members(n: usize) -> String {
    (0..n)
        .map(|i| format!("k{i}=v"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The signed baggage a signing hop sends for `cx`.
fn signed_baggage(cx: &Context) -> String {
    let (_, _, baggage) = Propagator::new().keyring(keyring()).outgoing(cx);
    baggage.expect("identity to send")
}

// ---------------------------------------------------------------- HTTP

#[test]
fn http_headers() {
    let edge = Propagator::new();
    let internal = Propagator::new().trust_baggage_identity();
    let signed = Propagator::new().keyring(keyring());
    let cx = acme();
    let good = signed_baggage(&cx);
    let replayed = good.replace("tenantId=acme", "tenantId=victim");
    let expired = format!(
        "tenantId=acme,userRef=user:7,ctx.sig={}",
        signature(&keyring(), &cx, 2 * 24 * 3600)
    );
    let unknown = format!(
        "tenantId=acme,userRef=user:7,ctx.sig={}",
        signature(&other_keyring(), &cx, 0)
    );
    let oversized = members(40_000);
    let long_tenant = format!("tenantId={}", "a".repeat(10_000));
    let nested = format!("k=v{}", ";p".repeat(10_000));

    let rows: Vec<(&str, &Propagator, Vec<&[u8]>, Expect)> = vec![
        (
            "signed, as sent",
            &signed,
            vec![good.as_bytes()],
            Expect::Tenant(Some("acme")),
        ),
        (
            "oversized: 40,000 members",
            &internal,
            vec![oversized.as_bytes()],
            Expect::Tenant(None),
        ),
        (
            "oversized: a 10,000-byte tenant",
            &internal,
            vec![long_tenant.as_bytes()],
            Expect::Tenant(None),
        ),
        (
            "deeply nested: 10,000 properties",
            &internal,
            vec![nested.as_bytes()],
            Expect::Tenant(None),
        ),
        (
            "duplicated tenant member",
            &internal,
            vec![b"tenantId=a,tenantId=b"],
            Expect::Tenant(Some("b")),
        ),
        (
            "duplicated baggage lines",
            &internal,
            vec![b"tenantId=a", b"tenantId=b"],
            Expect::Tenant(Some("b")),
        ),
        (
            "non-UTF-8 value",
            &internal,
            vec![b"tenantId=\xff\xfe"],
            Expect::Tenant(None),
        ),
        (
            "invalid tenant, trusted",
            &internal,
            vec![b"tenantId=a%20b"],
            Expect::InvalidTenant,
        ),
        (
            "bidi override in the user",
            &internal,
            vec![b"userRef=user:bob%E2%80%AEnimda"],
            Expect::InvalidUser,
        ),
        (
            "forged: unsigned where signed",
            &signed,
            vec![b"tenantId=victim"],
            Expect::Untrusted("unsigned"),
        ),
        (
            "forged: garbage signature",
            &signed,
            vec![b"tenantId=victim,ctx.sig=k1:1:AAAA"],
            Expect::Untrusted("malformed_signature"),
        ),
        (
            "forged: unknown key",
            &signed,
            vec![unknown.as_bytes()],
            Expect::Untrusted("unknown_key"),
        ),
        (
            "expired",
            &signed,
            vec![expired.as_bytes()],
            Expect::Untrusted("expired"),
        ),
        (
            "replayed under another tenant",
            &signed,
            vec![replayed.as_bytes()],
            Expect::Untrusted("bad_signature"),
        ),
        (
            "claimed at the edge",
            &edge,
            vec![b"tenantId=victim,userRef=user:1"],
            Expect::Tenant(None),
        ),
    ];
    // A long tenant is skipped by the W3C limits before it is read (the
    // member is over 4096 bytes); the rest of the rows are as expected.
    for (name, propagator, lines, expected) in rows {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static(PARENT));
        for line in lines {
            headers.append(
                "baggage",
                HeaderValue::from_bytes(line).expect("a header value"),
            );
        }
        let read = propagator.try_extract(&headers);
        if let Ok(cx) = &read {
            assert!(
                cx.baggage().len() <= 64,
                "{name}: {} members",
                cx.baggage().len()
            );
            assert!(
                cx.baggage().get("tenantId").is_none(),
                "{name}: identity left in baggage"
            );
        }
        assert_eq!(outcome(read), expected, "{name}");
        // The never-failing form never runs as a refused identity.
        let lenient = propagator.extract(&headers);
        if !matches!(expected, Expect::Tenant(_)) {
            assert!(
                lenient.tenant().is_none() && lenient.user().is_none(),
                "{name}"
            );
        }
    }
}

/// The scenario of the issue: a client sends `acme.tenant=victim` to an edge
/// that does not trust identity; the next, internal hop keys its tenant
/// `acme.tenant` and trusts baggage. The edge must not forward the member.
#[test]
fn smuggling_across_two_differently_configured_hops() {
    let edge = Propagator::new();
    let internal = Propagator::new()
        .tenant_key("acme.tenant")
        .trust_baggage_identity();
    for claimed in [
        "acme.tenant=victim",
        "acme.tenant=victim,region=eu",
        "ACME.TENANT=victim",
        "x-tenant-id=victim,acme.user=user:1",
        "ctx.sig=k1:1:AAAA,acme.tenant=victim",
    ] {
        let mut incoming = HeaderMap::new();
        incoming.insert("baggage", HeaderValue::from_str(claimed).expect("ascii"));
        let at_edge = edge.extract(&incoming);
        assert!(at_edge.tenant().is_none(), "{claimed}");

        let mut outgoing = HeaderMap::new();
        edge.inject(&at_edge, &mut outgoing);
        let internal_cx = internal.try_extract(&outgoing).expect("a valid context");
        assert_eq!(
            internal_cx.tenant(),
            None,
            "{claimed}: ran as the claimed tenant"
        );
        if claimed.contains("region=eu") {
            assert_eq!(
                internal_cx.baggage().get("region"),
                Some("eu"),
                "other baggage is kept"
            );
        }
    }

    // Control: the same internal hop does take the tenant when it is sent
    // directly (so the assertion above can fail).
    let mut direct = HeaderMap::new();
    direct.insert("baggage", HeaderValue::from_static("acme.tenant=victim"));
    assert_eq!(
        internal
            .try_extract(&direct)
            .expect("valid")
            .tenant()
            .map(|t| t.as_str()),
        Some("victim")
    );

    // A carrier's baggage is no way around it either.
    let carrier = Carrier::from_json(r#"{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","baggage":{"acme.tenant":"victim","region":"eu"}}"#)
        .expect("a carrier");
    let cx = Context::from_carrier(&carrier).expect("valid");
    let mut outgoing = HeaderMap::new();
    edge.inject(&cx, &mut outgoing);
    assert!(internal
        .try_extract(&outgoing)
        .expect("valid")
        .tenant()
        .is_none());
    assert!(!cx.to_carrier().to_json().contains("victim"));
}

// ---------------------------------------------------------------- carriers

/// How a consumer with the keyring reads a carrier's JSON.
fn read_signed_carrier(json: &[u8]) -> Result<Context, CarrierError> {
    let text = std::str::from_utf8(json).map_err(|e| CarrierError::Malformed {
        reason: e.to_string(),
    })?;
    let carrier = Carrier::from_json(text)?;
    Context::from_signed_carrier(&carrier, &keyring(), None)
}

#[test]
fn carrier_json() {
    let cx = acme();
    let signed = cx.to_signed_carrier(&keyring(), None).to_json();
    let replayed = signed.replace("\"acme\"", "\"victim\"");
    assert_ne!(signed, replayed);
    let mut expired = serde_json::from_str::<Value>(&cx.to_carrier().to_json()).expect("json");
    expired["sig"] = signature(&keyring(), &cx, 3 * 24 * 3600).into();
    let mut unknown = expired.clone();
    unknown["sig"] = signature(&other_keyring(), &cx, 0).into();
    let huge_baggage: serde_json::Map<String, Value> = (0..40_000)
        .map(|i| (format!("k{i}"), Value::from("v")))
        .collect();
    let huge = serde_json::json!({ "traceId": TRACE, "baggage": huge_baggage }).to_string();
    // Under the carrier's size limit, over the parser's nesting limit.
    let nested = format!("{{\"baggage\":{}{}}}", "[".repeat(5_000), "]".repeat(5_000));

    let rows: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "signed, as sent",
            signed.clone().into_bytes(),
            Expect::Tenant(Some("acme")),
        ),
        (
            "no identity, no signature",
            format!(r#"{{"traceId":"{TRACE}"}}"#).into_bytes(),
            Expect::Tenant(None),
        ),
        (
            "oversized: 40,000 baggage members",
            huge.into_bytes(),
            Expect::TooLarge,
        ),
        ("deeply nested", nested.into_bytes(), Expect::Malformed),
        (
            "duplicated tenant field",
            br#"{"tenantId":"acme","tenantId":"victim"}"#.to_vec(),
            Expect::Malformed,
        ),
        (
            "non-UTF-8",
            b"{\"tenantId\":\"\xff\"}".to_vec(),
            Expect::Malformed,
        ),
        (
            "forged: unsigned",
            br#"{"tenantId":"victim"}"#.to_vec(),
            Expect::Untrusted("unsigned"),
        ),
        (
            "forged: signature not a string",
            br#"{"tenantId":"victim","sig":7}"#.to_vec(),
            Expect::Untrusted("malformed_signature"),
        ),
        (
            "forged: unknown key",
            unknown.to_string().into_bytes(),
            Expect::Untrusted("unknown_key"),
        ),
        (
            "expired",
            expired.to_string().into_bytes(),
            Expect::Untrusted("expired"),
        ),
        (
            "replayed under another tenant",
            replayed.into_bytes(),
            Expect::Untrusted("bad_signature"),
        ),
        (
            "invalid tenant",
            br#"{"tenantId":"a\u202eb"}"#.to_vec(),
            Expect::InvalidTenant,
        ),
        (
            "user kind with a colon",
            br#"{"userRef":{"type":"svc:admin","id":1}}"#.to_vec(),
            Expect::InvalidUser,
        ),
        (
            "zero-width user id",
            br#"{"userRef":{"type":"user","id":"bo\u200bb"}}"#.to_vec(),
            Expect::InvalidUser,
        ),
    ];
    for (name, json, expected) in rows {
        assert_eq!(outcome(read_signed_carrier(&json)), expected, "{name}");
    }

    // Even without a keyring, a 40,000-member baggage is refused (the size
    // limit first, and the member limit when the carrier comes from a job's
    // already parsed JSON).
    let many: serde_json::Map<String, Value> = (0..40_000)
        .map(|i| (format!("k{i}"), Value::from("v")))
        .collect();
    let value = serde_json::json!({ "traceId": TRACE, "baggage": many });
    let carrier: Carrier = serde_json::from_value(value).expect("parses as a carrier");
    assert!(matches!(
        Context::from_carrier(&carrier),
        Err(CarrierError::TooLarge {
            what: "baggage",
            limit: 64
        })
    ));
}

// ---------------------------------------------------------------- brokers

/// The kind a queue's policy gives a source, or the tenant it admits.
fn admitted<S>(source: &S, policy: &Policy) -> Result<Option<String>, RejectionKind>
where
    S: context_runtime::ContextSource + ?Sized,
    S::Error: Into<Rejection>,
{
    admit(source, policy)
        .map(|cx| cx.tenant().map(|t| t.as_str().to_owned()))
        .map_err(|r| r.kind())
}

#[test]
fn broker_headers() {
    use lapin::types::{AMQPValue, FieldTable, LongString};

    let signed = Policy::new().keyring(keyring());
    let unsigned = Policy::new();
    let outside = Policy::new().trust(Trust::Nothing);
    let cx = acme();
    let good = signed_baggage(&cx);
    let replayed = good.replace("tenantId=acme", "tenantId=victim");
    let expired = format!(
        "tenantId=acme,userRef=user:7,ctx.sig={}",
        signature(&keyring(), &cx, 2 * 24 * 3600)
    );
    let oversized = members(40_000);

    type Row<'a> = (
        &'a str,
        &'a Policy,
        Vec<(&'a str, &'a [u8])>,
        Result<Option<&'a str>, RejectionKind>,
    );
    let rows: Vec<Row<'_>> = vec![
        (
            "signed, as sent",
            &signed,
            vec![("baggage", good.as_bytes())],
            Ok(Some("acme")),
        ),
        (
            "oversized baggage",
            &unsigned,
            vec![("baggage", oversized.as_bytes())],
            Err(RejectionKind::InvalidCarrier),
        ),
        (
            "non-UTF-8 baggage",
            &unsigned,
            vec![("baggage", b"tenantId=\xff")],
            Err(RejectionKind::InvalidCarrier),
        ),
        (
            "invalid tenant",
            &unsigned,
            vec![("baggage", b"tenantId=a%20b")],
            Err(RejectionKind::InvalidCarrier),
        ),
        (
            "forged: unsigned where signed",
            &signed,
            vec![("baggage", b"tenantId=victim")],
            Err(RejectionKind::UntrustedIdentity),
        ),
        (
            "expired",
            &signed,
            vec![("baggage", expired.as_bytes())],
            Err(RejectionKind::UntrustedIdentity),
        ),
        (
            "replayed under another tenant",
            &signed,
            vec![("baggage", replayed.as_bytes())],
            Err(RejectionKind::UntrustedIdentity),
        ),
        (
            "claimed on a queue fed by outsiders",
            &outside,
            vec![("baggage", b"tenantId=victim")],
            Err(RejectionKind::TenantRequired),
        ),
        (
            "smuggled under another key",
            &unsigned,
            vec![("baggage", b"acme.tenant=victim")],
            Err(RejectionKind::TenantRequired),
        ),
    ];
    for (name, policy, fields, expected) in rows {
        // AMQP headers.
        let mut table = FieldTable::default();
        table.insert("traceparent".into(), AMQPValue::LongString(PARENT.into()));
        for (key, value) in &fields {
            table.insert(
                (*key).into(),
                AMQPValue::LongString(LongString::from(value.to_vec())),
            );
        }
        assert_eq!(
            admitted(&table, policy),
            expected.map(|t| t.map(str::to_owned)),
            "lapin: {name}"
        );
        // NATS headers (text only: a NATS header value is a string).
        let Ok(texts) = fields
            .iter()
            .map(|(k, v)| std::str::from_utf8(v).map(|v| (*k, v)))
            .collect::<Result<Vec<_>, _>>()
        else {
            continue;
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("traceparent", PARENT);
        for (key, value) in texts {
            headers.insert(key, value);
        }
        assert_eq!(
            admitted(&headers, policy),
            expected.map(|t| t.map(str::to_owned)),
            "nats: {name}"
        );
    }

    // Duplicated and deeply nested fields.
    let mut headers = async_nats::HeaderMap::new();
    headers.append("traceparent", PARENT);
    headers.append("traceparent", PARENT);
    assert_eq!(
        admitted(&headers, &unsigned),
        Err(RejectionKind::InvalidCarrier)
    );
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("traceparent", PARENT);
    headers.insert(
        "tracestate",
        format!("a=1{}", ",b=2".repeat(10_000)).as_str(),
    );
    headers.insert("baggage", "tenantId=acme");
    assert_eq!(
        admitted(&headers, &unsigned),
        Err(RejectionKind::InvalidCarrier)
    );
}

// ---------------------------------------------------------------- environment

const CHILD: &str = env!("CARGO_BIN_EXE_report-context");

fn child(baggage: &OsStr) -> Value {
    let output = Command::new(CHILD)
        .env("TRACEPARENT", PARENT)
        .env("BAGGAGE", baggage)
        .env(
            "REPORT_CONTEXT_SECRET",
            std::str::from_utf8(SECRET).expect("ascii"),
        )
        .output()
        .expect("run the child");
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).expect("the child prints JSON")
}

#[test]
fn environment() {
    let cx = acme();
    let good = signed_baggage(&cx);
    let replayed = good.replace("tenantId=acme", "tenantId=victim");
    let expired = format!(
        "tenantId=acme,userRef=user:7,ctx.sig={}",
        signature(&keyring(), &cx, 2 * 24 * 3600)
    );
    // Over the 16 KiB limit of a variable, under the system's own limit.
    let oversized = members(3_000);
    let rows: Vec<(&str, &OsStr, Value)> = vec![
        (
            "signed, as sent",
            OsStr::new(&good),
            serde_json::json!({"tenant": "acme"}),
        ),
        (
            "oversized",
            OsStr::new(&oversized),
            serde_json::json!({"error": "too_large"}),
        ),
        (
            "non-UTF-8",
            OsStr::from_bytes(b"tenantId=\xff"),
            serde_json::json!({"error": "malformed"}),
        ),
        (
            "forged: unsigned",
            OsStr::new("tenantId=victim"),
            serde_json::json!({"error": "unsigned"}),
        ),
        (
            "expired",
            OsStr::new(&expired),
            serde_json::json!({"error": "expired"}),
        ),
        (
            "replayed under another tenant",
            OsStr::new(&replayed),
            serde_json::json!({"error": "bad_signature"}),
        ),
        (
            "smuggled under another key",
            OsStr::new("acme.tenant=victim,region=eu"),
            serde_json::json!({"tenant": null}),
        ),
    ];
    for (name, baggage, expected) in rows {
        let seen = child(baggage);
        for (key, value) in expected.as_object().expect("an object") {
            assert_eq!(&seen[key], value, "{name}: {seen}");
        }
        if seen["error"].is_null() {
            assert_eq!(seen["trace_id"], TRACE, "{name}");
            let baggage = seen["baggage"].to_string();
            assert!(
                !baggage.contains("victim") && !baggage.contains("ctx."),
                "{name}: {baggage}"
            );
        }
    }
}

// ---------------------------------------------------------------- job payloads

/// How a signed queue reads a payload: size first, then JSON, then the policy.
fn read_job(payload: &[u8], policy: &Policy) -> Result<Option<String>, RejectionKind> {
    check_payload_size(payload).map_err(|r| r.kind())?;
    let job: Job<Value> = serde_json::from_slice(payload).map_err(|_| RejectionKind::Unreadable)?;
    admitted(&job, policy)
}

#[test]
fn job_payloads() {
    let policy = Policy::new().keyring(keyring());
    let cx = acme();
    let good = serde_json::to_string(&Job::new(&cx, 1).signed(&keyring())).expect("json");
    let replayed = good.replace("\"acme\"", "\"victim\"");
    let unsigned = serde_json::to_string(&Job::new(&cx, 1)).expect("json");
    let other = serde_json::to_string(&Job::new(&cx, 1).signed(&other_keyring())).expect("json");
    let mut expired: Value = serde_json::from_str(&unsigned).expect("json");
    expired["ctx"]["sig"] = signature(&keyring(), &cx, 2 * 24 * 3600).into();
    let many: serde_json::Map<String, Value> = (0..40_000)
        .map(|i| (format!("k{i}"), Value::from("v")))
        .collect();
    let huge_baggage = serde_json::json!({"ctx": {"traceId": TRACE, "baggage": many}, "data": 1});
    let oversized = serde_json::json!({"ctx": null, "data": "x".repeat(2 << 20)});
    let nested = format!("{{\"data\":{}1{}}}", "[".repeat(10_000), "]".repeat(10_000));

    type Row<'a> = (&'a str, Vec<u8>, Result<Option<&'a str>, RejectionKind>);
    let rows: Vec<Row<'_>> = vec![
        (
            "signed, as sent",
            good.clone().into_bytes(),
            Ok(Some("acme")),
        ),
        (
            "oversized payload",
            oversized.to_string().into_bytes(),
            Err(RejectionKind::Unreadable),
        ),
        (
            "oversized: 40,000 baggage members",
            huge_baggage.to_string().into_bytes(),
            Err(RejectionKind::InvalidCarrier),
        ),
        (
            "deeply nested",
            nested.into_bytes(),
            Err(RejectionKind::Unreadable),
        ),
        (
            "duplicated ctx",
            br#"{"ctx":{"tenantId":"acme"},"ctx":{"tenantId":"victim"},"data":1}"#.to_vec(),
            Err(RejectionKind::Unreadable),
        ),
        (
            "non-UTF-8",
            b"{\"ctx\":{\"tenantId\":\"\xff\"},\"data\":1}".to_vec(),
            Err(RejectionKind::Unreadable),
        ),
        (
            "forged: unsigned",
            unsigned.into_bytes(),
            Err(RejectionKind::UntrustedIdentity),
        ),
        (
            "forged: another secret",
            other.into_bytes(),
            Err(RejectionKind::UntrustedIdentity),
        ),
        (
            "expired",
            expired.to_string().into_bytes(),
            Err(RejectionKind::UntrustedIdentity),
        ),
        (
            "replayed under another tenant",
            replayed.into_bytes(),
            Err(RejectionKind::UntrustedIdentity),
        ),
        (
            "no tenant at all",
            br#"{"data":1}"#.to_vec(),
            Err(RejectionKind::TenantRequired),
        ),
    ];
    for (name, payload, expected) in rows {
        assert_eq!(
            read_job(&payload, &policy),
            expected.map(|t| t.map(str::to_owned)),
            "{name}"
        );
    }

    // The same forged identity, the same typed error on every wire.
    let forged = UntrustedIdentity::Unsigned;
    let job: Job<u8> =
        serde_json::from_str(r#"{"ctx":{"tenantId":"victim"},"data":1}"#).expect("json");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("baggage", "tenantId=victim");
    let mut http_headers = HeaderMap::new();
    http_headers.insert("baggage", HeaderValue::from_static("tenantId=victim"));
    assert_eq!(
        admit(&job, &policy).map(|_| ()),
        Err(Rejection::UntrustedIdentity(forged.clone()))
    );
    assert_eq!(
        admit(&headers, &policy).map(|_| ()),
        Err(Rejection::UntrustedIdentity(forged.clone()))
    );
    assert_eq!(
        Propagator::new()
            .keyring(keyring())
            .try_extract(&http_headers)
            .map(|_| ()),
        Err(CarrierError::UntrustedIdentity(forged))
    );
    let claims = Claims {
        trace_id: cx.trace_id(),
        tenant: cx.tenant(),
        user: None,
        job_id: None,
    };
    assert!(keyring().verify(&keyring().sign(&claims), &claims).is_ok());
}
