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

use crate::model::context::Context;

/// Reads the context current outside a new scope: the store passes its
/// `with_current`, so that this hook never names the store.
pub(crate) type Outer<'a> =
    &'a dyn Fn(&mut dyn FnMut(Option<&Context>) -> (bool, bool)) -> (bool, bool);

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
    /// `outer` calls its argument with the context current before the scope
    /// starts (the store's `with_current`).
    pub(crate) fn new(cx: Option<&Context>, outer: Outer<'_>) -> Self {
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
        let (same_context, same_trace) = outer(&mut |outer| {
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
            otel_context(cx)
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
            context_span(cx)
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
    pub(crate) fn new(cx: Option<&Context>, outer: Outer<'_>, future: F) -> Self {
        Instrumented {
            telemetry: ScopeTelemetry::new(cx, outer),
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

#[cfg(feature = "tracing")]
/// The `context` span of `cx` (target and name: the `tracing` module's
/// `SPAN_TARGET` and `SPAN_NAME`), a child of the current span
/// (`Span::none()` when no subscriber is interested).
#[inline]
pub(crate) fn context_span(cx: &Context) -> ::tracing::Span {
    ::tracing::error_span!(
        target: "context_runtime",
        "context",
        trace_id = %cx.trace_id(),
        tenant_id = cx.tenant().map(::tracing::field::display),
        user = cx.user().map(::tracing::field::display),
    )
}

/// The OpenTelemetry context of `cx` (see `opentelemetry::to_otel_context`).
#[cfg(feature = "opentelemetry")]
pub(crate) fn otel_context(cx: &Context) -> ::opentelemetry::Context {
    use ::opentelemetry::trace::TraceContextExt as _;

    let Some(parent) = cx.parent_span_id() else {
        return ::opentelemetry::Context::new();
    };
    let state = cx
        .trace_state()
        .and_then(|state| {
            state
                .to_string()
                .parse::<::opentelemetry::trace::TraceState>()
                .ok()
        })
        .unwrap_or_default();
    ::opentelemetry::Context::new().with_remote_span_context(
        ::opentelemetry::trace::SpanContext::new(
            ::opentelemetry::trace::TraceId::from_bytes(cx.trace_id().to_bytes()),
            ::opentelemetry::trace::SpanId::from_bytes(parent.to_bytes()),
            ::opentelemetry::trace::TraceFlags::new(cx.trace_flags().bits()),
            true,
            state,
        ),
    )
}
