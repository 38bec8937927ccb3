//! MCP Streamable HTTP at `/mcp`, with rmcp's server transport. It answers both protocol eras:
//! `initialize` + `Mcp-Session-Id` sessions (2025-06-18, 2025-11-25) and the stateless 2026-07-28
//! revision, where rmcp builds a server per request. Each one comes from `for_session`, so all
//! share the one dashboard (an `Arc`'d store) and each client has its own subscriptions.

use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use super::security::Security;
use crate::mcp::DashboardServer;

pub(crate) fn service(
    server: &DashboardServer,
    security: &Security,
    max_body_bytes: usize,
    stop: CancellationToken,
) -> StreamableHttpService<DashboardServer, LocalSessionManager> {
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
    StreamableHttpService::new(
        move || Ok(prototype.for_session()),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}
