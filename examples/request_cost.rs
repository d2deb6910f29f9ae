//! The cost of the context layer per request, counted in instructions.
//!
//! One request through an axum `Router` in process (no socket), with
//! `traceparent`, `tracestate` and a 3-member `baggage` header; the handler
//! reads the trace id and the baggage size. Four routers are compared:
//!
//! - `bare`: the router alone (the handler reads nothing it could not have);
//! - `noop`: a layer that does nothing around it (what axum charges for any
//!   layer on a route);
//! - `layer`: `ContextLayer::new(Propagator::new())` around it;
//! - `otel`: an OpenTelemetry layer (the `TraceContext` and `Baggage`
//!   propagators, the context attached at every poll of the handler).
//!
//! Then the queue path: a job envelope (`Job<T>`: its carrier with a
//! tenant and a user, and its data) read from JSON text, admitted with
//! `jobs::admit` and run in its scope, against decoding the same envelope
//! into plain serde structs.
//!
//! Wall-clock time is too noisy on shared machines, so the report counts
//! instructions with callgrind: for each router it runs `N` and `2N`
//! requests in a fresh process and divides the difference by `N`, so that
//! start-up and the first request's one-time work cancel out.
//!
//! ```text
//! cargo run --release -p context-examples --features request-cost --example request_cost            # the report (needs valgrind)
//! cargo run --release -p context-examples --features request-cost --example request_cost -- layer 1000   # one workload
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::process::{Command, ExitCode};
use std::task::{Context as TaskContext, Poll};

use axum::body::Body;
use axum::http::{HeaderMap, Request};
use axum::routing::get;
use axum::Router;
use context_runtime::tower::ContextLayer;
use context_runtime::Propagator;
use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::context::FutureExt as _;
use opentelemetry::propagation::{Extractor, TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use tower::{Layer, Service, ServiceExt as _};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACESTATE: &str = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
const BAGGAGE: &str = "userId=alice,serverNode=DF%2028,isProduction=false";

/// The routers compared.
const MODES: [&str; 4] = ["bare", "noop", "layer", "otel"];

/// The queue path compared: a job envelope (its carrier and its data) read
/// from JSON text, admitted and run in its scope (`queue`), against the same
/// envelope decoded into plain serde structs (`queue-serde`).
const QUEUE_MODES: [&str; 2] = ["queue-serde", "queue"];

/// A job's data.
#[derive(serde::Serialize, serde::Deserialize)]
struct Invoice {
    invoice: u64,
}

/// The envelope as an application would declare it with plain serde.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct PlainJob {
    ctx: PlainCarrier,
    data: Invoice,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct PlainCarrier {
    v: u32,
    trace_id: String,
    tenant_id: Option<String>,
    user_ref: Option<PlainUser>,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct PlainUser {
    #[serde(rename = "type")]
    kind: String,
    id: serde_json::Value,
}

/// The envelope a producer writes: a context with a tenant and a user.
fn envelope() -> Result<String, String> {
    let cx = context_runtime::Context::builder()
        .trace_id(
            "4bf92f3577b34da6a3ce929d0e0e4736"
                .parse()
                .map_err(|e| format!("{e}"))?,
        )
        .tenant(context_runtime::TenantId::new("acme").map_err(|e| e.to_string())?)
        .user(context_runtime::UserRef::user(42).map_err(|e| e.to_string())?)
        .build();
    serde_json::to_string(&context_runtime::jobs::Job::new(
        &cx,
        Invoice { invoice: 7 },
    ))
    .map_err(|e| e.to_string())
}

/// Reads `n` jobs from `json` the way of `mode`.
fn queue_workload(mode: &str, n: u64) -> Result<(), String> {
    let json = envelope()?;
    let policy = context_runtime::jobs::Policy::new();
    for _ in 0..n {
        let json = std::hint::black_box(json.as_str());
        match mode {
            "queue" => {
                let job: context_runtime::jobs::Job<Invoice> =
                    serde_json::from_str(json).map_err(|e| e.to_string())?;
                let cx = context_runtime::jobs::admit(&job, &policy).map_err(|e| e.to_string())?;
                let seen = cx.scope_sync(|| {
                    context_runtime::tenant()
                        .map(|t| t.as_str().len())
                        .unwrap_or(0)
                        + job.data.invoice as usize
                });
                std::hint::black_box(seen);
            }
            "queue-serde" => {
                let job: PlainJob = serde_json::from_str(json).map_err(|e| e.to_string())?;
                std::hint::black_box(&job);
            }
            other => return Err(format!("unknown mode `{other}`")),
        }
    }
    Ok(())
}

/// The request the scenario sends.
fn request() -> Request<Body> {
    Request::builder()
        .uri("/")
        .header("traceparent", TRACEPARENT)
        .header("tracestate", TRACESTATE)
        .header("baggage", BAGGAGE)
        .body(Body::empty())
        .expect("a valid request")
}

async fn bare() -> String {
    String::new()
}

async fn ours() -> String {
    let trace_id = context_runtime::trace_id().map(|t| t.to_bytes()[0]);
    let members = context_runtime::with_current(|cx| cx.map_or(0, |cx| cx.baggage().len()));
    std::hint::black_box((trace_id, members));
    String::new()
}

async fn theirs() -> String {
    let cx = opentelemetry::Context::current();
    let trace_id = cx.span().span_context().trace_id();
    let members = cx.baggage().len();
    std::hint::black_box((trace_id, members));
    String::new()
}

/// `HeaderMap` as an OpenTelemetry extractor (what `opentelemetry-http` does).
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The OpenTelemetry way: extract with the composite propagator, attach the
/// context at every poll of the inner service's future.
#[derive(Clone)]
struct OtelLayer;

#[derive(Clone)]
struct OtelService<S>(S);

impl<S> Layer<S> for OtelLayer {
    type Service = OtelService<S>;

    fn layer(&self, inner: S) -> OtelService<S> {
        OtelService(inner)
    }
}

fn otel_propagator() -> &'static TextMapCompositePropagator {
    static PROPAGATOR: std::sync::OnceLock<TextMapCompositePropagator> = std::sync::OnceLock::new();
    PROPAGATOR.get_or_init(|| {
        TextMapCompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
        ])
    })
}

impl<S, B> Service<Request<B>> for OtelService<S>
where
    S: Service<Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let otel_cx = otel_propagator().extract(&Headers(request.headers()));
        Box::pin(self.0.call(request).with_context(otel_cx))
    }
}

/// Sends `n` requests through the router of `mode`.
fn workload(mode: &str, n: u64) -> Result<(), String> {
    if mode.starts_with("queue") {
        return queue_workload(mode, n);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?;
    let router: Router = match mode {
        "bare" => Router::new().route("/", get(bare)),
        // What any layer costs on an axum route, for reference.
        "noop" => Router::new()
            .route("/", get(bare))
            .layer(tower::util::MapRequestLayer::new(|r: Request<Body>| r)),
        "layer" => Router::new()
            .route("/", get(ours))
            .layer(ContextLayer::new(Propagator::new())),
        "otel" => Router::new().route("/", get(theirs)).layer(OtelLayer),
        other => return Err(format!("unknown mode `{other}`; one of {MODES:?}")),
    };
    runtime.block_on(async {
        for _ in 0..n {
            let response = router
                .clone()
                .oneshot(request())
                .await
                .unwrap_or_else(|e: Infallible| match e {});
            if !response.status().is_success() {
                return Err(format!("status {}", response.status()));
            }
        }
        Ok(())
    })
}

/// The instructions callgrind counts for one workload process.
fn instructions(mode: &str, n: u64) -> Result<u64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out_file = std::env::temp_dir().join(format!(
        "request-cost-{}-{mode}-{n}.out",
        std::process::id()
    ));
    let output = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(&exe)
        .args([mode, &n.to_string()])
        .output()
        .map_err(|e| format!("cannot run valgrind (is it installed?): {e}"))?;
    let _ = std::fs::remove_file(&out_file);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!("the {mode} workload failed: {stderr}"));
    }
    stderr
        .lines()
        .find_map(|line| line.split("Collected :").nth(1))
        .and_then(|count| count.trim().parse().ok())
        .ok_or_else(|| format!("no instruction count in callgrind's output: {stderr}"))
}

fn report(n: u64) -> Result<(), String> {
    let mut per_request = Vec::new();
    for mode in MODES {
        let (once, twice) = (instructions(mode, n)?, instructions(mode, 2 * n)?);
        let cost = twice.saturating_sub(once) as f64 / n as f64;
        per_request.push((mode, cost));
        eprintln!(
            "{mode}: {once} instructions for {n} requests, {twice} for {}",
            2 * n
        );
    }
    let bare = per_request[0].1;
    let added = |mode: &str| {
        let cost = per_request
            .iter()
            .find(|(m, _)| *m == mode)
            .map_or(0.0, |p| p.1);
        cost - bare
    };
    println!("| router | instructions per request | added over the bare router |");
    println!("| --- | ---: | ---: |");
    for (mode, cost) in &per_request {
        let label = match *mode {
            "bare" => "bare router",
            "noop" => "a layer that does nothing (`MapRequestLayer` with the identity)",
            "layer" => "`ContextLayer::new(Propagator::new())`",
            _ => "OpenTelemetry layer (TraceContext + Baggage, attached per poll)",
        };
        let extra = if *mode == "bare" {
            "—".to_owned()
        } else {
            format!("+{:.0}", cost - bare)
        };
        println!("| {label} | {cost:.0} | {extra} |");
    }
    let (ours, theirs) = (added("layer"), added("otel"));
    println!();
    println!(
        "The layer adds {ours:.0} instructions per request (target ≤ 2,500): {}; OpenTelemetry's way adds {theirs:.0}: {:.1}× the layer's.",
        if ours <= 2_500.0 { "met" } else { "missed" },
        theirs / ours
    );

    let mut per_job = Vec::new();
    for mode in QUEUE_MODES {
        let (once, twice) = (instructions(mode, n)?, instructions(mode, 2 * n)?);
        per_job.push(twice.saturating_sub(once) as f64 / n as f64);
    }
    let (plain, ours) = (per_job[0], per_job[1]);
    println!();
    println!("| queue path | instructions per job |");
    println!("| --- | ---: |");
    println!("| plain serde: the envelope decoded into plain structs | {plain:.0} |");
    println!("| `Job<T>` decoded, `jobs::admit`, its scope entered | {ours:.0} |");
    println!();
    println!(
        "The queue path costs {:.2}× the plain decode (target ≤ 1.2×): {}.",
        ours / plain,
        if ours <= 1.2 * plain { "met" } else { "missed" }
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [mode, n] => n
            .parse()
            .map_err(|e| format!("`{n}` is not a count: {e}"))
            .and_then(|n| workload(mode, n)),
        [] => report(2_000),
        [n] => n
            .parse()
            .map_err(|e| format!("`{n}` is not a count: {e}"))
            .and_then(report),
        _ => Err(
            "usage: request_cost [N] | request_cost <bare|layer|otel|queue|queue-serde> <N>"
                .to_owned(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
