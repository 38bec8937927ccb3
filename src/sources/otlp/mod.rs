//! OpenTelemetry traces in: an OTLP/HTTP trace export (`ExportTraceServiceRequest`) as binary
//! protobuf or OTLP/JSON, gzip or not, read into this project's ingest records, one per span that
//! carries GenAI semantic-convention attributes. Pure: bytes, content type and content encoding
//! in; records and counts out. No HTTP here (`http/otlp.rs` is the route) and no store (the route
//! hands the records to `ingest::import_values_with`).
//!
//! The message types are the OpenTelemetry project's own (`opentelemetry-proto`, prost for the
//! binary encoding, its serde mapping for OTLP/JSON). That mapping follows the OTLP/JSON rules
//! the specification adds to proto3's JSON mapping: `traceId`/`spanId` as case-insensitive hex,
//! lowerCamelCase keys, enums as integers, 64-bit integers as strings or numbers, unknown fields
//! ignored; the tests below hold it to them. Answers are encoded here too, in the request's
//! encoding: the `ExportTraceServiceResponse` (with `partial_success` only when spans were
//! rejected) and, for a failure, a `google.rpc.Status`, which the crate does not ship.
//!
//! A span is a GenAI span when it has `gen_ai.operation.name`, `gen_ai.request.model`,
//! `gen_ai.response.model` or any `gen_ai.usage.*` attribute; every other span is ignored and
//! counted, not rejected. See [`span_record`] for the mapping.

use std::io::Read;

use flate2::read::MultiGzDecoder;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{status, Span};
use prost::Message;
use serde_json::{json, Map, Value};

use crate::input::int_of;
use crate::time;

/// The GenAI semantic-convention attributes read (semantic-conventions `gen-ai` registry).
pub mod attr {
    pub const OPERATION_NAME: &str = "gen_ai.operation.name";
    pub const REQUEST_MODEL: &str = "gen_ai.request.model";
    pub const RESPONSE_MODEL: &str = "gen_ai.response.model";
    pub const AGENT_NAME: &str = "gen_ai.agent.name";
    pub const CONVERSATION_ID: &str = "gen_ai.conversation.id";
    pub const PROVIDER_NAME: &str = "gen_ai.provider.name";
    /// Deprecated for `gen_ai.provider.name`; still sent by older instrumentations.
    pub const SYSTEM: &str = "gen_ai.system";
    pub const USAGE_PREFIX: &str = "gen_ai.usage.";
    /// Includes the cache tokens ("SHOULD include all types of input tokens, including cached").
    pub const INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
    pub const OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
    /// Deprecated names of the two above.
    pub const PROMPT_TOKENS: &str = "gen_ai.usage.prompt_tokens";
    pub const COMPLETION_TOKENS: &str = "gen_ai.usage.completion_tokens";
    pub const CACHE_READ_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
    pub const CACHE_CREATION_TOKENS: &str = "gen_ai.usage.cache_creation.input_tokens";
    /// Included in the output tokens; kept in metadata only.
    pub const REASONING_TOKENS: &str = "gen_ai.usage.reasoning.output_tokens";
    pub const ERROR_TYPE: &str = "error.type";
    /// A resource attribute.
    pub const SERVICE_NAME: &str = "service.name";
}

/// The agent of a span that names none and whose resource has no `service.name` (the SDKs'
/// own default service name).
pub const UNKNOWN_SERVICE: &str = "unknown_service";
/// The model of a span that names none.
pub const UNKNOWN_MODEL: &str = "unknown";
/// Reasons of rejected spans kept (all are counted): the answer's `error_message` stays short.
pub const MAX_REASONS: usize = 5;

/// The two encodings OTLP/HTTP defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` names (parameters and case ignored), or a 415 problem.
    pub fn of_content_type(content_type: Option<&str>) -> Result<Encoding, Problem> {
        let Some(ct) = content_type else {
            return Err(Problem::UnsupportedMediaType(
                "no Content-Type; send application/x-protobuf or application/json (OTLP/HTTP)"
                    .into(),
            ));
        };
        let media = ct.split(';').next().unwrap_or_default().trim();
        if media.eq_ignore_ascii_case("application/x-protobuf")
            || media.eq_ignore_ascii_case("application/protobuf")
        {
            Ok(Encoding::Protobuf)
        } else if media.eq_ignore_ascii_case("application/json") {
            Ok(Encoding::Json)
        } else {
            Err(Problem::UnsupportedMediaType(format!(
                "Content-Type {:?} is not supported; send application/x-protobuf or application/json (OTLP/HTTP)",
                crate::input::head_bytes(ct, 100)
            )))
        }
    }

    /// The `Content-Type` of an answer in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Why a request body cannot be read. Each is the client's fault and final (not retryable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// 415: a content type or content encoding this receiver does not speak.
    UnsupportedMediaType(String),
    /// 413: the body, or what it decompresses to, is over the cap.
    TooLarge(String),
    /// 400: not a valid (gzip-compressed) `ExportTraceServiceRequest` in the encoding named.
    Malformed(String),
}

impl Problem {
    pub fn message(&self) -> &str {
        match self {
            Problem::UnsupportedMediaType(m) | Problem::TooLarge(m) | Problem::Malformed(m) => m,
        }
    }

    /// The `google.rpc.Code` said in the failure's `Status` (OTLP clients may only log it).
    pub fn rpc_code(&self) -> i32 {
        match self {
            Problem::UnsupportedMediaType(_) | Problem::Malformed(_) => RPC_INVALID_ARGUMENT,
            Problem::TooLarge(_) => RPC_RESOURCE_EXHAUSTED,
        }
    }
}

/// `google.rpc.Code` values used in failure answers.
pub const RPC_INVALID_ARGUMENT: i32 = 3;
pub const RPC_PERMISSION_DENIED: i32 = 7;
pub const RPC_RESOURCE_EXHAUSTED: i32 = 8;
pub const RPC_INTERNAL: i32 = 13;
pub const RPC_UNAVAILABLE: i32 = 14;

/// A decoded export: the records of its GenAI spans and what became of the other spans.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decoded {
    /// Spans in the request.
    pub spans: u64,
    /// Spans without GenAI attributes: ignored, not rejected.
    pub ignored: u64,
    /// One ingest record per GenAI span that could be mapped.
    pub records: Vec<Value>,
    /// `<traceIdHex>/<spanIdHex>` of each record, in order (to name a span the ingest rejects).
    pub record_spans: Vec<String>,
    /// GenAI spans that could not be made into a record (bad ids, no start time).
    pub rejected: u64,
    /// The first [`MAX_REASONS`] reasons, each naming its span.
    pub reasons: Vec<String>,
}

impl Decoded {
    fn reject(&mut self, span: String, reason: String) {
        self.rejected += 1;
        if self.reasons.len() < MAX_REASONS {
            self.reasons.push(format!("span {span}: {reason}"));
        }
    }
}

/// Read an export: `content_type` picks the encoding, `content_encoding` may be `gzip` (or
/// `identity`), and the body (after decompression) may be at most `max_bytes` long. Decompression
/// stops at the cap, so a gzip bomb costs at most `max_bytes` of memory. The decoded message is
/// bounded by the cap too, though larger than it: a body made only of empty attributes (2 bytes
/// each in protobuf, a 64-byte `KeyValue` each decoded) takes 32 times its size, up to twice that
/// while its list grows.
pub fn decode(
    body: &[u8],
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    max_bytes: usize,
) -> Result<(Encoding, Decoded), Problem> {
    let encoding = Encoding::of_content_type(content_type)?;
    let plain = decompress(body, content_encoding, max_bytes)?;
    let request = parse_request(&plain, encoding)?;
    drop(plain);
    Ok((encoding, records_of(&request)))
}

/// The body without its content coding, at most `max_bytes` long.
pub fn decompress<'a>(
    body: &'a [u8],
    content_encoding: Option<&str>,
    max_bytes: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, Problem> {
    let too_large = || {
        Problem::TooLarge(format!(
            "the request body decompresses to more than {max_bytes} bytes, the most this server accepts; send fewer spans per export"
        ))
    };
    let coding = content_encoding.map(str::trim).unwrap_or_default();
    if coding.is_empty() || coding.eq_ignore_ascii_case("identity") {
        if body.len() > max_bytes {
            return Err(too_large());
        }
        return Ok(std::borrow::Cow::Borrowed(body));
    }
    if !(coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip")) {
        return Err(Problem::UnsupportedMediaType(format!(
            "Content-Encoding {:?} is not supported; send gzip or an uncompressed body",
            crate::input::head_bytes(coding, 100)
        )));
    }
    let mut out = Vec::new();
    let limit = u64::try_from(max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    MultiGzDecoder::new(body)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| {
            Problem::Malformed(format!(
                "the body is not valid gzip (Content-Encoding: gzip): {e}"
            ))
        })?;
    if out.len() > max_bytes {
        return Err(too_large());
    }
    Ok(std::borrow::Cow::Owned(out))
}

/// Parse an `ExportTraceServiceRequest` in `encoding`.
pub fn parse_request(
    body: &[u8],
    encoding: Encoding,
) -> Result<ExportTraceServiceRequest, Problem> {
    match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body).map_err(|e| {
            Problem::Malformed(format!(
                "the body is not a protobuf ExportTraceServiceRequest (Content-Type: application/x-protobuf): {e}"
            ))
        }),
        Encoding::Json => {
            // An empty body is an empty request, as it is in protobuf.
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(ExportTraceServiceRequest::default());
            }
            let malformed = |e: serde_json::Error| {
                Problem::Malformed(format!(
                    "the body is not an OTLP/JSON ExportTraceServiceRequest (Content-Type: application/json): {e}"
                ))
            };
            match serde_json::from_slice(body) {
                Ok(request) => Ok(request),
                // proto3's JSON mapping reads `null` as the field's default, which the crate's
                // serde refuses (for lists, messages, ids): read again without the nulls.
                Err(first) => {
                    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
                        return Err(malformed(first));
                    };
                    if !drop_nulls(&mut v) {
                        return Err(malformed(first));
                    }
                    serde_json::from_value(v).map_err(malformed)
                }
            }
        }
    }
}

/// Remove every object member whose value is `null` (proto3 JSON: the field's default), at any
/// depth (at most serde_json's 128 levels). `true` when there was one.
fn drop_nulls(v: &mut Value) -> bool {
    match v {
        Value::Object(m) => {
            let before = m.len();
            m.retain(|_, v| !v.is_null());
            let mut dropped = m.len() != before;
            for v in m.values_mut() {
                dropped |= drop_nulls(v);
            }
            dropped
        }
        Value::Array(a) => a.iter_mut().fold(false, |d, v| drop_nulls(v) | d),
        _ => false,
    }
}

/// The records of every GenAI span of `request`, and the counts of the others.
pub fn records_of(request: &ExportTraceServiceRequest) -> Decoded {
    let mut out = Decoded::default();
    for rs in &request.resource_spans {
        let resource = rs
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                out.spans += 1;
                match span_record(resource, span) {
                    None => out.ignored += 1,
                    Some(Ok(record)) => {
                        out.record_spans.push(span_name(span));
                        out.records.push(record);
                    }
                    Some(Err(reason)) => out.reject(span_name(span), reason),
                }
            }
        }
    }
    out
}

/// `<traceIdHex>/<spanIdHex>` (each cut to its first 64 digits: a bad id can be long).
fn span_name(span: &Span) -> String {
    let cut = |b: &[u8]| hex(&b[..b.len().min(32)]);
    format!("{}/{}", cut(&span.trace_id), cut(&span.span_id))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Does this span carry GenAI semantic-convention attributes?
pub fn is_genai(span: &Span) -> bool {
    span.attributes.iter().any(|kv| {
        kv.key == attr::OPERATION_NAME
            || kv.key == attr::REQUEST_MODEL
            || kv.key == attr::RESPONSE_MODEL
            || kv.key.starts_with(attr::USAGE_PREFIX)
    })
}

/// The value of attribute `key` (the first one that has a value).
fn attribute<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .filter(|kv| kv.key == key)
        .find_map(|kv| kv.value.as_ref()?.value.as_ref())
}

/// A scalar attribute value as JSON (the ingest validates it and names the field if it is
/// wrong); an array, map or bytes value as a short description, which the ingest refuses.
fn json_of(v: &any_value::Value) -> Value {
    match v {
        any_value::Value::StringValue(s) => Value::String(s.clone()),
        any_value::Value::BoolValue(b) => Value::Bool(*b),
        any_value::Value::IntValue(i) => Value::from(*i),
        any_value::Value::DoubleValue(d) => serde_json::Number::from_f64(*d)
            .map_or_else(|| Value::String(d.to_string()), Value::Number),
        any_value::Value::ArrayValue(_) => Value::String("<an array>".into()),
        any_value::Value::KvlistValue(_) => Value::String("<a key-value list>".into()),
        any_value::Value::BytesValue(_) => Value::String("<bytes>".into()),
        any_value::Value::StringValueStrindex(_) => Value::String("<a string index>".into()),
    }
}

/// A text attribute: a non-empty string, or a number or boolean as its text.
fn text_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attribute(attrs, key)? {
        any_value::Value::StringValue(s) if !s.is_empty() => Some(s.clone()),
        any_value::Value::StringValue(_) => None,
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        other => json_of(other).as_str().map(str::to_owned),
    }
}

/// The ingest record of one span, `None` when it is not a GenAI span, `Err` (the reason) when it
/// is one that cannot be a record. The mapping:
///
/// - `id`: `otel:<traceIdHex>:<spanIdHex>`, lower-case hex: a retried export is a duplicate.
///   The ids must be 16 and 8 bytes, not all zero (OTLP calls any other id invalid).
/// - `timestamp`: the start time (RFC 3339 UTC, milliseconds); `durationMs`: end − start in
///   milliseconds (absent when the end is unset).
/// - `agentId` and `agentName`: `gen_ai.agent.name`, else the resource's `service.name`, else
///   `unknown_service`.
/// - `model`: `gen_ai.response.model`, else `gen_ai.request.model`, else `unknown`.
/// - `promptTokens`: `gen_ai.usage.input_tokens` (else the deprecated `prompt_tokens`) less the
///   cache read and cache creation tokens, which the conventions say it includes: each token is
///   counted once. When the input tokens are fewer than the cache tokens they cannot include them
///   and are taken as they are.
/// - `completionTokens`: `gen_ai.usage.output_tokens` (else the deprecated `completion_tokens`).
/// - `cacheReadTokens` / `cacheWriteTokens`: `gen_ai.usage.cache_read.input_tokens` /
///   `gen_ai.usage.cache_creation.input_tokens`.
/// - `sessionId`: `gen_ai.conversation.id`; `taskType`: `gen_ai.operation.name`.
/// - `success` false and `error` = `error.type`, else the status message, else `error`, when the
///   span's status is ERROR or `error.type` is set.
/// - `metadata`: `source` = `otlp`, `traceId`, `spanId`, and when given `provider`
///   (`gen_ai.provider.name`, else `gen_ai.system`) and `reasoningTokens`
///   (`gen_ai.usage.reasoning.output_tokens`).
/// - No `cost`: the conventions define no cost attribute, and the ingest prices the tokens.
pub fn span_record(resource: &[KeyValue], span: &Span) -> Option<Result<Value, String>> {
    if !is_genai(span) {
        return None;
    }
    Some(genai_record(resource, span))
}

fn genai_record(resource: &[KeyValue], span: &Span) -> Result<Value, String> {
    let a = span.attributes.as_slice();
    let valid_id = |b: &[u8], n: usize| b.len() == n && b.iter().any(|&x| x != 0);
    if !valid_id(&span.trace_id, 16) {
        return Err(format!(
            "traceId: {} bytes given, not all zero are required: 16 (32 hex digits)",
            span.trace_id.len()
        ));
    }
    if !valid_id(&span.span_id, 8) {
        return Err(format!(
            "spanId: {} bytes given, not all zero are required: 8 (16 hex digits)",
            span.span_id.len()
        ));
    }
    let (trace_id, span_id) = (hex(&span.trace_id), hex(&span.span_id));
    if span.start_time_unix_nano == 0 {
        return Err("startTimeUnixNano: missing (0); a span needs its start time".into());
    }
    let start_ms = i64::try_from(span.start_time_unix_nano / 1_000_000)
        .map_err(|_| "startTimeUnixNano: out of range".to_owned())?;

    let mut r = Map::new();
    r.insert("id".into(), format!("otel:{trace_id}:{span_id}").into());
    r.insert("timestamp".into(), time::format_utc(start_ms).into());
    if span.end_time_unix_nano != 0 {
        let nanos = i128::from(span.end_time_unix_nano) - i128::from(span.start_time_unix_nano);
        r.insert("durationMs".into(), json!(nanos as f64 / 1e6));
    }
    let agent = text_attr(a, attr::AGENT_NAME)
        .or_else(|| text_attr(resource, attr::SERVICE_NAME))
        .unwrap_or_else(|| UNKNOWN_SERVICE.to_owned());
    r.insert("agentId".into(), agent.clone().into());
    r.insert("agentName".into(), agent.into());
    let model = text_attr(a, attr::RESPONSE_MODEL)
        .or_else(|| text_attr(a, attr::REQUEST_MODEL))
        .unwrap_or_else(|| UNKNOWN_MODEL.to_owned());
    r.insert("model".into(), model.into());

    let value = |key: &str| attribute(a, key).map(json_of);
    let input = value(attr::INPUT_TOKENS).or_else(|| value(attr::PROMPT_TOKENS));
    let output = value(attr::OUTPUT_TOKENS).or_else(|| value(attr::COMPLETION_TOKENS));
    let cache_read = value(attr::CACHE_READ_TOKENS);
    let cache_write = value(attr::CACHE_CREATION_TOKENS);
    if let Some(input) = input {
        let cached = |v: &Option<Value>| v.as_ref().map_or(Some(0), int_of).filter(|n| *n >= 0);
        let prompt = match (int_of(&input), cached(&cache_read), cached(&cache_write)) {
            (Some(i), Some(cr), Some(cw)) if i >= cr.saturating_add(cw) => Value::from(i - cr - cw),
            // Not numbers: the ingest names the field; fewer than the cache tokens: as given.
            _ => input,
        };
        r.insert("promptTokens".into(), prompt);
    }
    if let Some(v) = output {
        r.insert("completionTokens".into(), v);
    }
    if let Some(v) = cache_read {
        r.insert("cacheReadTokens".into(), v);
    }
    if let Some(v) = cache_write {
        r.insert("cacheWriteTokens".into(), v);
    }
    if let Some(s) = text_attr(a, attr::CONVERSATION_ID) {
        r.insert("sessionId".into(), s.into());
    }
    let status = span.status.as_ref();
    let error_status = status.is_some_and(|s| s.code == status::StatusCode::Error as i32);
    let error_type = text_attr(a, attr::ERROR_TYPE);
    if error_status || error_type.is_some() {
        let message = status.map(|s| s.message.as_str()).filter(|m| !m.is_empty());
        let error = error_type
            .or_else(|| message.map(str::to_owned))
            .unwrap_or_else(|| "error".to_owned());
        r.insert("success".into(), false.into());
        r.insert("error".into(), error.into());
    }
    if let Some(s) = text_attr(a, attr::OPERATION_NAME) {
        r.insert("taskType".into(), s.into());
    }
    let mut meta = Map::new();
    meta.insert("source".into(), "otlp".into());
    meta.insert("traceId".into(), trace_id.into());
    meta.insert("spanId".into(), span_id.into());
    if let Some(p) = text_attr(a, attr::PROVIDER_NAME).or_else(|| text_attr(a, attr::SYSTEM)) {
        meta.insert("provider".into(), p.into());
    }
    if let Some(v) = value(attr::REASONING_TOKENS) {
        meta.insert("reasoningTokens".into(), v);
    }
    r.insert("metadata".into(), Value::Object(meta));
    Ok(Value::Object(r))
}

/// The `error_message` of a partial success: how many spans were rejected and the first reasons.
pub fn rejection_message(rejected: u64, genai_spans: u64, reasons: &[String]) -> String {
    let mut m = format!(
        "{rejected} of {genai_spans} GenAI spans rejected (spans without gen_ai.* attributes are ignored, not rejected)"
    );
    for (i, r) in reasons.iter().take(MAX_REASONS).enumerate() {
        m.push_str(if i == 0 { ": " } else { "; " });
        m.push_str(r);
    }
    if rejected > reasons.len().min(MAX_REASONS) as u64 {
        m.push_str("; …");
    }
    m
}

/// The body of a 200: an `ExportTraceServiceResponse` in `encoding`, its `partial_success` set
/// only when spans were rejected. OTLP/JSON writes the int64 `rejectedSpans` as a string, as
/// proto3's JSON mapping does (the crate's serde would write a number).
pub fn response_body(encoding: Encoding, rejected: u64, error_message: &str) -> Vec<u8> {
    let partial_success = (rejected > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: i64::try_from(rejected).unwrap_or(i64::MAX),
        error_message: error_message.to_owned(),
    });
    match encoding {
        Encoding::Protobuf => ExportTraceServiceResponse { partial_success }.encode_to_vec(),
        Encoding::Json => match partial_success {
            None => b"{}".to_vec(),
            Some(p) => json!({ "partialSuccess": {
                "rejectedSpans": p.rejected_spans.to_string(),
                "errorMessage": p.error_message,
            }})
            .to_string()
            .into_bytes(),
        },
    }
}

/// `google.rpc.Status`: the body of every OTLP/HTTP failure answer. `opentelemetry-proto` does
/// not carry it; these are its first two fields (`details` is optional and left out).
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// The body of a failure answer in `encoding`.
pub fn status_body(encoding: Encoding, code: i32, message: &str) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => RpcStatus {
            code,
            message: message.to_owned(),
        }
        .encode_to_vec(),
        Encoding::Json => json!({ "code": code, "message": message })
            .to_string()
            .into_bytes(),
    }
}

#[cfg(test)]
mod tests;
