//! Extractors: [`CurrentContext`] and [`Tenant`].

use ::axum_core::extract::FromRequestParts;
use ::http::request::Parts;

use crate::model::context::Context;
use crate::model::tenant::{TenantId, TenantRequired};

/// The request's context: the one [`ContextLayer`](crate::tower::ContextLayer) put
/// in the request, else the current one, else one read from the headers with
/// the default (untrusting) [`Propagator`](crate::Propagator).
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
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(CurrentContext(request_context(parts)))
    }
}

fn request_context(parts: &Parts) -> Context {
    parts
        .extensions
        .get::<Context>()
        .cloned()
        .or_else(crate::scope::store::current)
        .unwrap_or_else(|| crate::integrations::http::extract(&parts.headers))
}

/// The request's tenant; without one the request is rejected with
/// [`TenantRequired`], a `400` problem response, before the handler runs.
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
    type Rejection = TenantRequired;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        request_context(parts)
            .tenant()
            .cloned()
            .map(Tenant)
            .ok_or(TenantRequired)
    }
}
