// OpenTelemetry's `Context::attach`, called as a path.

use context_runtime::{with_context, Context};

async fn work() {}

#[with_context(from = "cx")]
async fn handle(cx: Context, otel: opentelemetry::Context) {
    let _g = opentelemetry::Context::attach(otel);
    work().await;
}

fn main() {}
