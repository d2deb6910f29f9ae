use context_runtime::{with_context, Context};

struct Span;
struct Guard;

impl Span {
    fn enter(&self) -> Guard {
        Guard
    }
}

#[with_context(from = "cx")]
async fn handle(cx: Context, span: Span) {
    let _guard = span.enter();
    tokio::task::yield_now().await;
}

fn main() {}
