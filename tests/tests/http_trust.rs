//! The HTTP layer with the trust model, over real HTTP on 127.0.0.1: a hop
//! with a keyring takes signed identity only; an unsigned, forged or edited
//! one is a `401` problem written for the API client, an invalid one a
//! `400`, one a resolver refuses a `403`; the handler never runs for them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use context_runtime::axum::Tenant;
use context_runtime::tower::ContextLayer;
use context_runtime::{Context, Identity, Keyring, Propagator, TenantId, UntrustedIdentity};
use http::HeaderMap;
use serde_json::Value;

async fn serve(propagator: Propagator, ran: Arc<AtomicUsize>) -> SocketAddr {
    let app = Router::new()
        .route(
            "/tenant",
            get(move |Tenant(tenant): Tenant| {
                let ran = ran.clone();
                async move {
                    ran.fetch_add(1, Ordering::SeqCst);
                    format!("hello {tenant}")
                }
            }),
        )
        .layer(ContextLayer::new(propagator));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral port on loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("server");
    });
    addr
}

async fn call(addr: SocketAddr, headers: HeaderMap) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/tenant"))
        .headers(headers)
        .send()
        .await
        .expect("call");
    let status = response.status().as_u16();
    if status != 200 {
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    (status, response.text().await.expect("body"))
}

fn keyring() -> Keyring {
    Keyring::new("k1", b"http-trust-test-secret-of-32-byt").expect("a key")
}

fn signed_headers(tenant: &str) -> HeaderMap {
    let cx = Context::root().with_tenant(TenantId::new(tenant).expect("valid"));
    let mut headers = HeaderMap::new();
    Propagator::new()
        .keyring(keyring())
        .inject(&cx, &mut headers);
    headers
}

fn baggage(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("baggage", value.parse().expect("a header value"));
    headers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hop_with_a_keyring_takes_signed_identity_only() {
    let ran = Arc::new(AtomicUsize::new(0));
    let addr = serve(Propagator::new().keyring(keyring()), ran.clone()).await;

    assert_eq!(
        call(addr, signed_headers("acme")).await,
        (200, "hello acme".into())
    );
    assert_eq!(ran.load(Ordering::SeqCst), 1);

    let mut edited = signed_headers("acme");
    let forged = edited["baggage"]
        .to_str()
        .expect("ascii")
        .replace("tenantId=acme", "tenantId=victim");
    edited.insert("baggage", forged.parse().expect("a header value"));
    for headers in [baggage("tenantId=victim"), edited] {
        let (status, body) = call(addr, headers).await;
        assert_eq!(status, 401, "{body}");
        let problem: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(problem["title"], "Untrusted identity");
        // Written for the API client: no developer hint, no key ids.
        let detail = problem["detail"].as_str().expect("a detail");
        assert!(
            !detail.contains("keyring") && !detail.contains("sign"),
            "{detail}"
        );
    }
    assert_eq!(
        ran.load(Ordering::SeqCst),
        1,
        "the handler never ran for them"
    );

    // No identity at all is still "tenant required", in the client's words.
    let (status, body) = call(addr, HeaderMap::new()).await;
    assert_eq!(status, 400);
    assert!(!body.contains("#[carrier"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_tenant_is_a_400_and_a_refusing_resolver_a_403() {
    let ran = Arc::new(AtomicUsize::new(0));
    let trusting = serve(Propagator::new().trust_baggage_identity(), ran.clone()).await;
    let (status, body) = call(trusting, baggage("tenantId=a%20b")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Invalid identity"), "{body}");

    let resolver =
        Propagator::new().try_resolve_identity(|headers: &HeaderMap, _: &http::Extensions| {
            match headers
                .get("x-tenant-id")
                .map(|v| v.to_str().map(TenantId::new))
            {
                None => Ok(Identity::default()),
                Some(Ok(Ok(tenant))) => Ok(Identity {
                    tenant: Some(tenant),
                    user: None,
                }),
                Some(_) => Err(UntrustedIdentity::Refused {
                    reason: "an invalid `x-tenant-id`".into(),
                }),
            }
        });
    let resolving = serve(resolver, ran.clone()).await;
    let mut headers = HeaderMap::new();
    headers.insert("x-tenant-id", "t1".parse().expect("a header value"));
    assert_eq!(call(resolving, headers).await, (200, "hello t1".into()));
    let mut headers = HeaderMap::new();
    headers.insert("x-tenant-id", "not valid".parse().expect("a header value"));
    let (status, body) = call(resolving, headers).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}
