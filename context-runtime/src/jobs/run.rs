//! Running a handler inside a job's context, with its panics caught: a
//! panic is a failed attempt (`panicked: <message>`), never the end of the
//! worker that called it.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;

use crate::model::context::Context;

pin_project! {
    /// A future whose panics become `Err` with the panic's payload.
    struct CatchUnwind<F> {
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let future = self.project().future;
        // The future is never polled again after a panic (this future is
        // then finished), so no broken invariant can be observed.
        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// The text of a panic's payload (`panic!("…")` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Runs `future`, turning a panic into the error `panicked: <message>`.
#[cfg(feature = "apalis")]
pub(crate) async fn catch_panic<F: Future>(future: F) -> Result<F::Output, String> {
    CatchUnwind { future }
        .await
        .map_err(|payload| format!("panicked: {}", panic_message(&*payload)))
}

/// Runs `handler` inside `cx`, turning its error into text and a panic into
/// the error `panicked: <message>`.
#[cfg_attr(
    not(any(feature = "redis", feature = "lapin", feature = "nats")),
    allow(dead_code)
)]
pub(crate) async fn run_in<F, R, E>(cx: &Context, handler: F) -> Result<R, String>
where
    F: Future<Output = Result<R, E>>,
    E: fmt::Display,
{
    match (CatchUnwind {
        future: cx.scope(handler),
    })
    .await
    {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(payload) => Err(format!("panicked: {}", panic_message(&*payload))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_panic_is_a_failed_attempt_with_its_message() {
        let cx = Context::root();
        let failed = run_in(&cx, async {
            if cx.trace_id() == cx.trace_id() {
                panic!("boom {}", 7);
            }
            Ok::<(), String>(())
        })
        .await;
        assert_eq!(failed, Err("panicked: boom 7".to_owned()));
        let ok = run_in(&cx, async {
            Ok::<_, String>(crate::scope::store::trace_id())
        })
        .await;
        assert_eq!(ok, Ok(Some(cx.trace_id())));
        let err = run_in(&cx, async { Err::<(), _>("no") }).await;
        assert_eq!(err, Err("no".to_owned()));
    }
}
