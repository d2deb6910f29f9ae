// `#[requires_tenant]` on its own, async and sync, inside the caller's scope.

use std::sync::atomic::{AtomicUsize, Ordering};

use context_runtime::{requires_tenant, Context, TenantId, TenantRequired};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[requires_tenant]
async fn bill() -> Result<String, TenantRequired> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(context_runtime::tenant()?.to_string())
}

#[requires_tenant]
fn bill_now(amount: u32) -> Result<u32, Box<dyn std::error::Error>> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(amount)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(bill().await, Err(TenantRequired));
    assert!(bill_now(3).is_err());
    assert!(Context::root().scope_sync(|| bill_now(3)).is_err());
    assert_eq!(RUNS.load(Ordering::SeqCst), 0);

    let cx = Context::root().with_tenant(TenantId::new("t1").unwrap());
    assert_eq!(cx.scope(bill()).await.unwrap(), "t1");
    assert_eq!(cx.scope_sync(|| bill_now(3)).unwrap(), 3);
    assert_eq!(RUNS.load(Ordering::SeqCst), 2);
}
