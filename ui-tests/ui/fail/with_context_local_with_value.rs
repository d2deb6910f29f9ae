// `local` takes no value.

use context_runtime::{with_context, Context};

#[with_context(from = "cx", local = true)]
async fn handle(cx: Context) {
    let _ = cx;
}

fn main() {}
