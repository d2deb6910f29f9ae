use context_runtime::{requires_tenant, TenantRequired};

#[requires_tenant(optional)]
async fn bill() -> Result<(), TenantRequired> {
    Ok(())
}

fn main() {}
