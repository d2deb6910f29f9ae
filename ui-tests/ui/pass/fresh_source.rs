// `fresh` starts a new root context, even inside another scope; `source`
// names where the work comes from.

use context_runtime::{with_context, Context, TenantId};

#[with_context(fresh, source = "cron:cleanup")]
async fn cleanup() -> (Option<String>, bool) {
    let cx = context_runtime::current().unwrap();
    (cx.source().map(str::to_owned), cx.tenant().is_some())
}

#[with_context(fresh)]
async fn tick() -> Context {
    context_runtime::current().unwrap()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(cleanup().await, (Some("cron:cleanup".to_owned()), false));

    let outer = Context::root().with_tenant(TenantId::new("outer").unwrap());
    let seen = outer.scope(tick()).await;
    assert_ne!(
        seen.trace_id(),
        outer.trace_id(),
        "a fresh context is a new trace"
    );
    assert!(
        seen.tenant().is_none(),
        "and it does not inherit the caller's tenant"
    );
    assert!(seen.source().is_none());
    assert_eq!(outer.scope(cleanup()).await.1, false);
}
