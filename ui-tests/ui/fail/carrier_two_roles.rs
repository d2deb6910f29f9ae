use context_runtime::Carrier;

#[derive(Carrier)]
struct Job {
    #[carrier(trace)]
    #[carrier(tenant)]
    id: String,
    #[carrier(user, user)]
    user: Option<context_runtime::UserRef>,
}

fn main() {}
