//! The scoped store: which [`Context`] is current, for exactly one future or closure.
//!
//! The store is a thread-local swapped in and out around every poll of a
//! scoped future and every scoped closure, the scheme of `tokio::task_local!`
//! (`scope`, `sync_scope`, a pin-projected future whose `Drop` runs with the
//! value still set), specialised for a context: the slot is an
//! `Option<Context>` (one word), and a second, `Copy` thread-local keeps the
//! current trace id, so that `trace_id()`, the most frequent read, is one
//! load. Reading allocates nothing and takes no lock. There is no setter: the
//! only ways in are [`Context::scope`], [`Context::scope_sync`] and the
//! crossings built on them.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;

use crate::model::context::Context;
use crate::model::tenant::{TenantId, TenantRequired};
use crate::model::trace::TraceId;
use crate::model::user::UserRef;
#[cfg(any(feature = "tracing", feature = "opentelemetry"))]
use crate::scope::telemetry::{Instrumented, ScopeTelemetry};

thread_local! {
    /// The current context.
    static CURRENT: RefCell<Option<Context>> = const { RefCell::new(None) };
    /// The current context's trace id (always of the context in `CURRENT`),
    /// as a `u128`, 0 for none: a trace id is never all zero, and a plain
    /// integer moves in and out without the partial stores of an `Option`.
    static CURRENT_TRACE_ID: Cell<u128> = const { Cell::new(0) };
}

/// The bits kept in `CURRENT_TRACE_ID`.
#[inline]
fn trace_id_bits(cx: Option<&Context>) -> u128 {
    cx.map_or(0, |cx| cx.trace_id().to_ne_bits())
}

/// A context made current until this is dropped, which restores the outer
/// one (also on panic). While entered, `slot` holds the outer context.
struct Entered<'a> {
    slot: &'a mut Option<Context>,
    outer_trace_id: u128,
}

/// Why a context could not be made current.
enum EnterError {
    /// Inside [`with_current`]'s closure, which borrows the store.
    Borrowed,
    /// The thread is tearing down its thread-locals.
    Destroyed,
}

impl EnterError {
    #[track_caller]
    fn panic(self) -> ! {
        match self {
            EnterError::Borrowed => panic!(
                "cannot enter a context scope inside `context_runtime::with_current`'s closure; \
                 clone the context (`Context::current()`) and scope outside the closure"
            ),
            EnterError::Destroyed => {
                panic!("cannot enter a context scope while the thread is being torn down")
            }
        }
    }
}

/// Swaps `slot` with the store.
#[inline]
fn swap(slot: &mut Option<Context>) -> Result<(), EnterError> {
    CURRENT
        .try_with(|current| match current.try_borrow_mut() {
            Ok(mut current) => {
                std::mem::swap(&mut *current, slot);
                Ok(())
            }
            Err(_) => Err(EnterError::Borrowed),
        })
        .unwrap_or(Err(EnterError::Destroyed))
}

impl<'a> Entered<'a> {
    /// Makes the context in `slot` current (`None`: explicitly none).
    #[inline]
    fn try_enter(slot: &'a mut Option<Context>) -> Result<Entered<'a>, EnterError> {
        let trace_id = trace_id_bits(slot.as_ref());
        swap(slot)?;
        let outer_trace_id = CURRENT_TRACE_ID
            .try_with(|current| current.replace(trace_id))
            .unwrap_or_default();
        Ok(Entered {
            slot,
            outer_trace_id,
        })
    }

    #[inline]
    #[track_caller]
    fn enter(slot: &'a mut Option<Context>) -> Entered<'a> {
        match Entered::try_enter(slot) {
            Ok(entered) => entered,
            Err(e) => e.panic(),
        }
    }
}

impl Drop for Entered<'_> {
    #[inline]
    fn drop(&mut self) {
        // Entering borrowed nothing that is still held, and the thread-locals
        // outlive this guard: swapping back cannot fail.
        let _ = swap(self.slot);
        let _ = CURRENT_TRACE_ID.try_with(|current| current.set(self.outer_trace_id));
    }
}

/// What the scope wraps: the future itself, or (features `tracing`,
/// `opentelemetry`) the future inside the scope's telemetry.
#[cfg(not(any(feature = "tracing", feature = "opentelemetry")))]
type InScope<F> = F;
#[cfg(any(feature = "tracing", feature = "opentelemetry"))]
type InScope<F> = Instrumented<F>;

pin_project! {
    /// A future that runs with a context current; made by [`Context::scope`],
    /// [`FutureExt::in_context`](crate::FutureExt::in_context) and
    /// [`FutureExt::in_current_context`](crate::FutureExt::in_current_context).
    ///
    /// The context is current at every poll of the inner future and while the
    /// inner future is dropped, and is restored to the outer one in between,
    /// on completion, on panic and on cancellation. With the `tracing`
    /// feature, the scope's `context` span is entered at the same times
    /// (see the `tracing` module); with `opentelemetry`, the scope's
    /// OpenTelemetry context is attached (see the `opentelemetry` module).
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Scoped<F> {
        cx: Option<Context>,
        #[pin]
        future: Option<InScope<F>>,
    }

    impl<F> PinnedDrop for Scoped<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if std::mem::needs_drop::<InScope<F>>() && this.future.is_some() {
                // Dropped with its context current, like a poll. (While the
                // thread tears down, it is dropped without.)
                if let Ok(_entered) = Entered::try_enter(this.cx) {
                    this.future.set(None);
                }
            }
        }
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    #[inline]
    #[track_caller]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = Entered::enter(this.cx);
        match this.future.as_pin_mut() {
            Some(future) => future.poll(cx),
            None => panic!("`Scoped` polled after it was dropped"),
        }
    }
}

impl<F> fmt::Debug for Scoped<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scoped").finish_non_exhaustive()
    }
}

/// The telemetry hook's view of what is current outside a new scope.
#[cfg(any(feature = "tracing", feature = "opentelemetry"))]
fn outer(f: &mut dyn FnMut(Option<&Context>) -> (bool, bool)) -> (bool, bool) {
    with_current(f)
}

/// Makes `cx` current (or explicitly none) for `future`.
#[inline]
pub(crate) fn scope<F: Future>(cx: Option<Context>, future: F) -> Scoped<F> {
    // The telemetry sits inside the scope, so that whatever a
    // subscriber does on entering the span already sees the new context.
    #[cfg(any(feature = "tracing", feature = "opentelemetry"))]
    let future = Instrumented::new(cx.as_ref(), &outer, future);
    Scoped {
        cx,
        future: Some(future),
    }
}

/// Makes `cx` current (or explicitly none) for `f`.
///
/// # Panics
///
/// Inside [`with_current`]'s closure.
#[inline]
#[track_caller]
pub(crate) fn scope_sync<R>(cx: Option<Context>, f: impl FnOnce() -> R) -> R {
    // The telemetry is entered inside the scope, so that whatever a
    // subscriber does on entering the span already sees the new context.
    #[cfg(any(feature = "tracing", feature = "opentelemetry"))]
    let telemetry = ScopeTelemetry::new(cx.as_ref(), &outer);
    let mut slot = cx;
    let _entered = Entered::enter(&mut slot);
    #[cfg(any(feature = "tracing", feature = "opentelemetry"))]
    let _telemetry = telemetry.enter();
    f()
}

/// Calls `f` with a borrow of the current context, without cloning it.
///
/// This is the cheapest way to read several parts of the current context.
///
/// ```
/// use context_runtime::Context;
///
/// let cx = Context::root().with_source("docs");
/// let source = cx.scope_sync(|| {
///     context_runtime::with_current(|cx| cx.and_then(|cx| cx.source().map(str::to_owned)))
/// });
/// assert_eq!(source.as_deref(), Some("docs"));
/// ```
///
/// The store is borrowed while `f` runs: entering a scope inside `f` panics.
#[inline]
pub fn with_current<R>(f: impl FnOnce(Option<&Context>) -> R) -> R {
    let mut slot = Some(f);
    let read = CURRENT.try_with(|current| {
        let current = current.try_borrow().ok()?;
        slot.take().map(|f| f(current.as_ref()))
    });
    match (read, slot.take()) {
        (Ok(Some(result)), _) => result,
        (_, Some(f)) => f(None),
        (_, None) => unreachable!("the reader ran but returned no result"),
    }
}

/// Reads the current context, `None` outside any scope.
#[inline]
fn read<R>(f: impl FnOnce(&Context) -> Option<R>) -> Option<R> {
    CURRENT
        .try_with(|current| current.try_borrow().ok()?.as_ref().and_then(f))
        .ok()
        .flatten()
}

/// The current context, if the caller runs inside a scope (clones one `Arc`).
///
/// ```
/// use context_runtime::Context;
///
/// assert!(context_runtime::current().is_none());
/// let cx = Context::root();
/// assert!(cx.scope_sync(|| context_runtime::current()).is_some_and(|c| c.ptr_eq(&cx)));
/// ```
#[inline]
pub fn current() -> Option<Context> {
    read(|cx| Some(cx.clone()))
}

/// The current trace id, if the caller runs inside a scope.
#[inline]
pub fn trace_id() -> Option<TraceId> {
    TraceId::from_ne_bits(CURRENT_TRACE_ID.try_with(Cell::get).unwrap_or_default())
}

/// The current tenant, or [`TenantRequired`] when there is no scope or the
/// current context has no tenant. Never a default.
///
/// ```
/// use context_runtime::{Context, TenantId, TenantRequired};
///
/// assert_eq!(context_runtime::tenant(), Err(TenantRequired));
/// let cx = Context::root().with_tenant(TenantId::new("t1").unwrap());
/// assert_eq!(cx.scope_sync(context_runtime::tenant).unwrap(), "t1");
/// ```
#[inline]
pub fn tenant() -> Result<TenantId, TenantRequired> {
    read(|cx| cx.tenant().cloned()).ok_or(TenantRequired)
}

/// The current user, if any.
#[inline]
pub fn user() -> Option<UserRef> {
    read(|cx| cx.user().cloned())
}

/// Scoping a [`Context`]: the only ways to make it current, each for exactly
/// one future or closure.
impl Context {
    /// The current context, if the caller runs inside a scope.
    ///
    /// This clones one `Arc`; it never allocates. Use
    /// [`crate::with_current`] to read without cloning.
    pub fn current() -> Option<Context> {
        current()
    }

    /// Runs `future` with this context current, at every poll and in its `Drop`.
    ///
    /// Scopes nest: the outer context is restored when the inner future
    /// returns, panics or is dropped. Nothing can make this context current
    /// for longer than the future.
    pub fn scope<F: Future>(&self, future: F) -> Scoped<F> {
        scope(Some(self.clone()), future)
    }

    /// Runs `f` with this context current, and returns its result.
    ///
    /// ```
    /// use context_runtime::Context;
    ///
    /// let cx = Context::root();
    /// let seen = cx.scope_sync(|| context_runtime::trace_id());
    /// assert_eq!(seen, Some(cx.trace_id()));
    /// assert_eq!(context_runtime::trace_id(), None);
    /// ```
    pub fn scope_sync<R>(&self, f: impl FnOnce() -> R) -> R {
        scope_sync(Some(self.clone()), f)
    }

    /// Binds a callback to this context: the returned closure runs `f` inside
    /// it, wherever and whenever it is called (another thread, a callback API).
    ///
    /// ```
    /// use context_runtime::Context;
    ///
    /// let cx = Context::root();
    /// let callback = cx.bind(|| context_runtime::trace_id());
    /// let seen = std::thread::spawn(callback).join().unwrap();
    /// assert_eq!(seen, Some(cx.trace_id()));
    /// ```
    pub fn bind<R>(&self, f: impl FnOnce() -> R) -> impl FnOnce() -> R {
        let cx = self.clone();
        move || cx.scope_sync(f)
    }

    /// Like [`bind`](Context::bind) for a callback called many times with one argument.
    ///
    /// ```
    /// use context_runtime::Context;
    ///
    /// let cx = Context::root();
    /// let mut on_item = cx.bind_fn(|n: u32| (n, context_runtime::trace_id()));
    /// assert_eq!(on_item(1), (1, Some(cx.trace_id())));
    /// ```
    pub fn bind_fn<A, R>(&self, mut f: impl FnMut(A) -> R) -> impl FnMut(A) -> R {
        let cx = self.clone();
        move |arg| cx.scope_sync(|| f(arg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tenant::TenantId;

    #[test]
    fn nested_sync_scopes_restore_the_outer_one() {
        let outer = Context::root();
        let inner = Context::root();
        outer.scope_sync(|| {
            assert_eq!(trace_id(), Some(outer.trace_id()));
            inner.scope_sync(|| assert_eq!(trace_id(), Some(inner.trace_id())));
            assert_eq!(trace_id(), Some(outer.trace_id()));
        });
        assert_eq!(trace_id(), None);
    }

    #[test]
    fn the_trace_id_follows_the_context_across_interleaved_polls_and_drops() {
        use std::sync::Arc;
        use std::task::{Wake, Waker};

        struct Noop;
        impl Wake for Noop {
            fn wake(self: Arc<Self>) {}
        }
        /// Checks, when dropped, that both reads see the same context.
        struct CheckOnDrop(TraceId);
        impl Drop for CheckOnDrop {
            fn drop(&mut self) {
                assert_eq!(trace_id(), Some(self.0));
                assert_eq!(current().map(|cx| cx.trace_id()), Some(self.0));
            }
        }
        let waker = Waker::from(Arc::new(Noop));
        let mut task_cx = TaskContext::from_waker(&waker);
        let (a, b) = (Context::root(), Context::root());
        let reads = |cx: Context| {
            let guard = CheckOnDrop(cx.trace_id());
            let future = async move {
                let _guard = guard;
                loop {
                    assert_eq!(trace_id(), Some(cx.trace_id()));
                    assert!(current().is_some_and(|c| c.ptr_eq(&cx)));
                    std::future::pending::<()>().await;
                }
            };
            future
        };
        let mut fa = Box::pin(a.scope(reads(a.clone())));
        let mut fb = Box::pin(b.scope(reads(b.clone())));
        let outer = Context::root();
        outer.scope_sync(|| {
            for _ in 0..3 {
                assert!(fa.as_mut().poll(&mut task_cx).is_pending());
                assert_eq!(trace_id(), Some(outer.trace_id()));
                assert!(fb.as_mut().poll(&mut task_cx).is_pending());
                assert_eq!(trace_id(), Some(outer.trace_id()));
            }
            drop(fa);
            assert_eq!(trace_id(), Some(outer.trace_id()));
            // Explicitly none hides the outer context, for reads of both kinds.
            let none = scope(None, async { (trace_id(), current().is_none()) });
            let mut none = Box::pin(none);
            assert_eq!(none.as_mut().poll(&mut task_cx), Poll::Ready((None, true)));
            scope_sync(None, || {
                assert_eq!((trace_id(), tenant()), (None, Err(TenantRequired)))
            });
        });
        drop(fb);
        assert_eq!(trace_id(), None);
    }

    #[test]
    fn entering_a_scope_inside_with_current_panics_and_restores() {
        let outer = Context::root();
        outer.scope_sync(|| {
            let result = std::panic::catch_unwind(|| {
                with_current(|_| Context::root().scope_sync(|| ()));
            });
            let message = result.expect_err("a panic");
            let message = message
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| message.downcast_ref::<String>().map(String::as_str));
            assert!(
                message.is_some_and(|m| m.contains("with_current")),
                "{message:?}"
            );
            assert_eq!(trace_id(), Some(outer.trace_id()));
            assert!(current().is_some_and(|c| c.ptr_eq(&outer)));
        });
    }

    #[test]
    fn a_panic_restores_the_outer_scope() {
        let outer = Context::root();
        outer.scope_sync(|| {
            let result = std::panic::catch_unwind(|| {
                Context::root()
                    .with_tenant(TenantId::new("leak").expect("valid"))
                    .scope_sync(|| panic!("boom"))
            });
            assert!(result.is_err());
            assert_eq!(trace_id(), Some(outer.trace_id()));
            assert!(tenant().is_err());
        });
    }
}
