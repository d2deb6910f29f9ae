// A derived payload that cannot fail (a `TenantId` tenant field, which was
// validated when the payload was built): an infallible `ContextSource`, so
// the handler need not return a `Result`.

use std::convert::Infallible;

use context_runtime::{with_context, Carrier, ContextSource, TenantId, TraceId, UserRef};
use serde::Deserialize;

#[derive(Deserialize, Carrier)]
struct InvoiceJob {
    #[carrier(trace)]
    trace_id: Option<TraceId>,
    #[carrier(tenant)]
    tenant_id: TenantId,
    #[carrier(user)]
    user: Option<UserRef>,
    invoice: u64,
}

#[derive(Carrier)]
struct TraceOnly {
    #[carrier(trace)]
    trace_id: String,
}

#[with_context(from = "job")]
async fn handle(job: InvoiceJob) -> String {
    format!("{} {}", job.invoice, context_runtime::tenant().unwrap())
}

#[with_context(from = "job")]
async fn trace_only(job: TraceOnly) -> bool {
    context_runtime::tenant().is_err()
}

fn infallible<S: ContextSource<Error = Infallible>>(_: &S) {}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let job: InvoiceJob = serde_json::from_str(r#"{"tenant_id":"t1","invoice":7}"#).unwrap();
    infallible(&job);
    assert_eq!(handle(job).await, "7 t1");
    let bad = serde_json::from_str::<InvoiceJob>(r#"{"tenant_id":"a b","invoice":7}"#);
    assert!(bad.is_err(), "an invalid tenant never makes a payload");

    let job = TraceOnly {
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
    };
    infallible(&job);
    assert!(trace_only(job).await);
}
