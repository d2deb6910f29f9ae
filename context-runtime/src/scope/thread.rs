//! Crossing into OS threads: [`spawn`].

use std::thread::JoinHandle;

use crate::scope::store;

/// Spawns an OS thread that runs `f` inside the context that is current now
/// (captured at call time), like [`std::thread::spawn`] otherwise.
///
/// ```
/// use context_runtime::Context;
///
/// let cx = Context::root();
/// let seen = cx.scope_sync(|| context_runtime::thread::spawn(context_runtime::trace_id));
/// assert_eq!(seen.join().unwrap(), Some(cx.trace_id()));
/// ```
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let cx = store::current();
    std::thread::spawn(move || store::scope_sync(cx, f))
}

/// Like [`spawn`], on a [`std::thread::Builder`] (name, stack size).
///
/// # Errors
///
/// When the OS cannot create the thread.
pub fn spawn_with<F, T>(builder: std::thread::Builder, f: F) -> std::io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let cx = store::current();
    builder.spawn(move || store::scope_sync(cx, f))
}
