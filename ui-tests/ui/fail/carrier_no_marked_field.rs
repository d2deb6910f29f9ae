use context_runtime::Carrier;

#[derive(Carrier)]
struct Job {
    tenant: String,
}

fn main() {}
