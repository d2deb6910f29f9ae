use context_runtime::Carrier;

#[derive(Carrier)]
struct Job {
    #[carrier(tenant)]
    tenant: u64,
}

fn main() {}
