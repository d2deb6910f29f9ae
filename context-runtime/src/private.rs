//! Support for the code the macros generate. **Not a public API**: no
//! stability guarantees; never name it in your own code.

use std::convert::Infallible;
use std::future::Future;

pub use crate::model::context::Context;
pub use crate::model::tenant::{TenantId, TenantRequired};
pub use crate::model::trace::TraceId;
pub use crate::model::user::UserRef;
pub use crate::propagate::source::ContextSource;
pub use crate::scope::store::Scoped;
pub use crate::wire::carrier::CarrierError;

use crate::wire::carrier::safety_net_trace_id;

/// Reads a context from a `from = "…"` expression.
#[inline]
pub fn read<S: ContextSource + ?Sized>(source: &S) -> Result<Context, S::Error> {
    source.to_context()
}

/// Unwraps the result of a source that cannot fail.
#[diagnostic::on_unimplemented(
    message = "reading this context can fail, so the function must return a `Result`",
    label = "this source's error cannot be returned from here",
    note = "make the function return `Result<_, E>` with `E: From<{Self}>`, or read from a source that cannot fail (a `Context`, an `http::HeaderMap`)"
)]
pub trait CannotFail {
    /// Turns the error into nothing.
    fn never<T>(self) -> T;
}

impl CannotFail for Infallible {
    fn never<T>(self) -> T {
        match self {}
    }
}

/// The context read from an infallible source.
#[inline]
pub fn infallible<E: CannotFail>(result: Result<Context, E>) -> Context {
    match result {
        Ok(cx) => cx,
        Err(e) => e.never(),
    }
}

/// How a read error becomes the error of a function that returns `Result`,
/// picked by method resolution on `(&error).__context_error_kind()`: the error
/// of a source that cannot fail ([`Infallible`]) needs no `From` impl; any
/// other is converted with `From`.
pub trait NeverError {
    /// The error is [`Infallible`].
    fn __context_error_kind(&self) -> Never {
        Never
    }
}

impl NeverError for Infallible {}

/// The fallback of [`NeverError`]: the error is converted with `From`.
pub trait ConvertError {
    /// The error is converted with `From`.
    fn __context_error_kind(&self) -> Convert {
        Convert
    }
}

impl<T: ?Sized> ConvertError for &T {}

/// See [`NeverError`].
#[derive(Debug, Clone, Copy)]
pub struct Never;

impl Never {
    /// Never called: there is no such error.
    #[inline]
    pub fn into_error<E>(self, error: Infallible) -> E {
        match error {}
    }
}

/// See [`ConvertError`].
#[derive(Debug, Clone, Copy)]
pub struct Convert;

impl Convert {
    /// The function's error, from the source's.
    #[inline]
    pub fn into_error<T, E: From<T>>(self, error: T) -> E {
        From::from(error)
    }
}

/// A fresh root context for `#[with_context(fresh)]`.
#[inline]
pub fn fresh(source: Option<&'static str>) -> Context {
    match source {
        Some(source) => Context::builder().source(source).build(),
        None => Context::root(),
    }
}

/// Runs `future` inside `cx` (taken by value: no second `Arc` clone).
#[inline]
pub fn scope<F: Future>(cx: Context, future: F) -> Scoped<F> {
    crate::scope::store::scope(Some(cx), future)
}

/// Marks the start of a body one of the attribute macros checked; a no-op.
/// The other macro finds it to put its tenant check inside the scope.
#[inline(always)]
pub fn checked_body() {}

/// The type-based guard check: the future of an annotated body must be
/// `Send`. A guard that keeps something current on its thread
/// (`tracing::span::EnteredSpan`, OpenTelemetry's `ContextGuard`) is `!Send`;
/// held across an `.await`, it fails this bound, and rustc names the line
/// of the guard and of the `.await`. The comments on the two lines below are
/// what rustc shows the user (keep them short: rustc cuts long lines).
#[inline(always)]
#[rustfmt::skip]
pub fn body_must_be_send<F>(future: F) -> F // `!Send` on purpose? add `local` to the attribute
where
    F: Future + Send, // help: no guard across `.await`: `cx.scope(fut)`, `fut.instrument(span)`, `fut.in_context(cx)`
{
    future
}

/// `Ok` when the current context has a tenant.
#[inline]
pub fn require_tenant() -> Result<(), TenantRequired> {
    crate::scope::store::with_current(|cx| match cx.and_then(Context::tenant) {
        Some(_) => Ok(()),
        None => Err(TenantRequired),
    })
}

/// A `#[carrier(trace)]` field.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a `#[carrier(trace)]` field",
    note = "use `TraceId`, `Option<TraceId>`, `String` or `Option<String>`"
)]
pub trait TraceField {
    /// The trace id, or `None` when missing or invalid (the safety net applies).
    fn read_trace(&self) -> Option<TraceId>;
}

impl TraceField for TraceId {
    fn read_trace(&self) -> Option<TraceId> {
        Some(*self)
    }
}

impl TraceField for String {
    fn read_trace(&self) -> Option<TraceId> {
        self.parse().ok()
    }
}

impl<T: TraceField> TraceField for Option<T> {
    fn read_trace(&self) -> Option<TraceId> {
        self.as_ref()?.read_trace()
    }
}

/// A `#[carrier(tenant)]` field.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a `#[carrier(tenant)]` field",
    note = "use `TenantId`, `Option<TenantId>`, `String`, `Option<String>`, or `uuid::Uuid` (feature `uuid`)"
)]
pub trait TenantField {
    /// Why reading can fail: [`Infallible`] for a [`TenantId`], which was
    /// validated when the payload was built or deserialized.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The tenant, `None` when absent, an error when invalid.
    fn read_tenant(&self) -> Result<Option<TenantId>, Self::Error>;
}

impl TenantField for TenantId {
    type Error = Infallible;

    fn read_tenant(&self) -> Result<Option<TenantId>, Infallible> {
        Ok(Some(self.clone()))
    }
}

impl TenantField for String {
    type Error = CarrierError;

    fn read_tenant(&self) -> Result<Option<TenantId>, CarrierError> {
        TenantId::new(self)
            .map(Some)
            .map_err(|error| CarrierError::InvalidTenant {
                value: self.clone(),
                error,
            })
    }
}

#[cfg(feature = "uuid")]
impl TenantField for uuid::Uuid {
    type Error = CarrierError;

    fn read_tenant(&self) -> Result<Option<TenantId>, CarrierError> {
        self.to_string().read_tenant()
    }
}

impl<T: TenantField> TenantField for Option<T> {
    type Error = T::Error;

    fn read_tenant(&self) -> Result<Option<TenantId>, T::Error> {
        match self {
            Some(t) => t.read_tenant(),
            None => Ok(None),
        }
    }
}

/// A tenant field that cannot fail, read into a payload whose error is a
/// [`CarrierError`] (a `TenantId` under a type alias).
impl From<Infallible> for CarrierError {
    fn from(never: Infallible) -> Self {
        match never {}
    }
}

/// A `#[carrier(user)]` field.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a `#[carrier(user)]` field",
    note = "use `UserRef` or `Option<UserRef>`"
)]
pub trait UserField {
    /// The user, if any.
    fn read_user(&self) -> Option<UserRef>;
}

impl UserField for UserRef {
    fn read_user(&self) -> Option<UserRef> {
        Some(self.clone())
    }
}

impl<T: UserField> UserField for Option<T> {
    fn read_user(&self) -> Option<UserRef> {
        self.as_ref()?.read_user()
    }
}

/// Builds the context of a derived payload.
#[derive(Debug, Default)]
pub struct Derived {
    builder: crate::model::context::ContextBuilder,
    trace: Option<TraceId>,
}

impl Derived {
    /// An empty payload context.
    #[inline]
    pub fn new() -> Self {
        Derived::default()
    }

    /// Sets the trace id from a `#[carrier(trace)]` field.
    #[inline]
    pub fn trace(mut self, trace: Option<TraceId>) -> Self {
        self.trace = trace;
        self
    }

    /// Sets the tenant from a `#[carrier(tenant)]` field.
    #[inline]
    pub fn tenant(mut self, tenant: Option<TenantId>) -> Self {
        self.builder = self.builder.maybe_tenant(tenant);
        self
    }

    /// Sets the user from a `#[carrier(user)]` field.
    #[inline]
    pub fn user(mut self, user: Option<UserRef>) -> Self {
        self.builder = self.builder.maybe_user(user);
        self
    }

    /// Adds a `#[carrier(value)]` field.
    #[inline]
    pub fn value<T: std::any::Any + Send + Sync>(mut self, value: T) -> Self {
        self.builder = self.builder.value(value);
        self
    }

    /// The context, with the trace-id safety net.
    #[inline]
    pub fn build(self) -> Context {
        let trace = match self.trace {
            Some(trace) => trace,
            None => safety_net_trace_id("payload without a valid trace id"),
        };
        self.builder.trace_id(trace).build()
    }
}
