// The type-based check: guards whose syntax says nothing (a helper with a
// neutral name, a struct field) are `!Send`, so the body's future is too.

use context_runtime::{with_context, Context};

async fn work() {}

struct Held {
    _guard: opentelemetry::ContextGuard,
}

fn activate(otel: opentelemetry::Context) -> Held {
    Held {
        _guard: otel.attach(),
    }
}

#[with_context(from = "cx")]
async fn handle(cx: Context, otel: opentelemetry::Context) {
    let _held = activate(otel);
    work().await;
}

fn main() {}
