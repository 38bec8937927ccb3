//! The REST error answer (SPEC §4): `{ "error": { "code", "message", "field" } }` with the
//! matching status. Bad input is a 4xx naming the field; our own failures are a 500 whose detail
//! goes to the log, not to the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::catalog::CallError;

/// The most of a caller's value an error message quotes.
pub(crate) const QUOTE_BYTES: usize = 200;
/// The longest `message` an error answer carries, whatever built it (a last line of defence: a
/// message quoting a huge input is cut here).
pub(crate) const MAX_MESSAGE_BYTES: usize = 4096;
/// The longest `field` an error answer carries (a parameter name is the caller's text too).
pub(crate) const MAX_FIELD_BYTES: usize = 256;

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
            CallError::Tool(crate::error::Error::Cancelled) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cancelled",
                "the request was given up before it was answered",
            ),
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

impl ApiError {
    /// The JSON body of this answer, `message` and `field` cut to their limits.
    pub fn body(&self) -> String {
        let message = cut(&self.message, MAX_MESSAGE_BYTES);
        let field = self.field.as_deref().map(|f| cut(f, MAX_FIELD_BYTES));
        json!({ "error": { "code": self.code, "message": message, "field": field } }).to_string()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = json_response(self.status, self.body());
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"dashboard-mcp\""),
            );
        }
        response
    }
}

/// `s` quoted (JSON-style escapes, so control characters show) if it is at most [`QUOTE_BYTES`]
/// long; otherwise its first [`QUOTE_BYTES`] quoted, an ellipsis and its length in bytes.
pub(crate) fn quote(s: &str) -> String {
    if s.len() <= QUOTE_BYTES {
        format!("{s:?}")
    } else {
        format!(
            "{:?}… ({} bytes in all)",
            crate::input::head_bytes(s, QUOTE_BYTES),
            s.len()
        )
    }
}

/// `s` if it is at most `max` bytes long; otherwise its longest prefix of at most `max` bytes
/// that ends on a character, then an ellipsis and the length that was cut.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        s.to_owned()
    } else {
        format!(
            "{}… (cut at {max} of {} bytes)",
            crate::input::head_bytes(s, max),
            s.len()
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_quoted_by_a_bounded_prefix() {
        assert_eq!(quote("day"), "\"day\"");
        assert_eq!(quote("a\u{0}b"), "\"a\\0b\"");
        let long = "é".repeat(150); // 300 bytes: the prefix stops on a character
        assert_eq!(
            quote(&long),
            format!("\"{}\"… (300 bytes in all)", "é".repeat(100))
        );
        let odd = format!("x{}", "é".repeat(150)); // 301 bytes: byte 200 is inside a character
        assert_eq!(
            quote(&odd),
            format!("\"x{}\"… (301 bytes in all)", "é".repeat(99))
        );
    }

    #[test]
    fn messages_and_fields_are_capped_in_every_answer() {
        let e = ApiError::invalid("f".repeat(1000), "m".repeat(1_000_000));
        let body: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        let field = body["error"]["field"].as_str().unwrap();
        // "fff…: mmm…" is 1000 + 2 + 1,000,000 bytes.
        assert_eq!(
            message,
            format!(
                "{}: {}… (cut at 4096 of 1001002 bytes)",
                "f".repeat(1000),
                "m".repeat(4096 - 1002)
            )
        );
        assert_eq!(
            field,
            format!("{}… (cut at 256 of 1000 bytes)", "f".repeat(256))
        );
    }
}
