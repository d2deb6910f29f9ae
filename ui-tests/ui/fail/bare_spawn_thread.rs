// `std::thread::spawn` inside an annotated body.

use context_runtime::{with_context, Context};

#[with_context(from = "cx")]
async fn handle(cx: Context) {
    let _ = std::thread::spawn(|| context_runtime::tenant().is_ok()).join();
}

fn main() {}
