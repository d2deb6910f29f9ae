// A guard from a path-style call, `tracing::Span::enter(&span)`.

use context_runtime::{with_context, Context};

async fn work() {}

#[with_context(from = "cx")]
async fn handle(cx: Context, span: tracing::Span) {
    let _g = tracing::Span::enter(&span);
    work().await;
}

fn main() {}
