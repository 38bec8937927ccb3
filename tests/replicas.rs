//! Two `serve --http` replicas over one PostgreSQL database, through real sockets: a write
//! through A is read through B at once (B's result cache included), B's live stream carries it,
//! and both answer exactly what SQLite answers for the same data. Also the CLI on a
//! `postgres://` URL. Runs in the PostgreSQL pass of `scripts/test` (`--features pg-tests`).
#![cfg(feature = "pg-tests")]

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use dashboard_mcp::http::{HttpConfig, HttpServer};
use dashboard_mcp::mcp::DashboardServer;
use dashboard_mcp::store::postgres::PgStore;
use dashboard_mcp::store::{SqliteStore, Store};
use dashboard_mcp::time::{parse_rfc3339, Clock, Zone};
use dashboard_mcp::{catalog, Dashboard};
use futures::StreamExt;
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;

const NOW: &str = "2026-03-01T12:00:00Z";

fn dashboard(store: Arc<dyn Store>) -> Dashboard {
    Dashboard::new(
        store,
        Clock::Fixed(parse_rfc3339("now", NOW).unwrap()),
        Zone::default(),
    )
}

/// One replica serving HTTP on 127.0.0.1:0; dropped with its stop sender.
struct Replica {
    base: String,
    _stop: oneshot::Sender<()>,
}

async fn serve(d: Dashboard) -> Replica {
    let server = DashboardServer::new(d, true);
    let http = HttpServer::bind(server, HttpConfig::new("127.0.0.1:0"))
        .await
        .expect("bind");
    let base = format!("http://{}", http.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(http.run(async move {
        let _ = stopped.await;
    }));
    Replica { base, _stop: stop }
}

/// The records of the test: two agents, two models, an error, across two hours.
fn records() -> Vec<Value> {
    (0..24)
        .map(|i| {
            let agent = ["planner", "coder"][i % 2];
            let model = ["m-small", "m-large"][(i / 2) % 2];
            json!({
                "id": format!("r{i}"),
                "timestamp": format!("2026-03-01T{:02}:{:02}:00Z", 9 + i % 2, i * 2),
                "agentId": agent,
                "model": model,
                "promptTokens": 100 + i,
                "completionTokens": 10 * i,
                "cost": format!("0.{:03}", 7 * i + 1),
                "durationMs": 100 + 37 * i,
                "success": i % 7 != 3,
            })
        })
        .collect()
}

const READS: &[(&str, &str)] = &[
    (
        "dashboard_get_overview",
        "/api/dashboard/overview?timeframe=day",
    ),
    (
        "dashboard_get_agents",
        "/api/dashboard/agents?timeframe=day",
    ),
    (
        "dashboard_get_models",
        "/api/dashboard/models?timeframe=day",
    ),
    (
        "dashboard_get_timeline",
        "/api/dashboard/timeline?timeframe=day&granularity=hour",
    ),
    (
        "dashboard_get_executions",
        "/api/dashboard/executions?timeframe=day&limit=50",
    ),
    (
        "dashboard_get_anomalies",
        "/api/dashboard/anomalies?timeframe=week",
    ),
    ("dashboard_get_budgets", "/api/dashboard/budgets"),
];

async fn get(http: &reqwest::Client, url: String) -> Value {
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_behave_as_one_and_answer_as_sqlite_does() {
    let url = dashboard_mcp::store::testing::postgres_url();
    let a_store: Arc<dyn Store> = Arc::new(
        tokio::task::spawn_blocking(move || PgStore::throwaway(&url).unwrap())
            .await
            .unwrap(),
    );
    let location = a_store.location();
    let b_store: Arc<dyn Store> = Arc::new(
        tokio::task::spawn_blocking(move || PgStore::open(&location).unwrap())
            .await
            .unwrap(),
    );
    let a = serve(dashboard(a_store.clone())).await;
    let b = serve(dashboard(b_store.clone())).await;
    let http = reqwest::Client::new();

    // B answers (and caches) the empty database first, its anomaly memo warmed on it.
    let empty = get(
        &http,
        format!("{}/api/dashboard/overview?timeframe=day", b.base),
    )
    .await;
    assert_eq!(empty["summary"]["totalCalls"], 0);
    let none = get(
        &http,
        format!("{}/api/dashboard/anomalies?timeframe=week", b.base),
    )
    .await;
    assert_eq!(none["anomalies"], json!([]));
    // What MCP resource notifications follow: B's change watch.
    let mut b_changes = b_store.watch_changes();
    b_changes.borrow_and_update();

    // B's live stream is open before A writes.
    let mut stream = http
        .get(format!("{}/api/stream", b.base))
        .send()
        .await
        .unwrap()
        .bytes_stream();

    let resp = http
        .post(format!("{}/api/usage", a.base))
        .json(&records())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["accepted"], 24);
    tokio::time::timeout(Duration::from_secs(5), b_changes.changed())
        .await
        .expect("B's change watch moves on after A's write")
        .unwrap();
    let resp = http
        .put(format!("{}/api/budgets/global", a.base))
        .json(&json!({"limitUsd": 2, "period": "day"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);

    // The write through A reaches B's stream…
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !seen.contains("\"id\":\"r23\"") {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("B's stream did not carry A's write: {other:?}; got {seen}"),
        }
    }
    assert!(seen.contains("event: execution"), "{seen}");

    // …and every read through B (its cache included) equals the same data on SQLite.
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dashboard(Arc::new(
        SqliteStore::open(&dir.path().join("usage.db")).unwrap(),
    ));
    let Value::Array(recs) = json!(records()) else {
        unreachable!()
    };
    let mut args = Map::new();
    args.insert("records".into(), Value::Array(recs));
    let sqlite_report = catalog::call(&sqlite, true, "dashboard_record_usage", Some(args)).unwrap();
    assert_eq!(report, sqlite_report, "the write's report");
    let Value::Object(b_args) = json!({"scope": "global", "limitUsd": 2, "period": "day"}) else {
        unreachable!()
    };
    catalog::call(&sqlite, true, "dashboard_set_budget", Some(b_args)).unwrap();
    for (tool, path) in READS {
        let from_b = get(&http, format!("{}{path}", b.base)).await;
        let from_a = get(&http, format!("{}{path}", a.base)).await;
        let query: Map<String, Value> = path
            .split_once('?')
            .map(|(_, q)| {
                q.split('&')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap();
                        let v = v.parse::<i64>().map_or(json!(v), |n| json!(n));
                        (k.to_owned(), v)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let expected = catalog::call(&sqlite, true, tool, Some(query)).unwrap();
        assert_eq!(from_b, expected, "{tool}: replica B != SQLite");
        assert_eq!(from_a, expected, "{tool}: replica A != SQLite");
    }
    assert_eq!(
        get(
            &http,
            format!("{}/api/dashboard/overview?timeframe=day", b.base)
        )
        .await["summary"]["totalCalls"],
        24
    );
    drop((a, b));
    tokio::task::spawn_blocking(move || drop((b_store, a_store)))
        .await
        .unwrap();
}

#[test]
fn the_cli_reads_a_postgres_url_and_names_one_it_cannot_reach() {
    let store = PgStore::throwaway(&dashboard_mcp::store::testing::postgres_url()).unwrap();
    let url = store.location();
    let bin = env!("CARGO_BIN_EXE_dashboard-mcp");
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/usage.jsonl");
    let out = Command::new(bin)
        .args(["--db", &url, "import"])
        .arg(&sample)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = std::fs::read_to_string(&sample)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as i64;
    assert_eq!(store.read_count(), n);
    // A server that does not answer: the error names the URL (without a password).
    let out = Command::new(bin)
        .args([
            "--db",
            "postgres://me:secret@127.0.0.1:1/nowhere",
            "query",
            "overview",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot connect to the database postgres://me:***@127.0.0.1:1/nowhere"),
        "{err}"
    );
    assert!(!err.contains("secret"), "{err}");
}

trait Count {
    fn read_count(&self) -> i64;
}

impl Count for PgStore {
    fn read_count(&self) -> i64 {
        let s: &dyn Store = self;
        s.read(|c| c.execution_count()).unwrap()
    }
}

/// `kill -9` of a replica under write load: every record it acknowledged is in the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_loses_no_acknowledged_record() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let url = dashboard_mcp::store::testing::postgres_url();
    let store: Arc<dyn Store> = Arc::new(
        tokio::task::spawn_blocking(move || PgStore::throwaway(&url).unwrap())
            .await
            .unwrap(),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_dashboard-mcp"))
        .args([
            "--db",
            &store.location(),
            "--allow-writes",
            "serve",
            "--http",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let base = tokio::task::spawn_blocking(move || {
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if let Some(rest) = line.split("listening on ").nth(1) {
                return rest.trim().to_owned();
            }
        }
        panic!("the server never said where it listens");
    })
    .await
    .unwrap();

    // Two writers post batches of 20 records until the server dies under them.
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..2 {
        let (base, acked) = (base.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for b in 0.. {
                let batch: Vec<Value> = (0..20)
                    .map(|i| {
                        json!({"id": format!("w{w}-{b}-{i}"), "timestamp": "2026-03-01T11:00:00Z",
                               "agentId": "load", "model": "m", "cost": 0.001})
                    })
                    .collect();
                match http
                    .post(format!("{base}/api/usage"))
                    .json(&batch)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => {
                        let report: Value = r.json().await.unwrap();
                        assert_eq!(report["accepted"], 20);
                        acked.fetch_add(20, std::sync::atomic::Ordering::SeqCst);
                    }
                    _ => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.load(std::sync::atomic::Ordering::SeqCst) as i64;
    assert!(
        acked > 100,
        "the load was too light to mean anything: {acked}"
    );
    let s = store.clone();
    let stored = tokio::task::spawn_blocking(move || s.read(|c| c.execution_count()).unwrap())
        .await
        .unwrap();
    // Every acknowledged record, and at most the two batches in flight besides.
    assert!(
        stored >= acked && stored <= acked + 40,
        "stored {stored}, acknowledged {acked}"
    );
    tokio::task::spawn_blocking(move || drop(store))
        .await
        .unwrap();
}

/// Every connection of a replica killed (what a server restart or a failover does to it): the
/// next read and write succeed on new connections, and the listener connects again, so another
/// replica's write still moves this one's change watch.
#[test]
fn a_replica_survives_losing_every_connection() {
    let a = PgStore::throwaway(&dashboard_mcp::store::testing::postgres_url()).unwrap();
    let b = PgStore::open(&a.location()).unwrap();
    let (a, b): (&dyn Store, &dyn Store) = (&a, &b);
    let record = |id: &str| dashboard_mcp::store::Execution {
        id: id.into(),
        ts: parse_rfc3339("t", "2026-03-01T10:00:00Z").unwrap(),
        agent_id: "agent".into(),
        agent_name: None,
        model: "m".into(),
        prompt_tokens: 1,
        completion_tokens: 1,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        cost: 1_000,
        duration_ms: Some(5.0),
        success: true,
        error: None,
        status_code: None,
        session_id: None,
        task_type: None,
        metadata: None,
        revision: None,
        cost_source: Default::default(),
    };
    dashboard_mcp::ingest::insert_all(a, [record("before")]).unwrap();
    let db = a.location().rsplit('/').next().unwrap().to_owned();
    let mut admin = postgres::Client::connect(
        &dashboard_mcp::store::testing::postgres_url(),
        postgres::NoTls,
    )
    .unwrap();
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db],
        )
        .unwrap()
        .len();
    assert!(killed >= 4, "{killed} connections killed"); // each replica's pool, writer, listener
    assert_eq!(a.read(|c| c.execution_count()).unwrap(), 1);
    dashboard_mcp::ingest::insert_all(a, [record("after")]).unwrap();
    assert_eq!(a.read(|c| c.execution_count()).unwrap(), 2);
    // B writes once A's listener is back (it retries every second).
    let mut watch = a.watch_changes();
    watch.borrow_and_update();
    std::thread::sleep(Duration::from_millis(2500));
    watch.borrow_and_update();
    dashboard_mcp::ingest::insert_all(b, [record("from-b")]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !watch.has_changed().unwrap() {
        assert!(
            std::time::Instant::now() < deadline,
            "A's listener did not come back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(b.read(|c| c.execution_count()).unwrap(), 3);
}
