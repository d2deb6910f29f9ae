use context_runtime::{with_context, Carrier};

#[with_context(from = "ctx")]
async fn handle(ctx: Carrier) -> u32 {
    1
}

fn main() {}
