//! RFC 9457 problem responses for the errors a request can meet.

use ::axum_core::response::{IntoResponse, Response};
use ::http::{header, HeaderValue, StatusCode};

use crate::model::tenant::TenantRequired;
use crate::wire::carrier::CarrierError;

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

/// `400 Bad Request` with an `application/problem+json` body.
impl IntoResponse for TenantRequired {
    fn into_response(self) -> Response {
        problem(
            StatusCode::BAD_REQUEST,
            "tenant-required",
            "Tenant required",
            self.to_string(),
        )
    }
}

/// `400 Bad Request` with an `application/problem+json` body.
impl IntoResponse for CarrierError {
    fn into_response(self) -> Response {
        problem(
            StatusCode::BAD_REQUEST,
            "invalid-context",
            "Invalid context",
            self.to_string(),
        )
    }
}
