//! The scoped store, side by side with its baselines: a bare
//! `tokio::task_local!` holding an `Arc` of the same identity, and
//! OpenTelemetry's `Context` with the identity attached as a value.
//!
//! - `read/*`: one read inside a scope (`tenant_borrowed` reads the tenant
//!   without cloning it, through `with_current`);
//! - `poll/scoped_future`: the cost a scope adds to every poll of a future,
//!   polled by hand with a no-op waker so that no runtime hides it;
//! - `spawn/with_propagation`: spawning and awaiting a task that reads the
//!   context it was spawned in, on a current-thread runtime.
//!
//! Every group names this library `context-runtime` and each baseline by
//! what it is; `cargo run --example bench-report` prints the ratios.

use std::future::{pending, Future};
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::Context as TaskContext;
use std::time::Instant;

use context_runtime::{Context, FutureExt as _, TenantId, TraceId, UserRef};
use criterion::{criterion_group, criterion_main, Criterion};
use opentelemetry::context::FutureExt as _;
use opentelemetry::Context as OtelContext;

mod by_hand;

/// The identity every contender holds: the same types, so that reading a
/// field costs the same and only the store differs.
struct Identity {
    trace_id: TraceId,
    tenant: Option<TenantId>,
    user: Option<UserRef>,
}

tokio::task_local! {
    /// The baseline: a bare task-local holding an `Arc` store.
    static STORE: Arc<Identity>;
}

fn identity() -> (Context, Arc<Identity>, OtelContext) {
    let cx = Context::builder()
        .tenant(TenantId::new("acme").expect("valid"))
        .user(UserRef::user(42).expect("valid"))
        .build();
    let store = Arc::new(Identity {
        trace_id: cx.trace_id(),
        tenant: cx.tenant().cloned(),
        user: cx.user().cloned(),
    });
    let otel = OtelContext::new().with_value(Identity {
        trace_id: cx.trace_id(),
        tenant: cx.tenant().cloned(),
        user: cx.user().cloned(),
    });
    (cx, store, otel)
}

/// Runs `read` inside each contender's scope, as `read/<name>`.
fn read_group<R, S, T, U>(c: &mut Criterion, name: &str, ours: R, task_local: S, otel: T)
where
    R: Fn() -> U,
    S: Fn(&Arc<Identity>) -> U,
    T: Fn(&OtelContext) -> U,
{
    let (cx, store, otel_cx) = identity();
    let mut group = c.benchmark_group(format!("read/{name}"));
    group.bench_function("context-runtime", |b| {
        cx.scope_sync(|| b.iter(|| black_box(ours())));
    });
    group.bench_function("task_local", |b| {
        STORE.sync_scope(store.clone(), || {
            b.iter(|| black_box(STORE.with(&task_local)));
        });
    });
    group.bench_function("opentelemetry", |b| {
        let _attached = otel_cx.clone().attach();
        b.iter(|| black_box(otel(&OtelContext::current())));
    });
    group.finish();
}

fn reads(c: &mut Criterion) {
    read_group(
        c,
        "trace_id",
        context_runtime::trace_id,
        |s| Some(s.trace_id),
        |cx| cx.get::<Identity>().map(|s| s.trace_id),
    );
    read_group(
        c,
        "tenant",
        || context_runtime::tenant().ok(),
        |s| s.tenant.clone(),
        |cx| cx.get::<Identity>().and_then(|s| s.tenant.clone()),
    );
    // The tenant borrowed, not cloned: `with_current` lends the context.
    read_group(
        c,
        "tenant_borrowed",
        || {
            context_runtime::with_current(|cx| {
                cx.and_then(Context::tenant).map(|t| t.as_str().len())
            })
        },
        |s| s.tenant.as_ref().map(|t| t.as_str().len()),
        |cx| {
            cx.get::<Identity>()
                .and_then(|s| s.tenant.as_ref().map(|t| t.as_str().len()))
        },
    );
    read_group(
        c,
        "user",
        context_runtime::user,
        |s| s.user.clone(),
        |cx| cx.get::<Identity>().and_then(|s| s.user.clone()),
    );

    // The whole context: an `Arc` clone for this library and the task-local,
    // a clone of OpenTelemetry's current context.
    let (cx, store, otel_cx) = identity();
    let mut group = c.benchmark_group("read/current");
    group.bench_function("context-runtime", |b| {
        cx.scope_sync(|| b.iter(|| black_box(Context::current())));
    });
    group.bench_function("task_local", |b| {
        STORE.sync_scope(store.clone(), || {
            b.iter(|| black_box(STORE.with(Arc::clone)));
        });
    });
    group.bench_function("opentelemetry", |b| {
        let _attached = otel_cx.clone().attach();
        b.iter(|| black_box(OtelContext::current()));
    });
    group.finish();
}

/// One poll of a scoped future that is never ready: what the scope itself
/// costs per poll (making the context current, then restoring the outer one).
fn poll_once<F: Future>(future: std::pin::Pin<&mut F>, task_cx: &mut TaskContext<'_>) -> bool {
    future.poll(task_cx).is_pending()
}

fn polls(c: &mut Criterion) {
    let (cx, store, otel_cx) = identity();
    let waker = by_hand::noop_waker();
    let mut task_cx = TaskContext::from_waker(&waker);
    let mut group = c.benchmark_group("poll/scoped_future");
    group.bench_function("context-runtime", |b| {
        let mut future = pin!(cx.scope(pending::<()>()));
        b.iter(|| black_box(poll_once(future.as_mut(), &mut task_cx)));
    });
    group.bench_function("task_local", |b| {
        let mut future = pin!(STORE.scope(store.clone(), pending::<()>()));
        b.iter(|| black_box(poll_once(future.as_mut(), &mut task_cx)));
    });
    group.bench_function("opentelemetry", |b| {
        let mut future = pin!(pending::<()>().with_context(otel_cx.clone()));
        b.iter(|| black_box(poll_once(future.as_mut(), &mut task_cx)));
    });
    group.finish();
}

fn spawns(c: &mut Criterion) {
    let (cx, store, otel_cx) = identity();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    // Each task is spawned and awaited one after the other, and reads the
    // trace id of the context it was spawned in.
    let mut group = c.benchmark_group("spawn/with_propagation");
    group.bench_function("context-runtime", |b| {
        b.iter_custom(|iters| {
            let timed = async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let task = context_runtime::spawn(async { context_runtime::trace_id() });
                    black_box(task.await.expect("the task ran"));
                }
                start.elapsed()
            };
            runtime.block_on(timed.in_context(&cx))
        });
    });
    group.bench_function("task_local", |b| {
        b.iter_custom(|iters| {
            let timed = async move {
                let start = Instant::now();
                for _ in 0..iters {
                    // Scoped by hand: capture the store now, scope the task with it.
                    let captured = STORE.with(Arc::clone);
                    let task =
                        tokio::spawn(STORE.scope(captured, async { STORE.with(|s| s.trace_id) }));
                    black_box(task.await.expect("the task ran"));
                }
                start.elapsed()
            };
            runtime.block_on(STORE.scope(store.clone(), timed))
        });
    });
    group.bench_function("opentelemetry", |b| {
        b.iter_custom(|iters| {
            let timed = async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let task = tokio::spawn(
                        async { OtelContext::current().get::<Identity>().map(|s| s.trace_id) }
                            .with_current_context(),
                    );
                    black_box(task.await.expect("the task ran"));
                }
                start.elapsed()
            };
            runtime.block_on(timed.with_context(otel_cx.clone()))
        });
    });
    group.finish();
}

criterion_group!(benches, reads, polls, spawns);
criterion_main!(benches);
