//! The [`Carrier`] JSON round trip, side by side with the same fields in a
//! plain `#[derive(Serialize, Deserialize)]` struct of strings.
//!
//! - `carrier/round_trip`: a carrier to JSON text and back
//!   (`to_json`, `from_json`), against the plain struct to JSON text and back;
//! - `carrier/context_round_trip`: the whole trip a job makes, from a context
//!   to a checked context (`to_carrier`, `to_json`, `from_json`,
//!   `from_carrier`: the tenant and user are validated, a context is built),
//!   against the same plain struct round trip, which checks nothing;
//! - `carrier/sign` and `carrier/verify`: signing a carrier's identity
//!   (trace id, tenant, user, issue time, job id) with HMAC-SHA256, and
//!   verifying it (target: at most 1 µs each);
//! - `carrier/signed_round_trip`: the whole trip with a signed carrier
//!   (`to_signed_carrier`, `to_json`, `from_json`, `from_signed_carrier`),
//!   beside the same unsigned round trip.

use std::hint::black_box;

use context_runtime::{Carrier, Context, Keyring, TenantId, UserRef};
use criterion::{criterion_group, criterion_main, Criterion};
use serde::{Deserialize, Serialize};

/// The carrier's fields, the way an application would declare them itself.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlainCarrier {
    #[serde(rename = "v")]
    version: u32,
    trace_id: String,
    tenant_id: Option<String>,
    user_ref: Option<PlainUser>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct PlainUser {
    #[serde(rename = "type")]
    kind: String,
    id: i64,
}

fn round_trip(carrier: &Carrier) -> Carrier {
    Carrier::from_json(&carrier.to_json()).expect("a carrier")
}

fn context_round_trip(cx: &Context) -> Context {
    let json = cx.to_carrier().to_json();
    let carrier = Carrier::from_json(&json).expect("a carrier");
    Context::from_carrier(&carrier).expect("a valid carrier")
}

fn signed_round_trip(cx: &Context, keyring: &Keyring) -> Context {
    let json = cx.to_signed_carrier(keyring, Some("job-1")).to_json();
    let carrier = Carrier::from_json(&json).expect("a carrier");
    Context::from_signed_carrier(&carrier, keyring, Some("job-1")).expect("a verified carrier")
}

fn plain_round_trip(plain: &PlainCarrier) -> PlainCarrier {
    let json = serde_json::to_string(plain).expect("serializable");
    serde_json::from_str(&json).expect("a plain carrier")
}

fn carrier(c: &mut Criterion) {
    let cx = Context::builder()
        .tenant(TenantId::new("acme-eu").expect("valid"))
        .user(UserRef::user(42).expect("valid"))
        .build();
    let plain = PlainCarrier {
        version: 1,
        trace_id: cx.trace_id().to_string(),
        tenant_id: Some("acme-eu".to_owned()),
        user_ref: Some(PlainUser {
            kind: "user".to_owned(),
            id: 42,
        }),
    };
    // Both write the same JSON.
    assert_eq!(
        serde_json::to_value(cx.to_carrier()).expect("serializable"),
        serde_json::to_value(&plain).expect("serializable")
    );
    let carrier = cx.to_carrier();
    assert_eq!(round_trip(&carrier), carrier);
    assert_eq!(context_round_trip(&cx).tenant(), cx.tenant());
    assert_eq!(plain_round_trip(&plain), plain);

    let mut group = c.benchmark_group("carrier/round_trip");
    group.bench_function("context-runtime", |b| {
        b.iter(|| black_box(round_trip(black_box(&carrier))));
    });
    group.bench_function("serde_json", |b| {
        b.iter(|| black_box(plain_round_trip(black_box(&plain))));
    });
    group.finish();

    let mut group = c.benchmark_group("carrier/context_round_trip");
    group.bench_function("context-runtime", |b| {
        b.iter(|| black_box(context_round_trip(black_box(&cx))));
    });
    group.bench_function("serde_json", |b| {
        b.iter(|| black_box(plain_round_trip(black_box(&plain))));
    });
    group.finish();

    let keyring = Keyring::new("k1", b"a-benchmark-secret-of-32-bytes!!").expect("a key");
    let claims = cx.claims(Some("job-1"));
    let signature = keyring.sign(&claims);
    assert!(keyring.verify(&signature, &claims).is_ok());
    assert_eq!(signed_round_trip(&cx, &keyring).tenant(), cx.tenant());

    let mut group = c.benchmark_group("carrier/sign");
    group.bench_function("context-runtime", |b| {
        b.iter(|| black_box(keyring.sign(black_box(&claims))));
    });
    group.finish();

    let mut group = c.benchmark_group("carrier/verify");
    group.bench_function("context-runtime", |b| {
        b.iter(|| black_box(keyring.verify(black_box(&signature), black_box(&claims))));
    });
    group.finish();

    let mut group = c.benchmark_group("carrier/signed_round_trip");
    group.bench_function("context-runtime", |b| {
        b.iter(|| black_box(signed_round_trip(black_box(&cx), &keyring)));
    });
    group.bench_function("unsigned", |b| {
        b.iter(|| black_box(context_round_trip(black_box(&cx))));
    });
    group.finish();
}

criterion_group!(benches, carrier);
criterion_main!(benches);
