//! What a scope carries into telemetry (features `tracing`, `opentelemetry`):
//! its `context` span and its OpenTelemetry context, entered at every poll of
//! the scoped future, while it is dropped, and for the whole of a
//! `scope_sync` closure.
//!
//! When a scope re-establishes the very context that is already current (a
//! [`spawn`](crate::spawn), an
//! [`in_current_context`](crate::FutureExt::in_current_context)), it carries
//! the caller's current span and OpenTelemetry context instead of making new
//! ones, so a spawned task continues its parent's span rather than nesting a
//! duplicate `context` span.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;

use crate::Context;

/// The span and OpenTelemetry context of one scope.
pub(crate) struct ScopeTelemetry {
    #[cfg(feature = "tracing")]
    span: ::tracing::Span,
    #[cfg(feature = "opentelemetry")]
    otel: Option<::opentelemetry::Context>,
}

/// The span entered and the OpenTelemetry context attached, until dropped.
///
/// Fields drop in declaration order: the span is exited before the
/// OpenTelemetry context it was entered under is detached.
pub(crate) struct Entered<'a> {
    #[cfg(feature = "tracing")]
    _span: ::tracing::span::Entered<'a>,
    #[cfg(feature = "opentelemetry")]
    _otel: Option<::opentelemetry::ContextGuard>,
    #[cfg(not(feature = "tracing"))]
    _borrow: std::marker::PhantomData<&'a ()>,
}

impl ScopeTelemetry {
    /// The telemetry of a scope that makes `cx` current (none for `None`).
    pub(crate) fn new(cx: Option<&Context>) -> Self {
        // With no subscriber at all the level filter is `OFF`: one atomic
        // load, and no span.
        #[cfg(feature = "tracing")]
        let spans_wanted = ::tracing::level_enabled!(::tracing::Level::ERROR);
        #[cfg(not(feature = "tracing"))]
        let spans_wanted = false;
        let cx = match cx {
            Some(cx) if spans_wanted || cfg!(feature = "opentelemetry") => cx,
            _ => {
                return ScopeTelemetry {
                    #[cfg(feature = "tracing")]
                    span: ::tracing::Span::none(),
                    #[cfg(feature = "opentelemetry")]
                    otel: None,
                }
            }
        };
        // Read what is current before the new scope starts (no clone).
        let (same_context, same_trace) = crate::scope::with_current(|outer| {
            (
                outer.is_some_and(|outer| outer.ptr_eq(cx)),
                outer.is_some_and(|outer| outer.trace_id() == cx.trace_id()),
            )
        });
        // Each feature reads one of them.
        let _ = (same_context, same_trace);

        // Within one trace, OpenTelemetry's current context (the caller's
        // active span) is the parent; a new trace starts from the context's
        // own trace id and remote parent.
        #[cfg(feature = "opentelemetry")]
        let otel = if same_trace {
            ::opentelemetry::Context::current()
        } else {
            crate::opentelemetry::to_otel_context(cx)
        };

        #[cfg(feature = "tracing")]
        let span = if !spans_wanted {
            ::tracing::Span::none()
        } else if same_context {
            ::tracing::Span::current()
        } else {
            // The span's OpenTelemetry parent is whatever is current when it
            // is created: make that the scope's context for a new trace.
            #[cfg(feature = "opentelemetry")]
            let _attached = (!same_trace).then(|| otel.clone().attach());
            crate::tracing::context_span(cx)
        };

        ScopeTelemetry {
            #[cfg(feature = "tracing")]
            span,
            #[cfg(feature = "opentelemetry")]
            otel: Some(otel),
        }
    }

    /// Enters the span and attaches the OpenTelemetry context.
    #[inline]
    pub(crate) fn enter(&self) -> Entered<'_> {
        // Attach first, enter second; `Entered` undoes them in reverse.
        #[cfg(feature = "opentelemetry")]
        let otel = self.otel.as_ref().map(|otel| otel.clone().attach());
        Entered {
            #[cfg(feature = "tracing")]
            _span: self.span.enter(),
            #[cfg(feature = "opentelemetry")]
            _otel: otel,
            #[cfg(not(feature = "tracing"))]
            _borrow: std::marker::PhantomData,
        }
    }
}

pin_project! {
    /// A future polled, and dropped, inside its scope's telemetry.
    pub(crate) struct Instrumented<F> {
        telemetry: ScopeTelemetry,
        // An `Option` only so that `Drop` can drop the future while the
        // telemetry is entered; it is `Some` until then.
        #[pin]
        future: Option<F>,
    }

    impl<F> PinnedDrop for Instrumented<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            let _entered = this.telemetry.enter();
            this.future.set(None);
        }
    }
}

impl<F> Instrumented<F> {
    pub(crate) fn new(cx: Option<&Context>, future: F) -> Self {
        Instrumented {
            telemetry: ScopeTelemetry::new(cx),
            future: Some(future),
        }
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = this.telemetry.enter();
        match this.future.as_pin_mut() {
            Some(future) => future.poll(cx),
            None => unreachable!("the future is only taken when it is dropped"),
        }
    }
}
