//! The names of the W3C fields on every wire, written once.

/// The W3C Trace Context `traceparent` field (HTTP and broker headers).
#[cfg(any(feature = "http", feature = "lapin", feature = "nats"))]
pub(crate) const TRACEPARENT: &str = "traceparent";
/// The W3C Trace Context `tracestate` field (HTTP and broker headers).
#[cfg(any(feature = "http", feature = "lapin", feature = "nats"))]
pub(crate) const TRACESTATE: &str = "tracestate";
/// The W3C Baggage `baggage` field (HTTP and broker headers).
#[cfg(any(feature = "http", feature = "lapin", feature = "nats"))]
pub(crate) const BAGGAGE: &str = "baggage";

/// `traceparent` in a child's environment (OpenTelemetry's name).
pub(crate) const ENV_TRACEPARENT: &str = "TRACEPARENT";
/// `tracestate` in a child's environment (OpenTelemetry's name).
pub(crate) const ENV_TRACESTATE: &str = "TRACESTATE";
/// `baggage` in a child's environment (OpenTelemetry's name).
pub(crate) const ENV_BAGGAGE: &str = "BAGGAGE";
