// `#[requires_tenant]` with `#[with_context]` in both orders: the tenant is
// checked inside the new scope, before any of the body runs.

use std::sync::atomic::{AtomicUsize, Ordering};

use context_runtime::{
    requires_tenant, with_context, Carrier, CarrierError, Context, TenantId, TenantRequired,
};

#[derive(Debug)]
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

#[requires_tenant]
#[with_context(from = "ctx")]
async fn tenant_first(ctx: Option<Carrier>) -> Result<String, JobError> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(context_runtime::tenant()?.to_string())
}

#[with_context(from = "ctx")]
#[requires_tenant]
async fn scope_first(ctx: Option<Carrier>) -> Result<String, JobError> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(context_runtime::tenant()?.to_string())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let with = || Some(Carrier::from_json(r#"{"tenantId":"t1"}"#).unwrap());
    assert_eq!(tenant_first(with()).await.unwrap(), "t1");
    assert_eq!(scope_first(with()).await.unwrap(), "t1");
    assert_eq!(RUNS.swap(0, Ordering::SeqCst), 2);

    assert!(matches!(tenant_first(None).await, Err(JobError::NoTenant)));
    assert!(matches!(scope_first(None).await, Err(JobError::NoTenant)));

    // The caller's tenant does not leak into a job that carries none.
    let outer = Context::root().with_tenant(TenantId::new("outer").unwrap());
    assert!(matches!(
        outer.scope(tenant_first(None)).await,
        Err(JobError::NoTenant)
    ));
    assert!(matches!(
        outer.scope(scope_first(None)).await,
        Err(JobError::NoTenant)
    ));

    let bad = || Some(Carrier::from_json(r#"{"tenantId":""}"#).unwrap());
    assert!(matches!(
        tenant_first(bad()).await,
        Err(JobError::BadCarrier)
    ));
    assert!(matches!(
        scope_first(bad()).await,
        Err(JobError::BadCarrier)
    ));
    assert_eq!(
        RUNS.load(Ordering::SeqCst),
        0,
        "no body ran without a tenant"
    );
}
