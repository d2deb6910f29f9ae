use context_runtime::{requires_tenant, TenantRequired};

struct OtelContext;
struct Guard;

impl OtelContext {
    fn attach(self) -> Guard {
        Guard
    }
}

#[requires_tenant]
async fn handle(otel: OtelContext) -> Result<(), TenantRequired> {
    let guard = otel.attach();
    if true {
        tokio::task::yield_now().await;
    }
    drop(guard);
    Ok(())
}

fn main() {}
