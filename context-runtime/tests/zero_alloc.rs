//! The fast path allocates nothing: reading the current context, entering and
//! leaving a scope, polling a scoped future and parsing a valid `traceparent`.
//!
//! A counting global allocator counts the allocations made on the thread
//! under test while it is armed (each test runs on its own thread, so the
//! harness's allocations on other threads are not counted).

// `GlobalAlloc` is an unsafe trait: the counting allocator (`counting_alloc/`)
// is the only unsafe code in the workspace, and it is test code.
#![allow(unsafe_code)]

mod counting_alloc;

use counting_alloc::{allocations, Noop};

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};

use context_runtime::w3c::TraceParent;
use context_runtime::{Context, FutureExt as _, TenantId, UserRef};

fn identity() -> Context {
    Context::builder()
        .tenant(TenantId::new("acme").expect("valid"))
        .user(UserRef::new("service", "billing").expect("valid"))
        .source("tests")
        .build()
}

#[test]
fn the_counter_counts() {
    // The control: without it, a broken counter would pass every test below.
    assert_eq!(allocations(|| drop(black_box(Box::new(7u64)))), 100);
    assert!(allocations(|| drop(black_box(Context::root()))) >= 100);
    assert!(allocations(|| drop(black_box(identity().with_value(1u8)))) >= 100);
}

#[test]
fn reads_inside_a_scope_allocate_nothing() {
    let cx = identity();
    cx.scope_sync(|| {
        let n = allocations(|| {
            black_box(context_runtime::trace_id());
            black_box(context_runtime::tenant().expect("a tenant"));
            black_box(context_runtime::user().expect("a user"));
            black_box(context_runtime::current().expect("a context"));
            black_box(Context::current().expect("a context"));
            black_box(context_runtime::with_current(|cx| {
                cx.and_then(Context::source).map(str::len)
            }));
        });
        assert_eq!(n, 0, "reads inside a scope allocated");
    });
    // And outside any scope.
    let n = allocations(|| {
        black_box(context_runtime::trace_id());
        black_box(context_runtime::tenant().expect_err("no scope"));
        black_box(context_runtime::user());
        black_box(context_runtime::current());
    });
    assert_eq!(n, 0, "reads outside a scope allocated");
}

#[test]
fn entering_and_leaving_scope_sync_allocates_nothing() {
    let outer = identity();
    let inner = Context::root();
    let n = allocations(|| {
        let seen = outer.scope_sync(|| {
            let nested = inner.scope_sync(context_runtime::trace_id);
            (nested, context_runtime::trace_id())
        });
        black_box(seen);
    });
    assert_eq!(n, 0, "scope_sync allocated");
    let callback = outer.bind_fn(|x: u32| (x, context_runtime::trace_id()));
    let mut callback = black_box(callback);
    assert_eq!(
        allocations(|| {
            black_box(callback(1));
        }),
        0
    );
}

#[test]
fn polling_a_scoped_future_allocates_nothing() {
    let cx = identity();
    let waker = Waker::from(Arc::new(Noop));
    let mut task_cx = TaskContext::from_waker(&waker);
    let n = allocations(|| {
        let future = pin!(cx.scope(async { context_runtime::tenant().is_ok() }));
        assert_eq!(future.poll(&mut task_cx), Poll::Ready(true));
        // Captured inside the scope, polled outside it.
        let captured = cx.scope_sync(|| async { context_runtime::trace_id() }.in_current_context());
        let future = pin!(captured);
        assert_eq!(future.poll(&mut task_cx), Poll::Ready(Some(cx.trace_id())));
    });
    assert_eq!(n, 0, "a scoped future allocated");
}

#[test]
fn parsing_a_valid_traceparent_allocates_nothing() {
    let values = [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03\t",
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future",
    ];
    let n = allocations(|| {
        for value in values {
            let parsed: TraceParent = black_box(value).parse().expect("valid");
            black_box(parsed);
            black_box(TraceParent::parse_bytes(black_box(value.as_bytes())).expect("valid"));
        }
    });
    assert_eq!(n, 0, "parsing a traceparent allocated");
    // Rejecting one allocates nothing either.
    let n = allocations(|| {
        black_box("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7".parse::<TraceParent>())
            .expect_err("too short");
    });
    assert_eq!(n, 0, "rejecting a traceparent allocated");
}
