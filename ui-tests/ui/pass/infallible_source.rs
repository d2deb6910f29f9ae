// A source that cannot fail (a `Context`) needs no `Result`, and a function
// that does return one needs no `From<Infallible>` for its error.

use context_runtime::{requires_tenant, with_context, Context, TenantId, TenantRequired};

#[with_context(from = "cx")]
async fn plain(cx: Context) -> Option<String> {
    context_runtime::tenant().ok().map(|t| t.to_string())
}

#[with_context(from = "cx")]
#[requires_tenant]
async fn checked(cx: &Context) -> Result<String, TenantRequired> {
    Ok(context_runtime::tenant()?.to_string())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cx = Context::root().with_tenant(TenantId::new("t1").unwrap());
    assert_eq!(plain(cx.clone()).await.as_deref(), Some("t1"));
    assert_eq!(checked(&cx).await.unwrap(), "t1");
    assert_eq!(checked(&Context::root()).await, Err(TenantRequired));
}
