//! HTTP mode: one port serving MCP Streamable HTTP (`/mcp`), the legacy MCP HTTP+SSE transport
//! (`/sse` + `/message`), the REST API (`/api`), the OTLP/HTTP trace receiver (`/v1/traces`),
//! `/openapi.json` and `/healthz`, all behind one
//! guard (bearer token, Host and Origin checks, URI limit, request timeout) and a body limit, on
//! connections with a header-read timeout and a connection limit (`conn.rs`), with graceful
//! shutdown. Every route is an adapter over `catalog::call`; nothing here knows a tool by heart
//! except the REST paths SPEC §3 names.

mod conn;
mod error;
mod live;
mod mcp_http;
mod openapi;
mod otlp;
mod rest;
mod security;
mod sse_legacy;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::mcp::DashboardServer;

pub(crate) use error::ApiError;
use security::Security;

pub use conn::{default_max_connections, MAX_HEAD_BYTES};
pub use security::MAX_URI_BYTES;

/// Default largest request body: a full `dashboard_record_usage` batch (10,000 records) with room
/// to spare.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Default time a request may take until its response starts.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for open requests before it stops waiting.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Default time a client has to send a request head, and the longest a keep-alive connection
/// may sit idle between requests.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Shortest bearer token accepted on a non-loopback address.
pub const MIN_PUBLIC_TOKEN_CHARS: usize = 16;

/// How to serve.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `host:port` to bind, e.g. `127.0.0.1:8080` (port 0 picks a free one).
    pub addr: String,
    /// Bearer token every route but `/healthz` requires. Mandatory for a non-loopback bind.
    pub token: Option<String>,
    /// Browser origins allowed besides loopback ones (`https://app.example:8443`, `:*` = any port).
    pub allowed_origins: Vec<String>,
    /// `Host` names accepted besides loopback ones (a loopback bind behind a proxy).
    pub allowed_hosts: Vec<String>,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
    /// Time to send each request head; also closes keep-alive connections idle that long.
    pub header_read_timeout: Duration,
    /// Most connections open at once (see `conn.rs` for what happens at the limit).
    pub max_connections: usize,
}

impl HttpConfig {
    pub fn new(addr: impl Into<String>) -> Self {
        HttpConfig {
            addr: addr.into(),
            token: None,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: default_max_connections(),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("refusing to serve on {addr}: it is not a loopback address, so other machines can reach it; set a bearer token with --token or DASHBOARD_MCP_TOKEN (or bind 127.0.0.1)")]
    TokenRequired { addr: String },
    #[error("cannot resolve {addr}: {source}")]
    Resolve {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("refusing the bearer token: {0}")]
    BadToken(String),
    #[error("{0}")]
    Config(String),
}

/// What every handler shares. Cheap to clone: everything is behind an `Arc`.
#[derive(Clone)]
pub(crate) struct AppState {
    pub server: DashboardServer,
    pub openapi: Arc<String>,
    pub legacy: Arc<sse_legacy::Sessions>,
    /// Cancelled at shutdown: ends the long-lived streams so that shutdown can finish.
    pub stop: CancellationToken,
    /// The largest request body, also the most a compressed body may decompress to.
    pub max_body_bytes: usize,
}

/// A bound HTTP server, not yet serving.
pub struct HttpServer {
    listener: TcpListener,
    router: Router,
    local_addr: SocketAddr,
    stop: CancellationToken,
    grace: Duration,
    header_read_timeout: Duration,
    max_connections: usize,
}

impl HttpServer {
    /// Check the configuration and bind the address. Refuses a non-loopback address without a
    /// token or with a short one, and anywhere a token that is blank or has surrounding
    /// whitespace.
    pub async fn bind(server: DashboardServer, config: HttpConfig) -> Result<Self, HttpError> {
        if config.max_connections == 0 {
            return Err(HttpError::Config(
                "the connection limit must be at least 1".into(),
            ));
        }
        if config.header_read_timeout.is_zero() {
            return Err(HttpError::Config(
                "the header-read timeout must be longer than 0 s".into(),
            ));
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&config.addr)
            .await
            .map_err(|source| HttpError::Resolve {
                addr: config.addr.clone(),
                source,
            })?
            .collect();
        let loopback = !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback());
        let token = config.token.clone();
        match &token {
            None if !loopback => return Err(HttpError::TokenRequired { addr: config.addr }),
            None => {}
            Some(t) => check_token(t, loopback, &config.addr)?,
        }
        let security = Security::new(
            token,
            loopback,
            &config.allowed_origins,
            &config.allowed_hosts,
            config.request_timeout,
        )
        .map_err(HttpError::Config)?;
        let listener = TcpListener::bind(&addrs[..])
            .await
            .map_err(|source| HttpError::Bind {
                addr: config.addr.clone(),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| HttpError::Bind {
            addr: config.addr.clone(),
            source,
        })?;
        let stop = CancellationToken::new();
        let router = router(server, security, config.max_body_bytes, stop.clone());
        Ok(HttpServer {
            listener,
            router,
            local_addr,
            stop,
            grace: config.shutdown_grace,
            header_read_timeout: config.header_read_timeout,
            max_connections: config.max_connections,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serve until `shutdown` completes; then stop accepting, end the open streams and MCP
    /// sessions, and let in-flight requests (writes included) finish, waiting at most the grace
    /// period for them.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let limits = conn::Limits {
            header_read_timeout: self.header_read_timeout,
            max_connections: self.max_connections,
            grace: self.grace,
        };
        conn::serve(self.listener, self.router, limits, self.stop, shutdown).await
    }
}

/// A bearer token must not be blank nor carry surrounding whitespace (clients strip it, so it
/// could never match), and off loopback it must be long enough not to be guessed.
fn check_token(token: &str, loopback: bool, addr: &str) -> Result<(), HttpError> {
    if token.trim().is_empty() {
        return Err(HttpError::BadToken(
            "it is empty or only whitespace; set a real secret, e.g. `openssl rand -hex 24`".into(),
        ));
    }
    if token.trim() != token {
        return Err(HttpError::BadToken(
            "it begins or ends with whitespace, which clients do not send; remove it".into(),
        ));
    }
    let chars = token.chars().count();
    if chars < MIN_PUBLIC_TOKEN_CHARS {
        if !loopback {
            return Err(HttpError::BadToken(format!(
                "it is {chars} characters long, and a server on {addr} (not a loopback address) needs at least {MIN_PUBLIC_TOKEN_CHARS}; e.g. `openssl rand -hex 24`"
            )));
        }
        tracing::warn!(
            chars,
            "the bearer token is short (under {MIN_PUBLIC_TOKEN_CHARS} characters); accepted on a loopback address only"
        );
    }
    Ok(())
}

fn router(
    server: DashboardServer,
    security: Security,
    max_body_bytes: usize,
    stop: CancellationToken,
) -> Router {
    let routes = rest::routes();
    let openapi = openapi::document(&routes, server.allow_writes(), security.has_token());
    let mcp = mcp_http::service(&server, &security, max_body_bytes, stop.clone());
    let state = AppState {
        server,
        openapi: Arc::new(openapi),
        legacy: Arc::default(),
        stop,
        max_body_bytes,
    };
    rest::add_routes(Router::new(), &routes)
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi_json))
        .route("/api/stream", get(live::stream))
        .route("/v1/traces", post(otlp::traces))
        .route("/sse", get(sse_legacy::connect))
        .route("/message", post(sse_legacy::message))
        .route_service("/mcp", mcp)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(security),
            security::guard,
        ))
        .with_state(state)
}

/// `GET /healthz`: is the database reachable, and which version runs. Needs no token.
async fn healthz(State(st): State<AppState>) -> Response {
    let store = st.server.dashboard().store.clone();
    let reachable = matches!(
        tokio::task::spawn_blocking(move || store.ping()).await,
        Ok(Ok(()))
    );
    let cache = st.server.dashboard().cache.stats();
    let lookups = cache.hits + cache.misses + cache.coalesced;
    let body = serde_json::json!({
        "status": if reachable { "ok" } else { "unavailable" },
        "version": env!("CARGO_PKG_VERSION"),
        "database": if reachable { "ok" } else { "unreachable" },
        "requests": {
            "cancelled": st.server.dashboard().cancelled.load(std::sync::atomic::Ordering::Relaxed),
        },
        "cache": {
            "hits": cache.hits,
            "misses": cache.misses,
            "coalesced": cache.coalesced,
            "entries": cache.entries,
            "hitRate": (lookups > 0).then(|| (cache.hits + cache.coalesced) as f64 / lookups as f64),
        },
    });
    let status = if reachable {
        axum::http::StatusCode::OK
    } else {
        tracing::error!("health check: the database is not reachable");
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    error::json_response(status, body.to_string())
}

async fn openapi_json(State(st): State<AppState>) -> Response {
    error::json_response(axum::http::StatusCode::OK, st.openapi.as_ref().clone())
}

async fn not_found(uri: axum::http::Uri) -> Response {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no route {}; see /openapi.json for the REST API, /mcp for MCP",
            error::quote(uri.path())
        ),
    )
    .into_response()
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}",
            error::quote(method.as_str()),
            error::quote(uri.path())
        ),
    )
    .into_response()
}
