use context_runtime::{with_context, Context};

#[with_context(from = "cx", from = "cx")]
async fn handle(cx: Context) {
    drop(cx);
}

fn main() {}
