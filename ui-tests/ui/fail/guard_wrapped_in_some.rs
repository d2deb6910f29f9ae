// A real `tracing` guard wrapped in `Some(…)` and alive across an `.await`.

use context_runtime::{with_context, Context};

async fn work() {}

#[with_context(from = "cx")]
async fn handle(cx: Context, span: tracing::Span) {
    let _g = Some(span.enter());
    work().await;
}

fn main() {}
