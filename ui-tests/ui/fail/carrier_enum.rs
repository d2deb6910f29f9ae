use context_runtime::Carrier;

#[derive(Carrier)]
enum Job {
    Invoice { tenant: String },
}

fn main() {}
