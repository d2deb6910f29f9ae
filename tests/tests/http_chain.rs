//! A → B → C over real HTTP on 127.0.0.1: one trace, a new parent id per
//! hop, the tenant only where it is trusted, and a 4xx without one.

use std::net::SocketAddr;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use context_runtime::axum::{CurrentContext, Tenant};
use context_runtime::reqwest::RequestBuilderExt as _;
use context_runtime::tower::ContextLayer;
use context_runtime::{requires_tenant, with_context, TenantId, TenantRequired, UserRef};
use context_runtime::{Identity, Outbound, Propagator};
use http::HeaderMap;
use serde_json::{json, Value};

/// What a service saw of its request's context.
fn seen(cx: &context_runtime::Context, headers: &HeaderMap) -> Value {
    json!({
        "trace_id": cx.trace_id().to_string(),
        "parent_span_id": cx.parent_span_id().map(|s| s.to_string()),
        "tenant": cx.tenant().map(|t| t.to_string()),
        "user": cx.user().map(|u| u.to_string()),
        "baggage": cx.baggage().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "raw_baggage": headers.get("baggage").and_then(|v| v.to_str().ok()),
        "tracestate": cx.trace_state().map(|s| s.to_string()),
        "source": cx.source(),
    })
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral port on loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("server");
    });
    addr
}

#[derive(Clone)]
struct Next {
    client: reqwest::Client,
    url: String,
    third_party: Option<String>,
}

/// The last internal hop, and a third party: they report what they saw.
async fn report(CurrentContext(cx): CurrentContext, headers: HeaderMap) -> Json<Value> {
    Json(seen(&cx, &headers))
}

/// A middle hop: reports what it saw, and what the next hop saw.
async fn forward(
    State(next): State<Next>,
    CurrentContext(cx): CurrentContext,
    headers: HeaderMap,
) -> Json<Value> {
    let downstream: Value = next
        .client
        .get(&next.url)
        .inject_current()
        .send()
        .await
        .expect("call the next hop")
        .json()
        .await
        .expect("json");
    let third_party = match &next.third_party {
        Some(url) => {
            // To a third party: the trace travels, the identity does not.
            let mut outgoing = HeaderMap::new();
            Propagator::new()
                .outbound(Outbound::TraceOnly)
                .inject(&cx, &mut outgoing);
            let response = next
                .client
                .get(url)
                .headers(outgoing)
                .send()
                .await
                .expect("call the third party");
            Some(response.json::<Value>().await.expect("json"))
        }
        None => None,
    };
    Json(json!({ "seen": seen(&cx, &headers), "next": downstream, "third_party": third_party }))
}

/// Verified claims, as an auth middleware would leave them in the request.
#[derive(Clone)]
struct Claims {
    tenant: TenantId,
    user: UserRef,
}

/// The edge: trusts no header for identity, only the verified claims.
fn edge_propagator() -> Propagator {
    Propagator::new().resolve_identity(|_: &HeaderMap, ext: &http::Extensions| {
        ext.get::<Claims>()
            .map(|c| Identity {
                tenant: Some(c.tenant.clone()),
                user: Some(c.user.clone()),
            })
            .unwrap_or_default()
    })
}

/// A stand-in for an auth middleware: `authorization: Bearer <tenant>` is
/// "verified" into claims.
async fn fake_auth(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let tenant = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| TenantId::new(t).ok());
    if let Some(tenant) = tenant {
        request.extensions_mut().insert(Claims {
            tenant,
            user: UserRef::user(42).expect("valid"),
        });
    }
    next.run(request).await
}

async fn tenant_only(Tenant(tenant): Tenant) -> String {
    format!("hello {tenant}")
}

struct Chain {
    a: SocketAddr,
}

async fn start_chain() -> Chain {
    let client = reqwest::Client::new();
    let internal = || ContextLayer::new(Propagator::new().trust_baggage_identity());
    let third = serve(
        Router::new()
            .route("/", get(report))
            .layer(ContextLayer::default()),
    )
    .await;
    let c = serve(Router::new().route("/", get(report)).layer(internal())).await;
    let b = serve(
        Router::new()
            .route("/", get(forward))
            .with_state(Next {
                client: client.clone(),
                url: format!("http://{c}/"),
                third_party: Some(format!("http://{third}/")),
            })
            .layer(internal()),
    )
    .await;
    let a = serve(
        Router::new()
            .route("/", get(forward))
            .route("/tenant", get(tenant_only))
            .with_state(Next {
                client,
                url: format!("http://{b}/"),
                third_party: None,
            })
            .layer(ContextLayer::new(edge_propagator()))
            .layer(axum::middleware::from_fn(fake_auth)),
    )
    .await;
    Chain { a }
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_across_three_services_with_a_new_parent_per_hop() {
    let chain = start_chain().await;
    let response: Value = reqwest::Client::new()
        .get(format!("http://{}/", chain.a))
        .header("traceparent", format!("00-{TRACE}-{CLIENT_SPAN}-01"))
        .header("tracestate", "vendor=abc")
        // Identity in baggage from outside the system is not trusted at the edge.
        .header("baggage", "tenantId=evil,userRef=user:1,region=eu")
        .header("authorization", "Bearer t1")
        .send()
        .await
        .expect("call A")
        .json()
        .await
        .expect("json");

    let a = &response["seen"];
    let b = &response["next"]["seen"];
    let c = &response["next"]["next"];
    let third = &response["next"]["third_party"];

    for (hop, seen) in [("A", a), ("B", b), ("C", c), ("third party", third)] {
        assert_eq!(
            seen["trace_id"], TRACE,
            "{hop} continues the trace: {response:#}"
        );
    }
    assert_eq!(a["parent_span_id"], CLIENT_SPAN);
    let parents = [
        &a["parent_span_id"],
        &b["parent_span_id"],
        &c["parent_span_id"],
    ];
    assert!(
        parents[0] != parents[1] && parents[1] != parents[2] && parents[0] != parents[2],
        "each hop has a new parent id: {parents:?}"
    );
    // The edge took the tenant from verified claims, not from the header.
    assert_eq!(a["tenant"], "t1");
    assert_eq!(a["user"], "user:42");
    // Internal hops trust the identity the previous hop sent.
    assert_eq!(b["tenant"], "t1");
    assert_eq!(c["tenant"], "t1");
    assert_eq!(c["user"], "user:42");
    // Other baggage is forwarded unchanged; tracestate rides along.
    for seen in [a, b, c] {
        assert_eq!(seen["baggage"], json!(["region=eu"]), "{seen:#}");
        assert_eq!(seen["tracestate"], "vendor=abc");
    }
    // The third party gets the trace, and neither tenant nor user.
    let raw = third["raw_baggage"].as_str().unwrap_or_default();
    assert!(
        !raw.contains("tenantId") && !raw.contains("userRef"),
        "{raw}"
    );
    assert!(raw.contains("region=eu"), "{raw}");
    assert_eq!(third["tenant"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_identity_is_ignored_and_a_missing_tenant_is_a_400_problem() {
    let chain = start_chain().await;
    let response = reqwest::Client::new()
        .get(format!("http://{}/tenant", chain.a))
        .header("baggage", "tenantId=evil")
        .send()
        .await
        .expect("call A");
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.expect("json");
    assert_eq!(problem["status"], 400);
    assert_eq!(problem["title"], "Tenant required");

    let ok = reqwest::Client::new()
        .get(format!("http://{}/tenant", chain.a))
        .header("authorization", "Bearer t2")
        .send()
        .await
        .expect("call A");
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.expect("body"), "hello t2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_or_invalid_traceparents_start_a_new_trace() {
    let chain = start_chain().await;
    let client = reqwest::Client::new();
    let valid = format!("00-{TRACE}-{CLIENT_SPAN}-01");
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![
            ("traceparent", valid.clone()),
            ("traceparent", valid.clone()),
        ],
        vec![(
            "traceparent",
            format!("00-{}-{CLIENT_SPAN}-01", TRACE.to_uppercase()),
        )],
        vec![("traceparent", format!("ff-{TRACE}-{CLIENT_SPAN}-01"))],
        vec![("traceparent", format!("00-{TRACE}-0000000000000000-01"))],
    ];
    for headers in cases {
        let mut request = client.get(format!("http://{}/", chain.a));
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        // tracestate without a valid traceparent is dropped too.
        let response: Value = request
            .header("tracestate", "vendor=abc")
            .send()
            .await
            .expect("call A")
            .json()
            .await
            .expect("json");
        let a = &response["seen"];
        assert_ne!(a["trace_id"], TRACE, "{headers:?}");
        assert_eq!(a["parent_span_id"], Value::Null, "{headers:?}");
        assert_eq!(a["tracestate"], Value::Null, "{headers:?}");
        // The new trace still crosses the chain.
        assert_eq!(response["next"]["seen"]["trace_id"], a["trace_id"]);
    }
}

#[with_context(from = "headers")]
async fn annotated_handler(headers: HeaderMap) -> String {
    let _ = &headers;
    context_runtime::trace_id()
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[requires_tenant]
async fn tenant_handler() -> Result<String, TenantRequired> {
    Ok(format!("tenant {}", context_runtime::tenant()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_macros_work_on_axum_handlers() {
    let app = Router::new()
        .route("/trace", get(annotated_handler))
        .route("/tenant", get(tenant_handler))
        .layer(ContextLayer::new(
            Propagator::new().trust_baggage_identity(),
        ));
    let addr = serve(app).await;
    let client = reqwest::Client::new();
    let trace = client
        .get(format!("http://{addr}/trace"))
        .header("traceparent", format!("00-{TRACE}-{CLIENT_SPAN}-01"))
        .send()
        .await
        .expect("call")
        .text()
        .await
        .expect("body");
    assert_eq!(trace, TRACE);

    let refused = client
        .get(format!("http://{addr}/tenant"))
        .send()
        .await
        .expect("call");
    assert_eq!(refused.status(), 400);
    let accepted = client
        .get(format!("http://{addr}/tenant"))
        .header("baggage", "tenantId=t9")
        .send()
        .await
        .expect("call");
    assert_eq!(accepted.text().await.expect("body"), "tenant t9");
}
