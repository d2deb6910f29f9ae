use context_runtime::requires_tenant;

#[requires_tenant]
async fn bill() -> Option<String> {
    None
}

#[requires_tenant]
fn bill_now() {}

fn main() {}
