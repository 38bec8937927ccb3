//! An HTTP server running in-process on 127.0.0.1:0 with a shutdown future, for the tests that
//! talk to it over a real socket (tests/http.rs, tests/http_hardening.rs, tests/otlp.rs, tests/jsonrpc.rs, tests/alerts.rs).

use std::net::SocketAddr;
use std::time::Duration;

use dashboard_mcp::http::{HttpConfig, HttpServer};
use dashboard_mcp::mcp::DashboardServer;
use dashboard_mcp::Dashboard;
use tokio::sync::oneshot;

/// Every test finishes within this, or fails.
pub const TEST_LIMIT: Duration = Duration::from_secs(120);

pub struct Served {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Serve `dashboard` (write tools when `allow_writes`) with the configuration `configure` makes.
pub async fn serve(
    dashboard: Dashboard,
    allow_writes: bool,
    configure: impl FnOnce(&mut HttpConfig),
) -> Served {
    let mut config = HttpConfig::new("127.0.0.1:0");
    configure(&mut config);
    let http = HttpServer::bind(DashboardServer::new(dashboard, allow_writes), config)
        .await
        .expect("bind");
    let addr = http.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(http.run(async move {
        let _ = stopped.await;
    }));
    Served {
        addr,
        stop: Some(stop),
        done,
    }
}

impl Served {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stop the server and wait for it to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        tokio::time::timeout(Duration::from_secs(15), &mut self.done)
            .await
            .expect("the server stops within 15 s")
            .expect("server task")
            .expect("server result");
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

pub async fn within<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_LIMIT, f)
        .await
        .expect("the test finishes in time");
}
