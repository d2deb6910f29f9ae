//! [`Context`]: the immutable identity of one request or job.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::model::tenant::{TenantId, TenantRequired};
use crate::model::trace::{SpanId, TraceFlags, TraceId};
use crate::model::user::UserRef;
use crate::model::w3c::{Baggage, LazyTraceState, TraceState};

type Values = HashMap<TypeId, Arc<dyn Any + Send + Sync>>;

/// The identity of one request or job: a trace id, and optionally a tenant, a
/// user, a source, W3C baggage and process-local typed values.
///
/// A `Context` is immutable and cheap to clone (one `Arc`). Children are made
/// copy-on-write with [`with_tenant`](Context::with_tenant) and friends; a child
/// never changes its parent. A context becomes *current* only for the extent of
/// one future ([`scope`](Context::scope)) or one closure
/// ([`scope_sync`](Context::scope_sync)): there is no setter and no guard.
///
/// ```
/// use context_runtime::{Context, TenantId};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cx = Context::root().with_tenant(TenantId::new("acme")?);
/// cx.scope(async {
///     // Anywhere below, across every `.await`:
///     assert_eq!(context_runtime::tenant()?.as_str(), "acme");
///     Ok::<_, context_runtime::TenantRequired>(())
/// })
/// .await?;
/// assert!(context_runtime::current().is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    trace_id: TraceId,
    parent_span_id: Option<SpanId>,
    trace_flags: TraceFlags,
    /// Checked on first use when read from a wire.
    trace_state: LazyTraceState,
    tenant: Option<TenantId>,
    user: Option<UserRef>,
    source: Option<Cow<'static, str>>,
    baggage: Baggage,
    values: Option<Arc<Values>>,
}

impl Context {
    /// A new root context with a fresh random trace id, sampled, and nothing else.
    pub fn root() -> Context {
        Context::builder().build()
    }

    /// A builder for a context with chosen parts.
    ///
    /// ```
    /// use context_runtime::{Context, TenantId, TraceId, UserRef};
    ///
    /// let cx = Context::builder()
    ///     .trace_id("4bf92f3577b34da6a3ce929d0e0e4736".parse()?)
    ///     .tenant(TenantId::new("t1")?)
    ///     .user(UserRef::user(42)?)
    ///     .source("queue:invoices")
    ///     .build();
    /// assert_eq!(cx.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> ContextBuilder {
        ContextBuilder::default()
    }

    /// The trace id. Every context has one.
    pub fn trace_id(&self) -> TraceId {
        self.inner.trace_id
    }

    /// The span id of the caller that handed this context over (the W3C
    /// `parent-id`), when it came from a remote parent.
    pub fn parent_span_id(&self) -> Option<SpanId> {
        self.inner.parent_span_id
    }

    /// The W3C trace flags (sampled by default for a root context).
    pub fn trace_flags(&self) -> TraceFlags {
        self.inner.trace_flags
    }

    /// The W3C `tracestate` that came with the trace, if any (vendor data,
    /// forwarded unchanged on outgoing calls).
    pub fn trace_state(&self) -> Option<&TraceState> {
        self.inner.trace_state.get()
    }

    /// The tenant, if any. There is never a default tenant.
    pub fn tenant(&self) -> Option<&TenantId> {
        self.inner.tenant.as_ref()
    }

    /// The tenant, or [`TenantRequired`].
    pub fn require_tenant(&self) -> Result<&TenantId, TenantRequired> {
        self.inner.tenant.as_ref().ok_or(TenantRequired)
    }

    /// The principal this work acts for, if any.
    pub fn user(&self) -> Option<&UserRef> {
        self.inner.user.as_ref()
    }

    /// Where this work came from (`"http"`, `"queue:invoices"`, `"cron:cleanup"`…), if set.
    pub fn source(&self) -> Option<&str> {
        self.inner.source.as_deref()
    }

    /// The W3C baggage that travels with this context.
    pub fn baggage(&self) -> &Baggage {
        &self.inner.baggage
    }

    /// A process-local typed value set with [`with_value`](Context::with_value)
    /// (or a `#[carrier(value)]` field).
    ///
    /// ```
    /// use context_runtime::Context;
    ///
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct Locale(&'static str);
    ///
    /// let cx = Context::root().with_value(Locale("fr-FR"));
    /// assert_eq!(cx.get::<Locale>(), Some(&Locale("fr-FR")));
    /// assert_eq!(cx.get::<u32>(), None);
    /// ```
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.inner
            .values
            .as_ref()?
            .get(&TypeId::of::<T>())?
            .downcast_ref::<T>()
    }

    fn child(&self, change: impl FnOnce(&mut Inner)) -> Context {
        let mut inner = (*self.inner).clone();
        change(&mut inner);
        Context {
            inner: Arc::new(inner),
        }
    }

    /// A child with this tenant (same trace).
    pub fn with_tenant(&self, tenant: TenantId) -> Context {
        self.child(|i| i.tenant = Some(tenant))
    }

    /// A child without a tenant (same trace), for work that must not act for
    /// the parent's tenant.
    pub fn without_tenant(&self) -> Context {
        self.child(|i| i.tenant = None)
    }

    /// A child without a user (same trace), for work that must not act for
    /// the parent's user.
    pub fn without_user(&self) -> Context {
        self.child(|i| i.user = None)
    }

    /// A child with this user (same trace).
    pub fn with_user(&self, user: UserRef) -> Context {
        self.child(|i| i.user = Some(user))
    }

    /// A child with this source (same trace).
    pub fn with_source(&self, source: impl Into<Cow<'static, str>>) -> Context {
        let source = source.into();
        self.child(|i| i.source = Some(source))
    }

    /// A child with this baggage (same trace).
    pub fn with_baggage(&self, baggage: Baggage) -> Context {
        self.child(|i| i.baggage = baggage)
    }

    /// A child with a process-local typed value, readable with
    /// [`get::<T>()`](Context::get). One value per type; a new one replaces the
    /// old in the child only.
    pub fn with_value<T: Any + Send + Sync>(&self, value: T) -> Context {
        self.child(|i| {
            let mut values = i.values.as_deref().cloned().unwrap_or_default();
            values.insert(TypeId::of::<T>(), Arc::new(value));
            i.values = Some(Arc::new(values));
        })
    }

    /// A child for a call to a remote peer: same trace, tenant, user and
    /// baggage, with `span_id` as the parent id the peer will see.
    pub fn with_parent_span_id(&self, span_id: SpanId) -> Context {
        self.child(|i| i.parent_span_id = Some(span_id))
    }

    /// A context read from a wire, built in place (the per-request path of
    /// the propagators and the per-job path of carriers, which a chain of
    /// builder calls would move around).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_wire(
        trace_id: TraceId,
        parent_span_id: Option<SpanId>,
        trace_flags: TraceFlags,
        trace_state: LazyTraceState,
        tenant: Option<TenantId>,
        user: Option<UserRef>,
        source: Option<Cow<'static, str>>,
        baggage: Baggage,
    ) -> Context {
        Context {
            inner: Arc::new(Inner {
                trace_id,
                parent_span_id,
                trace_flags,
                trace_state,
                tenant,
                user,
                source,
                baggage,
                values: None,
            }),
        }
    }

    /// Whether `self` and `other` are the same context value (not a copy).
    pub fn ptr_eq(&self, other: &Context) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &*self.inner;
        let mut d = f.debug_struct("Context");
        d.field("trace_id", &format_args!("{}", i.trace_id));
        if let Some(span) = i.parent_span_id {
            d.field("parent_span_id", &format_args!("{span}"));
        }
        d.field("tenant", &i.tenant.as_ref().map(TenantId::as_str));
        d.field("user", &i.user.as_ref().map(|u| format!("{u}")));
        if let Some(source) = &i.source {
            d.field("source", source);
        }
        if !i.baggage.is_empty() {
            d.field("baggage", &i.baggage);
        }
        if let Some(values) = &i.values {
            d.field("values", &values.len());
        }
        d.finish()
    }
}

/// Builds a [`Context`]; see [`Context::builder`].
#[derive(Debug, Default, Clone)]
pub struct ContextBuilder {
    trace_id: Option<TraceId>,
    parent_span_id: Option<SpanId>,
    trace_flags: Option<TraceFlags>,
    trace_state: Option<TraceState>,
    tenant: Option<TenantId>,
    user: Option<UserRef>,
    source: Option<Cow<'static, str>>,
    baggage: Baggage,
    values: Vec<(TypeId, ValueBox)>,
}

#[derive(Clone)]
struct ValueBox(Arc<dyn Any + Send + Sync>);

impl fmt::Debug for ValueBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<value>")
    }
}

impl ContextBuilder {
    /// The trace id (default: a fresh random one).
    pub fn trace_id(mut self, trace_id: TraceId) -> Self {
        self.trace_id = Some(trace_id);
        self
    }

    /// Sets the trace id when `Some`, keeps the default (a fresh one) when `None`.
    pub fn maybe_trace_id(mut self, trace_id: Option<TraceId>) -> Self {
        self.trace_id = trace_id.or(self.trace_id);
        self
    }

    /// The remote parent's span id.
    pub fn parent_span_id(mut self, span_id: SpanId) -> Self {
        self.parent_span_id = Some(span_id);
        self
    }

    /// The trace flags (default: sampled, and random for a fresh trace id).
    pub fn trace_flags(mut self, flags: TraceFlags) -> Self {
        self.trace_flags = Some(flags);
        self
    }

    /// The W3C `tracestate`.
    pub fn trace_state(mut self, state: TraceState) -> Self {
        self.trace_state = Some(state);
        self
    }

    /// The tenant.
    pub fn tenant(mut self, tenant: TenantId) -> Self {
        self.tenant = Some(tenant);
        self
    }

    /// Sets the tenant when `Some`.
    pub fn maybe_tenant(mut self, tenant: Option<TenantId>) -> Self {
        self.tenant = tenant.or(self.tenant);
        self
    }

    /// The user.
    pub fn user(mut self, user: UserRef) -> Self {
        self.user = Some(user);
        self
    }

    /// Sets the user when `Some`.
    pub fn maybe_user(mut self, user: Option<UserRef>) -> Self {
        self.user = user.or(self.user);
        self
    }

    /// The source.
    pub fn source(mut self, source: impl Into<Cow<'static, str>>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The baggage.
    pub fn baggage(mut self, baggage: Baggage) -> Self {
        self.baggage = baggage;
        self
    }

    /// A process-local typed value (one per type; the last one wins).
    pub fn value<T: Any + Send + Sync>(mut self, value: T) -> Self {
        self.values
            .push((TypeId::of::<T>(), ValueBox(Arc::new(value))));
        self
    }

    /// The context.
    pub fn build(self) -> Context {
        let fresh = self.trace_id.is_none();
        let trace_id = self.trace_id.unwrap_or_else(TraceId::random);
        let trace_flags = self.trace_flags.unwrap_or(if fresh {
            TraceFlags::new(TraceFlags::SAMPLED.bits() | TraceFlags::RANDOM.bits())
        } else {
            TraceFlags::SAMPLED
        });
        let values = if self.values.is_empty() {
            None
        } else {
            Some(Arc::new(
                self.values.into_iter().map(|(k, v)| (k, v.0)).collect(),
            ))
        };
        Context {
            inner: Arc::new(Inner {
                trace_id,
                parent_span_id: self.parent_span_id,
                trace_flags,
                trace_state: LazyTraceState::checked(self.trace_state),
                tenant: self.tenant,
                user: self.user,
                source: self.source,
                baggage: self.baggage,
                values,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_never_change_their_parent() {
        let parent = Context::root();
        let child = parent
            .with_tenant(TenantId::new("t1").expect("valid"))
            .with_user(UserRef::user(1).expect("valid"))
            .with_source("test")
            .with_value(7u8);
        assert_eq!(child.trace_id(), parent.trace_id());
        assert!(parent.tenant().is_none());
        assert!(parent.user().is_none());
        assert!(parent.source().is_none());
        assert!(parent.get::<u8>().is_none());
        assert_eq!(child.tenant().map(TenantId::as_str), Some("t1"));
        assert_eq!(child.get::<u8>(), Some(&7));
        let grandchild = child.with_value(8u8).without_tenant();
        assert_eq!(child.get::<u8>(), Some(&7));
        assert_eq!(grandchild.get::<u8>(), Some(&8));
        assert!(grandchild.tenant().is_none());
        assert!(child.tenant().is_some());
    }

    #[test]
    fn roots_have_distinct_trace_ids() {
        assert_ne!(Context::root().trace_id(), Context::root().trace_id());
    }

    #[test]
    fn require_tenant_is_an_error_without_one() {
        assert_eq!(Context::root().require_tenant(), Err(TenantRequired));
    }
}
