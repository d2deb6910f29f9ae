//! [`Propagator`]: how a context crosses a wire with W3C headers (HTTP,
//! broker headers, a child process's environment), and whom to trust.

use std::borrow::Cow;
use std::fmt;
#[cfg(feature = "http")]
use std::sync::Arc;
use std::sync::OnceLock;

#[cfg(feature = "http")]
use ::http::{Extensions, HeaderMap};

use crate::model::context::Context;
use crate::model::tenant::TenantId;
use crate::model::trace::{SpanId, TraceFlags, TraceId};
use crate::model::user::{UserId, UserRef};
use crate::model::w3c::{Baggage, LazyTraceState, TraceParent, TraceState};
use crate::wire::carrier::CarrierError;
use crate::wire::signature::{
    is_identity_shaped, Keyring, UntrustedIdentity, SIGNATURE_BAGGAGE_KEY,
};

/// A tenant and user resolved for an incoming request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The tenant, if the request proved one.
    pub tenant: Option<TenantId>,
    /// The user, if the request proved one.
    pub user: Option<UserRef>,
}

/// Resolves the identity of an incoming request from something the
/// application trusts, such as verified auth claims an earlier middleware put
/// into the request's extensions (feature `http`).
///
/// Any `Fn(&HeaderMap, &Extensions) -> Identity + Send + Sync` is a resolver
/// that cannot fail; [`Propagator::try_resolve_identity`] takes one that can
/// (an invalid identity is not a missing one).
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub trait IdentityResolver: Send + Sync + 'static {
    /// The identity of the request with these headers and extensions.
    fn resolve(&self, headers: &HeaderMap, extensions: &Extensions) -> Identity;

    /// Like [`resolve`](IdentityResolver::resolve), refusing an identity
    /// that is present but invalid (the request is then rejected with
    /// [`UntrustedIdentity::Refused`]). By default, [`resolve`](IdentityResolver::resolve).
    ///
    /// # Errors
    ///
    /// The reason the identity is refused.
    fn try_resolve(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<Identity, UntrustedIdentity> {
        Ok(self.resolve(headers, extensions))
    }
}

/// A resolver that can fail (see [`Propagator::try_resolve_identity`]).
#[cfg(feature = "http")]
struct FallibleResolver<F>(F);

#[cfg(feature = "http")]
impl<F> IdentityResolver for FallibleResolver<F>
where
    F: Fn(&HeaderMap, &Extensions) -> Result<Identity, UntrustedIdentity> + Send + Sync + 'static,
{
    fn resolve(&self, headers: &HeaderMap, extensions: &Extensions) -> Identity {
        (self.0)(headers, extensions).unwrap_or_default()
    }

    fn try_resolve(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<Identity, UntrustedIdentity> {
        (self.0)(headers, extensions)
    }
}

#[cfg(feature = "http")]
impl<F> IdentityResolver for F
where
    F: Fn(&HeaderMap, &Extensions) -> Identity + Send + Sync + 'static,
{
    fn resolve(&self, headers: &HeaderMap, extensions: &Extensions) -> Identity {
        self(headers, extensions)
    }
}

/// Where the tenant and user of incoming work may come from: one trust model
/// for every consumer (the HTTP layer, a queue's [`Policy`](crate::jobs::Policy),
/// a child's environment).
///
/// | trust | identity that arrives… | is |
/// | --- | --- | --- |
/// | [`Nothing`](Trust::Nothing) | anywhere | ignored: no tenant, no user |
/// | [`Signed`](Trust::Signed) | signed by a key of the keyring, not too old | taken |
/// | | unsigned, forged, expired, or signed with an unknown key | refused: [`UntrustedIdentity`] |
/// | [`Baggage`](Trust::Baggage) | as it is (unsigned; an explicit opt-in for a closed system) | taken when valid, an error when invalid |
/// | `Resolver` (feature `http`) | proven otherwise (verified auth claims) | what the resolver says; it may refuse |
///
/// Whatever the trust, identity-shaped baggage members (the configured
/// keys, `tenantId`, `userRef`, any key ending in `tenant`, `tenantId`,
/// `user`, `userId`, `userRef` or `principal`, and the reserved `ctx.`
/// namespace) are never kept as plain baggage, so an untrusted hop cannot
/// pass a claimed identity on to a trusting one.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Trust {
    /// Nowhere: the work gets no tenant and no user (the default for HTTP,
    /// for requests from outside).
    #[default]
    Nothing,
    /// Unsigned identity as it arrives (the identity members of `baggage`,
    /// a carrier's `tenantId` and `userRef`), for a closed system of the
    /// application's own services. An invalid tenant or user is an error.
    Baggage,
    /// Identity signed with a key of this [`Keyring`] (HMAC-SHA256), within
    /// its maximum age; anything else that claims an identity is refused.
    Signed(Keyring),
    /// From a resolver the application supplies (feature `http`).
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    Resolver(Arc<dyn IdentityResolver>),
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Trust::Nothing => "Nothing",
            Trust::Baggage => "Baggage",
            Trust::Signed(_) => "Signed(..)",
            #[cfg(feature = "http")]
            Trust::Resolver(_) => "Resolver(..)",
        })
    }
}

/// Which identity fields leave the process in outgoing `baggage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outbound {
    /// The tenant and the user (the default, for the application's own services).
    Identity,
    /// The tenant only.
    TenantOnly,
    /// Neither: the trace and the other baggage only, for third parties.
    TraceOnly,
}

/// The wires a [`Propagator`] serves, each with its default
/// ([`Propagator::for_wire`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    /// HTTP headers: nothing trusted, source `"http"`.
    #[cfg(feature = "http")]
    Http = 0,
    /// A child process's environment: identity trusted, source `"process"`.
    Process = 1,
    /// AMQP headers: identity trusted, source `"amqp"`.
    #[cfg(feature = "lapin")]
    Amqp = 2,
    /// NATS headers: identity trusted, source `"nats"`.
    #[cfg(feature = "nats")]
    Nats = 3,
}

impl Wire {
    fn source(self) -> &'static str {
        match self {
            #[cfg(feature = "http")]
            Wire::Http => "http",
            Wire::Process => "process",
            #[cfg(feature = "lapin")]
            Wire::Amqp => "amqp",
            #[cfg(feature = "nats")]
            Wire::Nats => "nats",
        }
    }
}

/// The trace id a `traceparent` field names, for dead-letter records: read
/// through [`TraceParent`], `None` when the field is missing or invalid.
#[cfg(any(feature = "lapin", feature = "nats"))]
pub(crate) fn claimed_trace_id(traceparent: Option<&str>) -> Option<String> {
    let parent = traceparent?.parse::<TraceParent>().ok()?;
    Some(parent.trace_id().to_string())
}

/// How a context crosses a wire with W3C fields (HTTP headers, broker
/// headers, a child's environment): the baggage keys of the identity
/// fields, whom to trust on the way in, and what to send on the way out.
///
/// ```
/// use context_runtime::{Outbound, Propagator};
///
/// // Between our own services: trust and send `acme.tenant`, no user.
/// let internal = Propagator::new()
///     .tenant_key("acme.tenant")
///     .without_user_key()
///     .trust_baggage_identity();
///
/// // To a third party: the trace travels, the identity does not.
/// let external = Propagator::new().outbound(Outbound::TraceOnly);
/// # let _ = (internal, external);
/// ```
#[derive(Debug, Clone)]
pub struct Propagator {
    tenant_key: Option<Cow<'static, str>>,
    user_key: Option<Cow<'static, str>>,
    trust: Trust,
    signer: Option<Keyring>,
    outbound: Outbound,
    source: Cow<'static, str>,
}

impl Default for Propagator {
    fn default() -> Self {
        Propagator::new()
    }
}

impl Propagator {
    /// The defaults: keys `tenantId` and `userRef`, no inbound trust, the
    /// identity sent outbound, source `"http"`.
    pub fn new() -> Self {
        Propagator {
            tenant_key: Some(Cow::Borrowed("tenantId")),
            user_key: Some(Cow::Borrowed("userRef")),
            trust: Trust::Nothing,
            signer: None,
            outbound: Outbound::Identity,
            source: Cow::Borrowed("http"),
        }
    }

    /// The default propagator of a wire, made once: untrusting for HTTP;
    /// for a child's environment and broker headers, the default keys with
    /// the identity in baggage trusted (the sender is your own system).
    pub(crate) fn for_wire(wire: Wire) -> &'static Propagator {
        static PROPAGATORS: [OnceLock<Propagator>; 4] = [const { OnceLock::new() }; 4];
        PROPAGATORS[wire as usize].get_or_init(|| match wire {
            #[cfg(feature = "http")]
            Wire::Http => Propagator::new(),
            _ => Propagator::new()
                .trust_baggage_identity()
                .source(wire.source()),
        })
    }

    /// The baggage key of the tenant (default `tenantId`), e.g. a namespaced
    /// `acme.tenant`.
    pub fn tenant_key(mut self, key: impl Into<Cow<'static, str>>) -> Self {
        self.tenant_key = Some(key.into());
        self
    }

    /// The tenant never rides baggage, in or out.
    pub fn without_tenant_key(mut self) -> Self {
        self.tenant_key = None;
        self
    }

    /// The baggage key of the user (default `userRef`), written as a
    /// `type:id` token.
    pub fn user_key(mut self, key: impl Into<Cow<'static, str>>) -> Self {
        self.user_key = Some(key.into());
        self
    }

    /// The user never rides baggage, in or out.
    pub fn without_user_key(mut self) -> Self {
        self.user_key = None;
        self
    }

    /// Whom to trust for the tenant and user of incoming requests.
    pub fn trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self
    }

    /// Trusts the identity members of incoming baggage, unsigned (internal
    /// hops of a closed system only; prefer [`keyring`](Propagator::keyring)).
    pub fn trust_baggage_identity(self) -> Self {
        self.trust(Trust::Baggage)
    }

    /// Signs outgoing identity with `keyring` (a `ctx.sig` baggage member
    /// beside it) and trusts only incoming identity signed by one of its
    /// keys ([`Trust::Signed`]): unsigned, forged or expired identity is
    /// refused.
    ///
    /// ```
    /// use context_runtime::{Context, Keyring, Propagator, TenantId};
    ///
    /// let keyring = Keyring::new("k1", &[42u8; 32])?;
    /// let internal = Propagator::new().keyring(keyring);
    ///
    /// let cx = Context::root().with_tenant(TenantId::new("acme")?);
    /// let (parent, _, baggage) = internal.outgoing(&cx);
    /// let baggage = baggage.unwrap();
    /// assert!(baggage.contains("ctx.sig=k1:"));
    ///
    /// let read = internal.try_extract_values(Some(&parent), None, Some(&baggage))?;
    /// assert_eq!(read.tenant(), cx.tenant());
    ///
    /// // The tenant edited on the way: refused, the same error on every wire.
    /// let forged = baggage.replace("tenantId=acme", "tenantId=victim");
    /// assert!(internal.try_extract_values(Some(&parent), None, Some(&forged)).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn keyring(mut self, keyring: Keyring) -> Self {
        self.signer = Some(keyring.clone());
        self.trust(Trust::Signed(keyring))
    }

    /// Signs outgoing identity with `keyring`, without changing whom to
    /// trust on the way in.
    pub fn sign_with(mut self, keyring: Keyring) -> Self {
        self.signer = Some(keyring);
        self
    }

    /// The trust policy for incoming identity.
    pub fn trust_policy(&self) -> &Trust {
        &self.trust
    }

    /// Resolves the identity of incoming requests with `resolver`, which may
    /// refuse an identity that is present but invalid: the request is then
    /// rejected (`401` in the HTTP layer) instead of running without one.
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn try_resolve_identity<F>(self, resolver: F) -> Self
    where
        F: Fn(&HeaderMap, &Extensions) -> Result<Identity, UntrustedIdentity>
            + Send
            + Sync
            + 'static,
    {
        self.trust(Trust::Resolver(Arc::new(FallibleResolver(resolver))))
    }

    /// Resolves the identity of incoming requests with `resolver`.
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn resolve_identity(self, resolver: impl IdentityResolver) -> Self {
        self.trust(Trust::Resolver(Arc::new(resolver)))
    }

    /// Which identity fields outgoing baggage carries.
    pub fn outbound(mut self, outbound: Outbound) -> Self {
        self.outbound = outbound;
        self
    }

    /// The [`Context::source`] of extracted contexts (default `"http"`).
    pub fn source(mut self, source: impl Into<Cow<'static, str>>) -> Self {
        self.source = source.into();
        self
    }

    /// Reads a context from the values of the W3C fields on some wire,
    /// tolerantly: an invalid or repeated `traceparent` starts a new trace,
    /// an invalid `tracestate` is dropped, a malformed baggage member is
    /// skipped. Identity is taken as the [`Trust`] says: an identity that is
    /// claimed but invalid or not trusted is an error, never "no tenant".
    /// A value that is not text is `None`.
    pub(crate) fn try_extract_fields<'a>(
        &self,
        traceparents: impl IntoIterator<Item = Option<&'a str>>,
        tracestates: impl IntoIterator<Item = Option<&'a str>>,
        baggages: impl IntoIterator<Item = Option<&'a str>>,
        resolve: impl FnOnce(&Trust) -> Option<Result<Identity, UntrustedIdentity>>,
    ) -> Result<Context, CarrierError> {
        let parent = single_traceparent(traceparents);
        // `tracestate` only means something beside a valid `traceparent`.
        let trace_state = match parent {
            Some(_) => trace_state(tracestates),
            None => LazyTraceState::checked(None),
        };
        self.try_extract_parts(parent, trace_state, baggages, resolve)
    }

    /// [`try_extract_fields`](Propagator::try_extract_fields) once the
    /// `traceparent` (the one valid one, if any) and the `tracestate` are
    /// read.
    pub(crate) fn try_extract_parts<'a>(
        &self,
        parent: Option<TraceParent>,
        trace_state: LazyTraceState,
        baggages: impl IntoIterator<Item = Option<&'a str>>,
        resolve: impl FnOnce(&Trust) -> Option<Result<Identity, UntrustedIdentity>>,
    ) -> Result<Context, CarrierError> {
        let (trace_id, parent_span_id, trace_flags, trace_state) = match parent {
            Some(parent) => (
                parent.trace_id(),
                Some(parent.parent_id()),
                parent.flags(),
                trace_state,
            ),
            None => (
                TraceId::random(),
                None,
                TraceFlags::new(TraceFlags::SAMPLED.bits() | TraceFlags::RANDOM.bits()),
                LazyTraceState::checked(None),
            ),
        };

        // Identity-shaped members never ride along as plain baggage: the
        // configured ones become the tenant and user when trusted, and
        // every one is dropped otherwise. One header line (the usual case)
        // is checked by one scan for them and kept as its text when it has
        // none; otherwise it is parsed and filtered.
        let mut values = baggages.into_iter().flatten();
        let (first, second) = (values.next(), values.next());
        let reject = |key: &str| self.is_identity_key(key);
        let needs_members = matches!(self.trust, Trust::Baggage | Trust::Signed(_));
        let (baggage, kept) = match (first, second) {
            (None, _) => (Baggage::new(), None),
            (Some(only), None) => (
                if needs_members {
                    Baggage::from_headers([only])
                } else {
                    Baggage::new()
                },
                Some(Baggage::from_header_without(only, &reject)),
            ),
            (Some(first), Some(second)) => (
                Baggage::from_headers([first, second].into_iter().chain(values)),
                None,
            ),
        };
        let find = |key: Option<&str>| key.filter(|_| needs_members).and_then(|k| baggage.get(k));
        let tenant_member = find(self.tenant_key.as_deref());
        let user_member = find(self.user_key.as_deref());
        let signature = find(Some(SIGNATURE_BAGGAGE_KEY));

        let identity = match resolve(&self.trust) {
            Some(identity) => identity?,
            None => match &self.trust {
                Trust::Baggage => parse_identity(tenant_member, user_member)?,
                Trust::Signed(keyring) => {
                    let identity = parse_identity(tenant_member, user_member)?;
                    verify_identity(keyring, trace_id, &identity, signature)?;
                    identity
                }
                _ => Identity::default(),
            },
        };
        let baggage = kept.unwrap_or_else(|| self.without_identity_members(&baggage));
        Ok(Context::from_wire(
            trace_id,
            parent_span_id,
            trace_flags,
            trace_state,
            identity.tenant,
            identity.user,
            Some(self.source.clone()),
            baggage,
        ))
    }

    /// Like [`try_extract_fields`](Propagator::try_extract_fields), never
    /// failing: an identity that is refused is logged (one line, with the
    /// trace id and the reason) and the context has no tenant and no user.
    pub(crate) fn extract_fields<'a>(
        &self,
        traceparents: impl IntoIterator<Item = Option<&'a str>> + Clone,
        tracestates: impl IntoIterator<Item = Option<&'a str>> + Clone,
        baggages: impl IntoIterator<Item = Option<&'a str>> + Clone,
        resolve: impl FnOnce(&Trust) -> Option<Result<Identity, UntrustedIdentity>>,
    ) -> Context {
        match self.try_extract_fields(
            traceparents.clone(),
            tracestates.clone(),
            baggages.clone(),
            resolve,
        ) {
            Ok(cx) => cx,
            Err(error) => {
                let cx = self
                    .clone()
                    .trust(Trust::Nothing)
                    .try_extract_fields(traceparents, tracestates, baggages, |_| None)
                    .unwrap_or_else(|_| Context::root());
                log_refused(&cx, &self.source, &error);
                cx
            }
        }
    }

    /// Reads a context from W3C field values (a child's environment, a
    /// message's headers, a test) with this propagator's trust.
    ///
    /// # Errors
    ///
    /// [`CarrierError::InvalidTenant`] or [`CarrierError::InvalidUser`] for
    /// an invalid identity member when identity is trusted, and
    /// [`CarrierError::UntrustedIdentity`] for an unsigned, forged or expired
    /// one under [`Trust::Signed`].
    pub fn try_extract_values(
        &self,
        traceparent: Option<&str>,
        tracestate: Option<&str>,
        baggage: Option<&str>,
    ) -> Result<Context, CarrierError> {
        self.try_extract_fields(
            traceparent.map(Some),
            tracestate.map(Some),
            baggage.map(Some),
            |_| None,
        )
    }

    /// `baggage` without its identity-shaped members (see [`Trust`]).
    fn without_identity_members(&self, baggage: &Baggage) -> Baggage {
        let mut kept = Baggage::new();
        for member in baggage.members() {
            if !self.is_identity_key(member.key()) {
                kept.insert_member(member.clone());
            }
        }
        kept
    }

    fn is_identity_key(&self, key: &str) -> bool {
        Some(key) == self.tenant_key.as_deref()
            || Some(key) == self.user_key.as_deref()
            || is_identity_shaped(key)
    }

    /// Like [`extract_fields`](Propagator::extract_fields), strict where a
    /// broker's own producer wrote the fields: a `traceparent` that is
    /// repeated, not text or invalid is [`CarrierError::Malformed`], a
    /// `baggage` value that is not text too, a field over
    /// [`MAX_FIELD_BYTES`](crate::limits::MAX_FIELD_BYTES) is
    /// [`CarrierError::TooLarge`]; and identity that is claimed but invalid
    /// or not trusted is an error instead of "no tenant". A missing
    /// `traceparent` gets the trace-id safety net. Other baggage members
    /// stay tolerant (a bad member is skipped).
    #[cfg(any(feature = "lapin", feature = "nats"))]
    pub(crate) fn extract_fields_checked<'a>(
        &self,
        traceparents: impl IntoIterator<Item = Option<&'a str>>,
        tracestates: impl IntoIterator<Item = Option<&'a str>>,
        baggages: impl IntoIterator<Item = Option<&'a str>>,
    ) -> Result<Context, CarrierError> {
        use crate::wire::limits::MAX_FIELD_BYTES;
        let malformed = |reason: String| CarrierError::Malformed { reason };
        let bounded = |what: &'static str, values: &[Option<&str>]| {
            let len: usize = values.iter().flatten().map(|v| v.len()).sum();
            if len > MAX_FIELD_BYTES {
                return Err(CarrierError::TooLarge {
                    what,
                    limit: MAX_FIELD_BYTES,
                });
            }
            Ok(())
        };

        let parents: Vec<Option<&str>> = traceparents.into_iter().collect();
        bounded("traceparent", &parents)?;
        match parents.as_slice() {
            [] => {}
            [Some(value)] => {
                if let Err(e) = value.parse::<TraceParent>() {
                    return Err(malformed(format!("`traceparent` {value:?}: {e}")));
                }
            }
            [None] => return Err(malformed("`traceparent` is not text".into())),
            _ => return Err(malformed("`traceparent` is repeated".into())),
        }
        let states: Vec<Option<&str>> = tracestates.into_iter().collect();
        bounded("tracestate", &states)?;
        let baggages: Vec<Option<&str>> = baggages.into_iter().collect();
        bounded("baggage", &baggages)?;
        if baggages.iter().any(Option::is_none) {
            return Err(malformed("`baggage` is not text".into()));
        }

        if parents.is_empty() {
            // The context below gets a fresh trace id; this logs the
            // safety-net warning (once per process) for the missing one.
            let _ = crate::wire::carrier::safety_net_trace_id("no traceparent");
        }
        self.try_extract_fields(parents, states, baggages, |_| None)
    }

    /// The W3C field values for `cx` on an outgoing wire: `traceparent` with
    /// `span_id` as the parent id, `tracestate` and `baggage` when non-empty.
    pub(crate) fn outgoing_fields(
        &self,
        cx: &Context,
        span_id: SpanId,
    ) -> (String, Option<String>, Option<String>) {
        let parent = TraceParent::new(cx.trace_id(), span_id, cx.trace_flags()).to_string();
        let state = cx
            .trace_state()
            .filter(|s| !s.is_empty())
            .map(ToString::to_string);
        let baggage = self.outgoing_baggage(cx);
        let baggage = (!baggage.is_empty()).then(|| baggage.to_string());
        (parent, state, baggage)
    }

    /// The baggage this propagator sends for `cx`: the identity members the
    /// outbound policy allows, then the context's other members.
    pub fn outgoing_baggage(&self, cx: &Context) -> Baggage {
        let mut baggage = Baggage::new();
        let send_tenant = matches!(self.outbound, Outbound::Identity | Outbound::TenantOnly);
        let send_user = matches!(self.outbound, Outbound::Identity);
        if let (true, Some(key), Some(tenant)) = (send_tenant, &self.tenant_key, cx.tenant()) {
            baggage.insert(key.to_string(), tenant.as_str());
        }
        if let (true, Some(key), Some(user)) = (send_user, &self.user_key, cx.user()) {
            baggage.insert(key.to_string(), user.to_string());
        }
        if let Some(keyring) = &self.signer {
            // The signature covers what this hop sends: the tenant only, or
            // nothing, when the outbound policy holds the rest back.
            let tenant = if send_tenant && self.tenant_key.is_some() {
                cx.tenant()
            } else {
                None
            };
            let user = if send_user && self.user_key.is_some() {
                cx.user()
            } else {
                None
            };
            if tenant.is_some() || user.is_some() {
                let claims = crate::wire::signature::Claims {
                    tenant,
                    user,
                    ..cx.claims(None)
                };
                baggage.insert(SIGNATURE_BAGGAGE_KEY, keyring.sign(&claims));
            }
        }
        for member in cx.baggage().members() {
            if !self.is_identity_key(member.key()) {
                baggage.insert_member(member.clone());
            }
        }
        baggage
    }

    /// The W3C field values for `cx` on an outgoing wire (`traceparent` with
    /// a new parent id, `tracestate` and `baggage` when non-empty), for
    /// wires this crate does not integrate.
    pub fn outgoing(&self, cx: &Context) -> (String, Option<String>, Option<String>) {
        self.outgoing_fields(cx, SpanId::random())
    }
}

/// The `tracestate` of the header lines (none when it is empty, invalid, or
/// a line is not text). One line (the usual case) is kept as it is and
/// checked when something reads it; several are checked at once.
fn trace_state<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> LazyTraceState {
    let mut values = values.into_iter();
    let state = match (values.next(), values.next()) {
        (None, _) | (Some(None), None) => None,
        // One line (the usual case): checked when something reads it.
        (Some(Some(first)), None) => return LazyTraceState::line(first),
        (Some(first), Some(second)) => {
            let rest: Option<Vec<&str>> = [first, second].into_iter().chain(values).collect();
            rest.and_then(|rest| TraceState::from_headers(rest).ok())
        }
    };
    LazyTraceState::checked(state)
}

/// The one valid `traceparent`, or `None` when there is none, more than one,
/// or it is invalid (all of which start a new trace).
fn single_traceparent<'a>(
    values: impl IntoIterator<Item = Option<&'a str>>,
) -> Option<TraceParent> {
    let mut values = values.into_iter();
    let first = values.next()??;
    if values.next().is_some() {
        return None;
    }
    first.parse().ok()
}

/// The tenant and user members, checked: a member that is present but
/// invalid is an error, never "no tenant".
fn parse_identity(tenant: Option<&str>, user: Option<&str>) -> Result<Identity, CarrierError> {
    let tenant = match tenant {
        Some(value) => Some(
            TenantId::new(value).map_err(|error| CarrierError::InvalidTenant {
                value: value.chars().take(256).collect(),
                error,
            })?,
        ),
        None => None,
    };
    let user = match user {
        Some(value) => Some(
            parse_user_token(value).ok_or_else(|| CarrierError::InvalidUser {
                reason: format!(
                    "{:?} is not a `type:id` user reference",
                    value.chars().take(256).collect::<String>()
                ),
            })?,
        ),
        None => None,
    };
    Ok(Identity { tenant, user })
}

/// Checks the signature of an identity read from baggage: none is needed
/// when there is no identity and no signature.
fn verify_identity(
    keyring: &Keyring,
    trace_id: TraceId,
    identity: &Identity,
    signature: Option<&str>,
) -> Result<(), UntrustedIdentity> {
    let claimed = identity.tenant.is_some() || identity.user.is_some();
    match signature {
        None if !claimed => Ok(()),
        None => Err(UntrustedIdentity::Unsigned),
        Some(signature) => keyring.verify(
            signature,
            &crate::wire::signature::Claims {
                trace_id,
                tenant: identity.tenant.as_ref(),
                user: identity.user.as_ref(),
                job_id: None,
            },
        ),
    }
}

/// Warns, once per process, that identity is trusted unsigned on `wire`
/// (a consumer without a keyring).
pub(crate) fn warn_unsigned_once(wire: &'static str) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            target: "context_runtime::trust",
            wire,
            "identity arrived unsigned and is trusted because this consumer has no keyring; \
             sign it at the producer and verify it here with a `Keyring` \
             (this is logged once per process)"
        );
    }
}

/// One log line for a refused identity: the trace id, the wire, the reason.
pub(crate) fn log_refused(cx: &Context, wire: &str, error: &CarrierError) {
    let code = match error {
        CarrierError::UntrustedIdentity(e) => e.code(),
        CarrierError::InvalidTenant { .. } => "invalid_tenant",
        CarrierError::InvalidUser { .. } => "invalid_user",
        CarrierError::TooLarge { .. } => "too_large",
        _ => "invalid_context",
    };
    tracing::warn!(
        target: "context_runtime::trust",
        trace_id = %cx.trace_id(),
        wire,
        code,
        reason = %error,
        "identity refused"
    );
}

/// Parses the compact `type:id` user token; a numeric id becomes a number.
pub(crate) fn parse_user_token(token: &str) -> Option<UserRef> {
    let (kind, id) = token.split_once(':')?;
    let id = match id.parse::<i64>() {
        Ok(n) if !id.starts_with('+') && (id == "0" || !id.starts_with('0')) => UserId::Number(n),
        _ => UserId::from(id),
    };
    UserRef::new(kind, id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring() -> Keyring {
        Keyring::new("k1", &[1; 32]).expect("a key")
    }

    fn cx() -> Context {
        Context::root()
            .with_tenant(TenantId::new("acme").expect("valid"))
            .with_user(UserRef::user(1).expect("valid"))
    }

    #[test]
    fn a_clean_header_kept_as_its_text_forwards_no_claimed_identity() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let baggage = "tenantId=victim,a=1,acme.tenant=x,userRef=user:1,ctx.sig=k1:abc,b=2";
        let edge = Propagator::new();
        let read = edge
            .try_extract_values(Some(parent), Some("rojo=1,congo=2"), Some(baggage))
            .expect("nothing trusted, nothing refused");
        assert!(read.tenant().is_none() && read.user().is_none());
        assert_eq!(read.baggage().len(), 2);
        assert_eq!(read.baggage().get("tenantId"), None);
        let (_, state, out) = edge.outgoing(&read);
        assert_eq!(state.as_deref(), Some("rojo=1,congo=2"));
        assert_eq!(out.as_deref(), Some("a=1,b=2"));
        // A trusting hop behind it sees no identity either.
        let (parent, _, out) = edge.outgoing(&read);
        let inner = Propagator::new().trust_baggage_identity();
        let next = inner
            .try_extract_values(Some(&parent), None, out.as_deref())
            .expect("no identity claimed");
        assert!(next.tenant().is_none() && next.user().is_none());
    }

    #[test]
    fn signatures_cover_what_the_outbound_policy_sends() {
        for outbound in [Outbound::Identity, Outbound::TenantOnly] {
            let hop = Propagator::new().keyring(keyring()).outbound(outbound);
            let (parent, _, baggage) = hop.outgoing(&cx());
            let read = hop
                .try_extract_values(Some(&parent), None, baggage.as_deref())
                .expect("verified");
            assert_eq!(read.tenant(), cx().tenant(), "{outbound:?}");
            assert_eq!(read.user().is_some(), outbound == Outbound::Identity);
        }
        let (parent, _, baggage) = Propagator::new()
            .keyring(keyring())
            .outbound(Outbound::TraceOnly)
            .outgoing(&cx());
        assert_eq!(baggage, None);
        assert!(Propagator::new()
            .keyring(keyring())
            .try_extract_values(Some(&parent), None, None)
            .is_ok());
    }

    #[test]
    fn a_signature_moved_to_another_trace_or_stripped_of_its_user_is_refused() {
        let hop = Propagator::new().keyring(keyring());
        let (parent, _, baggage) = hop.outgoing(&cx());
        let baggage = baggage.expect("identity");
        let other_trace =
            TraceParent::new(TraceId::random(), SpanId::random(), TraceFlags::SAMPLED).to_string();
        let untrusted = |r: Result<Context, CarrierError>| {
            matches!(
                r,
                Err(CarrierError::UntrustedIdentity(
                    UntrustedIdentity::BadSignature
                ))
            )
        };
        assert!(untrusted(hop.try_extract_values(
            Some(&other_trace),
            None,
            Some(&baggage)
        )));
        assert!(untrusted(hop.try_extract_values(
            None,
            None,
            Some(&baggage)
        )));
        let without_user: String = baggage
            .split(',')
            .filter(|m| !m.starts_with("userRef="))
            .collect::<Vec<_>>()
            .join(",");
        assert!(untrusted(hop.try_extract_values(
            Some(&parent),
            None,
            Some(&without_user)
        )));
        // The lenient form runs without the identity, never with it.
        let mut lenient = Context::root();
        if let Ok(cx) =
            hop.clone()
                .trust(Trust::Nothing)
                .try_extract_values(None, None, Some(&baggage))
        {
            lenient = cx;
        }
        assert!(lenient.tenant().is_none());
    }
}
