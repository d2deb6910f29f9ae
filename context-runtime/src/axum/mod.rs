//! axum and tower integration (features `axum` and `tower`).
//!
//! [`ContextLayer`] runs every request inside its context, extracted from the
//! request's headers by a [`Propagator`](crate::Propagator) (or fresh, with
//! source `"http"`). The extractors [`CurrentContext`] and [`Tenant`] read
//! it in handlers, and [`TenantRequired`](crate::TenantRequired) is a
//! `400 Bad Request` with an RFC 9457 problem body, never a 500.
//!
//! ```
//! use axum::{routing::get, Router};
//! use context_runtime::axum::{ContextLayer, Tenant};
//! use context_runtime::http::Propagator;
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

mod layer;

pub use layer::{ContextLayer, ContextService};

#[cfg(feature = "axum")]
mod extract;
#[cfg(feature = "axum")]
mod problem;

#[cfg(feature = "axum")]
pub use extract::{CurrentContext, Tenant};
