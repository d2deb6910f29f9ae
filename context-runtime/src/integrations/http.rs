//! W3C Trace Context and Baggage over HTTP headers (feature `http`).
//!
//! [`extract`] reads `traceparent`, `tracestate` and `baggage` from an
//! incoming request's headers into a [`Context`]; [`inject`] writes a context
//! into an outgoing request's headers, with a new parent id for every call.
//!
//! ```
//! use context_runtime::{http, Context};
//! use ::http::HeaderMap;
//!
//! let mut incoming = HeaderMap::new();
//! incoming.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse()?);
//! incoming.insert("baggage", "tenantId=t1,region=eu".parse()?);
//!
//! // By default, identity from outside is not trusted: no tenant.
//! let cx = http::extract(&incoming);
//! assert_eq!(cx.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
//! assert!(cx.tenant().is_none());
//! assert_eq!(cx.baggage().get("region"), Some("eu"));
//!
//! // An internal hop may trust the tenant and user carried in baggage.
//! let internal = context_runtime::Propagator::new().trust_baggage_identity();
//! assert_eq!(internal.extract(&incoming).tenant().unwrap().as_str(), "t1");
//!
//! // Outgoing: same trace, new parent id.
//! let mut outgoing = HeaderMap::new();
//! http::inject(&cx, &mut outgoing);
//! let traceparent = outgoing["traceparent"].to_str()?;
//! assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
//! assert!(!traceparent.contains("00f067aa0ba902b7"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;

use ::http::header::{HeaderName, HeaderValue};
use ::http::{Extensions, HeaderMap};

use crate::model::context::Context;
use crate::model::trace::SpanId;
use crate::model::w3c::{LazyTraceState, TraceParent};
use crate::propagate::fields;
use crate::propagate::propagator::{log_refused, Propagator, Trust, Wire};
use crate::propagate::source::ContextSource;
use crate::wire::carrier::CarrierError;

/// The `traceparent` header.
pub const TRACEPARENT: HeaderName = HeaderName::from_static(fields::TRACEPARENT);
/// The `tracestate` header.
pub const TRACESTATE: HeaderName = HeaderName::from_static(fields::TRACESTATE);
/// The `baggage` header.
pub const BAGGAGE: HeaderName = HeaderName::from_static(fields::BAGGAGE);

impl Propagator {
    /// Reads a context from incoming headers (names are case-insensitive).
    /// Never fails: an invalid or duplicated `traceparent` starts a new
    /// trace, an invalid `tracestate` is dropped, a malformed baggage member
    /// is skipped, and identity is taken only as the [`Trust`] policy says.
    pub fn extract(&self, headers: &HeaderMap) -> Context {
        self.extract_with(headers, &Extensions::new())
    }

    /// Like [`extract`](Propagator::extract), with the request's extensions
    /// for an [`IdentityResolver`](crate::IdentityResolver).
    ///
    /// An identity that is claimed but refused (invalid, unsigned where a
    /// [`keyring`](Propagator::keyring) requires a signature, forged,
    /// expired, or refused by a resolver) is logged, one line with the trace
    /// id and the reason, and the context has no tenant and no user; use
    /// [`try_extract_with`](Propagator::try_extract_with) to reject the
    /// request instead (as [`ContextLayer`](crate::tower::ContextLayer) does).
    pub fn extract_with(&self, headers: &HeaderMap, extensions: &Extensions) -> Context {
        match self.try_extract_with(headers, extensions) {
            Ok(cx) => cx,
            Err(error) => {
                let cx = self
                    .clone()
                    .trust(Trust::Nothing)
                    .try_extract_with(headers, extensions)
                    .unwrap_or_else(|_| Context::root());
                log_refused(&cx, "http", &error);
                cx
            }
        }
    }

    /// Like [`extract`](Propagator::extract), refusing an identity that is
    /// claimed but invalid or not trusted.
    ///
    /// ```
    /// use context_runtime::{CarrierError, Propagator};
    /// use ::http::HeaderMap;
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert("baggage", "tenantId=not%20valid".parse()?);
    /// let internal = Propagator::new().trust_baggage_identity();
    /// assert!(matches!(internal.try_extract(&headers), Err(CarrierError::InvalidTenant { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`CarrierError::InvalidTenant`] or [`CarrierError::InvalidUser`] for
    /// an invalid identity member under [`Trust::Baggage`] or
    /// [`Trust::Signed`]; [`CarrierError::UntrustedIdentity`] for an
    /// unsigned, forged or expired one under [`Trust::Signed`], or one a
    /// resolver refused.
    pub fn try_extract(&self, headers: &HeaderMap) -> Result<Context, CarrierError> {
        self.try_extract_with(headers, &Extensions::new())
    }

    /// Like [`extract_with`](Propagator::extract_with), refusing an identity
    /// that is claimed but invalid or not trusted.
    ///
    /// # Errors
    ///
    /// As [`try_extract`](Propagator::try_extract).
    pub fn try_extract_with(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<Context, CarrierError> {
        let resolve = |trust: &Trust| match trust {
            Trust::Resolver(resolver) => Some(resolver.try_resolve(headers, extensions)),
            _ => None,
        };
        // The usual request: each field at most once, found in one pass over
        // the headers (cheaper than three hashed look-ups), its value text.
        if let Some(fields) = Fields::find(headers) {
            let parent = fields
                .traceparent
                .and_then(|v| TraceParent::parse_bytes(v.as_bytes()).ok());
            // Kept as it is and checked when something reads it.
            let trace_state = match (&parent, fields.tracestate) {
                (Some(_), Some(state)) => LazyTraceState::line_bytes(state.as_bytes()),
                _ => LazyTraceState::checked(None),
            };
            return self.try_extract_parts(parent, trace_state, [fields.baggage], resolve);
        }
        let baggages = headers.get_all(BAGGAGE);
        if baggages
            .iter()
            .all(|v| std::str::from_utf8(v.as_bytes()).is_ok())
        {
            return self.try_extract_fields(
                headers.get_all(TRACEPARENT).iter().map(text),
                headers.get_all(TRACESTATE).iter().map(text),
                baggages.iter().map(utf8),
                resolve,
            );
        }
        // Baggage is read member by member: raw non-ASCII bytes make their
        // member malformed (dropped), not the whole header. Valid UTF-8 is
        // borrowed; anything else becomes U+FFFD, which no member accepts.
        let baggage: Vec<Cow<'_, str>> = headers
            .get_all(BAGGAGE)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .collect();
        self.try_extract_fields(
            headers.get_all(TRACEPARENT).iter().map(text),
            headers.get_all(TRACESTATE).iter().map(text),
            baggage.iter().map(|v| Some(v.trim())),
            resolve,
        )
    }

    /// Writes `cx` into outgoing headers, replacing any `traceparent`,
    /// `tracestate` and `baggage` already there. The `traceparent` gets a new
    /// random parent id (this call's span), the same trace id and flags.
    pub fn inject(&self, cx: &Context, headers: &mut HeaderMap) {
        self.inject_with_span(cx, SpanId::random(), headers);
    }

    /// Like [`inject`](Propagator::inject), with the caller's span id as the
    /// parent id (for example the current OpenTelemetry span's).
    pub fn inject_with_span(&self, cx: &Context, span_id: SpanId, headers: &mut HeaderMap) {
        let (parent, state, baggage) = self.outgoing_fields(cx, span_id);
        for name in [TRACEPARENT, TRACESTATE, BAGGAGE] {
            headers.remove(name);
        }
        // Every value is visible ASCII by construction of the W3C codecs.
        if let Ok(value) = HeaderValue::from_str(&parent) {
            headers.insert(TRACEPARENT, value);
        }
        if let Some(Ok(value)) = state.map(|s| HeaderValue::from_str(&s)) {
            headers.insert(TRACESTATE, value);
        }
        if let Some(Ok(value)) = baggage.map(|b| HeaderValue::from_str(&b)) {
            headers.insert(BAGGAGE, value);
        }
    }
}

/// The W3C fields of a request whose fields each come at most once, and
/// whose `baggage` is UTF-8 (see [`Fields::find`]).
struct Fields<'h> {
    traceparent: Option<&'h HeaderValue>,
    tracestate: Option<&'h HeaderValue>,
    /// Checked to be UTF-8, trimmed.
    baggage: Option<&'h str>,
}

impl<'h> Fields<'h> {
    /// The fields, in one pass over the headers; `None` when one of them
    /// comes more than once or the `baggage` is not UTF-8 (the general
    /// path then reads every line).
    fn find(headers: &'h HeaderMap) -> Option<Fields<'h>> {
        let (mut traceparent, mut tracestate, mut baggage) = (None, None, None);
        for (name, value) in headers {
            // Names are lowercase; most are told apart by their length.
            let name = name.as_str();
            let slot = match name.len() {
                11 if name == fields::TRACEPARENT => &mut traceparent,
                10 if name == fields::TRACESTATE => &mut tracestate,
                7 if name == fields::BAGGAGE => &mut baggage,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return None;
            }
        }
        let baggage = match baggage {
            Some(value) => Some(trim(std::str::from_utf8(value.as_bytes()).ok()?)),
            None => None,
        };
        Some(Fields {
            traceparent,
            tracestate,
            baggage,
        })
    }
}

/// A header value that is UTF-8 (not only visible ASCII), trimmed.
fn utf8(v: &HeaderValue) -> Option<&str> {
    std::str::from_utf8(v.as_bytes()).ok().map(trim)
}

fn text(v: &HeaderValue) -> Option<&str> {
    v.to_str().ok().map(trim)
}

/// `s` without whitespace at either end ([`str::trim`]), checking the two
/// ends first: header values rarely have any.
fn trim(s: &str) -> &str {
    let plain = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii() && !c.is_ascii_whitespace());
    let bytes = s.as_bytes();
    if plain(bytes.first()) && plain(bytes.last()) {
        s
    } else {
        s.trim()
    }
}

/// Reads a context from incoming headers with the default [`Propagator`]:
/// the trace is continued, baggage is kept, and no identity is trusted.
pub fn extract(headers: &HeaderMap) -> Context {
    Propagator::for_wire(Wire::Http).extract(headers)
}

/// Writes `cx` into outgoing headers with the default [`Propagator`]:
/// `traceparent` with a new parent id, `tracestate`, and `baggage` with the
/// tenant and user.
pub fn inject(cx: &Context, headers: &mut HeaderMap) {
    Propagator::for_wire(Wire::Http).inject(cx, headers);
}

/// Writes the current context (if any) into outgoing headers.
///
/// Use it for any `http::Request` before sending it:
/// `context_runtime::http::inject_current(request.headers_mut())`.
pub fn inject_current(headers: &mut HeaderMap) {
    crate::scope::store::with_current(|cx| {
        if let Some(cx) = cx {
            inject(cx, headers);
        }
    });
}

/// Headers are read with the default [`Propagator`] (no identity is trusted);
/// this never fails: bad headers start a new trace or drop a baggage member.
impl ContextSource for HeaderMap {
    type Error = std::convert::Infallible;

    fn to_context(&self) -> Result<Context, Self::Error> {
        Ok(extract(self))
    }
}
