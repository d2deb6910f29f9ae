use context_runtime::{with_context, Context};

#[with_context(from = "cx")]
fn handle(cx: Context) -> u32 {
    cx.scope_sync(|| 1)
}

fn main() {}
