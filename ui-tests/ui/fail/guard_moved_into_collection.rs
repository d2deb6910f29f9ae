// A guard moved into something that keeps it (a `Vec`), alive across an
// `.await`.

use context_runtime::{with_context, Context};

async fn work() {}

#[with_context(from = "cx")]
async fn handle(cx: Context, span: tracing::Span) {
    let mut guards = Vec::new();
    guards.push(span.enter());
    work().await;
}

fn main() {}
