//! The scoped store: which [`Context`] is current, for exactly one future or closure.
//!
//! The store is a `tokio::task_local!`, so reading it costs what a task-local
//! read costs: no allocation, no lock. It has no setter: the only ways in are
//! [`Context::scope`], [`Context::scope_sync`] and the crossings built on them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;

use crate::{Context, TenantId, TenantRequired, TraceId, UserRef};

tokio::task_local! {
    static CURRENT: Option<Context>;
}

/// What the task-local scope wraps: the future itself, or (features
/// `tracing`, `opentelemetry`) the future inside the scope's telemetry.
#[cfg(not(any(feature = "tracing", feature = "opentelemetry")))]
type InScope<F> = F;
#[cfg(any(feature = "tracing", feature = "opentelemetry"))]
type InScope<F> = crate::telemetry::Instrumented<F>;

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
        #[pin]
        inner: TaskLocalFuture<Option<Context>, InScope<F>>,
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

impl<F> fmt::Debug for Scoped<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scoped").finish_non_exhaustive()
    }
}

/// Makes `cx` current (or explicitly none) for `future`.
#[inline]
pub(crate) fn scope<F: Future>(cx: Option<Context>, future: F) -> Scoped<F> {
    // The telemetry sits inside the task-local scope, so that whatever a
    // subscriber does on entering the span already sees the new context.
    #[cfg(any(feature = "tracing", feature = "opentelemetry"))]
    let future = crate::telemetry::Instrumented::new(cx.as_ref(), future);
    Scoped {
        inner: CURRENT.scope(cx, future),
    }
}

/// Makes `cx` current (or explicitly none) for `f`.
#[inline]
pub(crate) fn scope_sync<R>(cx: Option<Context>, f: impl FnOnce() -> R) -> R {
    #[cfg(any(feature = "tracing", feature = "opentelemetry"))]
    {
        let telemetry = crate::telemetry::ScopeTelemetry::new(cx.as_ref());
        CURRENT.sync_scope(cx, || {
            let _entered = telemetry.enter();
            f()
        })
    }
    #[cfg(not(any(feature = "tracing", feature = "opentelemetry")))]
    CURRENT.sync_scope(cx, f)
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
#[inline]
pub fn with_current<R>(f: impl FnOnce(Option<&Context>) -> R) -> R {
    let mut slot = Some(f);
    // `try_with` calls the closure exactly when it returns `Ok`.
    match CURRENT.try_with(|cx| slot.take().map(|f| f(cx.as_ref()))) {
        Ok(Some(result)) => result,
        _ => match slot.take() {
            Some(f) => f(None),
            None => unreachable!("the reader ran but returned no result"),
        },
    }
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
    CURRENT.try_with(Option::clone).ok().flatten()
}

/// The current trace id, if the caller runs inside a scope.
#[inline]
pub fn trace_id() -> Option<TraceId> {
    CURRENT
        .try_with(|cx| cx.as_ref().map(Context::trace_id))
        .ok()
        .flatten()
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
    CURRENT
        .try_with(|cx| cx.as_ref().and_then(|cx| cx.tenant().cloned()))
        .ok()
        .flatten()
        .ok_or(TenantRequired)
}

/// The current user, if any.
#[inline]
pub fn user() -> Option<UserRef> {
    CURRENT
        .try_with(|cx| cx.as_ref().and_then(|cx| cx.user().cloned()))
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TenantId;

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
