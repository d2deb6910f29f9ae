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
//!   discards the whole header ([`InvalidTraceState`]) and a repeated key
//!   keeps its first member;
//! - [`Baggage`]: the `baggage` header of W3C Baggage, tolerant: a malformed
//!   member (also one with raw non-ASCII bytes) is skipped and the others
//!   are kept.
//!
//! Every parser is linear in its input and keeps within the limits below,
//! whatever the path the text came by (HTTP headers, broker headers, the
//! environment, carriers): [`BAGGAGE_MAX_MEMBERS`] members and
//! [`BAGGAGE_MAX_BYTES`] bytes of baggage, [`TRACESTATE_MAX_MEMBERS`]
//! members of trace state.
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
pub(crate) use tracestate::LazyTraceState;
pub use tracestate::{InvalidTraceState, TraceState};

/// The most baggage members that are read and propagated (W3C Baggage: at
/// least 64). Parsing keeps the first ones that fit; see
/// [the `baggage` header](Baggage#the-baggage-header).
///
/// ```
/// use context_runtime::w3c::{Baggage, BAGGAGE_MAX_MEMBERS};
///
/// let header: Vec<String> = (0..40_000).map(|i| format!("k{i}=v")).collect();
/// let baggage: Baggage = header.join(",").parse()?;
/// assert_eq!(baggage.len(), BAGGAGE_MAX_MEMBERS);
/// assert_eq!(baggage.get("k63"), Some("v"));
/// assert_eq!(baggage.get("k64"), None);
/// # Ok::<(), std::convert::Infallible>(())
/// ```
pub const BAGGAGE_MAX_MEMBERS: usize = Baggage::MAX_MEMBERS;

/// The most bytes of `baggage` header that are read and propagated (W3C
/// Baggage: at least 8192), counted as written (percent-encoded, with the
/// commas between members).
pub const BAGGAGE_MAX_BYTES: usize = Baggage::MAX_LEN;

/// The most `tracestate` members (W3C Trace Context: 32). A header with more
/// is invalid as a whole.
pub const TRACESTATE_MAX_MEMBERS: usize = TraceState::MAX_MEMBERS;

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

/// A header's text as received, kept inline when it is short (no
/// allocation: most `tracestate` and `baggage` headers are), boxed
/// otherwise. Held as bytes; [`as_str`](HeaderText::as_str) checks that they
/// are text where text is needed.
#[derive(Clone)]
pub(crate) enum HeaderText {
    /// Up to [`HeaderText::INLINE`] bytes: `(len, bytes)`.
    Inline(u8, [u8; HeaderText::INLINE]),
    /// Longer.
    Boxed(Box<[u8]>),
}

impl HeaderText {
    /// The most bytes kept inline (the whole value is 64 bytes).
    pub(crate) const INLINE: usize = 62;

    /// `bytes`, copied.
    pub(crate) fn new(bytes: &[u8]) -> HeaderText {
        let mut buf = [0u8; HeaderText::INLINE];
        match buf.get_mut(..bytes.len()) {
            Some(slot) => {
                slot.copy_from_slice(bytes);
                // At most `INLINE` bytes, which fits a `u8`.
                HeaderText::Inline(bytes.len() as u8, buf)
            }
            None => HeaderText::Boxed(bytes.into()),
        }
    }

    /// The bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            HeaderText::Inline(len, buf) => buf.get(..usize::from(*len)).unwrap_or_default(),
            HeaderText::Boxed(bytes) => bytes,
        }
    }

    /// The text; empty when the bytes are not text (never, where it was
    /// made from text).
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}
