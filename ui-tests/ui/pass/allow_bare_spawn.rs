// `allow_bare_spawn`: work meant to run without the context may be spawned
// bare; it then sees no context (and the safe spawn still carries it).

use context_runtime::{requires_tenant, with_context, Context, TenantId, TenantRequired};

#[with_context(from = "cx", allow_bare_spawn)]
async fn detached(cx: Context) -> (bool, bool) {
    let bare = tokio::spawn(async { context_runtime::current().is_some() })
        .await
        .unwrap();
    let carried = context_runtime::spawn(async { context_runtime::current().is_some() })
        .await
        .unwrap();
    (bare, carried)
}

#[requires_tenant(allow_bare_spawn)]
async fn cleanup() -> Result<bool, TenantRequired> {
    Ok(std::thread::spawn(|| context_runtime::current().is_some())
        .join()
        .unwrap())
}

#[requires_tenant]
#[with_context(from = "cx", allow_bare_spawn)]
async fn stacked(cx: Context) -> Result<bool, TenantRequired> {
    Ok(tokio::task::spawn_blocking(|| context_runtime::current().is_some())
        .await
        .unwrap())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cx = Context::root().with_tenant(TenantId::new("t1").unwrap());
    assert_eq!(detached(cx.clone()).await, (false, true));
    assert_eq!(cx.scope(cleanup()).await, Ok(false));
    assert_eq!(stacked(cx).await, Ok(false));
}
