// What the ambient check lets through: a guard dropped before the `.await`,
// a guard in an inner block, `let _ =`, and nested items.

use context_runtime::{with_context, Context};

struct Span;
struct Guard;

impl Span {
    fn enter(&self) -> Guard {
        Guard
    }
}

#[with_context(from = "cx")]
async fn handle(cx: Context) -> u32 {
    let span = Span;
    let guard = span.enter();
    drop(guard);
    tokio::task::yield_now().await;
    {
        let _inner = span.enter();
    }
    tokio::task::yield_now().await;
    let _ = span.enter();
    tokio::task::yield_now().await;

    fn nested() -> u32 {
        struct Ambient;
        impl Ambient {
            fn enter_with(&self) -> u32 {
                1
            }
        }
        Ambient.enter_with()
    }
    nested()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(handle(Context::root()).await, 1);
}
