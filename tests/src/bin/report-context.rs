//! A child process for the process-boundary tests: prints, as JSON, the
//! context it received from its parent through the environment.
//!
//! With `REPORT_CONTEXT_SECRET` set (at least 32 bytes), the child trusts
//! only identity signed with that secret under key id `k1`, and prints
//! `{"error": …}` when the environment's identity is refused.

use context_runtime::{CarrierError, Keyring, Propagator};

fn main() {
    let cx = match std::env::var("REPORT_CONTEXT_SECRET") {
        Ok(secret) => {
            let keyring = Keyring::new("k1", secret.as_bytes()).expect("a valid key");
            let propagator = Propagator::new().keyring(keyring).source("process");
            match context_runtime::process::try_from_env_using(&propagator) {
                Ok(cx) => cx,
                Err(error) => {
                    let code = match &error {
                        CarrierError::UntrustedIdentity(e) => e.code().to_owned(),
                        CarrierError::TooLarge { .. } => "too_large".to_owned(),
                        CarrierError::Malformed { .. } => "malformed".to_owned(),
                        CarrierError::InvalidTenant { .. } => "invalid_tenant".to_owned(),
                        CarrierError::InvalidUser { .. } => "invalid_user".to_owned(),
                        other => format!("{other:?}"),
                    };
                    println!("{}", serde_json::json!({ "error": code }));
                    return;
                }
            }
        }
        Err(_) => context_runtime::process::from_env(),
    };
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
