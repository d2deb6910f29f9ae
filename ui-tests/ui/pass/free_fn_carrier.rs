// A free `async fn` reading a `Carrier` argument: the body runs inside its
// context; an invalid tenant is returned as the function's error.

use std::sync::atomic::{AtomicUsize, Ordering};

use context_runtime::{with_context, Carrier, CarrierError};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[with_context(from = "ctx")]
async fn handle(ctx: Carrier, invoice: u64) -> Result<String, CarrierError> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::task::yield_now().await;
    let tenant = context_runtime::tenant()
        .map(|t| t.to_string())
        .unwrap_or_default();
    Ok(format!(
        "{invoice} {} {tenant}",
        context_runtime::trace_id().unwrap()
    ))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let carrier =
        Carrier::from_json(r#"{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","tenantId":"acme"}"#)
            .unwrap();
    assert_eq!(
        handle(carrier, 7).await.unwrap(),
        "7 4bf92f3577b34da6a3ce929d0e0e4736 acme"
    );
    assert!(
        context_runtime::current().is_none(),
        "the scope ends with the call"
    );

    let bad = Carrier::from_json(r#"{"tenantId":"a b"}"#).unwrap();
    let error = handle(bad, 8).await.unwrap_err();
    assert_eq!(error.tenant(), Some("a b"));
    assert_eq!(
        RUNS.load(Ordering::SeqCst),
        1,
        "the body never ran for the bad carrier"
    );
}
