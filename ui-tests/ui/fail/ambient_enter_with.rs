use context_runtime::{with_context, Context};

struct Storage;

impl Storage {
    fn enter_with(&self, _cx: Context) {}
}

fn enter_with(_cx: Context) {}

#[with_context(from = "cx")]
async fn handle(cx: Context, storage: Storage) {
    storage.enter_with(cx.clone());
    let later = move || enter_with(cx);
    later();
}

fn main() {}
