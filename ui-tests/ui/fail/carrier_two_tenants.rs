use context_runtime::{with_context, Carrier};

#[derive(Carrier)]
struct Job {
    #[carrier(tenant)]
    tenant_id: String,
    #[carrier(tenant)]
    org_id: String,
}

// The fallback impl keeps this use free of further errors.
#[with_context(from = "job")]
async fn handle(job: Job) -> Result<(), context_runtime::CarrierError> {
    Ok(())
}

fn main() {}
