// A guard assigned to a variable declared earlier (late initialisation).

use context_runtime::{with_context, Context};

async fn work() {}

#[with_context(from = "cx")]
async fn handle(cx: Context, span: tracing::Span) {
    let g;
    g = span.enter();
    work().await;
    drop(g);
}

fn main() {}
