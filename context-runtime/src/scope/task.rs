//! Crossing into other tasks: [`spawn`], [`spawn_blocking`] and [`FutureExt`].
//!
//! A bare `tokio::spawn` starts a task with **no** context: the spawned
//! future is polled by the runtime, outside the spawner's scope. These
//! functions capture the current context when they are called and
//! re-establish it inside the new task.

use std::future::Future;

use tokio::task::JoinHandle;

use crate::model::context::Context;
use crate::scope::store::{self, Scoped};

/// Spawns `future` on the current Tokio runtime, inside the context that is
/// current *now* (captured at call time).
///
/// ```
/// use context_runtime::Context;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cx = Context::root();
/// let seen = cx
///     .scope(async { context_runtime::spawn(async { context_runtime::trace_id() }).await })
///     .await
///     .unwrap();
/// assert_eq!(seen, Some(cx.trace_id()));
///
/// // A bare `tokio::spawn` does not carry it:
/// let bare = cx.scope(async { tokio::spawn(async { context_runtime::trace_id() }).await }).await;
/// assert_eq!(bare.unwrap(), None);
/// # }
/// ```
///
/// # Panics
///
/// Like `tokio::spawn`, when called outside a Tokio runtime.
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future.in_current_context())
}

/// Runs the blocking closure `f` on Tokio's blocking pool, inside the context
/// that is current now.
///
/// # Panics
///
/// Like `tokio::task::spawn_blocking`, when called outside a Tokio runtime.
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let cx = store::current();
    tokio::task::spawn_blocking(move || store::scope_sync(cx, f))
}

/// Runs futures inside a context, wherever they are polled.
///
/// ```
/// use context_runtime::{Context, FutureExt as _};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cx = Context::root();
/// let seen = async { context_runtime::trace_id() }.in_context(&cx).await;
/// assert_eq!(seen, Some(cx.trace_id()));
/// # }
/// ```
pub trait FutureExt: Future + Sized {
    /// Runs this future inside `cx`.
    fn in_context(self, cx: &Context) -> Scoped<Self> {
        store::scope(Some(cx.clone()), self)
    }

    /// Runs this future inside the context that is current now, even if it is
    /// polled later from somewhere else (for example by an executor or a
    /// `select!` outside the scope). When no context is current now, the
    /// future runs with none.
    fn in_current_context(self) -> Scoped<Self> {
        store::scope(store::current(), self)
    }
}

impl<F: Future> FutureExt for F {}
