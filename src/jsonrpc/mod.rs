//! JSON-RPC 2.0 in front of rmcp, for stdio and `/mcp` alike: `check` decides whether one
//! message is a JSON-RPC 2.0 message of a shape rmcp serves, or the error response it gets
//! instead (-32700 for bytes that are not JSON, -32600 for JSON that is not a request, -32602 for
//! a standard method's malformed `params`), always with an `id` member (`null` when the message
//! has no usable id). rmcp on its own drops unparsable lines, answers invalid ones without an `id`
//! and sends a `tools/call` whose params it cannot read to its custom-method fallback (-32601).
//! `LineTransport` (`lines.rs`) is the stdio framing: bounded lines in, whole lines out, our
//! errors and rmcp's messages through one writer.

mod lines;

pub use lines::LineTransport;

use rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonRpcMessage};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

/// The largest message: as large as an HTTP body may be by default (a full
/// `dashboard_record_usage` batch with room to spare).
pub const MAX_MESSAGE_BYTES: usize = crate::http::DEFAULT_MAX_BODY_BYTES;

pub const PARSE_ERROR: i32 = -32700;
pub const INVALID_REQUEST: i32 = -32600;
pub const INVALID_PARAMS: i32 = -32602;
/// Not in JSON-RPC; what MCP SDKs answer (with HTTP 404) for an `Mcp-Session-Id` they do not hold.
pub const SESSION_NOT_FOUND: i32 = -32001;

/// How much of a bad value an error message quotes.
const SHOWN_CHARS: usize = 60;
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The error response a message gets instead of reaching rmcp.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The message's id when it had a valid one, else `null`.
    pub id: Value,
    pub code: i32,
    pub message: String,
}

impl Rejection {
    pub fn new(id: Value, code: i32, message: impl Into<String>) -> Self {
        Rejection {
            id,
            code,
            message: message.into(),
        }
    }

    /// The JSON-RPC error response, `id` included even when `null`.
    pub fn to_json(&self) -> String {
        json!({
            "jsonrpc": "2.0",
            "id": self.id,
            "error": {"code": self.code, "message": self.message},
        })
        .to_string()
    }
}

/// The answer to a message over `limit` bytes (which was not read, so its id is unknown).
pub fn too_large(limit: usize) -> Rejection {
    Rejection::new(
        Value::Null,
        INVALID_REQUEST,
        format!("message too large: it exceeds the limit of {limit} bytes"),
    )
}

/// The message without a leading UTF-8 byte order mark (RFC 8259 §8.1 lets a parser skip it).
pub fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes)
}

/// Whether `bytes` (one whole message) is a JSON-RPC 2.0 message rmcp can take as it is, and if
/// so the message; otherwise the error response it gets. Answers to our own requests (a client's
/// `result` / `error`) pass when well formed.
pub fn check(bytes: &[u8]) -> Result<ClientJsonRpcMessage, Rejection> {
    let bytes = strip_bom(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        Rejection::new(
            Value::Null,
            PARSE_ERROR,
            format!(
                "parse error: the message is not UTF-8 (byte 0x{:02x} at offset {at}); a message is one JSON object in UTF-8",
                bytes[at]
            ),
        )
    })?;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        Rejection::new(
            Value::Null,
            PARSE_ERROR,
            format!(
                "parse error: {e}; the message {} is not JSON (send one JSON-RPC 2.0 object)",
                shown_text(text)
            ),
        )
    })?;
    check_value(value)
}

/// `check` of a message already parsed (one item of a legacy batch).
pub fn check_value(value: Value) -> Result<ClientJsonRpcMessage, Rejection> {
    let object = match value {
        Value::Object(object) => object,
        Value::Array(_) => {
            return Err(Rejection::new(
                Value::Null,
                INVALID_REQUEST,
                "batches are not supported: send one JSON-RPC message (an object) at a time",
            ))
        }
        other => {
            return Err(Rejection::new(
                Value::Null,
                INVALID_REQUEST,
                format!(
                    "invalid request: a JSON-RPC message is an object, not {} {}",
                    kind(&other),
                    shown(&other)
                ),
            ))
        }
    };
    let id = request_id(&object)?;
    let reject = |code, message: String| Err(Rejection::new(id.clone(), code, message));
    match object.get("jsonrpc") {
        Some(Value::String(v)) if v == "2.0" => {}
        Some(other) => {
            return reject(
                INVALID_REQUEST,
                format!(
                    "jsonrpc: {} is not supported; it must be \"2.0\"",
                    shown(other)
                ),
            )
        }
        None => {
            return reject(
                INVALID_REQUEST,
                "jsonrpc: missing; it must be \"2.0\"".into(),
            )
        }
    }
    let has = |key| object.contains_key(key);
    let method = match object.get("method") {
        Some(Value::String(m)) if !has("result") && !has("error") => Some(m.clone()),
        Some(Value::String(_)) => {
            return reject(
                INVALID_REQUEST,
                "invalid request: a message has either method (a request or notification) or result/error (a response), not both".into(),
            )
        }
        Some(other) => {
            return reject(
                INVALID_REQUEST,
                format!(
                    "method: {} is {}; it must be a string",
                    shown(other),
                    kind(other)
                ),
            )
        }
        None if has("result") == has("error") => {
            return reject(
                INVALID_REQUEST,
                "invalid request: a message needs a method (a request or notification), or an id with either result or error (a response)".into(),
            )
        }
        None => None,
    };
    let is_request = method.is_some() && has("id");
    if is_request && method.as_deref() == Some("tools/call") {
        if let Err(message) = check_tool_call(object.get("params")) {
            return reject(INVALID_PARAMS, message);
        }
    }
    let message = serde_json::from_value::<ClientJsonRpcMessage>(Value::Object(object.clone()))
        .or_else(|e| reject(INVALID_REQUEST, format!("invalid request: {e}")))?;
    // rmcp reads a standard method whose params do not fit as a custom request, which it then
    // answers as an unknown method.
    if let JsonRpcMessage::Request(request) = &message {
        if let ClientRequest::CustomRequest(custom) = &request.request {
            if let Some(error) = params_error(&custom.method, &object) {
                return reject(INVALID_PARAMS, format!("{error} ({})", custom.method));
            }
        }
    }
    Ok(message)
}

/// The request id, `null` when there is none; an id that is neither a string nor an integer is
/// an invalid request (answered with id `null`, since it cannot be echoed).
fn request_id(object: &Map<String, Value>) -> Result<Value, Rejection> {
    let Some(id) = object.get("id") else {
        return Ok(Value::Null);
    };
    let valid = match id {
        Value::String(_) => true,
        // What rmcp takes: an i64, or a float that is exactly one (1.0, 1e2).
        Value::Number(n) => {
            n.is_i64()
                || n.as_u64().is_some_and(|u| i64::try_from(u).is_ok())
                || n.as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0)
        }
        // An error about a message whose id the client could not read.
        Value::Null => object.contains_key("error") && !object.contains_key("method"),
        _ => false,
    };
    if valid {
        Ok(id.clone())
    } else {
        Err(Rejection::new(
            Value::Null,
            INVALID_REQUEST,
            format!(
                "id: {} is not a valid request id; an id is a string or an integer",
                shown(id)
            ),
        ))
    }
}

/// `tools/call` params: an object with a string `name` and optional object `arguments`.
fn check_tool_call(params: Option<&Value>) -> Result<(), String> {
    const SHAPE: &str = "{\"name\": TOOL, \"arguments\": {…}}";
    let params = match params {
        Some(Value::Object(params)) => params,
        None | Some(Value::Null) => {
            return Err(format!("params: missing; tools/call needs {SHAPE}"))
        }
        Some(other) => {
            return Err(format!(
                "params: {} is {}; tools/call needs {SHAPE}",
                shown(other),
                kind(other)
            ))
        }
    };
    match params.get("name") {
        Some(Value::String(_)) => {}
        None => {
            return Err("params.name: missing; it names the tool to call (see tools/list)".into())
        }
        Some(other) => {
            return Err(format!(
                "params.name: {} is {}; it must be a tool's name, a string (see tools/list)",
                shown(other),
                kind(other)
            ))
        }
    }
    match params.get("arguments") {
        None | Some(Value::Null) | Some(Value::Object(_)) => Ok(()),
        Some(other) => Err(format!(
            "params.arguments: {} is {}; it must be an object of the tool's arguments (or absent)",
            shown(other),
            kind(other)
        )),
    }
}

/// Why rmcp's own type for a standard client request does not take this one's params, if it is
/// a standard request we serve. (`resources/subscribe` is deprecated in the 2026 revision; the
/// 2025-era sessions still use it.)
#[allow(deprecated)]
fn params_error(method: &str, object: &Map<String, Value>) -> Option<String> {
    use rmcp::model::{
        CallToolRequest, CompleteRequest, GetPromptRequest, InitializeRequest, ListPromptsRequest,
        ListResourceTemplatesRequest, ListResourcesRequest, ListToolsRequest, ReadResourceRequest,
        SubscribeRequest, SubscriptionsListenRequest, UnsubscribeRequest,
    };
    fn error<T: DeserializeOwned>(request: &Value) -> Option<String> {
        serde_path_to_error::deserialize::<_, T>(request)
            .err()
            .map(|e| e.to_string())
    }
    let mut request = Map::new();
    request.insert("method".into(), method.into());
    if let Some(params) = object.get("params") {
        request.insert("params".into(), params.clone());
    }
    let request = Value::Object(request);
    match method {
        "initialize" => error::<InitializeRequest>(&request),
        "tools/list" => error::<ListToolsRequest>(&request),
        "tools/call" => error::<CallToolRequest>(&request),
        "resources/list" => error::<ListResourcesRequest>(&request),
        "resources/templates/list" => error::<ListResourceTemplatesRequest>(&request),
        "resources/read" => error::<ReadResourceRequest>(&request),
        "resources/subscribe" => error::<SubscribeRequest>(&request),
        "resources/unsubscribe" => error::<UnsubscribeRequest>(&request),
        "subscriptions/listen" => error::<SubscriptionsListenRequest>(&request),
        "prompts/list" => error::<ListPromptsRequest>(&request),
        "prompts/get" => error::<GetPromptRequest>(&request),
        "completion/complete" => error::<CompleteRequest>(&request),
        _ => None,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON value as the client wrote it, cut to a bounded prefix.
fn shown(v: &Value) -> String {
    cut(&v.to_string())
}

/// Raw text, quoted, cut to a bounded prefix.
fn shown_text(text: &str) -> String {
    let head = crate::input::head(text, SHOWN_CHARS);
    let quoted = format!("{head:?}");
    if head.len() < text.len() {
        format!("{quoted}…")
    } else {
        quoted
    }
}

fn cut(s: &str) -> String {
    crate::input::cut_to(s, SHOWN_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(message: &str) -> Result<(), (Value, i32, String)> {
        check(message.as_bytes())
            .map(|_| ())
            .map_err(|r| (r.id, r.code, r.message))
    }

    #[test]
    fn ids_are_what_rmcp_takes_and_a_bad_id_is_answered_with_null() {
        for id in ["1", "-3", "\"a\"", "1.0", "1e2", "9223372036854775807"] {
            let m = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
            assert_eq!(verdict(&m), Ok(()), "{m}");
        }
        for id in ["1.5", "9223372036854775808", "true", "null", "[1]", "{}"] {
            let m = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
            let (got, code, message) = verdict(&m).unwrap_err();
            assert_eq!((got, code), (Value::Null, INVALID_REQUEST), "{m}");
            assert!(message.starts_with(&format!("id: {id} ")), "{message}");
        }
    }

    #[test]
    fn envelope_errors_echo_a_valid_id() {
        let cases = [
            (r#"{"id":3,"method":"ping"}"#, "jsonrpc: missing"),
            (
                r#"{"jsonrpc":2,"id":3,"method":"ping"}"#,
                "jsonrpc: 2 is not supported",
            ),
            (
                r#"{"jsonrpc":"2.0","id":3,"method":5}"#,
                "method: 5 is a number",
            ),
            (
                r#"{"jsonrpc":"2.0","id":3,"method":"ping","result":{}}"#,
                "not both",
            ),
            (r#"{"jsonrpc":"2.0","id":3}"#, "needs a method"),
            (
                r#"{"jsonrpc":"2.0","id":3,"result":{},"error":{}}"#,
                "needs a method",
            ),
        ];
        for (m, words) in cases {
            let (id, code, message) = verdict(m).unwrap_err();
            assert_eq!((id, code), (json!(3), INVALID_REQUEST), "{m}");
            assert!(message.contains(words), "{m}: {message}");
        }
        let (id, code, _) = verdict("42").unwrap_err();
        assert_eq!((id, code), (Value::Null, INVALID_REQUEST));
        let (id, code, _) = verdict("[]").unwrap_err();
        assert_eq!((id, code), (Value::Null, INVALID_REQUEST));
    }

    #[test]
    fn notifications_responses_and_a_bom_pass_to_rmcp() {
        for m in [
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/whatever","params":{"x":1}}"#,
            r#"{"jsonrpc":"2.0","id":9,"method":"no/such/method"}"#,
            r#"{"jsonrpc":"2.0","id":4,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"bad"}}"#,
            "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{}}}"#,
        ] {
            assert_eq!(verdict(m), Ok(()), "{m}");
        }
    }

    #[test]
    fn tool_call_params_name_the_field_and_quote_a_bounded_prefix() {
        let call = |params: &str| {
            verdict(&format!(
                r#"{{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{params}}}"#
            ))
            .unwrap_err()
        };
        let (id, code, message) = call(r#"{"arguments":{}}"#);
        assert_eq!((id, code), (json!("c"), INVALID_PARAMS));
        assert_eq!(
            message,
            "params.name: missing; it names the tool to call (see tools/list)"
        );
        let (_, _, message) = call(r#"{"name":7}"#);
        assert!(
            message.starts_with("params.name: 7 is a number;"),
            "{message}"
        );
        let (_, _, message) = call("[1]");
        assert!(message.starts_with("params: [1] is an array;"), "{message}");
        let long = "z".repeat(10_000);
        let (_, code, message) = call(&format!(r#"{{"name":"x","arguments":"{long}"}}"#));
        assert_eq!(code, INVALID_PARAMS);
        let shown = format!("\"{}…", "z".repeat(SHOWN_CHARS - 1));
        assert!(
            message.starts_with(&format!("params.arguments: {shown} is a string;")),
            "{message}"
        );
        assert!(message.len() < 200, "{message}");
    }

    #[test]
    fn other_standard_methods_with_unreadable_params_are_32602() {
        let (id, code, message) =
            verdict(r#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":5}}"#)
                .unwrap_err();
        assert_eq!((id, code), (json!(2), INVALID_PARAMS));
        assert!(message.ends_with("(resources/read)"), "{message}");
    }

    #[test]
    fn parse_errors_quote_a_bounded_prefix() {
        let long = format!("{{{}", "q".repeat(10_000));
        let (id, code, message) = verdict(&long).unwrap_err();
        assert_eq!((id, code), (Value::Null, PARSE_ERROR));
        assert!(message.len() < 200, "{message}");
        let (_, code, message) = check(b"{\"a\":\"\xc3\"}")
            .map(|_| ())
            .map_err(|r| (r.id, r.code, r.message))
            .unwrap_err();
        assert_eq!(code, PARSE_ERROR);
        assert!(message.contains("byte 0xc3 at offset 6"), "{message}");
    }
}
