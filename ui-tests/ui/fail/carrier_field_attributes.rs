use context_runtime::Carrier;

#[derive(Carrier)]
#[carrier(trace)]
struct Job {
    #[carrier(trace, tenant)]
    id: String,
    #[carrier(tenent)]
    tenant: String,
}

fn main() {}
