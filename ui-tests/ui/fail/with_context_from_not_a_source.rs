use context_runtime::with_context;

struct Job {
    ctx: String,
}

#[with_context(from = "job.ctx")]
async fn handle(job: Job) {}

fn main() {}
