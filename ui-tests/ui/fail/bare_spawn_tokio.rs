// `tokio::spawn` inside an annotated body runs its task without the context.

use context_runtime::{with_context, Context};

#[with_context(from = "cx")]
async fn handle(cx: Context) {
    let _ = tokio::spawn(async { context_runtime::tenant().is_ok() }).await;
}

fn main() {}
