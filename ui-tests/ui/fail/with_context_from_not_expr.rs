use context_runtime::{with_context, Context};

#[with_context(from = "job.")]
async fn handle(job: Context) {
    drop(job);
}

fn main() {}
