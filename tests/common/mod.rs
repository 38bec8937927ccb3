//! Shared test helpers: a store in a temporary directory with the fixture loaded.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use dashboard_mcp::ingest::{self, Source};
use dashboard_mcp::store::Store;
use dashboard_mcp::time::{parse_rfc3339, Clock, Zone};
use dashboard_mcp::wire::ImportReport;
use dashboard_mcp::Dashboard;
use serde_json::{Map, Value};

pub mod served;

pub const NOW: &str = "2026-11-23T12:00:00Z";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub dashboard: Dashboard,
}

pub fn fixture_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/small.jsonl")
}

/// A new, empty store of the engine under test, its files (if any) in `dir`.
pub fn open_store(dir: &Path) -> Arc<dyn Store> {
    dashboard_mcp::store::testing::open(dir)
}

/// An empty store with the clock pinned at `now`.
pub fn empty(now: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let clock = Clock::Fixed(parse_rfc3339("now", now).unwrap());
    Env {
        dashboard: Dashboard::new(store, clock, Zone::default()),
        dir,
    }
}

/// The fixture loaded, clock at `NOW`; and the import report.
pub fn fixture() -> (Env, ImportReport) {
    let env = empty(NOW);
    let file = std::fs::File::open(fixture_path()).unwrap();
    let report = ingest::import(
        &*env.dashboard.store,
        vec![Source {
            name: "small.jsonl".into(),
            reader: Box::new(file),
        }],
        false,
    )
    .unwrap();
    (env, report)
}

/// Call a tool the way every adapter does.
pub fn call(env: &Env, tool: &str, args: Value) -> Result<Value, String> {
    let Value::Object(m) = args else {
        panic!("args must be an object")
    };
    dashboard_mcp::catalog::call(&env.dashboard, true, tool, Some(m)).map_err(|e| e.to_string())
}

pub fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}
