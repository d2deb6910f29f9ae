use context_runtime::{with_context, Carrier};

#[derive(Debug)]
struct MyError;

#[with_context(from = "ctx")]
async fn handle(ctx: Carrier) -> Result<(), MyError> {
    Ok(())
}

fn main() {}
