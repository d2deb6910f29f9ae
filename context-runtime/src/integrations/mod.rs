//! The integrations: one module per cargo feature, named after it. The top
//! layer: everything below may be imported here, nothing here is imported
//! below.

#[cfg(feature = "apalis")]
pub mod apalis;
#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "lapin")]
pub mod lapin;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "opentelemetry")]
pub mod opentelemetry;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "reqwest")]
pub mod reqwest;
#[cfg(feature = "sqlx")]
pub mod sqlx;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "tower")]
pub mod tower;
#[cfg(feature = "tracing")]
pub mod tracing;
