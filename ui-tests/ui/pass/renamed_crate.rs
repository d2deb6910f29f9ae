// `crate = "…"` on every macro, for a crate that names the runtime differently.

extern crate context_runtime as ctxrt;

use ctxrt::{requires_tenant, with_context, Carrier, CarrierError, TenantRequired};

#[derive(Debug)]
enum Error {
    NoTenant,
    Carrier,
}

impl From<TenantRequired> for Error {
    fn from(_: TenantRequired) -> Self {
        Error::NoTenant
    }
}

impl From<CarrierError> for Error {
    fn from(_: CarrierError) -> Self {
        Error::Carrier
    }
}

#[derive(Carrier)]
#[carrier(crate = "ctxrt")]
struct Job {
    #[carrier(tenant)]
    tenant: Option<String>,
}

#[with_context(from = "job", crate = "ctxrt")]
#[requires_tenant(crate = "ctxrt")]
async fn scope_first(job: Job) -> Result<String, Error> {
    Ok(ctxrt::tenant()?.to_string())
}

#[requires_tenant(crate = "ctxrt")]
#[with_context(crate = "ctxrt", from = "job")]
async fn tenant_first(job: Job) -> Result<String, Error> {
    Ok(ctxrt::tenant()?.to_string())
}

// The check a later `#[requires_tenant]` gets inside the scope uses
// `#[with_context]`'s `crate` too.
#[with_context(from = "job", crate = "ctxrt")]
#[requires_tenant]
async fn shared_path(job: Job) -> Result<String, Error> {
    Ok(ctxrt::tenant()?.to_string())
}

#[with_context(fresh, crate = "ctxrt", source = "cron")]
async fn fresh() -> Option<String> {
    Some(ctxrt::current()?.source()?.to_owned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let job = || Job {
        tenant: Some("t1".into()),
    };
    assert_eq!(scope_first(job()).await.unwrap(), "t1");
    assert_eq!(tenant_first(job()).await.unwrap(), "t1");
    assert!(matches!(
        scope_first(Job { tenant: None }).await,
        Err(Error::NoTenant)
    ));
    assert!(matches!(
        tenant_first(Job {
            tenant: Some(" ".into())
        })
        .await,
        Err(Error::Carrier)
    ));
    assert_eq!(shared_path(job()).await.unwrap(), "t1");
    assert!(matches!(
        shared_path(Job { tenant: None }).await,
        Err(Error::NoTenant)
    ));
    assert_eq!(fresh().await.as_deref(), Some("cron"));
}
