//! The legacy MCP HTTP+SSE transport (protocol 2024-11-05) for clients that predate Streamable
//! HTTP. `GET /sse` opens an event stream whose first `endpoint` event names
//! `/message?sessionId=…`; the client POSTs its JSON-RPC messages there (202 Accepted) and reads
//! every answer and notification as `message` events. rmcp no longer ships this transport, so
//! this is an adapter over its generic Sink/Stream transport: one rmcp server per stream, which
//! ends when the client hangs up or the server stops.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::ServiceExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::error::json_response;
use super::rest::{body_bytes, query_pairs};
use super::{ApiError, AppState};

/// Messages buffered each way per session.
const CHANNEL: usize = 64;
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The open sessions: where to deliver a client's POSTed messages.
#[derive(Default)]
pub(crate) struct Sessions(Mutex<HashMap<String, mpsc::Sender<ClientJsonRpcMessage>>>);

impl Sessions {
    fn insert(&self, id: String, tx: mpsc::Sender<ClientJsonRpcMessage>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
    }

    fn get(&self, id: &str) -> Option<mpsc::Sender<ClientJsonRpcMessage>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    fn remove(&self, id: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

/// `GET /sse`: open a session and stream its server-to-client messages.
pub(crate) async fn connect(State(st): State<AppState>) -> Response {
    let id = format!("{:032x}", rand::random::<u128>());
    let (to_server, from_client) = mpsc::channel::<ClientJsonRpcMessage>(CHANNEL);
    let (to_client, from_server) = futures::channel::mpsc::channel::<ServerJsonRpcMessage>(CHANNEL);
    st.legacy.insert(id.clone(), to_server);

    // Cancelled when the client hangs up (the response stream, holding the guard, is dropped)
    // or when the server stops.
    let session_ct = st.stop.child_token();
    let server = st.server.for_session();
    let sessions = st.legacy.clone();
    let session_id = id.clone();
    let ct = session_ct.clone();
    tokio::spawn(async move {
        let incoming = futures::stream::unfold(from_client, |mut rx| async move {
            rx.recv().await.map(|m| (m, rx))
        })
        .boxed();
        match server.serve_with_ct((to_client, incoming), ct).await {
            Ok(running) => {
                let _ = running.waiting().await;
            }
            Err(e) => tracing::debug!(error = %e, "legacy SSE session ended before initialize"),
        }
        sessions.remove(&session_id);
    });

    let guard = session_ct.drop_guard();
    let endpoint = Event::default()
        .event("endpoint")
        .data(format!("/message?sessionId={id}"));
    let messages = from_server.filter_map(|m| async move {
        match serde_json::to_string(&m) {
            Ok(data) => Some(Event::default().event("message").data(data)),
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise an MCP message");
                None
            }
        }
    });
    let events = futures::stream::once(async move { endpoint })
        .chain(messages)
        .map(move |e| {
            let _session = &guard;
            Ok::<_, Infallible>(e)
        });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// `POST /message?sessionId=…`: deliver one JSON-RPC message (or a batch) to its session.
pub(crate) async fn message(
    State(st): State<AppState>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(query.as_deref())?;
    let Some((_, id)) = pairs.iter().find(|(k, _)| k == "sessionId") else {
        return Err(ApiError::invalid(
            "sessionId",
            "missing; POST to the endpoint URL the /sse stream announced",
        ));
    };
    let unknown = || {
        let mut e = ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_session",
            "no open session has this id (it ended, or the server restarted); open /sse again",
        );
        e.field = Some("sessionId".into());
        e
    };
    let tx = st.legacy.get(id).ok_or_else(unknown)?;
    let body = body_bytes(body)?;
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return Ok(jsonrpc_error(
                Value::Null,
                -32700,
                format!("Parse error: {e}"),
            ))
        }
    };
    let items = match value {
        Value::Array(items) if !items.is_empty() => items,
        Value::Array(_) => {
            return Ok(jsonrpc_error(
                Value::Null,
                -32600,
                "Invalid Request: empty batch".into(),
            ))
        }
        one => vec![one],
    };
    let mut messages = Vec::with_capacity(items.len());
    for item in items {
        // The same rules as stdio and `/mcp` (a `tools/call` with bad params is -32602 there
        // too), one batch item at a time: the 2024-11-05 revision still allows batches.
        match crate::jsonrpc::check_value(item) {
            Ok(m) => messages.push(m),
            Err(r) => return Ok(jsonrpc_error(r.id, r.code.into(), r.message)),
        }
    }
    for m in messages {
        tx.send(m).await.map_err(|_| unknown())?;
    }
    Ok((StatusCode::ACCEPTED, "Accepted").into_response())
}

/// A JSON-RPC error answered on the POST itself (there is no request to answer on the stream).
fn jsonrpc_error(id: Value, code: i64, message: String) -> Response {
    let body = json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } });
    json_response(StatusCode::BAD_REQUEST, body.to_string())
}
