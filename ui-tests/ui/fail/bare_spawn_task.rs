// `tokio::task::spawn` inside an annotated body.

use context_runtime::{with_context, Context};

#[with_context(from = "cx")]
async fn handle(cx: Context) {
    let _ = tokio::task::spawn(async {}).await;
}

fn main() {}
