use context_runtime::{with_context, Carrier};

struct Job {
    ctx: Carrier,
}

#[with_context(from = "task.ctx")]
async fn handle(job: Job, attempt: u32) {
    drop((job.ctx, attempt));
}

fn main() {}
