use context_runtime::Carrier;

#[derive(Carrier)]
union Job {
    tenant: u64,
}

fn main() {}
