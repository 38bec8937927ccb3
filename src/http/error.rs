//! The REST error answer (SPEC §4): `{ "error": { "code", "message", "field" } }` with the
//! matching status. Bad input is a 4xx naming the field; our own failures are a 500 whose detail
//! goes to the log, not to the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::catalog::CallError;

/// An error answer of the HTTP API.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// 400: the caller sent something we cannot accept in `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_input",
            message: format!("{field}: {message}"),
            field: Some(field),
        }
    }

    pub fn internal() -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the details",
        )
    }

    pub fn writes_disabled(tool: &str) -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "writes_disabled",
            format!("{tool} changes stored data and is available only when the server runs with --allow-writes"),
        )
    }

    /// The answer for a catalog call that failed.
    pub fn from_call(e: CallError) -> Self {
        match e {
            CallError::Tool(e) if e.is_invalid_input() => ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_input",
                field: e.field().map(str::to_owned),
                message: e.to_string(),
            },
            CallError::Tool(e) => {
                tracing::error!(error = %e, "tool failed");
                ApiError::internal()
            }
            CallError::WritesDisabled(tool) => ApiError::writes_disabled(&tool),
            CallError::UnknownTool(..) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": { "code": self.code, "message": self.message, "field": self.field }
        });
        let mut response = json_response(self.status, body.to_string());
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"dashboard-mcp\""),
            );
        }
        response
    }
}

/// A response carrying `body`, already serialized JSON, byte for byte.
pub(crate) fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}
