//! axum and tower integration (features `axum` and `tower`).
//!
//! [`ContextLayer`](crate::tower::ContextLayer) runs every request inside its context, extracted from the
//! request's headers by a [`Propagator`](crate::Propagator) (or fresh, with
//! source `"http"`). The extractors [`CurrentContext`] and [`Tenant`] read
//! it in handlers, and [`TenantRequired`](crate::TenantRequired) is a
//! `400 Bad Request` with an RFC 9457 problem body, never a 500.
//!
//! ```
//! use axum::{routing::get, Router};
//! use context_runtime::axum::Tenant;
//! use context_runtime::tower::ContextLayer;
//! use context_runtime::Propagator;
//!
//! async fn invoices(Tenant(tenant): Tenant) -> String {
//!     format!("invoices of {tenant}")
//! }
//!
//! let app: Router = Router::new()
//!     .route("/invoices", get(invoices))
//!     // Trust the tenant in baggage only behind your own gateway.
//!     .layer(ContextLayer::new(Propagator::new().trust_baggage_identity()));
//! ```

mod extract;
mod problem;

pub use crate::integrations::tower::RefusedIdentity;
pub use extract::{CurrentContext, Tenant};
