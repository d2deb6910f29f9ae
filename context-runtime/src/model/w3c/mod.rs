//! W3C Trace Context and W3C Baggage.
//!
//! [`Baggage`] is the application's key/value baggage that a [`Context`](crate::Context)
//! carries and that crosses every boundary with it.
//!
//! The header codecs parse with [`FromStr`](std::str::FromStr) and write with
//! [`Display`](std::fmt::Display):
//!
//! - [`TraceParent`]: the `traceparent` header of W3C Trace Context Level 2,
//!   strict, with a typed [`InvalidTraceParent`] error;
//! - [`TraceState`]: the `tracestate` header, where one invalid member
//!   discards the whole header ([`InvalidTraceState`]);
//! - [`Baggage`]: the `baggage` header of W3C Baggage, tolerant: a malformed
//!   member is skipped and the others are kept.
//!
//! ```
//! use context_runtime::w3c::{Baggage, TraceParent, TraceState};
//!
//! // What arrives with a request.
//! let traceparent: TraceParent =
//!     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse()?;
//! let mut tracestate = TraceState::from_headers(["congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7"])?;
//! let baggage = Baggage::from_headers(["tenantId=acme, region = eu-west%201;ttl=60"]);
//! assert_eq!(baggage.get("region"), Some("eu-west 1"));
//!
//! // What this service sends on: the same trace, a new parent id, and its own
//! // tracestate member in front.
//! let next = traceparent.child();
//! assert_eq!(next.trace_id(), traceparent.trace_id());
//! tracestate.insert("ours", "span-1")?;
//! assert_eq!(tracestate.to_string(), "ours=span-1,congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
//! assert_eq!(baggage.to_string(), "tenantId=acme,region=eu-west%201;ttl=60");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod baggage;
mod traceparent;
mod tracestate;

pub use baggage::{Baggage, BaggageMember, BaggageProperty, InvalidBaggage};
pub use traceparent::{InvalidTraceParent, TraceParent};
pub use tracestate::{InvalidTraceState, TraceState};

/// `s` without the optional whitespace (spaces and tabs, RFC 9110's `OWS`)
/// at either end.
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// [`trim_ows`] for `&str`. Spaces and tabs are ASCII, so this never splits a
/// character.
fn trim_ows_str(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}
