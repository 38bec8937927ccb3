//! MCP Streamable HTTP at `/mcp`, with rmcp's server transport. It answers both protocol eras:
//! `initialize` + `Mcp-Session-Id` sessions (2025-06-18, 2025-11-25) and the stateless 2026-07-28
//! revision, where rmcp builds a server per request. Each one comes from `for_session`, so all
//! share the one dashboard (an `Arc`'d store) and each client has its own subscriptions.
//!
//! In front of rmcp: a JSON body goes through `jsonrpc::check` (the same as every stdio line), so
//! a body that is not JSON-RPC gets its JSON-RPC error with 400 (rmcp answers 415 text/plain), and
//! `DELETE` of a session that is not open is 404, as the transport spec says for unknown sessions
//! (rmcp answers 202).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::MethodRouter;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::SessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::security::Security;
use crate::jsonrpc::{self, Rejection};
use crate::mcp::DashboardServer;

const SESSION_HEADER: &str = "mcp-session-id";

/// The `/mcp` endpoint: our checks, then rmcp.
struct Mcp {
    rmcp: StreamableHttpService<DashboardServer, LocalSessionManager>,
    sessions: Arc<LocalSessionManager>,
    max_body_bytes: usize,
}

pub(crate) fn service(
    server: &DashboardServer,
    security: &Security,
    max_body_bytes: usize,
    stop: CancellationToken,
) -> MethodRouter {
    let config = StreamableHttpServerConfig::default()
        .with_cancellation_token(stop.child_token())
        .with_max_request_body_bytes(max_body_bytes);
    // The guard in front already checked Host, Origin and the token; rmcp's Host check is kept
    // in step as a second line. (Its Origin check is off by default and stays off: one list.)
    let config = match security.allowed_hosts() {
        Some(hosts) => config.with_allowed_hosts(hosts.iter().cloned()),
        None => config.disable_allowed_hosts(),
    };
    let prototype = server.clone();
    let sessions = Arc::new(LocalSessionManager::default());
    let mcp = Arc::new(Mcp {
        rmcp: StreamableHttpService::new(
            move || Ok(prototype.for_session()),
            sessions.clone(),
            config,
        ),
        sessions,
        max_body_bytes,
    });
    axum::routing::any(move |request: Request| {
        let mcp = mcp.clone();
        async move { mcp.handle(request).await }
    })
}

impl Mcp {
    async fn handle(&self, request: Request) -> Response {
        match *request.method() {
            Method::POST if is_json(&request) => self.post(request).await,
            Method::DELETE => self.delete(request).await,
            _ => self.forward(request).await,
        }
    }

    /// Read the body (at most the limit), check it, and hand the good ones to rmcp unchanged.
    async fn post(&self, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let bytes = match Limited::new(body, self.max_body_bytes).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<LengthLimitError>() => {
                return rejection(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &jsonrpc::too_large(self.max_body_bytes),
                )
            }
            Err(e) => {
                return rejection(
                    StatusCode::BAD_REQUEST,
                    &Rejection::new(
                        Value::Null,
                        jsonrpc::PARSE_ERROR,
                        format!("cannot read the request body: {e}"),
                    ),
                )
            }
        };
        if let Err(rejected) = jsonrpc::check(&bytes) {
            return rejection(StatusCode::BAD_REQUEST, &rejected);
        }
        let body = bytes.slice(bytes.len() - jsonrpc::strip_bom(&bytes).len()..);
        self.forward(Request::from_parts(parts, Body::from(body)))
            .await
    }

    /// rmcp closes the session and answers 202 whether or not it was open; an unknown one is 404.
    async fn delete(&self, request: Request) -> Response {
        let session = request
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let open = match &session {
            Some(id) => self
                .sessions
                .has_session(&id.as_str().into())
                .await
                .unwrap_or(true),
            None => true,
        };
        let response = self.forward(request).await;
        match session {
            Some(id) if !open && response.status() == StatusCode::ACCEPTED => rejection(
                StatusCode::NOT_FOUND,
                &Rejection::new(
                    Value::Null,
                    jsonrpc::SESSION_NOT_FOUND,
                    format!(
                        "Mcp-Session-Id: {} is not an open session (it ended, or never existed); start a new one with initialize",
                        Value::from(crate::input::head(&id, 80))
                    ),
                ),
            ),
            _ => response,
        }
    }

    async fn forward(&self, request: Request) -> Response {
        self.rmcp.handle(request).await.map(Body::new)
    }
}

/// Whether the body is declared JSON (what rmcp reads; any other type is its 415).
fn is_json(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

fn rejection(status: StatusCode, rejected: &Rejection) -> Response {
    let mut response = Response::new(Body::from(rejected.to_json()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
