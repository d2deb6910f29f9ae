use context_runtime::with_context;

struct Span;
struct Entered;

impl Span {
    fn entered(self) -> Entered {
        Entered
    }
}

#[with_context(fresh)]
async fn handle() {
    let worker = async {
        let span = Span.entered();
        tokio::task::yield_now().await;
        drop(span);
    };
    worker.await;
}

fn main() {}
