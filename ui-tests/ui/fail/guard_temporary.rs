// A guard made as a temporary of a statement that awaits: it lives to the
// end of the statement, across the `.await`.

use context_runtime::{with_context, Context};

async fn within<T>(_guard: T) {}

#[with_context(from = "cx")]
async fn handle(cx: Context, span: tracing::Span) {
    within(span.enter()).await;
}

fn main() {}
