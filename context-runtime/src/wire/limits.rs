//! The one set of input limits every path applies: headers, carrier JSON,
//! broker headers, the environment and job envelopes.
//!
//! | limit | value | where |
//! | --- | --- | --- |
//! | [`MAX_BAGGAGE_MEMBERS`] | 64 | `baggage` on every wire, a carrier's `baggage` object |
//! | [`MAX_BAGGAGE_BYTES`] | 8,192 | the same, in bytes as written |
//! | [`MAX_TRACESTATE_MEMBERS`] | 32 | `tracestate` on every wire |
//! | [`MAX_CARRIER_BYTES`] | 16 KiB | a carrier's JSON text |
//! | [`MAX_FIELD_BYTES`] | 16 KiB | one header or environment value (`traceparent`, `tracestate`, `baggage`) |
//! | [`MAX_JOB_PAYLOAD_BYTES`] | 1 MiB | a job's whole payload, before it is parsed |
//!
//! Input over a limit is a typed error where the input is strict (carriers,
//! broker headers, job payloads), and dropped member by member where W3C
//! asks for a tolerant parse (HTTP headers). JSON nesting is bounded by the
//! parser (128 levels).

use crate::model::w3c::{Baggage, TraceState};

/// The most members of baggage that are read or propagated (W3C Baggage).
pub const MAX_BAGGAGE_MEMBERS: usize = Baggage::MAX_MEMBERS;

/// The most bytes of baggage that are read or propagated (W3C Baggage).
pub const MAX_BAGGAGE_BYTES: usize = Baggage::MAX_LEN;

/// The most `tracestate` members (W3C Trace Context).
pub const MAX_TRACESTATE_MEMBERS: usize = TraceState::MAX_MEMBERS;

/// The most bytes of a carrier's JSON text.
pub const MAX_CARRIER_BYTES: usize = 16 * 1024;

/// The most bytes of one W3C field value in broker headers or the
/// environment (all header lines of a field together).
pub const MAX_FIELD_BYTES: usize = 16 * 1024;

/// The most bytes of a job's payload (the carrier and the data).
pub const MAX_JOB_PAYLOAD_BYTES: usize = 1024 * 1024;
