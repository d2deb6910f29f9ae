//! One-line bodies, in both attribute orders, trigger no lint in the
//! user's crate (the expansion adds no braces of its own around them).
#![deny(warnings, unused)]

use context_runtime::{requires_tenant, with_context, Carrier, Context, TenantRequired};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Job {
    ctx: Carrier,
    n: u32,
}

#[requires_tenant]
#[with_context(from = "job.ctx")]
async fn tenant_first(job: Job) -> Result<u32, BoxError> {
    Ok(job.n)
}

#[with_context(from = "job.ctx")]
#[requires_tenant]
async fn scope_first(job: Job) -> Result<u32, BoxError> {
    Ok(job.n)
}

#[requires_tenant]
async fn alone() -> Result<u32, TenantRequired> {
    Ok(1)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let job = || Job {
        ctx: Context::root().to_carrier(),
        n: 7,
    };
    assert!(tenant_first(job()).await.is_err());
    assert!(scope_first(job()).await.is_err());
    assert_eq!(alone().await, Err(TenantRequired));
}
