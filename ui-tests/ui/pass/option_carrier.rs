// `from` a path into an argument whose type is `Option<Carrier>`.

use context_runtime::{with_context, Carrier, CarrierError};
use serde::Deserialize;

#[derive(Deserialize)]
struct Job {
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    ctx: Option<Carrier>,
}

#[with_context(from = "job.data.ctx")]
async fn handle(job: Job) -> Result<Option<String>, CarrierError> {
    let _ = &job;
    Ok(context_runtime::tenant().ok().map(|t| t.to_string()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let with: Job = serde_json::from_str(r#"{"data":{"ctx":{"tenantId":"t1"}}}"#).unwrap();
    assert_eq!(handle(with).await.unwrap().as_deref(), Some("t1"));

    let without: Job = serde_json::from_str(r#"{"data":{}}"#).unwrap();
    assert_eq!(handle(without).await.unwrap(), None);
}
