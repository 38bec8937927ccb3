//! `serve`'s moving parts besides the transports themselves: warming the anomaly memo on a
//! background thread, and HTTP mode's configuration from the flags and its shutdown signals.

use crate::dashboard::Dashboard;
use crate::http::{HttpConfig, HttpServer};
use crate::mcp::DashboardServer;
use crate::time;

use super::HttpArgs;

/// Judge the hours of the longest timeframe (a quarter) on a background thread, so the first
/// anomaly question after a start answers from the memo (at 10 M executions it would otherwise
/// take ~0.7 s). It starts a quarter second late: judging takes both cores, and a client's
/// `initialize` and `tools/list` come first (at once, they took up to 49 ms instead of 6). A
/// question asked before it holds the memo judges for itself; one asked during it waits for the
/// memo's lock, as it would have waited for its own judging.
///
/// The thread holds the store, which checkpoints the write-ahead log and removes the `-wal` and
/// `-shm` files only when its last holder lets go: `Warming::finish` stops it (or waits for a
/// judging under way) before the command returns.
pub(super) fn warm_anomaly_memo(dashboard: &Dashboard) -> Warming {
    let d = dashboard.clone();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        // Returns at once when `stop` is dropped, else after the delay.
        if stopped.recv_timeout(std::time::Duration::from_millis(250))
            != Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        {
            return;
        }
        let now = d.now();
        let w = time::Window {
            start: now - 90 * time::DAY,
            end: now,
        };
        if let Err(e) = d.detect_anomalies(&w, None) {
            tracing::warn!(error = %e, "warming the anomaly memo failed");
        }
    });
    Warming { stop, thread }
}

/// The anomaly memo's warming thread (`warm_anomaly_memo`).
pub(super) struct Warming {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Warming {
    /// Cancel the warming if it has not started, else wait for it to end.
    pub(super) fn finish(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

/// `serve --http`: bind, say where on stderr, serve until SIGINT or SIGTERM.
pub(super) async fn serve_http(
    server: DashboardServer,
    addr: String,
    args: HttpArgs,
) -> anyhow::Result<()> {
    let mut config = HttpConfig::new(addr);
    config.token = args.token;
    config.allowed_origins = args.allowed_origins;
    config.allowed_hosts = args.allowed_hosts;
    config.max_body_bytes = args.max_body_bytes;
    config.header_read_timeout = std::time::Duration::from_secs(args.header_timeout);
    if let Some(n) = args.max_connections {
        config.max_connections = n as usize;
    }
    let db = server.dashboard().store.describe();
    let allow_writes = server.allow_writes();
    let http = HttpServer::bind(server, config).await?;
    let url = format!("http://{}", http.local_addr());
    tracing::info!(%db, allow_writes, "serving HTTP: MCP at {url}/mcp (legacy SSE at {url}/sse), REST at {url}/api, {url}/openapi.json");
    // Scripts and tests read the bound address (port 0 picks one) from this line.
    eprintln!("listening on {url}");
    http.run(shutdown_signal()).await?;
    Ok(())
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}
