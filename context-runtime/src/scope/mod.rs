//! The scoped store and the in-process crossings: which context is current
//! (for exactly one future or closure), and how it crosses a spawned task, a
//! thread, a callback or a fan-out over tenants.
//!
//! Imports only [`model`](crate::model). Telemetry (features `tracing` and
//! `opentelemetry`) plugs in through [`telemetry`]'s hook, which the store
//! calls without knowing what is behind it.

pub mod fanout;
pub(crate) mod store;
pub(crate) mod task;
#[cfg(any(feature = "tracing", feature = "opentelemetry"))]
pub(crate) mod telemetry;
pub mod thread;
