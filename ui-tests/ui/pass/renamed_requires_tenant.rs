// `#[requires_tenant]` renamed with `use … as`: in either order with
// `#[with_context]`, beside other attributes, and on its own, the body never
// runs without a tenant.

use std::sync::atomic::{AtomicUsize, Ordering};

use context_runtime::requires_tenant as needs_tenant;
use context_runtime::with_context as scoped;
use context_runtime::{Carrier, CarrierError, Context, TenantId, TenantRequired};

#[derive(Debug, PartialEq)]
enum JobError {
    NoTenant,
    BadCarrier,
}

impl From<TenantRequired> for JobError {
    fn from(_: TenantRequired) -> Self {
        JobError::NoTenant
    }
}

impl From<CarrierError> for JobError {
    fn from(_: CarrierError) -> Self {
        JobError::BadCarrier
    }
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

struct Job {
    ctx: Option<Carrier>,
}

#[scoped(from = "job.ctx")]
#[needs_tenant]
async fn scope_first(job: Job) -> Result<String, JobError> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(context_runtime::tenant()?.to_string())
}

#[needs_tenant]
#[scoped(from = "job.ctx")]
async fn tenant_first(job: Job) -> Result<String, JobError> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(context_runtime::tenant()?.to_string())
}

#[inline]
#[scoped(from = "job.ctx")]
#[allow(clippy::needless_question_mark)]
#[needs_tenant]
#[must_use = "a result"]
async fn among_others(job: Job) -> Result<String, JobError> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(context_runtime::tenant()?.to_string())
}

#[needs_tenant]
async fn alone() -> Result<(), JobError> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let none = || Job { ctx: None };
    let with = || Job {
        ctx: Some(Carrier::from_json(r#"{"tenantId":"t1"}"#).unwrap()),
    };
    // The caller's scope has a tenant: the job's (none) is what counts.
    let caller = Context::root().with_tenant(TenantId::new("caller").unwrap());
    assert_eq!(caller.scope(scope_first(none())).await, Err(JobError::NoTenant));
    assert_eq!(caller.scope(tenant_first(none())).await, Err(JobError::NoTenant));
    assert_eq!(caller.scope(among_others(none())).await, Err(JobError::NoTenant));
    assert_eq!(alone().await, Err(JobError::NoTenant));
    assert_eq!(RUNS.load(Ordering::SeqCst), 0, "no body ran without a tenant");

    assert_eq!(scope_first(with()).await.unwrap(), "t1");
    assert_eq!(tenant_first(with()).await.unwrap(), "t1");
    assert_eq!(among_others(with()).await.unwrap(), "t1");
    assert_eq!(caller.scope(alone()).await, Ok(()));
    assert_eq!(RUNS.load(Ordering::SeqCst), 4);
}
