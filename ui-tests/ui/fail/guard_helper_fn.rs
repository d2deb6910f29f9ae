// A helper fn that returns the guard (`tracing::span::Entered`, which is
// `Send`, so its name is what gives it away).

use context_runtime::{with_context, Context};

async fn work() {}

fn enter_for_job(span: &tracing::Span) -> tracing::span::Entered<'_> {
    span.enter()
}

#[with_context(from = "cx")]
async fn handle(cx: Context, span: tracing::Span) {
    let _g = enter_for_job(&span);
    work().await;
}

fn main() {}
