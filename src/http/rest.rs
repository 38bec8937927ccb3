//! The REST API, derived from the tool catalog: every read tool at
//! `GET /api/dashboard/<name>` (query-string parameters named as the tool's inputs),
//! `dashboard_get_budgets` also at `GET /api/budgets`, and the write tools SPEC §3 maps to routes
//! (`PUT /api/budgets/{scope}`, `POST /api/usage`). A 200 body is the tool's JSON byte for byte.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use axum::Router;
use rmcp::model::JsonObject;
use serde_json::{Map, Value};

use super::error::{json_response, quote};
use super::{ApiError, AppState};
use crate::catalog;
use crate::input::{bool_of, shown};

const READ_PREFIX: &str = "/api/dashboard/";
const BUDGETS_TOOL: &str = "dashboard_get_budgets";
const SET_BUDGET_TOOL: &str = "dashboard_set_budget";
const RECORD_USAGE_TOOL: &str = "dashboard_record_usage";

/// How a route hands its request to its tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Query-string parameters are the arguments.
    Query,
    /// The JSON body is the arguments, plus `scope` from the path.
    SetBudget,
    /// The body (JSON array or NDJSON) is `records`.
    RecordUsage,
    /// The JSON body is the arguments (`POST /api/alerts`).
    Body,
    /// `{"id": <path>, "remove": true}` (`DELETE /api/alerts/{id}`).
    RemoveAlert,
}

/// One REST route and the tool behind it (also what `/openapi.json` documents).
pub(crate) struct RestRoute {
    pub method: Method,
    pub path: String,
    pub tool: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub write: bool,
    pub kind: Kind,
    pub input: JsonObject,
    pub output: JsonObject,
}

/// The routes of the tools the catalog holds now.
pub(crate) fn routes() -> Vec<RestRoute> {
    let mut out = Vec::new();
    for spec in catalog::specs() {
        let route = |method: Method, path: String, kind: Kind| RestRoute {
            method,
            path,
            tool: spec.name,
            title: spec.title,
            description: spec.description,
            write: spec.write,
            kind,
            input: (spec.input_schema)(),
            output: (spec.output_schema)(),
        };
        if !spec.write {
            let short = spec
                .name
                .strip_prefix("dashboard_get_")
                .or_else(|| spec.name.strip_prefix("dashboard_"))
                .unwrap_or(spec.name);
            out.push(route(
                Method::GET,
                format!("{READ_PREFIX}{short}"),
                Kind::Query,
            ));
            if spec.name == BUDGETS_TOOL {
                out.push(route(Method::GET, "/api/budgets".into(), Kind::Query));
            }
            if spec.name == "dashboard_check_budget" {
                out.push(route(Method::GET, "/api/budgets/check".into(), Kind::Query));
            }
        } else if spec.name == SET_BUDGET_TOOL {
            out.push(route(
                Method::PUT,
                "/api/budgets/{scope}".into(),
                Kind::SetBudget,
            ));
        } else if spec.name == RECORD_USAGE_TOOL {
            out.push(route(Method::POST, "/api/usage".into(), Kind::RecordUsage));
        } else if spec.name == "dashboard_set_alert" {
            out.push(route(Method::POST, "/api/alerts".into(), Kind::Body));
            out.push(route(
                Method::DELETE,
                "/api/alerts/{id}".into(),
                Kind::RemoveAlert,
            ));
        }
        if spec.name == "dashboard_get_alerts" {
            out.push(route(Method::GET, "/api/alerts".into(), Kind::Query));
        }
    }
    out
}

/// Add `routes` to `router`.
pub(crate) fn add_routes(mut router: Router<AppState>, routes: &[RestRoute]) -> Router<AppState> {
    for r in routes {
        let tool = r.tool;
        router =
            match r.kind {
                Kind::Query => router.route(
                    &r.path,
                    get(
                        move |State(st): State<AppState>, RawQuery(query): RawQuery| async move {
                            read(st, tool, query).await
                        },
                    ),
                ),
                Kind::SetBudget => router.route(
                    &r.path,
                    put(
                        move |State(st): State<AppState>,
                              uri: Uri,
                              body: Result<Bytes, BytesRejection>| async move {
                            set_budget(st, tool, uri, body).await
                        },
                    ),
                ),
                Kind::RecordUsage => router.route(
                    &r.path,
                    post(
                        move |State(st): State<AppState>,
                              RawQuery(query): RawQuery,
                              body: Result<Bytes, BytesRejection>| async move {
                            record_usage(st, tool, query, body).await
                        },
                    ),
                ),
                Kind::Body => {
                    router.route(
                        &r.path,
                        post(
                            move |State(st): State<AppState>,
                                  body: Result<Bytes, BytesRejection>| async move {
                                with_body(st, tool, body).await
                            },
                        ),
                    )
                }
                Kind::RemoveAlert => router.route(
                    &r.path,
                    delete(move |State(st): State<AppState>, uri: Uri| async move {
                        remove_alert(st, tool, uri).await
                    }),
                ),
            };
    }
    router
}

/// A JSON object body (empty: no arguments).
fn object_body(
    body: Result<Bytes, BytesRejection>,
    example: &str,
) -> Result<Map<String, Value>, ApiError> {
    let body = body_bytes(body)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(ApiError::invalid(
            "body",
            format!("{} is not a JSON object such as {example}", shown(&other)),
        )),
        Err(e) => Err(ApiError::invalid("body", format!("invalid JSON: {e}"))),
    }
}

/// `POST /api/alerts`: the body is the tool's arguments.
async fn with_body(
    st: AppState,
    tool: &'static str,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if !st.server.allow_writes() {
        return Err(ApiError::writes_disabled(tool));
    }
    let args = object_body(
        body,
        r#"{"url": "https://…", "costUsd": 50, "window": "24h"}"#,
    )?;
    call(st, tool, args).await
}

/// `DELETE /api/alerts/{id}`.
async fn remove_alert(st: AppState, tool: &'static str, uri: Uri) -> Result<Response, ApiError> {
    if !st.server.allow_writes() {
        return Err(ApiError::writes_disabled(tool));
    }
    let id = segment_of_path(uri.path(), "id")?;
    let mut args = Map::new();
    args.insert("id".into(), Value::String(id));
    args.insert("remove".into(), Value::Bool(true));
    call(st, tool, args).await
}

async fn read(
    st: AppState,
    tool: &'static str,
    query: Option<String>,
) -> Result<Response, ApiError> {
    call(st, tool, query_args(query_pairs(query.as_deref())?)?).await
}

async fn set_budget(
    st: AppState,
    tool: &'static str,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if !st.server.allow_writes() {
        return Err(ApiError::writes_disabled(tool));
    }
    let scope = segment_of_path(uri.path(), "scope")?;
    let mut args = object_body(body, r#"{"limitUsd": 100, "period": "month"}"#)?;
    if let Some(given) = args.get("scope").filter(|v| !v.is_null()) {
        if given.as_str() != Some(scope.as_str()) {
            return Err(ApiError::invalid(
                "scope",
                format!(
                    "the body says {} but the path says {}; leave scope out of the body",
                    shown(given),
                    quote(&scope)
                ),
            ));
        }
    }
    args.insert("scope".into(), Value::String(scope));
    call(st, tool, args).await
}

/// `POST /api/usage[?strict=true]`: the body's records to the tool. For NDJSON, the answer and
/// the errors name body lines instead of record indices (they differ after blank lines).
async fn record_usage(
    st: AppState,
    tool: &'static str,
    query: Option<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if !st.server.allow_writes() {
        return Err(ApiError::writes_disabled(tool));
    }
    let mut args = Map::new();
    for (k, v) in query_args(query_pairs(query.as_deref())?)? {
        if k != "strict" {
            return Err(ApiError::invalid(
                &k,
                format!("unknown query parameter {k:?}; the only one allowed is strict"),
            ));
        }
        let strict = bool_of(&v).ok_or_else(|| {
            ApiError::invalid("strict", format!("{} is not true or false", shown(&v)))
        })?;
        args.insert("strict".into(), Value::Bool(strict));
    }
    let body = usage_records(&body_bytes(body)?)?;
    args.insert("records".into(), Value::Array(body.records));
    let Some(lines) = body.lines else {
        return call(st, tool, args).await;
    };
    let out = run(&st, tool, args).await?;
    let line_of = |index: u64| lines.get(index as usize).copied().unwrap_or(index + 1);
    let mut out = out.map_err(|e| {
        let mut err = ApiError::from_call(e);
        let index = err.field.as_deref().and_then(|f| {
            f.strip_prefix("records[")?
                .strip_suffix(']')?
                .parse::<u64>()
                .ok()
        });
        if let (Some(i), Some(field)) = (index, err.field.take()) {
            let message = err
                .message
                .strip_prefix(&format!("{field}: "))
                .unwrap_or(&err.message);
            err.message = format!("line {}: {message}", line_of(i));
            err.field = Some("body".into());
        }
        err
    })?;
    if let Some(errors) = out
        .pointer_mut("/files/0/errors")
        .and_then(Value::as_array_mut)
    {
        for e in errors {
            if let Some(i) = e["line"].as_u64() {
                e["line"] = Value::from(line_of(i.saturating_sub(1)));
            }
        }
    }
    ok_json(tool, &out)
}

/// Run `tool` on the blocking pool and answer with its JSON.
async fn call(
    st: AppState,
    tool: &'static str,
    args: Map<String, Value>,
) -> Result<Response, ApiError> {
    let out = run(&st, tool, args).await?.map_err(ApiError::from_call)?;
    ok_json(tool, &out)
}

/// Run `tool` on the blocking pool: its answer or its error (an `Err` of ours when the task
/// itself failed).
async fn run(
    st: &AppState,
    tool: &'static str,
    args: Map<String, Value>,
) -> Result<Result<Value, catalog::CallError>, ApiError> {
    // The guard lives in this future: when the client goes away or the request times out, the
    // server drops the future and the guard stops the call's work (`cancel`).
    let (d, _cancel) = st.server.dashboard().cancellable();
    let allow = st.server.allow_writes();
    tokio::task::spawn_blocking(move || catalog::call(&d, allow, tool, Some(args)))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, tool, "tool task failed");
            ApiError::internal()
        })
}

/// A 200 with `out` as its body.
fn ok_json(tool: &str, out: &Value) -> Result<Response, ApiError> {
    let body = serde_json::to_string(&out).map_err(|e| {
        tracing::error!(error = %e, tool, "cannot serialise the answer");
        ApiError::internal()
    })?;
    Ok(json_response(StatusCode::OK, body))
}

/// The pairs of a query string (`a=1&b=x+y`), names and values decoded strictly: `+` is a space,
/// `%` must start a two-digit hex escape, and the decoded bytes must be UTF-8. A lenient decoder
/// would turn `agentId=%zz%ff` into a filter on `"%zz\u{fffd}"` that silently matches nothing;
/// here it is a 400 naming `agentId`. An empty segment (`a=1&&b=2`) is skipped; a parameter
/// without a name (`=x`) is refused, naming the field `query`.
pub(crate) fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let mut pairs = Vec::new();
    let segments = query.unwrap_or_default().split('&');
    for (i, segment) in segments.enumerate().filter(|(_, s)| !s.is_empty()) {
        let (raw_name, raw_value) = segment.split_once('=').unwrap_or((segment, ""));
        let name = decode(raw_name, true).map_err(|why| {
            ApiError::invalid(
                "query",
                format!(
                    "the name of parameter {} ({}) is not valid percent-encoding: {why}",
                    i + 1,
                    quote(raw_name)
                ),
            )
        })?;
        if name.is_empty() {
            return Err(ApiError::invalid(
                "query",
                format!(
                    "parameter {} ({}) has no name; write name=value, e.g. timeframe=week",
                    i + 1,
                    quote(segment)
                ),
            ));
        }
        let value = decode(raw_value, true).map_err(|why| {
            ApiError::invalid(
                &name,
                format!("{} is not valid percent-encoding: {why}", quote(raw_value)),
            )
        })?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// The last segment of a path (`{scope}` of `/api/budgets/{scope}`, `{id}` of
/// `/api/alerts/{id}`), decoded strictly (a `+` stays a `+` in a path) and otherwise passed on
/// unchanged: the tool judges what it may be.
fn segment_of_path(path: &str, field: &str) -> Result<String, ApiError> {
    let raw = path.rsplit('/').next().unwrap_or_default();
    decode(raw, false).map_err(|why| {
        ApiError::invalid(
            field,
            format!(
                "the path segment {} is not valid percent-encoding: {why}",
                quote(raw)
            ),
        )
    })
}

/// Percent-decode `s` strictly, `+` as a space when `plus` (query strings); `Err` says why not.
fn decode(s: &str, plus: bool) -> Result<String, String> {
    let bytes = s.as_bytes();
    for (i, _) in s.match_indices('%') {
        let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
        if !(hex(i + 1) && hex(i + 2)) {
            // `i` is the byte of an ASCII `%`, so slicing from it is on a character boundary.
            let escape: String = s[i..].chars().take(3).collect();
            return Err(format!(
                "{escape:?} at byte {i} is not an escape (% must be followed by two hex digits; write %25 for a % sign)"
            ));
        }
    }
    let spaced;
    let s = if plus && s.contains('+') {
        spaced = s.replace('+', " ");
        spaced.as_str()
    } else {
        s
    };
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|d| d.into_owned())
        .map_err(|e| format!("its escapes decode to bytes that are not UTF-8 text ({e})"))
}

/// Query-string pairs as tool arguments (strings; the tools forgive numbers sent as strings).
/// An empty value means "not given", as in an HTML form.
pub(crate) fn query_args(pairs: Vec<(String, String)>) -> Result<Map<String, Value>, ApiError> {
    let mut args = Map::new();
    for (k, v) in pairs {
        if v.is_empty() {
            continue;
        }
        if args.contains_key(&k) {
            return Err(ApiError::invalid(&k, "given more than once; give it once"));
        }
        args.insert(k, Value::String(v));
    }
    Ok(args)
}

/// The request body, or why it cannot be read (413 past the size limit).
pub(crate) fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than this server accepts; send fewer records per request",
            )
        } else {
            ApiError::invalid("body", e.body_text())
        }
    })
}

/// The records of a `POST /api/usage` body, and for NDJSON the body line of each.
#[derive(Debug)]
struct UsageBody {
    records: Vec<Value>,
    lines: Option<Vec<u64>>,
}

/// The records of a `POST /api/usage` body: a JSON array of records, one record object,
/// `{"records": [...]}` (the tool's input), or NDJSON (one record per line). An NDJSON line that is
/// not JSON goes to the tool as its text, which the tool rejects as that one record, as
/// `dashboard-mcp import` does. A body of which no line is a JSON object is refused whole,
/// naming the first bad line, and so is a body that is not UTF-8.
fn usage_records(body: &[u8]) -> Result<UsageBody, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        let at = e.valid_up_to();
        let line = body[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        ApiError::invalid(
            "body",
            format!(
                "line {line}: not UTF-8 text (byte 0x{:02X} at byte {} of the body is invalid); send JSON or NDJSON encoded as UTF-8",
                body.get(at).copied().unwrap_or_default(),
                at + 1
            ),
        )
    })?;
    let text = text.trim_start_matches('\u{feff}');
    if text.trim().is_empty() {
        return Err(ApiError::invalid(
            "body",
            "empty; send a JSON array of records or NDJSON (one record per line)",
        ));
    }
    let whole = |records| UsageBody {
        records,
        lines: None,
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => Ok(whole(items)),
        Ok(Value::Object(mut o)) => match o.remove("records") {
            Some(Value::Array(items)) if o.is_empty() => Ok(whole(items)),
            Some(records) => {
                o.insert("records".into(), records);
                Ok(whole(vec![Value::Object(o)]))
            }
            None => Ok(whole(vec![Value::Object(o)])),
        },
        Ok(other) => Err(ApiError::invalid(
            "body",
            format!(
                "{} is neither a JSON array of records nor NDJSON (one record per line)",
                shown(&other)
            ),
        )),
        Err(_) => {
            let mut records = Vec::new();
            let mut lines = Vec::new();
            let mut first_error = None;
            let mut objects = 0;
            for (i, line) in text.split('\n').enumerate() {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let n = i as u64 + 1;
                match serde_json::from_str::<Value>(line) {
                    Ok(v) => {
                        objects += usize::from(v.is_object());
                        records.push(v);
                    }
                    Err(e) => {
                        first_error.get_or_insert((n, e));
                        records.push(Value::String(line.to_owned()));
                    }
                }
                lines.push(n);
            }
            match first_error {
                Some((n, e)) if objects == 0 => Err(ApiError::invalid(
                    "body",
                    format!(
                        "line {n}: invalid JSON ({e}); send a JSON array of records or NDJSON (one record per line); nothing was stored"
                    ),
                )),
                _ => Ok(UsageBody {
                    records,
                    lines: Some(lines),
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_bodies_of_every_shape_give_records() {
        let one = r#"{"agentId":"a","model":"m","timestamp":1}"#;
        let n = |body: String| usage_records(body.as_bytes()).unwrap().records.len();
        assert_eq!(n(format!("[{one},{one}]")), 2);
        assert_eq!(n(format!("{one}\n\n{one}\n")), 2);
        assert_eq!(n(one.to_owned()), 1);
        assert_eq!(n(format!("{{\"records\":[{one}]}}")), 1);
        // NDJSON: the body line of each record; a line that is not JSON goes on as its text.
        let b = usage_records(format!("{one}\n\n{{oops\r\n{one}").as_bytes()).unwrap();
        assert_eq!(b.lines, Some(vec![1, 3, 4]));
        assert_eq!(b.records[1], Value::String("{oops".into()));
        assert_eq!(
            usage_records(format!("[{one}]").as_bytes()).unwrap().lines,
            None
        );
        // No line is a JSON object: refused whole, naming the first bad line.
        let e = usage_records(b"[1\n{oops\n").unwrap_err();
        assert_eq!(
            (e.status, e.field.as_deref()),
            (StatusCode::BAD_REQUEST, Some("body"))
        );
        assert!(
            e.message.starts_with("body: line 1: invalid JSON"),
            "{}",
            e.message
        );
        let e = usage_records(&[one.as_bytes(), b"\n{\"a\":\"\xFF\"}"].concat()).unwrap_err();
        assert_eq!(e.message, "body: line 2: not UTF-8 text (byte 0xFF at byte 49 of the body is invalid); send JSON or NDJSON encoded as UTF-8");
        assert!(usage_records(b"  ").is_err());
        assert!(usage_records(b"42").is_err());
    }

    #[test]
    fn repeated_query_parameters_are_refused() {
        let e = query_args(vec![
            ("limit".into(), "1".into()),
            ("limit".into(), "2".into()),
        ])
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limit"));
        let args = query_args(vec![("agentId".into(), String::new())]).unwrap();
        assert!(args.is_empty());
    }
}
