use context_runtime::{with_context, Context};

#[with_context(from = "cx", tenant = "t1")]
async fn handle(cx: Context) {
    drop(cx);
}

fn main() {}
