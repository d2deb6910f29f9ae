// `#[derive(Carrier)]` payloads: every role, a required tenant, a generic
// payload, and `from` a method call and a reference.

use context_runtime::{with_context, Carrier, CarrierError, TenantId, UserRef};
use serde::Deserialize;

#[derive(Clone, Debug, PartialEq, Deserialize)]
struct Locale(String);

#[derive(Deserialize, Carrier)]
struct InvoiceJob {
    #[carrier(trace)]
    trace_id: Option<String>,
    #[carrier(tenant)]
    tenant_id: TenantId,
    #[carrier(user)]
    user: Option<UserRef>,
    #[carrier(value)]
    locale: Locale,
    invoice: u64,
}

#[derive(Carrier)]
struct Envelope<T: Clone + Send + Sync + 'static> {
    #[carrier(tenant)]
    tenant: Option<String>,
    #[carrier(value)]
    body: T,
}

impl<T: Clone + Send + Sync + 'static> Envelope<T> {
    fn itself(&self) -> &Self {
        self
    }
}

#[with_context(from = "job")]
async fn handle(job: InvoiceJob) -> Result<String, CarrierError> {
    let cx = context_runtime::current().unwrap();
    Ok(format!(
        "{} {} {} {} {:?}",
        job.invoice,
        cx.trace_id(),
        cx.tenant().unwrap(),
        cx.user().unwrap(),
        cx.get::<Locale>().unwrap(),
    ))
}

#[with_context(from = "&envelope.itself()")]
async fn open(envelope: Envelope<u32>) -> Result<(Option<String>, Option<u32>), CarrierError> {
    let cx = context_runtime::current().unwrap();
    Ok((cx.tenant().map(|t| t.to_string()), cx.get::<u32>().copied()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let job: InvoiceJob = serde_json::from_str(
        r#"{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","tenant_id":"t1",
            "user":{"type":"user","id":42},"locale":"fr","invoice":1}"#,
    )
    .unwrap();
    assert_eq!(
        handle(job).await.unwrap(),
        r#"1 4bf92f3577b34da6a3ce929d0e0e4736 t1 user:42 Locale("fr")"#
    );

    // A non-`Option` tenant is required by the type.
    assert!(serde_json::from_str::<InvoiceJob>(r#"{"locale":"fr","invoice":1}"#).is_err());

    let envelope = Envelope {
        tenant: Some("t2".into()),
        body: 5u32,
    };
    assert_eq!(open(envelope).await.unwrap(), (Some("t2".into()), Some(5)));

    let bad = Envelope {
        tenant: Some(String::new()),
        body: 5u32,
    };
    assert!(matches!(
        open(bad).await,
        Err(CarrierError::InvalidTenant { .. })
    ));
}
