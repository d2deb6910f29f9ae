//! `Propagator` on header maps: keys, trust and outbound policies.

use context_runtime::http;
use context_runtime::{Context, TenantId, UserRef};
use context_runtime::{Outbound, Propagator};
use http_types::HeaderMap;

use ::http as http_types;

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, value.parse().expect("a header value"));
    }
    map
}

fn identity_cx() -> Context {
    Context::root()
        .with_tenant(TenantId::new("t1").expect("valid"))
        .with_user(UserRef::user(42).expect("valid"))
}

#[test]
fn namespaced_keys_are_read_and_written() {
    let propagator = Propagator::new()
        .tenant_key("acme.tenant")
        .user_key("acme.user")
        .trust_baggage_identity();
    let cx = propagator.extract(&headers(&[
        ("traceparent", PARENT),
        (
            "baggage",
            "acme.tenant=t7, acme.user=service:billing, tenantId=ignored",
        ),
    ]));
    assert_eq!(cx.tenant().expect("tenant").as_str(), "t7");
    assert_eq!(cx.user().expect("user").to_string(), "service:billing");
    // `tenantId` is not an identity key for this propagator, but it is
    // identity-shaped: it is neither taken nor kept as plain baggage, so it
    // cannot be smuggled on to a hop keyed `tenantId` (issue 11).
    assert_eq!(cx.tenant().expect("tenant").as_str(), "t7");
    assert_eq!(cx.baggage().get("tenantId"), None);

    let mut out = HeaderMap::new();
    propagator.inject(&identity_cx(), &mut out);
    let baggage = out["baggage"].to_str().expect("ascii");
    assert!(baggage.contains("acme.tenant=t1"), "{baggage}");
    assert!(
        baggage.contains("acme.user=user%3A42") || baggage.contains("acme.user=user:42"),
        "{baggage}"
    );
}

#[test]
fn keys_can_be_turned_off_both_ways() {
    let propagator = Propagator::new()
        .without_tenant_key()
        .without_user_key()
        .trust_baggage_identity();
    let cx = propagator.extract(&headers(&[("baggage", "tenantId=t1,userRef=user:1")]));
    assert!(cx.tenant().is_none());
    assert!(cx.user().is_none());
    let mut out = HeaderMap::new();
    propagator.inject(&identity_cx(), &mut out);
    assert!(out.get("baggage").is_none(), "{out:?}");
}

#[test]
fn outbound_policies_decide_what_identity_leaves() {
    let cx = identity_cx().with_baggage([("region", "eu")].into_iter().collect());
    for (outbound, tenant, user) in [
        (Outbound::Identity, true, true),
        (Outbound::TenantOnly, true, false),
        (Outbound::TraceOnly, false, false),
    ] {
        let mut out = HeaderMap::new();
        Propagator::new().outbound(outbound).inject(&cx, &mut out);
        let baggage = out["baggage"].to_str().expect("ascii");
        assert_eq!(
            baggage.contains("tenantId=t1"),
            tenant,
            "{outbound:?}: {baggage}"
        );
        assert_eq!(
            baggage.contains("userRef="),
            user,
            "{outbound:?}: {baggage}"
        );
        assert!(baggage.contains("region=eu"), "{baggage}");
        assert!(out["traceparent"]
            .to_str()
            .expect("ascii")
            .contains(&cx.trace_id().to_string()));
    }
}

#[test]
fn untrusted_identity_members_are_dropped_not_forwarded() {
    let cx = http::extract(&headers(&[("baggage", "tenantId=evil,userRef=user:1,k=v")]));
    assert!(cx.tenant().is_none());
    let mut out = HeaderMap::new();
    http::inject(&cx, &mut out);
    let baggage = out["baggage"].to_str().expect("ascii");
    assert_eq!(baggage, "k=v");
}

#[test]
fn an_invalid_tenant_in_trusted_baggage_is_dropped_never_guessed() {
    let cx = Propagator::new()
        .trust_baggage_identity()
        .extract(&headers(&[("baggage", "tenantId=a%20b,userRef=nocolon")]));
    assert!(cx.tenant().is_none());
    assert!(cx.user().is_none());
}

#[test]
fn header_names_are_case_insensitive_and_non_text_values_are_ignored() {
    let mut map = headers(&[("TraceParent", PARENT), ("BAGGAGE", "k=v")]);
    map.append(
        "baggage",
        http_types::HeaderValue::from_bytes(b"x=\xff").expect("opaque bytes"),
    );
    let cx = http::extract(&map);
    assert_eq!(
        cx.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(cx.baggage().get("k"), Some("v"));
    assert_eq!(cx.baggage().get("x"), None);
}

#[test]
fn each_injection_gets_a_new_parent_id_and_keeps_the_flags() {
    let cx = http::extract(&headers(&[(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
    )]));
    let mut parents = std::collections::HashSet::new();
    for _ in 0..5 {
        let mut out = HeaderMap::new();
        http::inject(&cx, &mut out);
        let value = out["traceparent"].to_str().expect("ascii").to_owned();
        assert!(
            value.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{value}"
        );
        assert!(
            value.ends_with("-00"),
            "not sampled stays not sampled: {value}"
        );
        assert!(!value.contains("00f067aa0ba902b7"), "{value}");
        parents.insert(value);
    }
    assert_eq!(parents.len(), 5);
}
