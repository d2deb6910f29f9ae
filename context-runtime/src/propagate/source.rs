//! [`ContextSource`]: anything a [`Context`] can be read from.

use std::convert::Infallible;
use std::sync::Arc;

use crate::model::context::Context;
use crate::propagate::propagator::Trust;
use crate::wire::carrier::safety_net_trace_id;
use crate::wire::carrier::{Carrier, CarrierError};
use crate::wire::signature::UntrustedIdentity;

/// Something a [`Context`] can be read from at a boundary: a [`Carrier`], an
/// `Option<Carrier>`, a `Context`, a job payload with
/// [`#[derive(Carrier)]`](macro@crate::Carrier), or (feature `http`) an
/// `http::HeaderMap`.
///
/// This is what `#[with_context(from = "…")]` accepts. Implement it for your
/// own envelope types when none of the above fits.
///
/// ```
/// use context_runtime::{Carrier, Context, ContextSource};
///
/// let carrier = Carrier::from_json(r#"{"tenantId":"t1"}"#)?;
/// let cx = carrier.to_context()?;
/// assert_eq!(cx.tenant().unwrap().as_str(), "t1");
///
/// let none: Option<Carrier> = None;
/// assert!(none.to_context()?.tenant().is_none());
/// # Ok::<(), context_runtime::CarrierError>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "a context cannot be read from `{Self}`",
    label = "not a context source",
    note = "`from = \"…\"` must name a `Carrier`, an `Option<Carrier>`, a `Context`, a payload with `#[derive(Carrier)]`, a `jobs::Job<T>`, an `http::HeaderMap` (feature `http`), or a broker's delivery or message (features `lapin`, `nats`)",
    note = "or implement `context_runtime::ContextSource` for `{Self}`"
)]
pub trait ContextSource {
    /// Why reading can fail; [`Infallible`] for sources that always yield a context.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Reads the context.
    ///
    /// # Errors
    ///
    /// When the source names an identity that is invalid (a bad tenant or user).
    fn to_context(&self) -> Result<Context, Self::Error>;

    /// Reads the context with its identity checked against `trust` (what a
    /// queue's [`Policy`](crate::jobs::Policy) does before a handler runs).
    ///
    /// `job_id` is the id of the job this source rides with, when it has
    /// one: a signature then covers it.
    ///
    /// The default reads [`to_context`](ContextSource::to_context), which
    /// carries no signature, and then: [`Trust::Nothing`] and
    /// `Trust::Resolver` drop the identity, [`Trust::Baggage`] keeps it,
    /// and [`Trust::Signed`] refuses a tenant or user as
    /// [`UntrustedIdentity::Unsigned`]. Sources that carry a signature
    /// ([`Carrier`], [`Job`](crate::jobs::Job), broker headers) verify it.
    ///
    /// # Errors
    ///
    /// [`Untrusted::Read`] when reading fails, [`Untrusted::Identity`] when
    /// the identity is not trusted.
    fn to_trusted_context(
        &self,
        trust: &Trust,
        job_id: Option<&str>,
    ) -> Result<Context, Untrusted<Self::Error>> {
        let _ = job_id;
        let cx = self.to_context().map_err(Untrusted::Read)?;
        apply_unsigned(cx, trust).map_err(Untrusted::Identity)
    }
}

/// Why [`ContextSource::to_trusted_context`] gave no context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untrusted<E> {
    /// Reading failed, as [`ContextSource::to_context`] says.
    Read(E),
    /// The identity is not trusted.
    Identity(UntrustedIdentity),
}

impl<E: std::fmt::Display> std::fmt::Display for Untrusted<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Untrusted::Read(e) => e.fmt(f),
            Untrusted::Identity(e) => write!(f, "the context's identity is not trusted: {e}"),
        }
    }
}

impl<E: std::error::Error> std::error::Error for Untrusted<E> {}

/// Applies `trust` to a context read from a source without a signature.
pub(crate) fn apply_unsigned(cx: Context, trust: &Trust) -> Result<Context, UntrustedIdentity> {
    let claimed = cx.tenant().is_some() || cx.user().is_some();
    match trust {
        Trust::Baggage => Ok(cx),
        _ if !claimed => Ok(cx),
        Trust::Signed(_) => Err(UntrustedIdentity::Unsigned),
        _ => Ok(cx.without_tenant().without_user()),
    }
}

/// A carrier read with its signature checked: `job_id` is the id of the job
/// it rides with, if any.
fn carrier_trusted(
    carrier: &Carrier,
    trust: &Trust,
    job_id: Option<&str>,
) -> Result<Context, Untrusted<CarrierError>> {
    match trust {
        Trust::Signed(keyring) => {
            Context::from_signed_carrier(carrier, keyring, job_id).map_err(|e| match e {
                CarrierError::UntrustedIdentity(e) => Untrusted::Identity(e),
                e => Untrusted::Read(e),
            })
        }
        _ => apply_unsigned(
            Context::from_carrier(carrier).map_err(Untrusted::Read)?,
            trust,
        )
        .map_err(Untrusted::Identity),
    }
}

impl ContextSource for Carrier {
    type Error = CarrierError;

    fn to_context(&self) -> Result<Context, CarrierError> {
        Context::from_carrier(self)
    }

    fn to_trusted_context(
        &self,
        trust: &Trust,
        job_id: Option<&str>,
    ) -> Result<Context, Untrusted<CarrierError>> {
        carrier_trusted(self, trust, job_id)
    }
}

/// No carrier at all is read as a fresh root context with no tenant (and the
/// trace-id safety-net warning). Pair it with `#[requires_tenant]` to refuse it.
impl ContextSource for Option<Carrier> {
    type Error = CarrierError;

    fn to_context(&self) -> Result<Context, CarrierError> {
        match self {
            Some(carrier) => Context::from_carrier(carrier),
            None => Ok(Context::builder()
                .trace_id(safety_net_trace_id("no carrier"))
                .build()),
        }
    }

    fn to_trusted_context(
        &self,
        trust: &Trust,
        job_id: Option<&str>,
    ) -> Result<Context, Untrusted<CarrierError>> {
        match self {
            Some(carrier) => carrier_trusted(carrier, trust, job_id),
            None => self.to_context().map_err(Untrusted::Read),
        }
    }
}

impl ContextSource for Context {
    type Error = Infallible;

    fn to_context(&self) -> Result<Context, Infallible> {
        Ok(self.clone())
    }
}

/// A reference or smart pointer to a source reads like the source.
macro_rules! forward_source {
    ($($pointer:ty),*) => {$(
        impl<T: ContextSource + ?Sized> ContextSource for $pointer {
            type Error = T::Error;

            fn to_context(&self) -> Result<Context, T::Error> {
                (**self).to_context()
            }

            fn to_trusted_context(
                &self,
                trust: &Trust,
                job_id: Option<&str>,
            ) -> Result<Context, Untrusted<T::Error>> {
                (**self).to_trusted_context(trust, job_id)
            }
        }
    )*};
}

forward_source!(&T, Box<T>, Arc<T>);
