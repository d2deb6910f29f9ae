// `tracing::dispatcher::set_default` held across an `.await`.

use context_runtime::{with_context, Context};

async fn work() {}

#[with_context(from = "cx")]
async fn handle(cx: Context, dispatch: tracing::Dispatch) {
    let _default = tracing::dispatcher::set_default(&dispatch);
    work().await;
}

fn main() {}
