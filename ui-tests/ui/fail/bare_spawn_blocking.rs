// `tokio::task::spawn_blocking` under `#[requires_tenant]`.

use context_runtime::{requires_tenant, TenantRequired};

#[requires_tenant]
async fn handle() -> Result<(), TenantRequired> {
    let _ = tokio::task::spawn_blocking(|| context_runtime::tenant().is_ok()).await;
    Ok(())
}

fn main() {}
