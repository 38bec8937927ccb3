//! `dashboard-mcp bench`: builds the SPEC §6 reference dataset deterministically (90 days, 200
//! agents, 20 models; `events` executions), imports it through the real JSONL import path, and
//! measures import rate, bytes per execution, every read tool at every timeframe (uncached,
//! cached, and by plain SQL over raw rows as the baseline), peak RSS and stdio cold start.
//!
//! The dataset is generated one day at a time with the demo generator (seed `seed·1000 + day`),
//! so memory stays flat at any size; each day's agents pick their one to three models anew.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::catalog;
use crate::dashboard::Dashboard;
use crate::demo::{self, DemoConfig};
use crate::error::{Error, Result};
use crate::ingest::{self, Source};
use crate::store::postgres::{DatabaseCopy, PgStore};
use crate::store::{self, SqliteStore, Store};
use crate::time::{self, Clock, Millis, Zone, DAY};

/// The pinned clock of the reference dataset: not on an hour, so windows have raw edges.
pub const NOW: &str = "2026-06-01T12:34:56.789Z";
const DAYS: i64 = 90;
const AGENTS: usize = 200;
const MODELS: usize = 20;
const TIMEFRAMES: &[&str] = &["hour", "day", "week", "month", "quarter"];
const TOOLS: &[&str] = &[
    "dashboard_get_overview",
    "dashboard_get_agents",
    "dashboard_get_models",
    "dashboard_get_timeline",
    "dashboard_get_executions",
    "dashboard_get_anomalies",
    "dashboard_get_budgets",
    "dashboard_check_budget",
];

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub events: u64,
    /// Database to build (kept afterwards) or reuse when it already holds executions.
    pub db: PathBuf,
    pub seed: u64,
    /// Timed calls per tool and timeframe (uncached and cached).
    pub iterations: usize,
    /// Timed calls per tool and timeframe of the raw-SQL baseline (slow at scale).
    pub raw_iterations: usize,
    /// The binary to start for the stdio cold start (`None`: skip).
    pub exe: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolFigures {
    pub tool: String,
    pub timeframe: String,
    /// The first call of a dashboard that has answered nothing yet (a process just started:
    /// result cache and anomaly memo empty), one sample.
    pub first_ms: f64,
    /// Calls each preceded (untimed) by a live write of `LIVE_BATCH` executions at `now`: every
    /// cached answer is invalidated and the anomaly memo has new rows to apply, as in a server
    /// under ingest.
    pub uncached: Percentiles,
    pub cached: Percentiles,
    pub raw_sql: Option<Percentiles>,
    /// Raw-SQL p50 / uncached p50.
    pub speedup: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub executions: i64,
    pub db: String,
    pub built: bool,
    pub import_records_per_sec: Option<f64>,
    pub import_secs: Option<f64>,
    pub store_bytes: u64,
    pub bytes_per_execution: f64,
    pub tools: Vec<ToolFigures>,
    pub cold_start_ms: Option<Percentiles>,
    pub peak_rss_mib: Option<f64>,
}

/// Build (or reuse) the dataset and measure.
pub fn run(cfg: &BenchConfig, progress: &mut dyn FnMut(&str)) -> Result<Report> {
    let now = time::parse_rfc3339("now", NOW)?;
    let location = cfg.db.to_string_lossy().into_owned();
    let pg = store::is_postgres(&location);
    let store: Arc<dyn Store> = if pg {
        Arc::new(PgStore::open(&location)?)
    } else {
        Arc::new(SqliteStore::open(&cfg.db)?)
    };
    let (mut built, mut import_secs) = (false, None);
    if store.is_empty()? {
        let jsonl = if pg {
            std::env::temp_dir().join(format!("dashboard-mcp-bench-{}.jsonl", cfg.events))
        } else {
            cfg.db.with_extension("jsonl")
        };
        progress(&format!(
            "writing {} executions to {}",
            cfg.events,
            jsonl.display()
        ));
        write_jsonl(&jsonl, cfg.events, cfg.seed, now)?;
        progress("importing through the JSONL import path");
        let file = std::fs::File::open(&jsonl)
            .map_err(|e| Error::Internal(format!("cannot read {}: {e}", jsonl.display())))?;
        let t = Instant::now();
        let report = store.bulk(|| {
            ingest::import(
                &*store,
                vec![Source {
                    name: jsonl.display().to_string(),
                    reader: Box::new(file),
                }],
                false,
            )
        })?;
        import_secs = Some(t.elapsed().as_secs_f64());
        built = true;
        let _ = std::fs::remove_file(&jsonl);
        if report.rejected > 0 {
            return Err(Error::Internal(format!(
                "{} generated records were rejected",
                report.rejected
            )));
        }
    }
    store.checkpoint()?;
    let executions = store.read(|c| c.execution_count())?;
    let store_bytes = store.size_bytes()?;
    drop(store);
    // The timed calls write live rows (and set budgets): they go to a copy, so every run measures
    // the dataset as built, not one grown by the rows of earlier runs.
    let (_copy, store): (Box<dyn std::any::Any>, Arc<dyn Store>) = if pg {
        let copy = DatabaseCopy::of(&location)?;
        let store = Arc::new(PgStore::open(&copy.url)?);
        (Box::new(copy), store)
    } else {
        let copy = WorkingCopy::of(&cfg.db)?;
        let store = Arc::new(SqliteStore::open(&copy.0)?);
        (Box::new(copy), store)
    };
    let d = Dashboard::new(store.clone(), Clock::Fixed(now), Zone::default());
    set_budgets(&d)?;
    let mut live = Live::new(now);

    let mut tools = Vec::new();
    for tool in TOOLS {
        let frames: &[&str] = if matches!(*tool, "dashboard_get_budgets" | "dashboard_check_budget")
        {
            &["-"]
        } else {
            TIMEFRAMES
        };
        for tf in frames {
            progress(&format!("{tool} {tf}"));
            let mut args = args_of(tf);
            if *tool == "dashboard_check_budget" {
                // An agent with a budget of its own (weekly) beside the global one.
                let agent = d.store.read(|c| c.first_agent_ids(1))?;
                args.insert("agentId".into(), json!(agent.first()));
                args.insert("estimatedCostUsd".into(), json!(3));
            }
            let fresh = || Dashboard::new(store.clone(), Clock::Fixed(now), Zone::default());
            let first_ms = {
                let fresh = fresh();
                let t = Instant::now();
                call(&fresh, tool, &args)?;
                t.elapsed().as_secs_f64() * 1000.0
            };
            let uncached = measure_after(
                cfg.iterations,
                || live.write(&*store),
                || call(&d, tool, &args),
            )?;
            call(&d, tool, &args)?;
            let cached = measure(cfg.iterations, || call(&d, tool, &args))?;
            let raw_sql = if cfg.raw_iterations > 0 {
                store.set_rollups(false);
                let r = measure(cfg.raw_iterations, || call(&fresh(), tool, &args));
                store.set_rollups(true);
                Some(r?)
            } else {
                None
            };
            let speedup = raw_sql.as_ref().map(|r| r.p50_ms / uncached.p50_ms);
            tools.push(ToolFigures {
                tool: tool.to_string(),
                timeframe: tf.to_string(),
                first_ms,
                uncached,
                cached,
                raw_sql,
                speedup,
            });
        }
    }
    let cold_start_ms = match &cfg.exe {
        Some(exe) => {
            progress("stdio cold start");
            let mut times = Vec::new();
            for _ in 0..10 {
                times.push(cold_start(exe, &cfg.db)?);
            }
            Some(percentiles(times))
        }
        None => None,
    };
    Ok(Report {
        executions,
        db: store::describe_location(&location),
        built,
        import_records_per_sec: import_secs.map(|s| executions as f64 / s),
        import_secs,
        store_bytes,
        bytes_per_execution: store_bytes as f64 / executions.max(1) as f64,
        tools,
        cold_start_ms,
        peak_rss_mib: peak_rss_mib(),
    })
}

/// Arguments of a call at timeframe `tf` ("-": none).
fn args_of(tf: &str) -> Map<String, Value> {
    let mut m = Map::new();
    if tf != "-" {
        m.insert("timeframe".into(), json!(tf));
    }
    m
}

fn call(d: &Dashboard, tool: &str, args: &Map<String, Value>) -> Result<()> {
    catalog::call(d, false, tool, Some(args.clone()))
        .map(|_| ())
        .map_err(|e| Error::Internal(format!("{tool}: {e}")))
}

/// A global budget and ten agent budgets, so the budget tools have spend to sum.
fn set_budgets(d: &Dashboard) -> Result<()> {
    let mut scopes = vec!["global".to_owned()];
    scopes.extend(d.store.read(|c| c.first_agent_ids(10))?);
    for (i, scope) in scopes.iter().enumerate() {
        let period = ["day", "week", "month"][i % 3];
        let Value::Object(args) =
            json!({"scope": scope, "limitUsd": 1000 + i * 100, "period": period})
        else {
            unreachable!()
        };
        catalog::call(d, true, "dashboard_set_budget", Some(args))
            .map_err(|e| Error::Internal(e.to_string()))?;
    }
    Ok(())
}

/// Executions one live write stores.
pub const LIVE_BATCH: usize = 10;

/// The live writes between uncached calls: executions of the dataset's agents and models, at
/// most ten minutes before `now`, with ids new to every run.
struct Live {
    pool: Vec<crate::store::Execution>,
    now: Millis,
    nonce: u128,
    k: usize,
}

impl Live {
    fn new(now: Millis) -> Live {
        let cfg = DemoConfig {
            agents: AGENTS,
            models: MODELS,
            days: 1,
            events: 4000,
            seed: 4242,
        };
        Live {
            pool: demo::generate(&cfg, now),
            now,
            nonce: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
            k: 0,
        }
    }

    fn write(&mut self, store: &dyn Store) -> Result<()> {
        let batch: Vec<_> = (0..LIVE_BATCH)
            .map(|_| {
                self.k += 1;
                let mut e = self.pool[self.k % self.pool.len()].clone();
                e.id = format!("bench-live-{}-{}", self.nonce, self.k);
                e.ts = self.now - 1 - (self.k as i64 * 7919) % 600_000;
                e
            })
            .collect();
        ingest::insert_all(store, batch).map(|_| ())
    }
}

fn measure(n: usize, f: impl FnMut() -> Result<()>) -> Result<Percentiles> {
    measure_after(n, || Ok(()), f)
}

/// `measure`, running `before` (untimed) ahead of each timed call.
fn measure_after(
    n: usize,
    mut before: impl FnMut() -> Result<()>,
    mut f: impl FnMut() -> Result<()>,
) -> Result<Percentiles> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        before()?;
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
    }
    Ok(percentiles(times))
}

/// Nearest-rank percentiles.
fn percentiles(mut times: Vec<Duration>) -> Percentiles {
    times.sort();
    let at = |p: usize| {
        let rank = (times.len() * p).div_ceil(100).max(1);
        times[rank - 1].as_secs_f64() * 1000.0
    };
    Percentiles {
        p50_ms: at(50),
        p95_ms: at(95),
        p99_ms: at(99),
    }
}

/// Write the reference dataset as JSONL, one day at a time, oldest first.
fn write_jsonl(path: &Path, events: u64, seed: u64, now: Millis) -> Result<()> {
    let io = |e: std::io::Error| Error::Internal(format!("cannot write {}: {e}", path.display()));
    let mut out = BufWriter::new(std::fs::File::create(path).map_err(io)?);
    for day in 0..DAYS {
        let per_day = events / DAYS as u64 + u64::from((day as u64) < events % DAYS as u64);
        let cfg = DemoConfig {
            agents: AGENTS,
            models: MODELS,
            days: 1,
            events: per_day,
            seed: seed * 1000 + day as u64,
        };
        let day_end = now - (DAYS - 1 - day) * DAY;
        for e in demo::generate(&cfg, day_end) {
            serde_json::to_writer(&mut out, &demo::to_record(&e))
                .map_err(|e| Error::Internal(e.to_string()))?;
            out.write_all(b"\n").map_err(io)?;
        }
    }
    out.flush().map_err(io)
}

/// A copy of the (checkpointed) database beside it, removed with its WAL when dropped.
struct WorkingCopy(PathBuf);

impl WorkingCopy {
    fn of(db: &Path) -> Result<WorkingCopy> {
        let copy = WorkingCopy(suffixed(db, ".bench-run"));
        copy.remove();
        std::fs::copy(db, &copy.0).map_err(|e| {
            Error::Internal(format!(
                "cannot copy {} to {}: {e}",
                db.display(),
                copy.0.display()
            ))
        })?;
        Ok(copy)
    }

    fn remove(&self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(suffixed(&self.0, suffix));
        }
    }
}

impl Drop for WorkingCopy {
    fn drop(&mut self) {
        self.remove();
    }
}

/// `path` with `suffix` appended to its file name (`usage.db` → `usage.db-wal`).
fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Process start → `initialize` and `tools/list` answered over stdio, in milliseconds.
fn cold_start(exe: &Path, db: &Path) -> Result<Duration> {
    let io = |e: std::io::Error| Error::Internal(format!("cold start: {e}"));
    let t = Instant::now();
    let mut child = Command::new(exe)
        .arg("--db")
        .arg(db)
        .arg("serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io)?;
    let mut stdin = child.stdin.take().expect("piped");
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "bench", "version": "0"}}});
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    writeln!(stdin, "{init}\n{initialized}\n{list}").map_err(io)?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut elapsed = None;
    for line in lines.by_ref() {
        let line = line.map_err(io)?;
        if serde_json::from_str::<Value>(&line).is_ok_and(|v| v["id"] == 2) {
            elapsed = Some(t.elapsed());
            break;
        }
    }
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    elapsed.ok_or_else(|| Error::Internal("the server never answered tools/list".into()))
}

/// Peak resident set size of this process (`VmHWM`), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

impl Report {
    /// The figures as a plain-text table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let opt = |x: Option<f64>, d: usize| x.map_or("-".to_owned(), |v| format!("{v:.d$}"));
        s += &format!("executions            {}\n", self.executions);
        s += &format!(
            "import                {} records/s ({} s){}\n",
            opt(self.import_records_per_sec, 0),
            opt(self.import_secs, 1),
            if self.built {
                ""
            } else {
                " (reused database: not measured)"
            }
        );
        s += &format!(
            "store                 {} bytes, {:.1} bytes/execution\n",
            self.store_bytes, self.bytes_per_execution
        );
        if let Some(c) = &self.cold_start_ms {
            s += &format!(
                "stdio cold start      p50 {:.1} ms, p95 {:.1} ms\n",
                c.p50_ms, c.p95_ms
            );
        }
        s += &format!(
            "peak RSS              {} MiB\n\n",
            opt(self.peak_rss_mib, 0)
        );
        s += &format!(
            "{:<26} {:<8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9}\n",
            "tool",
            "window",
            "first ms",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "hit p50",
            "hit p95",
            "raw p50",
            "speed-up"
        );
        for t in &self.tools {
            s += &format!(
                "{:<26} {:<8} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.3} {:>9.3} {:>10} {:>9}\n",
                t.tool.trim_start_matches("dashboard_"),
                t.timeframe,
                t.first_ms,
                t.uncached.p50_ms,
                t.uncached.p95_ms,
                t.uncached.p99_ms,
                t.cached.p50_ms,
                t.cached.p95_ms,
                opt(t.raw_sql.as_ref().map(|r| r.p50_ms), 1),
                t.speedup.map_or("-".to_owned(), |x| format!("{x:.0}×")),
            );
        }
        s
    }
}
