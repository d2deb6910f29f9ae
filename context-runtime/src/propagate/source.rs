//! [`ContextSource`]: anything a [`Context`] can be read from.

use std::convert::Infallible;
use std::sync::Arc;

use crate::model::context::Context;
use crate::wire::carrier::safety_net_trace_id;
use crate::wire::carrier::{Carrier, CarrierError};

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
}

impl ContextSource for Carrier {
    type Error = CarrierError;

    fn to_context(&self) -> Result<Context, CarrierError> {
        Context::from_carrier(self)
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
}

impl ContextSource for Context {
    type Error = Infallible;

    fn to_context(&self) -> Result<Context, Infallible> {
        Ok(self.clone())
    }
}

impl<T: ContextSource + ?Sized> ContextSource for &T {
    type Error = T::Error;

    fn to_context(&self) -> Result<Context, T::Error> {
        (**self).to_context()
    }
}

impl<T: ContextSource + ?Sized> ContextSource for Box<T> {
    type Error = T::Error;

    fn to_context(&self) -> Result<Context, T::Error> {
        (**self).to_context()
    }
}

impl<T: ContextSource + ?Sized> ContextSource for Arc<T> {
    type Error = T::Error;

    fn to_context(&self) -> Result<Context, T::Error> {
        (**self).to_context()
    }
}
