//! In-process crossings: what carries the context, and what does not.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use context_runtime::{Context, FutureExt as _, TenantId, TraceId};

fn tenant_cx(tenant: &str) -> Context {
    Context::root().with_tenant(TenantId::new(tenant).expect("valid tenant"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_carries_the_context_captured_at_call_time() {
    let cx = tenant_cx("t1");
    let handle = cx.scope_sync(|| context_runtime::spawn(async { context_runtime::tenant() }));
    // Awaited outside the scope: the task still runs in the captured context.
    assert_eq!(handle.await.expect("task").expect("tenant"), "t1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_tokio_spawn_does_not_carry_it() {
    let cx = tenant_cx("t1");
    let seen = cx
        .scope(async { tokio::spawn(async { context_runtime::current() }).await })
        .await
        .expect("task");
    assert!(seen.is_none(), "tokio::spawn is not a crossing: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_blocking_and_threads_carry_it() {
    let cx = tenant_cx("t2");
    let (blocking, thread) = cx
        .scope(async {
            let blocking = context_runtime::spawn_blocking(context_runtime::tenant);
            let thread = context_runtime::thread::spawn(context_runtime::trace_id);
            (
                blocking.await.expect("blocking task"),
                thread.join().expect("thread"),
            )
        })
        .await;
    assert_eq!(blocking.expect("tenant"), "t2");
    assert_eq!(thread, Some(cx.trace_id()));

    // A plain std thread sees nothing.
    let plain = cx.scope_sync(|| {
        std::thread::spawn(context_runtime::trace_id)
            .join()
            .expect("thread")
    });
    assert_eq!(plain, None);
}

#[test]
fn bind_carries_it_into_callbacks() {
    let cx = tenant_cx("t3");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let mut callback = cx.bind_fn(move |n: u32| {
        sink.lock()
            .expect("lock")
            .push((n, context_runtime::trace_id()));
    });
    callback(1);
    std::thread::spawn(move || callback(2))
        .join()
        .expect("thread");
    assert_eq!(
        *seen.lock().expect("lock"),
        vec![(1, Some(cx.trace_id())), (2, Some(cx.trace_id()))]
    );
    assert_eq!(context_runtime::trace_id(), None);
}

#[tokio::test]
async fn in_current_context_captures_at_call_time_not_at_poll_time() {
    let a = tenant_cx("a");
    let b = tenant_cx("b");
    let fut = a.scope_sync(|| async { context_runtime::tenant() }.in_current_context());
    // Polled inside b, it still runs in a.
    assert_eq!(b.scope(fut).await.expect("tenant"), "a");
    // Captured where there was no context: it runs with none, even inside b.
    let none = async { context_runtime::current() }.in_current_context();
    assert!(b.scope(none).await.is_none());
    let explicit = async { context_runtime::tenant() }.in_context(&b);
    assert_eq!(explicit.await.expect("tenant"), "b");
}

#[tokio::test]
async fn nested_scopes_restore_the_outer_one() {
    let outer = tenant_cx("outer");
    let inner = tenant_cx("inner");
    outer
        .scope(async {
            assert_eq!(context_runtime::tenant().expect("tenant"), "outer");
            inner
                .scope(async {
                    tokio::task::yield_now().await;
                    assert_eq!(context_runtime::tenant().expect("tenant"), "inner");
                })
                .await;
            assert_eq!(context_runtime::tenant().expect("tenant"), "outer");
        })
        .await;
    assert!(context_runtime::current().is_none());
}

struct RecordOnDrop(Arc<Mutex<Option<Option<TraceId>>>>);

impl Drop for RecordOnDrop {
    fn drop(&mut self) {
        *self.0.lock().expect("lock") = Some(context_runtime::trace_id());
    }
}

#[tokio::test]
async fn a_cancelled_scope_does_not_leak_and_drops_inside_its_context() {
    let outer = tenant_cx("outer");
    let inner = tenant_cx("inner");
    let dropped_in = Arc::new(Mutex::new(None));
    let record = RecordOnDrop(dropped_in.clone());
    outer
        .scope(async {
            let slow = inner.scope(async move {
                let _record = record;
                tokio::time::sleep(Duration::from_secs(3600)).await;
            });
            // Cancel it at its await point.
            let timed_out = tokio::time::timeout(Duration::from_millis(5), slow).await;
            assert!(timed_out.is_err());
            assert_eq!(context_runtime::tenant().expect("tenant"), "outer");
        })
        .await;
    assert_eq!(
        *dropped_in.lock().expect("lock"),
        Some(Some(inner.trace_id())),
        "the cancelled future was dropped with its own context current"
    );
    assert!(context_runtime::current().is_none());
}

#[tokio::test(flavor = "current_thread")]
async fn a_panicking_task_does_not_leak_its_context() {
    let outer = tenant_cx("outer");
    outer
        .scope(async {
            let panicked = tokio::spawn(tenant_cx("leak").scope(async {
                tokio::task::yield_now().await;
                panic!("job failed");
            }))
            .await;
            assert!(panicked.expect_err("the task panicked").is_panic());
            // Same thread, next poll: the outer scope is intact.
            assert_eq!(context_runtime::tenant().expect("tenant"), "outer");
            let later = tokio::spawn(async { context_runtime::current() }).await;
            assert!(later.expect("task").is_none());
        })
        .await;
}

#[test]
fn a_panic_inside_scope_sync_restores_the_outer_scope() {
    let outer = tenant_cx("outer");
    outer.scope_sync(|| {
        let result = std::panic::catch_unwind(|| tenant_cx("leak").scope_sync(|| panic!("boom")));
        assert!(result.is_err());
        assert_eq!(context_runtime::tenant().expect("tenant"), "outer");
    });
    assert!(context_runtime::tenant().is_err());
}

#[test]
fn reading_outside_any_scope_is_none_and_tenant_is_an_error() {
    assert!(context_runtime::current().is_none());
    assert!(context_runtime::trace_id().is_none());
    assert!(context_runtime::user().is_none());
    let err = context_runtime::tenant().expect_err("no tenant outside a scope");
    assert!(err.to_string().contains("no tenant"), "{err}");
}
