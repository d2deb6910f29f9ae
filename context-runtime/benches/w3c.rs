//! The W3C codecs side by side with OpenTelemetry's propagators.
//!
//! - `traceparent/parse`: [`TraceParent`] from a header value, against
//!   `TraceContextPropagator::extract`;
//! - `traceparent/format`: the header value of a [`TraceParent`], against
//!   `TraceContextPropagator::inject_context`;
//! - `baggage/parse/{3,32}` and `baggage/format/{3,32}`: [`Baggage`] with 3
//!   and 32 members, against `BaggagePropagator`; `baggage/parse/` checks
//!   the header and keeps it (the members are built on first use),
//!   `baggage/parse_read/` also reads every member.
//!
//! The propagators read from and write to a one-header carrier, so no map
//! lookup or key allocation is charged to them.

use std::collections::HashMap;
use std::hint::black_box;

use context_runtime::w3c::{Baggage, TraceParent};
use criterion::{criterion_group, criterion_main, Criterion};
use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceState;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId};
use opentelemetry::Context as OtelContext;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A carrier with one header, for extraction.
struct OneHeader {
    name: &'static str,
    value: String,
}

impl Extractor for OneHeader {
    fn get(&self, key: &str) -> Option<&str> {
        (key == self.name).then_some(self.value.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        vec![self.name]
    }
}

/// A carrier that keeps the last value written, for injection.
#[derive(Default)]
struct LastValue(Option<String>);

impl Injector for LastValue {
    fn set(&mut self, _key: &str, value: String) {
        self.0 = Some(value);
    }
}

fn traceparent(c: &mut Criterion) {
    let propagator = TraceContextPropagator::new();

    let mut group = c.benchmark_group("traceparent/parse");
    group.bench_function("context-runtime", |b| {
        b.iter(|| black_box(black_box(TRACEPARENT).parse::<TraceParent>()));
    });
    let carrier = OneHeader {
        name: "traceparent",
        value: TRACEPARENT.to_owned(),
    };
    group.bench_function("opentelemetry", |b| {
        b.iter(|| black_box(propagator.extract(black_box(&carrier))));
    });
    group.finish();

    let parsed: TraceParent = TRACEPARENT.parse().expect("valid");
    let otel_cx = OtelContext::new().with_remote_span_context(SpanContext::new(
        TraceId::from_bytes(parsed.trace_id().to_bytes()),
        SpanId::from_bytes(parsed.parent_id().to_bytes()),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ));
    let mut group = c.benchmark_group("traceparent/format");
    group.bench_function("context-runtime", |b| {
        b.iter(|| black_box(black_box(&parsed).to_string()));
    });
    group.bench_function("opentelemetry", |b| {
        let mut out = LastValue::default();
        b.iter(|| {
            propagator.inject_context(black_box(&otel_cx), &mut out);
            black_box(&out.0);
        });
    });
    group.finish();

    // Both sides write the same header.
    let mut headers = HashMap::new();
    propagator.inject_context(&otel_cx, &mut headers);
    assert_eq!(headers.get("traceparent"), Some(&parsed.to_string()));
}

/// A `baggage` header with `members` members: mostly plain `key=value`, one
/// percent-encoded value and one member with a property, as services send.
fn baggage_header(members: usize) -> String {
    (0..members)
        .map(|i| match i {
            0 => "userId=alice".to_owned(),
            1 => "region=eu-west%201".to_owned(),
            2 => "isProduction=false;ttl=60".to_owned(),
            i => format!("key{i}=value-{i}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn baggage(c: &mut Criterion) {
    let propagator = BaggagePropagator::new();
    for members in [3, 32] {
        let header = baggage_header(members);

        let mut group = c.benchmark_group(format!("baggage/parse/{members}"));
        group.bench_function("context-runtime", |b| {
            b.iter(|| black_box(black_box(header.as_str()).parse::<Baggage>()));
        });
        let carrier = OneHeader {
            name: "baggage",
            value: header.clone(),
        };
        group.bench_function("opentelemetry", |b| {
            b.iter(|| black_box(propagator.extract(black_box(&carrier))));
        });
        group.finish();

        // The same, with every member read: a clean header is kept as its
        // text and its members built on first use, so this is the whole
        // parse, where `baggage/parse` is what a context pays when nobody
        // reads the members.
        let mut group = c.benchmark_group(format!("baggage/parse_read/{members}"));
        group.bench_function("context-runtime", |b| {
            b.iter(|| {
                let baggage: Baggage = black_box(header.as_str()).parse().expect("infallible");
                black_box(baggage.members().len())
            });
        });
        group.bench_function("opentelemetry", |b| {
            b.iter(|| black_box(propagator.extract(black_box(&carrier)).baggage().len()));
        });
        group.finish();

        let ours: Baggage = header.parse().expect("infallible");
        assert_eq!(ours.len(), members);
        assert_eq!(ours.members().len(), members);
        let otel_cx = propagator.extract(&carrier);
        assert_eq!(otel_cx.baggage().len(), members);
        let mut group = c.benchmark_group(format!("baggage/format/{members}"));
        group.bench_function("context-runtime", |b| {
            b.iter(|| black_box(black_box(&ours).to_string()));
        });
        group.bench_function("opentelemetry", |b| {
            let mut out = LastValue::default();
            b.iter(|| {
                propagator.inject_context(black_box(&otel_cx), &mut out);
                black_box(&out.0);
            });
        });
        group.finish();
    }
}

criterion_group!(benches, traceparent, baggage);
criterion_main!(benches);
