use context_runtime::{requires_tenant, with_context, Context};

#[derive(Debug)]
struct MyError;

#[requires_tenant]
async fn alone() -> Result<(), MyError> {
    Ok(())
}

#[with_context(from = "cx")]
#[requires_tenant]
async fn scoped(cx: Context) -> Result<(), MyError> {
    Ok(())
}

fn main() {}
