//! A small service for W3C Trace Context conformance suites, built on
//! `context_runtime::http`.
//!
//! The suite POSTs a JSON list of `{"url": …, "arguments": …}` with its
//! `traceparent` and `tracestate`; for each entry the service POSTs
//! `arguments` to `url`, carrying the request's context (same trace id and
//! flags, a new parent id, the `tracestate` forwarded).
//!
//! ```text
//! cargo run -p context-examples --features http-service --example trace_context_service -- 127.0.0.1:7777
//! ```

use axum::routing::post;
use axum::{Json, Router};
use context_runtime::axum::CurrentContext;
use context_runtime::reqwest::RequestBuilderExt as _;
use context_runtime::tower::ContextLayer;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Call {
    url: String,
    arguments: Value,
}

async fn test(CurrentContext(cx): CurrentContext, Json(calls): Json<Vec<Call>>) -> &'static str {
    let client = reqwest::Client::new();
    for call in calls {
        let sent = client
            .post(&call.url)
            .inject(&cx)
            .json(&call.arguments)
            .send()
            .await;
        if let Err(e) = sent {
            eprintln!("call to {} failed: {e}", call.url);
        }
    }
    "ok"
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7777".to_owned());
    let app = Router::new()
        .route("/test", post(test))
        .route("/", post(test))
        .layer(ContextLayer::default());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "trace context service on http://{}/test",
        listener.local_addr()?
    );
    axum::serve(listener, app).await
}
