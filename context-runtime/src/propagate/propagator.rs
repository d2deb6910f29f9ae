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
use crate::model::trace::SpanId;
use crate::model::user::{UserId, UserRef};
use crate::model::w3c::{Baggage, TraceParent, TraceState};

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
/// Any `Fn(&HeaderMap, &Extensions) -> Identity + Send + Sync` is a resolver.
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub trait IdentityResolver: Send + Sync + 'static {
    /// The identity of the request with these headers and extensions.
    fn resolve(&self, headers: &HeaderMap, extensions: &Extensions) -> Identity;
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

/// Where the tenant and user of an incoming request may come from.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Trust {
    /// Nowhere: the request gets no tenant and no user (the default, for
    /// requests from outside).
    #[default]
    Nothing,
    /// From the identity members of the `baggage` header, for hops between
    /// the application's own services.
    Baggage,
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

    /// Trusts the identity members of incoming baggage (internal hops only).
    pub fn trust_baggage_identity(self) -> Self {
        self.trust(Trust::Baggage)
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

    /// Reads a context from the values of the W3C fields on some wire. Never
    /// fails: an invalid or repeated `traceparent` starts a new trace, an
    /// invalid `tracestate` is dropped, a malformed baggage member is skipped.
    /// A value that is not text is `None`.
    pub(crate) fn extract_fields<'a>(
        &self,
        traceparents: impl IntoIterator<Item = Option<&'a str>>,
        tracestates: impl IntoIterator<Item = Option<&'a str>>,
        baggages: impl IntoIterator<Item = Option<&'a str>>,
        resolve: impl FnOnce(&Trust) -> Option<Identity>,
    ) -> Context {
        let mut builder = Context::builder().source(self.source.clone());

        if let Some(parent) = single_traceparent(traceparents) {
            builder = builder
                .trace_id(parent.trace_id())
                .parent_span_id(parent.parent_id())
                .trace_flags(parent.flags());
            // `tracestate` only means something beside a valid `traceparent`.
            let values: Option<Vec<&str>> = tracestates.into_iter().collect();
            if let Some(state) = values.and_then(|v| TraceState::from_headers(v).ok()) {
                if !state.is_empty() {
                    builder = builder.trace_state(state);
                }
            }
        }

        let mut baggage = Baggage::from_headers(baggages.into_iter().flatten());
        // Identity members never ride along as plain baggage: they become the
        // tenant and user when trusted, and are dropped when not.
        let tenant_member = self.tenant_key.as_deref().and_then(|k| baggage.remove(k));
        let user_member = self.user_key.as_deref().and_then(|k| baggage.remove(k));
        builder = builder.baggage(baggage);

        let identity = match resolve(&self.trust) {
            Some(identity) => identity,
            None => match &self.trust {
                Trust::Baggage => Identity {
                    tenant: tenant_member.and_then(|m| TenantId::new(m.value()).ok()),
                    user: user_member.and_then(|m| parse_user_token(m.value())),
                },
                _ => Identity::default(),
            },
        };
        builder
            .maybe_tenant(identity.tenant)
            .maybe_user(identity.user)
            .build()
    }

    /// Like [`extract_fields`](Propagator::extract_fields), strict where a
    /// broker's own producer wrote the fields: a `traceparent` that is
    /// repeated, not text or invalid is [`CarrierError::Malformed`], a
    /// `baggage` value that is not text too; and when identity is trusted
    /// from baggage, an invalid tenant or user member is an error instead of
    /// "no tenant". A missing `traceparent` gets the trace-id safety net.
    /// Other baggage members stay tolerant (a bad member is skipped).
    #[cfg(any(feature = "lapin", feature = "nats"))]
    pub(crate) fn extract_fields_checked<'a>(
        &self,
        traceparents: impl IntoIterator<Item = Option<&'a str>>,
        tracestates: impl IntoIterator<Item = Option<&'a str>>,
        baggages: impl IntoIterator<Item = Option<&'a str>>,
    ) -> Result<Context, crate::wire::carrier::CarrierError> {
        use crate::wire::carrier::CarrierError;
        let malformed = |reason: String| CarrierError::Malformed { reason };

        let parents: Vec<Option<&str>> = traceparents.into_iter().collect();
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
        let baggages: Vec<&str> = baggages
            .into_iter()
            .map(|v| v.ok_or_else(|| malformed("`baggage` is not text".into())))
            .collect::<Result<_, _>>()?;

        if matches!(self.trust, Trust::Baggage) {
            let baggage = Baggage::from_headers(baggages.iter().copied());
            let tenant = self.tenant_key.as_deref().and_then(|k| baggage.get(k));
            if let Some(value) = tenant {
                if let Err(error) = TenantId::new(value) {
                    return Err(CarrierError::InvalidTenant {
                        value: value.to_owned(),
                        error,
                    });
                }
            }
            let user = self.user_key.as_deref().and_then(|k| baggage.get(k));
            if let Some(value) = user {
                if parse_user_token(value).is_none() {
                    return Err(CarrierError::InvalidUser {
                        reason: format!("{value:?} is not a `type:id` user reference"),
                    });
                }
            }
        }

        if parents.is_empty() {
            // The context below gets a fresh trace id; this logs the
            // safety-net warning (once per process) for the missing one.
            let _ = crate::wire::carrier::safety_net_trace_id("no traceparent");
        }
        Ok(
            self.extract_fields(parents, tracestates, baggages.into_iter().map(Some), |_| {
                None
            }),
        )
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
        for member in cx.baggage().members() {
            let is_identity_key = Some(member.key()) == self.tenant_key.as_deref()
                || Some(member.key()) == self.user_key.as_deref();
            if !is_identity_key {
                baggage.insert_member(member.clone());
            }
        }
        baggage
    }
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

/// Parses the compact `type:id` user token; a numeric id becomes a number.
pub(crate) fn parse_user_token(token: &str) -> Option<UserRef> {
    let (kind, id) = token.split_once(':')?;
    let id = match id.parse::<i64>() {
        Ok(n) if !id.starts_with('+') && (id == "0" || !id.starts_with('0')) => UserId::Number(n),
        _ => UserId::from(id),
    };
    UserRef::new(kind, id).ok()
}
