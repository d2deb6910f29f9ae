// `tracing::span::EnteredSpan` from a helper with a neutral name, under
// `#[requires_tenant]` alone: the type check names the guard's line.

use context_runtime::{requires_tenant, TenantRequired};

async fn work() {}

fn job_span() -> tracing::span::EnteredSpan {
    tracing::info_span!("job").entered()
}

#[requires_tenant]
async fn handle() -> Result<(), TenantRequired> {
    let _span = job_span();
    work().await;
    Ok(())
}

fn main() {}
