// A guard kept alive by a `match` scrutinee while an arm awaits.

use context_runtime::{with_context, Context};

async fn work() {}

#[with_context(from = "cx")]
async fn handle(cx: Context, span: tracing::Span) {
    match span.enter() {
        _g => work().await,
    }
}

fn main() {}
