//! Extractors: [`CurrentContext`] and [`Tenant`].

use ::axum_core::extract::FromRequestParts;
use ::axum_core::response::{IntoResponse, Response};
use ::http::request::Parts;

use crate::integrations::tower::RefusedIdentity;
use crate::model::context::Context;
use crate::model::tenant::{TenantId, TenantRequired};

/// The request's context: the current one (the one
/// [`ContextLayer`](crate::tower::ContextLayer) scopes the request in), else
/// one put in the request's extensions, else one read from the headers with
/// the default (untrusting) [`Propagator`](crate::Propagator).
///
/// A request whose identity the layer refused ([`RefusedIdentity`]) is
/// rejected with its problem response.
///
/// ```
/// use context_runtime::axum::CurrentContext;
///
/// async fn handler(CurrentContext(cx): CurrentContext) -> String {
///     cx.trace_id().to_string()
/// }
/// ```
#[derive(Debug, Clone)]
pub struct CurrentContext(pub Context);

impl<S: Send + Sync> FromRequestParts<S> for CurrentContext {
    type Rejection = RefusedIdentity;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        refused(parts)?;
        Ok(CurrentContext(request_context(parts)))
    }
}

fn refused(parts: &Parts) -> Result<(), RefusedIdentity> {
    match parts.extensions.get::<RefusedIdentity>() {
        Some(refused) => Err(refused.clone()),
        None => Ok(()),
    }
}

fn request_context(parts: &Parts) -> Context {
    crate::scope::store::current()
        .or_else(|| parts.extensions.get::<Context>().cloned())
        .unwrap_or_else(|| crate::integrations::http::extract(&parts.headers))
}

/// The request's tenant; without one the request is rejected with
/// [`TenantRequired`], a `400` problem response, before the handler runs (or
/// with the [`RefusedIdentity`] response when its identity was refused).
///
/// ```
/// use context_runtime::axum::Tenant;
///
/// async fn handler(Tenant(tenant): Tenant) -> String {
///     format!("hello {tenant}")
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Tenant(pub TenantId);

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        refused(parts).map_err(IntoResponse::into_response)?;
        request_context(parts)
            .tenant()
            .cloned()
            .map(Tenant)
            .ok_or_else(|| TenantRequired.into_response())
    }
}
