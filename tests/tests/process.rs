//! The context crosses into a real child process through `TRACEPARENT`,
//! `TRACESTATE` and `BAGGAGE`, and the child reports what it saw.

use context_runtime::process::CommandExt as _;
use context_runtime::{Context, TenantId, UserRef};
use serde_json::Value;

const CHILD: &str = env!("CARGO_BIN_EXE_report-context");

fn parent_context() -> Context {
    let baggage = [("region", "eu west")].into_iter().collect();
    Context::builder()
        .trace_id("4bf92f3577b34da6a3ce929d0e0e4736".parse().expect("valid"))
        .tenant(TenantId::new("t1").expect("valid"))
        .user(UserRef::new("service", "billing").expect("valid"))
        .baggage(baggage)
        .build()
}

fn report(output: std::process::Output) -> Value {
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).expect("the child prints JSON")
}

#[test]
fn a_std_child_process_continues_the_trace_with_its_tenant() {
    let cx = parent_context();
    let seen = report(
        std::process::Command::new(CHILD)
            .inject(&cx)
            .output()
            .expect("run the child"),
    );
    assert_eq!(seen["trace_id"], cx.trace_id().to_string());
    assert_eq!(seen["tenant"], "t1");
    assert_eq!(seen["user"], "service:billing");
    assert_eq!(seen["source"], "process");
    assert_eq!(seen["baggage"], serde_json::json!(["region=eu west"]));
    // The child's parent id is new: the launch is its own span.
    assert!(seen["parent_span_id"].is_string());
}

#[tokio::test]
async fn a_tokio_child_process_gets_a_new_parent_id_per_launch() {
    let cx = parent_context();
    let mut parents = Vec::new();
    for _ in 0..2 {
        let seen = report(
            tokio::process::Command::new(CHILD)
                .inject(&cx)
                .output()
                .await
                .expect("run the child"),
        );
        assert_eq!(seen["trace_id"], cx.trace_id().to_string());
        parents.push(seen["parent_span_id"].clone());
    }
    assert_ne!(parents[0], parents[1]);
}

#[test]
fn without_a_context_the_child_starts_its_own_trace_and_has_no_tenant() {
    let seen = report(
        std::process::Command::new(CHILD)
            .env_remove("TRACEPARENT")
            .env_remove("BAGGAGE")
            .env("TRACEPARENT", "garbage")
            .output()
            .expect("run the child"),
    );
    assert_eq!(seen["tenant"], Value::Null);
    assert_eq!(seen["parent_span_id"], Value::Null);
    assert_eq!(seen["trace_id"].as_str().map(str::len), Some(32));
}

#[test]
fn stale_variables_inherited_by_the_parent_are_replaced() {
    // A context without baggage or tracestate removes inherited ones.
    let cx = Context::root();
    let seen = report(
        std::process::Command::new(CHILD)
            .env("BAGGAGE", "tenantId=stale")
            .env("TRACESTATE", "stale=1")
            .inject(&cx)
            .output()
            .expect("run the child"),
    );
    assert_eq!(seen["tenant"], Value::Null);
    assert_eq!(seen["tracestate"], Value::Null);
    assert_eq!(seen["trace_id"], cx.trace_id().to_string());
}
