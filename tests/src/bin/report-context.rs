//! A child process for the process-boundary tests: prints, as JSON, the
//! context it received from its parent through the environment.

fn main() {
    let cx = context_runtime::process::from_env();
    let report = serde_json::json!({
        "trace_id": cx.trace_id().to_string(),
        "parent_span_id": cx.parent_span_id().map(|s| s.to_string()),
        "flags": cx.trace_flags().bits(),
        "tenant": cx.tenant().map(|t| t.to_string()),
        "user": cx.user().map(|u| u.to_string()),
        "source": cx.source(),
        "baggage": cx.baggage().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "tracestate": cx.trace_state().map(|s| s.to_string()),
    });
    println!("{report}");
}
