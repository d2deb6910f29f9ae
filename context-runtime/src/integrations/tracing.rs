//! Logs and spans that carry the context (feature `tracing`).
//!
//! With this feature, every scope ([`Context::scope`], [`Context::scope_sync`]
//! and every crossing built on them, including `#[with_context]`) runs inside
//! a `tracing` span named [`SPAN_NAME`] whose fields are the context's
//! `trace_id`, `tenant_id` (when it has a tenant) and `user` (when it has a
//! user, as `type:id`). Every event and span emitted inside the scope has it
//! as an ancestor, so any subscriber that prints span fields prints them, with
//! no code in the handlers.
//!
//! ```
//! use context_runtime::{Context, TenantId};
//! # use std::sync::{Arc, Mutex};
//! # #[derive(Clone, Default)]
//! # struct Captured(Arc<Mutex<Vec<u8>>>);
//! # impl std::io::Write for Captured {
//! #     fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> { self.0.lock().unwrap().write(buf) }
//! #     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
//! # }
//! # let captured = Captured::default();
//! # let writer = captured.clone();
//! let subscriber = tracing_subscriber::fmt()
//!     .without_time()
//! #   .with_writer(move || writer.clone())
//!     .finish();
//! let cx = Context::root().with_tenant(TenantId::new("acme")?);
//! tracing::subscriber::with_default(subscriber, || {
//!     cx.scope_sync(|| tracing::info!("sending invoice"));
//! });
//! # let line = String::from_utf8(captured.0.lock().unwrap().clone())?;
//! # assert!(line.contains(&format!("context{{trace_id={} tenant_id=acme}}", cx.trace_id())), "{line}");
//! // INFO context{trace_id=4bf92f3577b34da6a3ce929d0e0e4736 tenant_id=acme}: my_app: sending invoice
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Why a span, and its level
//!
//! A span is how `tracing` attaches fields to everything below it: the
//! formatting, JSON and OpenTelemetry layers all read a span's fields for its
//! events and children. A subscriber layer that injected fields instead would
//! only reach formatters written for it. The span is entered exactly when the
//! scope's context is current (at every poll, while the future is dropped, for
//! the whole closure), never held across an `.await`, so concurrent tasks
//! never see each other's span.
//!
//! With no subscriber installed, a scope reads one atomic (the global level
//! filter) and makes no span; when a subscriber is installed but not
//! interested, `tracing`'s own macro makes `Span::none()`: no allocation and
//! no field formatting.
//! Its level is `ERROR` so that it is enabled whenever any event is: a filter
//! such as `warn` would otherwise disable an `INFO` span and strip the fields
//! from the very events that matter. Its target is [`SPAN_TARGET`]; a filter
//! by target must let it through, for example
//! `my_app=debug,context_runtime=error`.
//!
//! A scope that re-establishes the context already current (a
//! [`spawn`](crate::spawn), an
//! [`in_current_context`](crate::FutureExt::in_current_context)) carries the
//! caller's current span into the new task instead of nesting a second
//! `context` span. A child context (another tenant, in a
//! [`fanout`](crate::fanout)) gets its own span inside its parent's; the
//! innermost `context` span is the one in force.
//!
//! Without this feature, scopes create no span and cost no more than a
//! `tokio::task_local!` scope (see the README's "Performance").
//!
//! [`Context::scope`]: crate::Context::scope
//! [`Context::scope_sync`]: crate::Context::scope_sync

/// The name of the span every scope runs in.
pub const SPAN_NAME: &str = "context";

/// The target of the span every scope runs in.
pub const SPAN_TARGET: &str = "context_runtime";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constants_name_the_span_the_macro_makes() {
        // `error_span!` needs literals; the public constants must match them.
        assert_eq!(SPAN_NAME, "context");
        assert_eq!(SPAN_TARGET, "context_runtime");
    }
}
