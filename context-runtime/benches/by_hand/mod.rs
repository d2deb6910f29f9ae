//! Polling futures by hand, so that no runtime's own cost hides what is measured.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// A waker that does nothing: the futures polled here never wait on anything.
struct Noop;

impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

/// A waker that does nothing.
pub(crate) fn noop_waker() -> Waker {
    Waker::from(Arc::new(Noop))
}

/// Polls a future that is ready at its first poll, and returns its output.
///
/// # Panics
///
/// When the future is not ready at its first poll.
#[allow(dead_code)] // each benchmark binary uses its own part of this module
pub(crate) fn ready<F: Future>(future: F, waker: &Waker) -> F::Output {
    let mut future = std::pin::pin!(future);
    match Pin::new(&mut future).poll(&mut Context::from_waker(waker)) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the benchmarked future is not ready at its first poll"),
    }
}
