//! Generated code triggers no lints in the user's crate.
#![deny(warnings, unused, missing_docs, rust_2018_idioms, unreachable_pub)]
#![deny(missing_debug_implementations, unused_qualifications, unused_results)]

use context_runtime::{requires_tenant, with_context, Carrier, CarrierError, TenantRequired};

/// The errors of a job.
#[derive(Debug)]
pub enum JobError {
    /// No tenant.
    NoTenant(TenantRequired),
    /// A bad carrier.
    BadCarrier(CarrierError),
}

impl From<TenantRequired> for JobError {
    fn from(e: TenantRequired) -> Self {
        JobError::NoTenant(e)
    }
}

impl From<CarrierError> for JobError {
    fn from(e: CarrierError) -> Self {
        JobError::BadCarrier(e)
    }
}

/// A job payload.
#[derive(Debug, Carrier)]
pub struct Job {
    /// The trace id.
    #[carrier(trace)]
    pub trace_id: Option<String>,
    /// The tenant.
    #[carrier(tenant)]
    pub tenant: Option<String>,
}

/// Handles a job.
#[with_context(from = "job")]
#[requires_tenant]
pub async fn handle(job: Job) -> Result<String, JobError> {
    Ok(format!("{:?} {}", job.trace_id, context_runtime::tenant()?))
}

/// Handles a carrier.
#[requires_tenant]
#[with_context(from = "&ctx")]
pub async fn handle_carrier(ctx: Carrier) -> Result<(), JobError> {
    Ok(())
}

/// A scheduled job.
#[with_context(fresh, source = "cron:cleanup")]
pub async fn cleanup() {}

/// Needs a tenant, asynchronously, on its own.
#[requires_tenant]
pub async fn async_check() -> Result<u8, TenantRequired> {
    Ok(1)
}

/// `!Send` on purpose, with the bare spawns allowed.
#[with_context(fresh, local, allow_bare_spawn)]
pub async fn local_work() -> usize {
    let shared = std::rc::Rc::new(3);
    tokio::task::yield_now().await;
    *shared
}

/// A payload that cannot fail.
#[derive(Debug, Carrier)]
pub struct Strict {
    /// The tenant.
    #[carrier(tenant)]
    pub tenant: context_runtime::TenantId,
}

/// Handles a payload that cannot fail, without a `Result`.
#[with_context(from = "job")]
pub async fn strict(job: Strict) -> bool {
    context_runtime::tenant().is_ok()
}

/// Needs a tenant, synchronously.
#[requires_tenant]
pub fn sync_check() -> Result<(), TenantRequired> {
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let job = Job {
        trace_id: None,
        tenant: Some("t1".into()),
    };
    assert_eq!(handle(job).await.unwrap(), "None t1");
    assert!(handle_carrier(Carrier::from_json("{}").unwrap())
        .await
        .is_err());
    cleanup().await;
    assert!(sync_check().is_err());
    assert!(async_check().await.is_err());
    assert_eq!(local_work().await, 3);
    let tenant = context_runtime::TenantId::new("t1").unwrap();
    assert!(strict(Strict { tenant }).await);
}
