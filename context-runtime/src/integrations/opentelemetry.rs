//! OpenTelemetry: spans made inside a scope continue its trace (feature
//! `opentelemetry`), and a context can be read from OpenTelemetry's.
//!
//! With this feature, every scope attaches an OpenTelemetry context for
//! exactly as long as its own context is current (at every poll, while the
//! future is dropped, for the whole closure), the way `tracing`'s
//! `Instrumented` enters a span; no guard is ever held across an `.await`.
//! A scope that starts a trace in this process attaches
//! [`to_otel_context`]: the context's trace id, with its
//! [`parent_span_id`](Context::parent_span_id) (the caller's span, from a
//! `traceparent`) as the remote parent. A scope inside another of the same
//! trace carries OpenTelemetry's context as it was where the scope was made,
//! so spans nest as the code does, also across [`spawn`](crate::spawn).
//!
//! Spans started inside a scope, through the OpenTelemetry API or through
//! `tracing` with `tracing-opentelemetry`, therefore belong to the carried
//! trace and have the carried parent as remote parent. With the `tracing`
//! feature too, the scope's `context` span is itself exported, as the local
//! root of the trace, with `trace_id`, `tenant_id` and `user` as attributes.
//!
//! A context read from a [`Carrier`](struct@crate::Carrier) has a trace id but no
//! parent span. OpenTelemetry's SDK gives a span without a parent a new trace
//! id from its id generator; configure the provider with
//! [`ContextIdGenerator`] (feature `opentelemetry_sdk`) to give it the
//! scope's trace id instead.
//!
//! ```
//! use context_runtime::{opentelemetry as otel_bridge, Context};
//! use opentelemetry::trace::{TraceContextExt, Tracer, TracerProvider};
//! use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
//!
//! let exporter = InMemorySpanExporter::default();
//! let provider = SdkTracerProvider::builder()
//!     .with_simple_exporter(exporter.clone())
//!     .build();
//! let tracer = provider.tracer("docs");
//!
//! // An incoming call: its `traceparent` names the trace and the caller's span.
//! let cx = Context::builder()
//!     .trace_id("4bf92f3577b34da6a3ce929d0e0e4736".parse()?)
//!     .parent_span_id("00f067aa0ba902b7".parse()?)
//!     .build();
//! cx.scope_sync(|| tracer.in_span("charge", |_| ()));
//!
//! let spans = exporter.get_finished_spans()?;
//! assert_eq!(spans[0].span_context.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
//! assert_eq!(spans[0].parent_span_id.to_string(), "00f067aa0ba902b7");
//! assert!(spans[0].parent_span_is_remote);
//!
//! // And back: inside an OpenTelemetry span, a context that continues it.
//! let inner = tracer.in_span("server", |otel_cx| {
//!     let span = otel_cx.span().span_context().clone();
//!     let cx = otel_bridge::from_current().expect("a span is active");
//!     assert_eq!(cx.parent_span_id().map(|s| s.to_bytes()), Some(span.span_id().to_bytes()));
//!     cx
//! });
//! # let _ = inner;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! OpenTelemetry types appear only in this module; the rest of the crate's
//! API is the same with or without the feature.

use ::opentelemetry::trace::TraceContextExt as _;
#[cfg(feature = "opentelemetry_sdk")]
use ::opentelemetry::trace::{SpanId as OtelSpanId, TraceId as OtelTraceId};

use crate::model::context::Context;
use crate::model::trace::{SpanId, TraceFlags, TraceId};
use crate::model::w3c::TraceState;

/// The OpenTelemetry context of `cx`: its trace id, with its
/// [`parent_span_id`](Context::parent_span_id) as a remote parent span, its
/// trace flags and its `tracestate`.
///
/// A context without a parent span id (a fresh root, or one read from a
/// carrier) has no span to point at: the result holds no span context, and
/// the trace id reaches OpenTelemetry through [`ContextIdGenerator`].
///
/// Scopes attach this themselves; call it to hand a context to OpenTelemetry
/// code explicitly (a propagator, `Tracer::start_with_context`).
pub fn to_otel_context(cx: &Context) -> ::opentelemetry::Context {
    crate::scope::telemetry::otel_context(cx)
}

/// A context that continues the span of an OpenTelemetry context: its trace
/// id, the span as [`parent_span_id`](Context::parent_span_id), its flags
/// and `tracestate`. `None` when it has no valid span context.
///
/// The result has no tenant or user: add them from what the application
/// trusts ([`Context::with_tenant`]).
pub fn from_otel_context(otel: &::opentelemetry::Context) -> Option<Context> {
    let span = otel.span();
    let span = span.span_context();
    let trace_id = TraceId::from_bytes(span.trace_id().to_bytes())?;
    let span_id = SpanId::from_bytes(span.span_id().to_bytes())?;
    let mut builder = Context::builder()
        .trace_id(trace_id)
        .parent_span_id(span_id)
        .trace_flags(TraceFlags::new(span.trace_flags().to_u8()));
    let header = span.trace_state().header();
    if let Ok(state) = header.parse::<TraceState>() {
        if !state.is_empty() {
            builder = builder.trace_state(state);
        }
    }
    Some(builder.build())
}

/// [`from_otel_context`] of OpenTelemetry's current context, for code that
/// runs under an OpenTelemetry span started elsewhere (a server middleware):
/// the context then continues that span's trace.
///
/// ```
/// use context_runtime::opentelemetry::from_current;
///
/// // No OpenTelemetry span is active here.
/// assert!(from_current().is_none());
/// let cx = from_current().unwrap_or_else(context_runtime::Context::root);
/// # let _ = cx;
/// ```
pub fn from_current() -> Option<Context> {
    ::opentelemetry::Context::map_current(from_otel_context)
}

/// An OpenTelemetry SDK id generator that gives a span started without a
/// parent the trace id of the current scope (feature `opentelemetry_sdk`).
///
/// Span ids, and trace ids outside any scope, are random as with the SDK's
/// default generator. Install it on the provider:
///
/// ```
/// use context_runtime::opentelemetry::ContextIdGenerator;
/// use opentelemetry_sdk::trace::SdkTracerProvider;
///
/// let provider = SdkTracerProvider::builder()
///     .with_id_generator(ContextIdGenerator::default())
///     .build();
/// # let _ = provider;
/// ```
#[cfg(feature = "opentelemetry_sdk")]
#[cfg_attr(docsrs, doc(cfg(feature = "opentelemetry_sdk")))]
#[derive(Debug, Default, Clone)]
pub struct ContextIdGenerator {
    random: ::opentelemetry_sdk::trace::RandomIdGenerator,
}

#[cfg(feature = "opentelemetry_sdk")]
impl ::opentelemetry_sdk::trace::IdGenerator for ContextIdGenerator {
    fn new_trace_id(&self) -> OtelTraceId {
        match crate::scope::store::trace_id() {
            Some(trace_id) => OtelTraceId::from_bytes(trace_id.to_bytes()),
            None => self.random.new_trace_id(),
        }
    }

    fn new_span_id(&self) -> OtelSpanId {
        self.random.new_span_id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_survives_the_round_trip() {
        let cx = Context::builder()
            .trace_id("4bf92f3577b34da6a3ce929d0e0e4736".parse().expect("valid"))
            .parent_span_id("00f067aa0ba902b7".parse().expect("valid"))
            .trace_state("vendor=abc".parse().expect("valid"))
            .trace_flags(TraceFlags::SAMPLED)
            .build();
        let otel = to_otel_context(&cx);
        assert!(otel.span().span_context().is_remote());
        let back = from_otel_context(&otel).expect("a valid span context");
        assert_eq!(back.trace_id(), cx.trace_id());
        assert_eq!(back.parent_span_id(), cx.parent_span_id());
        assert_eq!(back.trace_flags(), cx.trace_flags());
        assert_eq!(
            back.trace_state().map(ToString::to_string).as_deref(),
            Some("vendor=abc")
        );
    }

    #[test]
    fn a_context_without_a_parent_span_has_no_span_context() {
        let otel = to_otel_context(&Context::root());
        assert!(!otel.span().span_context().is_valid());
        assert!(from_otel_context(&otel).is_none());
    }
}
