//! Every rejection logs one line with the trace id and the reason (jobs,
//! HTTP, a missing tenant), and a consumer without a keyring warns once,
//! not per job, that identity arrives unsigned.

use std::sync::{Arc, Mutex};

use axum::routing::get;
use axum::Router;
use context_runtime::axum::Tenant;
use context_runtime::jobs::{admit, Job, Policy, RejectionKind};
use context_runtime::tower::ContextLayer;
use context_runtime::{Context, Keyring, Propagator, TenantId};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The lines written since the last call.
    fn take(&self) -> Vec<String> {
        let bytes = std::mem::take(&mut *self.0.lock().expect("capture"));
        String::from_utf8(bytes)
            .expect("utf-8")
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn keyring() -> Keyring {
    Keyring::new("k1", b"rejection-logs-test-secret-32-by").expect("a key")
}

/// One test, so that the global subscriber sees only its lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rejection_is_one_line_with_its_trace_id_and_reason() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .without_time()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    )
    .expect("the only subscriber");

    // A forged job on a queue with a keyring.
    let job: Job<u8> = serde_json::from_str(&format!(
        r#"{{"ctx":{{"traceId":"{TRACE}","tenantId":"victim"}},"data":1}}"#
    ))
    .expect("json");
    let rejection = admit(&job, &Policy::new().keyring(keyring())).expect_err("forged");
    assert_eq!(rejection.kind(), RejectionKind::UntrustedIdentity);
    let lines = captured.take();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains(TRACE)
            && lines[0].contains("untrusted_identity")
            && lines[0].contains("not signed"),
        "{}",
        lines[0]
    );

    // Unsigned identity on a queue without a keyring: a warning, once.
    for _ in 0..3 {
        admit(&job, &Policy::new()).expect("trusted unsigned");
    }
    let lines = captured.take();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("unsigned"), "{}", lines[0]);

    // HTTP: a forged identity, then no tenant at all.
    let app = Router::new()
        .route(
            "/tenant",
            get(|Tenant(t): Tenant| async move { t.to_string() }),
        )
        .layer(ContextLayer::new(Propagator::new().keyring(keyring())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral port on loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("server");
    });
    let client = reqwest::Client::new();
    let forged = client
        .get(format!("http://{addr}/tenant"))
        .header("traceparent", PARENT)
        .header("baggage", "tenantId=victim")
        .send()
        .await
        .expect("call");
    assert_eq!(forged.status(), 401);
    let lines = captured.take();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains(TRACE) && lines[0].contains("unsigned"),
        "{}",
        lines[0]
    );

    let missing = client
        .get(format!("http://{addr}/tenant"))
        .header("traceparent", PARENT)
        .send()
        .await
        .expect("call");
    assert_eq!(missing.status(), 400);
    let lines = captured.take();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains(TRACE) && lines[0].contains("tenant-required"),
        "{}",
        lines[0]
    );

    // Control: an accepted request logs nothing.
    let cx = Context::root().with_tenant(TenantId::new("acme").expect("valid"));
    let mut headers = http::HeaderMap::new();
    Propagator::new()
        .keyring(keyring())
        .inject(&cx, &mut headers);
    let ok = client
        .get(format!("http://{addr}/tenant"))
        .headers(headers)
        .send()
        .await
        .expect("call");
    assert_eq!(ok.status(), 200);
    assert_eq!(captured.take(), Vec::<String>::new());
}
