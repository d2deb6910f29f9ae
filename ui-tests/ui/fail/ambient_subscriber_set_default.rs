// `tracing::subscriber::set_default` held across an `.await`: the
// subscriber becomes the default of every task polled on this thread.

use context_runtime::{with_context, Context};

async fn work() {}

#[with_context(from = "cx")]
async fn handle(cx: Context, dispatch: tracing::Dispatch) {
    let _default = tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::default());
    work().await;
    drop(dispatch);
}

fn main() {}
