use context_runtime::{with_context, Context};

#[with_context]
async fn handle(cx: Context) {
    drop(cx);
}

fn main() {}
