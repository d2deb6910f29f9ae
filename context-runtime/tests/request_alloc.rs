//! Allocations per request through the tower layer: one request with
//! `traceparent`, `tracestate` and a 3-member `baggage` header through
//! [`ContextService`], the handler reading the trace id and the baggage size
//! (the scenario of the `request_cost` example, without the router).
//!
//! Allocation counts are deterministic, so the test asserts the exact count;
//! each allocation that remains is listed with what it is for. Without the
//! `opentelemetry` feature (as `ContextLayer` is usually used):
//!
//! ```text
//! cargo test -p context-runtime --features tower --test request_alloc
//! ```
//!
//! A counting global allocator counts the allocations made on the thread
//! under test while it is armed (see `zero_alloc.rs`).
#![cfg(feature = "tower")]
// `GlobalAlloc` is an unsafe trait: the counting allocator is test code.
#![allow(unsafe_code)]

mod counting_alloc;

use counting_alloc::{allocations, Noop, CALLS};

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};

use context_runtime::tower::ContextLayer;
use context_runtime::{Context, Propagator};
use http::Request;
use tower_layer::Layer as _;
use tower_service::Service;

/// How many requests each measurement sends (after one that is not counted).
const REQUESTS: usize = CALLS;

/// The handler: reads the trace id and the baggage size of the current
/// context.
#[derive(Clone)]
struct Handler;

impl Service<Request<()>> for Handler {
    type Response = (u8, usize);
    type Error = Infallible;
    type Future = Ready<Result<(u8, usize), Infallible>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        let trace_id = context_runtime::trace_id().map_or(0, |t| t.to_bytes()[0]);
        let members = context_runtime::with_current(|cx| cx.map_or(0, |cx| cx.baggage().len()));
        ready(Ok((trace_id, members)))
    }
}

fn request(baggage: &str) -> Request<()> {
    Request::builder()
        .uri("/")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
        .header("baggage", baggage)
        .body(())
        .expect("a valid request")
}

/// The allocations of [`REQUESTS`] requests with this `baggage` header
/// through the layer; the requests are built before counting.
fn per_requests(propagator: Propagator, baggage: &str, members: usize) -> usize {
    let mut service = ContextLayer::new(propagator).layer(Handler);
    let mut requests: Vec<Request<()>> = (0..=REQUESTS).map(|_| request(baggage)).collect();
    let waker = Waker::from(Arc::new(Noop));
    let mut task_cx = TaskContext::from_waker(&waker);
    allocations(|| {
        let request = requests.pop().expect("one per call");
        let future = pin!(service.call(request));
        match future.poll(&mut task_cx) {
            Poll::Ready(Ok((trace_id, n))) => {
                assert_eq!((trace_id, n), (0x4b, members));
            }
            other => panic!("the handler answers at once: {other:?}"),
        }
    })
}

#[test]
fn the_counter_counts() {
    // The control: without it, a broken counter would pass every test below.
    assert_eq!(allocations(|| drop(black_box(Box::new(7u64)))), REQUESTS);
    assert!(allocations(|| drop(black_box(Context::root()))) >= REQUESTS);
}

/// The clean header of the scenario.
const CLEAN: &str = "userId=alice,serverNode=DF%2028,isProduction=false";

#[test]
fn a_request_through_the_layer_allocates_once() {
    // `userId` is identity-shaped: an untrusting layer leaves it out.
    let n = per_requests(Propagator::new(), CLEAN, 2);
    // Per request, one allocation: the `Context` (its `Arc`). The
    // `tracestate` and `baggage` texts (40 and 37 bytes here) are kept
    // inline in it, as any of up to 62 bytes is (a longer one is one more
    // allocation each); the `tracestate` is checked on first use, the
    // `baggage` by one scan; the context is not copied into the request's
    // extensions (the extractors read the current one).
    //
    // With the `opentelemetry` feature, every entry into the scope also
    // attaches the context's OpenTelemetry context (a remote span context,
    // its trace state, OpenTelemetry's context map): the layer enters twice,
    // once to call the handler and once to poll its future; and the first
    // entry reads the `tracestate`, which is then checked and kept as its
    // text (one allocation).
    let (per_entry, first_read) = otel_allocations_per_entry();
    assert_eq!(
        n,
        (1 + first_read + 2 * per_entry) * REQUESTS,
        "{} allocations per request",
        n as f64 / REQUESTS as f64
    );
}

/// What one scope entry of a request's context allocates for OpenTelemetry
/// (none without the `opentelemetry` feature), and what reading its
/// `tracestate` the first time does (one allocation with the feature,
/// whose first entry reads it; none without).
fn otel_allocations_per_entry() -> (usize, usize) {
    let extract = || Propagator::new().extract(request("a=1").headers());
    // A fresh context for each read (the first read checks the text).
    let mut fresh: Vec<Context> = (0..=REQUESTS).map(|_| extract()).collect();
    let first = allocations(|| {
        let cx = fresh.pop().expect("one per call");
        black_box(cx.trace_state());
    });
    let cx = extract();
    let n = allocations(|| {
        black_box(cx.scope_sync(context_runtime::trace_id));
    });
    if cfg!(feature = "opentelemetry") {
        assert!(n > 0, "the control: attaching allocates");
    } else {
        assert_eq!(n, 0, "entering a scope allocated");
    }
    assert!(
        first > 0,
        "the control: the first read checks and keeps the text"
    );
    let first_read = if cfg!(feature = "opentelemetry") {
        first / REQUESTS
    } else {
        0
    };
    (n / REQUESTS, first_read)
}

#[test]
fn a_header_that_is_not_clean_is_parsed() {
    // The control for the count above: the same members with spaces around
    // the commas are valid but not kept as received; the header is parsed
    // (a list, and a string per member), so it allocates more. If the layer
    // parsed every header, the first test would count this much.
    let clean = per_requests(Propagator::new(), CLEAN, 2);
    let n = per_requests(
        Propagator::new(),
        "userId=alice , serverNode=DF%2028 , isProduction=false",
        2,
    );
    assert!(
        n > clean,
        "{} allocations per request, {} for the clean header",
        n as f64 / REQUESTS as f64,
        clean as f64 / REQUESTS as f64
    );
}
