//! Spans exported by the OpenTelemetry SDK (features `opentelemetry`,
//! `opentelemetry_sdk`, `tracing`): spans made inside a scope, through
//! `tracing` with `tracing-opentelemetry` and through the OpenTelemetry API,
//! belong to the carried trace with the carried parent as remote parent.
//! Each test has a control that shows the check can fail.

use std::collections::HashMap;
use std::time::Duration;

use context_runtime::opentelemetry::{from_current, ContextIdGenerator};
use context_runtime::{Carrier, Context, SpanId, TenantId, TraceId};
use opentelemetry::trace::{Span as _, SpanId as OtelSpanId, TraceContextExt as _, Tracer as _};
use opentelemetry::trace::{TraceId as OtelTraceId, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracer, SdkTracerProvider, SpanData};
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

struct Telemetry {
    exporter: InMemorySpanExporter,
    tracer: SdkTracer,
    _provider: SdkTracerProvider,
    _subscriber: tracing::subscriber::DefaultGuard,
}

/// An SDK provider exporting to memory, and (on this thread) a `tracing`
/// subscriber that sends spans to it.
fn telemetry(scope_trace_ids: bool) -> Telemetry {
    let exporter = InMemorySpanExporter::default();
    let mut builder = SdkTracerProvider::builder().with_simple_exporter(exporter.clone());
    if scope_trace_ids {
        builder = builder.with_id_generator(ContextIdGenerator::default());
    }
    let provider = builder.build();
    let tracer = provider.tracer("tests");
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer.clone()));
    Telemetry {
        exporter,
        tracer,
        _provider: provider,
        _subscriber: tracing::subscriber::set_default(subscriber),
    }
}

fn spans_by_name(exporter: &InMemorySpanExporter) -> HashMap<String, SpanData> {
    exporter
        .get_finished_spans()
        .expect("spans")
        .into_iter()
        .map(|span| (span.name.to_string(), span))
        .collect()
}

fn otel_trace(id: TraceId) -> OtelTraceId {
    OtelTraceId::from_bytes(id.to_bytes())
}

fn otel_span(id: SpanId) -> OtelSpanId {
    OtelSpanId::from_bytes(id.to_bytes())
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// A job's work: a `tracing` span around an OpenTelemetry API span and a
/// nested `tracing` span, across awaits.
async fn work(tracer: &SdkTracer) {
    async {
        tokio::task::yield_now().await;
        tracer.in_span("api-query", |_| ());
        tokio::task::yield_now().await;
        tracing::info_span!("inner").in_scope(|| ());
    }
    .instrument(tracing::info_span!("load"))
    .await;
}

#[tokio::test]
async fn spans_in_a_scope_continue_the_carried_trace_under_the_remote_parent() {
    let telemetry = telemetry(true);
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "traceparent",
        format!("00-{TRACE}-{PARENT}-01").parse().expect("header"),
    );
    let cx =
        context_runtime::http::extract(&headers).with_tenant(TenantId::new("acme").expect("valid"));
    cx.scope(work(&telemetry.tracer)).await;

    let spans = spans_by_name(&telemetry.exporter);
    let trace = otel_trace(cx.trace_id());
    assert_eq!(spans.len(), 4, "{:?}", spans.keys());
    for span in spans.values() {
        assert_eq!(span.span_context.trace_id(), trace, "{}", span.name);
    }
    // The scope's `context` span is the local root, under the caller's span.
    let root = &spans["context"];
    assert_eq!(root.parent_span_id.to_string(), PARENT);
    assert!(root.parent_span_is_remote);
    assert_eq!(attribute(root, "trace_id").as_deref(), Some(TRACE));
    assert_eq!(attribute(root, "tenant_id").as_deref(), Some("acme"));
    // Below it, spans nest as the code does.
    let root_id = root.span_context.span_id();
    assert_eq!(spans["load"].parent_span_id, root_id);
    let load_id = spans["load"].span_context.span_id();
    assert_eq!(spans["api-query"].parent_span_id, load_id);
    assert_eq!(spans["inner"].parent_span_id, load_id);

    // Control: the same work outside the scope is in another trace, with no parent.
    telemetry.exporter.reset();
    work(&telemetry.tracer).await;
    let spans = spans_by_name(&telemetry.exporter);
    assert_ne!(spans["load"].span_context.trace_id(), trace);
    assert_eq!(spans["load"].parent_span_id, OtelSpanId::INVALID);
}

#[tokio::test]
async fn a_carrier_without_a_parent_span_gives_the_local_root_its_trace_id() {
    let carrier = Carrier::from_json(&format!(r#"{{"traceId":"{TRACE}","tenantId":"t1"}}"#))
        .expect("carrier");
    let cx = Context::from_carrier(&carrier).expect("context");
    assert_eq!(cx.parent_span_id(), None);

    let with_generator = telemetry(true);
    cx.scope(work(&with_generator.tracer)).await;
    let spans = spans_by_name(&with_generator.exporter);
    for span in spans.values() {
        assert_eq!(
            span.span_context.trace_id(),
            otel_trace(cx.trace_id()),
            "{}",
            span.name
        );
    }
    assert_eq!(spans["context"].parent_span_id, OtelSpanId::INVALID);
    drop(with_generator);

    // Control: without `ContextIdGenerator` the SDK starts the root in a new
    // trace, so the check above can fail.
    let without = telemetry(false);
    cx.scope(work(&without.tracer)).await;
    let spans = spans_by_name(&without.exporter);
    assert_ne!(
        spans["context"].span_context.trace_id(),
        otel_trace(cx.trace_id())
    );
}

#[tokio::test]
async fn an_api_span_started_in_a_sync_scope_has_the_carried_parent() {
    let telemetry = telemetry(true);
    let cx = Context::builder()
        .trace_id(TRACE.parse().expect("trace id"))
        .parent_span_id(PARENT.parse().expect("span id"))
        .build();
    cx.scope_sync(|| {
        let mut span = telemetry.tracer.start("callback");
        span.set_attribute(KeyValue::new("k", "v"));
        span.end();
    });
    let spans = spans_by_name(&telemetry.exporter);
    let context_id = spans["context"].span_context.span_id();
    assert_eq!(spans["callback"].span_context.trace_id().to_string(), TRACE);
    assert_eq!(spans["callback"].parent_span_id, context_id);
    assert_eq!(spans["context"].parent_span_id.to_string(), PARENT);
}

#[tokio::test]
async fn a_context_from_the_current_otel_span_continues_it() {
    let telemetry = telemetry(true);
    let (server, cx) = telemetry.tracer.in_span("server", |otel_cx| {
        let server = otel_cx.span().span_context().clone();
        (server, from_current().expect("an active span"))
    });
    assert_eq!(cx.trace_id().to_bytes(), server.trace_id().to_bytes());
    assert_eq!(
        cx.parent_span_id().map(SpanId::to_bytes),
        Some(server.span_id().to_bytes())
    );
    // Work scoped in it continues the server span: the scope's `context`
    // span is its child, and the handler's span the context span's.
    cx.scope(async { telemetry.tracer.in_span("handler", |_| ()) })
        .await;
    let spans = spans_by_name(&telemetry.exporter);
    assert_eq!(spans["handler"].span_context.trace_id(), server.trace_id());
    assert_eq!(spans["context"].parent_span_id, server.span_id());
    assert_eq!(
        spans["handler"].parent_span_id,
        spans["context"].span_context.span_id()
    );
    // Outside any OpenTelemetry span there is nothing to continue.
    assert!(from_current().is_none());
}

const JOBS: usize = 100;

/// Interleaved jobs on one thread, where OpenTelemetry's thread-local
/// context is shared: each job's spans must land in its own trace, under its
/// own parent. `scoped` picks the library's scopes; otherwise (the control)
/// each job attaches its OpenTelemetry context with a guard held across
/// `.await`.
async fn interleaved_jobs(tracer: &SdkTracer, scoped: bool) -> Vec<(TraceId, SpanId)> {
    let jobs: Vec<(TraceId, SpanId)> = (0..JOBS)
        .map(|_| (TraceId::random(), SpanId::random()))
        .collect();
    let local = tokio::task::LocalSet::new();
    for (i, (trace, parent)) in jobs.iter().copied().enumerate() {
        let tracer = tracer.clone();
        let cx = Context::builder()
            .trace_id(trace)
            .parent_span_id(parent)
            .build();
        let job = async move {
            let mut rng = fastrand::Rng::with_seed(i as u64);
            for step in 0..3 {
                tokio::time::sleep(Duration::from_micros(rng.u64(1..300))).await;
                let mut span = tracer.start(format!("job-{i}-step-{step}"));
                span.set_attribute(KeyValue::new("job", i as i64));
                span.end();
            }
        };
        if scoped {
            local.spawn_local(cx.scope(job));
        } else {
            local.spawn_local(async move {
                let _guard = context_runtime::opentelemetry::to_otel_context(&cx).attach();
                job.await;
            });
        }
    }
    local.await;
    jobs
}

/// Counts exported job spans outside their job's trace or parent.
fn misplaced(spans: &[SpanData], jobs: &[(TraceId, SpanId)]) -> usize {
    spans
        .iter()
        .filter(|span| span.name.starts_with("job-"))
        .filter(|span| {
            let job = span
                .attributes
                .iter()
                .find(|kv| kv.key.as_str() == "job")
                .map(|kv| kv.value.to_string().parse::<usize>().expect("index"))
                .expect("job attribute");
            let (trace, parent) = jobs[job];
            span.span_context.trace_id() != otel_trace(trace)
                || span.parent_span_id != otel_span(parent)
        })
        .count()
}

#[test]
fn interleaved_jobs_never_share_a_trace() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let tracer = provider.tracer("tests");

    let jobs = runtime.block_on(interleaved_jobs(&tracer, true));
    let spans = exporter.get_finished_spans().expect("spans");
    assert_eq!(spans.len(), JOBS * 3);
    assert_eq!(misplaced(&spans, &jobs), 0);

    exporter.reset();
    let jobs = runtime.block_on(interleaved_jobs(&tracer, false));
    let spans = exporter.get_finished_spans().expect("spans");
    let bad = misplaced(&spans, &jobs);
    eprintln!(
        "control: {bad} of {} spans in another job's trace",
        spans.len()
    );
    assert!(bad > 0, "the control showed no cross-talk");
}

#[tokio::test]
async fn a_spawned_task_continues_its_spawners_span() {
    let telemetry = telemetry(true);
    let cx = Context::root().with_tenant(TenantId::new("t1").expect("valid"));
    cx.scope(async {
        async {
            context_runtime::spawn(async {
                tokio::task::yield_now().await;
                tracing::info_span!("in-task").in_scope(|| ());
            })
            .await
            .expect("task");
        }
        .instrument(tracing::info_span!("spawner"))
        .await;
    })
    .await;
    let spans = spans_by_name(&telemetry.exporter);
    // One `context` span: the task carries its spawner's span, no duplicate.
    assert_eq!(spans.len(), 3, "{:?}", spans.keys());
    assert_eq!(
        spans["in-task"].parent_span_id,
        spans["spawner"].span_context.span_id()
    );
    assert_eq!(
        spans["spawner"].parent_span_id,
        spans["context"].span_context.span_id()
    );

    // Control: a bare `tokio::spawn` carries neither, and its span is a new root.
    telemetry.exporter.reset();
    cx.scope(async {
        tokio::spawn(async { tracing::info_span!("bare").in_scope(|| ()) })
            .await
            .expect("task");
    })
    .await;
    let spans = spans_by_name(&telemetry.exporter);
    assert_eq!(spans["bare"].parent_span_id, OtelSpanId::INVALID);
    assert_ne!(
        spans["bare"].span_context.trace_id(),
        otel_trace(cx.trace_id())
    );
}
