//! `#[requires_tenant]` written after `#[with_context]` still uses its import.
#![deny(warnings, unused)]

use context_runtime::{requires_tenant, with_context, Context, TenantRequired};

#[with_context(from = "cx")]
#[requires_tenant]
async fn handle(cx: Context) -> Result<(), TenantRequired> {
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(handle(Context::root()).await, Err(TenantRequired));
}
