//! RFC 9457 problem responses for the errors a request can meet.

use ::axum_core::response::{IntoResponse, Response};
use ::http::{header, HeaderValue, StatusCode};

use crate::integrations::tower::RefusedIdentity;
use crate::model::tenant::TenantRequired;
use crate::wire::carrier::CarrierError;
use crate::wire::signature::UntrustedIdentity;

/// Logs the developer's side of a problem response: one line with the
/// current trace id (when inside a scope) and the reason.
fn log_problem(kind: &str, reason: &dyn std::fmt::Display) {
    let trace_id = crate::scope::store::current().map(|cx| cx.trace_id().to_string());
    tracing::warn!(
        target: "context_runtime::http",
        trace_id = trace_id.as_deref().unwrap_or("-"),
        problem = kind,
        reason = %reason,
        "request rejected"
    );
}

fn problem(status: StatusCode, kind: &str, title: &str, detail: String) -> Response {
    let body = serde_json::json!({
        "type": format!("urn:context-runtime:problem:{kind}"),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// `400 Bad Request` with an `application/problem+json` body written for
/// the API client; the developer's hint goes to the log.
impl IntoResponse for TenantRequired {
    fn into_response(self) -> Response {
        log_problem("tenant-required", &self);
        problem(
            StatusCode::BAD_REQUEST,
            "tenant-required",
            "Tenant required",
            "This request must be made for a tenant.".into(),
        )
    }
}

/// An `application/problem+json` body written for the API client: `401
/// Unauthorized` for an identity that could not be verified (unsigned,
/// forged, expired, unknown key), `403 Forbidden` for one a resolver
/// refused, `400 Bad Request` for anything else; the reason goes to the log.
impl IntoResponse for CarrierError {
    fn into_response(self) -> Response {
        carrier_problem(&self, true)
    }
}

/// The problem response for `error`, logged when `log` (a refusal the
/// [`ContextLayer`](crate::tower::ContextLayer) made is logged there already).
fn carrier_problem(error: &CarrierError, log: bool) -> Response {
    let log_problem = |kind: &str, reason: &CarrierError| {
        if log {
            log_problem(kind, reason);
        }
    };
    {
        match error {
            CarrierError::UntrustedIdentity(UntrustedIdentity::Refused { .. }) => {
                log_problem("identity-refused", error);
                problem(
                    StatusCode::FORBIDDEN,
                    "identity-refused",
                    "Identity refused",
                    "The identity of this request is not accepted.".into(),
                )
            }
            CarrierError::UntrustedIdentity(_) => {
                log_problem("untrusted-identity", error);
                problem(
                    StatusCode::UNAUTHORIZED,
                    "untrusted-identity",
                    "Untrusted identity",
                    "The identity of this request could not be verified.".into(),
                )
            }
            CarrierError::InvalidTenant { .. } | CarrierError::InvalidUser { .. } => {
                log_problem("invalid-identity", error);
                problem(
                    StatusCode::BAD_REQUEST,
                    "invalid-identity",
                    "Invalid identity",
                    "This request names an invalid tenant or user.".into(),
                )
            }
            _ => {
                log_problem("invalid-context", error);
                problem(
                    StatusCode::BAD_REQUEST,
                    "invalid-context",
                    "Invalid context",
                    "The context this request carries is invalid.".into(),
                )
            }
        }
    }
}

/// As the [`CarrierError`] it holds (logged by the layer already).
impl IntoResponse for RefusedIdentity {
    fn into_response(self) -> Response {
        carrier_problem(&self.error, false)
    }
}
