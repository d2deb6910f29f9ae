// A guard that is never dropped keeps its span entered on the thread.

use context_runtime::{with_context, Context};

#[with_context(from = "cx")]
async fn handle(cx: Context, span: tracing::Span) {
    std::mem::forget(span.enter());
}

fn main() {}
