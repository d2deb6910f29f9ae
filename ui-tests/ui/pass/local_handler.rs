// `local`: a handler that is `!Send` on purpose (it holds an `Rc` across an
// `.await`) runs on a `LocalSet`; so does a generic one whose parameters are
// not `Send`. Both attributes take the option.

use std::fmt::Display;
use std::rc::Rc;

use context_runtime::{requires_tenant, with_context, Context, TenantId, TenantRequired};

#[with_context(from = "cx", local)]
async fn count(cx: Context, shared: Rc<u32>) -> u32 {
    let local = Rc::clone(&shared);
    tokio::task::yield_now().await;
    *local + u32::from(context_runtime::tenant().is_ok())
}

#[with_context(from = "cx", local)]
async fn describe<T: Display>(cx: Context, item: T) -> String {
    tokio::task::yield_now().await;
    format!("{item} {}", context_runtime::tenant().unwrap())
}

#[requires_tenant(local)]
async fn billed(shared: Rc<u32>) -> Result<u32, TenantRequired> {
    let local = Rc::clone(&shared);
    tokio::task::yield_now().await;
    Ok(*local)
}

// Stacked: the first attribute checks the body, and reads `local` from a
// later `#[with_context]`.
#[requires_tenant]
#[with_context(from = "cx", local)]
async fn stacked(cx: Context, shared: Rc<u32>) -> Result<u32, TenantRequired> {
    let local = Rc::clone(&shared);
    tokio::task::yield_now().await;
    Ok(*local)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cx = Context::root().with_tenant(TenantId::new("t1").unwrap());
    let local = tokio::task::LocalSet::new();
    let (n, text, billed) = local
        .run_until(async {
            (
                count(cx.clone(), Rc::new(1)).await,
                describe(cx.clone(), Rc::new("item")).await,
                cx.scope(billed(Rc::new(3))).await,
            )
        })
        .await;
    assert_eq!(n, 2);
    assert_eq!(text, "item t1");
    assert_eq!(billed, Ok(3));
    let stacked = local
        .run_until(async {
            (
                stacked(cx.clone(), Rc::new(4)).await,
                stacked(Context::root(), Rc::new(5)).await,
            )
        })
        .await;
    assert_eq!(stacked, (Ok(4), Err(TenantRequired)));
}
