//! The store boundary: one trait (`Store`) every engine implements, and the read snapshot
//! (`Snapshot`) that answers the dashboard's typed questions. Everything above `store/` speaks
//! only these types; SQL, connections and the engines' own keys stay below.
//!
//! - `Store::insert` owns the write path: idempotency by id, the rollups, the generation bump
//!   and publishing to the live feed, in one transaction per call.
//! - `Store::read` runs a closure on one consistent snapshot; each question takes a window and a
//!   filter whose names the snapshot resolves to its own keys once.
//! - `Store::version` is the cache's key: it changes whenever any writer (this process, another
//!   process, another replica) commits.
//!
//! Engines: `sqlite` (the embedded default, one file) and `postgres` (several servers on one
//! database). `open` picks one from a location.

pub mod alerts;
mod plan;
pub mod postgres;
pub mod sqlite;
mod types;

use std::sync::Arc;

use tokio::sync::{broadcast, watch};

use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::money::Nanos;
use crate::time::{Millis, Window};

pub use plan::{bucket_value, latency_bucket, p95_of, Plan, EXACT_P95_MAX};
pub use sqlite::{check_location, check_path, Missing, SqliteStore};
pub use types::*;

/// One record's fate in `Store::insert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Inserted,
    /// An execution with this id is already stored; nothing changed.
    Duplicate,
    /// An execution with this id and a lower revision was stored; this record replaced it.
    Replaced,
    /// The store cannot take this record (the reason names the field).
    Refused(String),
}

/// How `Store::insert` treats a refused record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Atomic {
    /// The other records are written all the same.
    PerRecord,
    /// Nothing is written when any record is refused: the outcomes name the refused ones (the
    /// others' outcomes then mean nothing).
    All,
}

/// The store's data version: equal versions mean equal data (see `Store::version`).
pub type Version = (u64, i64);

/// A store engine. Cheap to share behind an `Arc`; every method blocks (async callers use
/// `spawn_blocking`).
pub trait Store: Send + Sync {
    /// Which engine and where (for logs and errors; no password).
    fn describe(&self) -> String;
    /// What `--db` takes to open this store again (a URL may hold a password: not for logs).
    fn location(&self) -> String;

    /// Write `records` in one transaction: each is inserted, a duplicate of a stored id, or
    /// refused. Rollups move with the rows; on commit the generation grows, `watch_changes`
    /// fires and the inserted executions go to the live feed.
    fn insert(&self, records: &[&Execution], atomic: Atomic) -> Result<Vec<Outcome>>;

    /// Store a budget, replacing the one of its scope; `true` when one was replaced.
    fn put_budget(&self, budget: &Budget) -> Result<bool>;
    /// Delete the budget of `scope`; `true` when there was one.
    fn delete_budget(&self, scope: &str) -> Result<bool>;

    /// Run `f` on one consistent snapshot (object-safe form of `read`).
    fn read_dyn(&self, f: &mut dyn FnMut(&dyn Snapshot) -> Result<()>) -> Result<()>;

    /// Changes whenever anything committed, by any writer anywhere (the result cache's key).
    fn version(&self) -> Result<Version>;

    /// Answer from the rollups (`true`, the default) or from raw rows only (the exactness
    /// reference and the benchmark's baseline).
    fn set_rollups(&self, on: bool);
    fn rollups(&self) -> bool;

    /// A bulk load starts (`true`) or ends (`false`); nested loads count. Engines may trade
    /// read latency for write throughput in between.
    fn bulk_mode(&self, on: bool);

    /// Watch the data generation: changes after every committed write (coalesced), this
    /// process's or, where the engine can tell, any other's.
    fn watch_changes(&self) -> watch::Receiver<u64>;
    /// Receive every batch of executions stored from now on.
    fn subscribe_executions(&self) -> broadcast::Receiver<Arc<Vec<Execution>>>;

    /// Make the store's files or tables compact (after a bulk load); may do nothing.
    fn checkpoint(&self) -> Result<()>;

    /// The bytes the store takes on disk (SQLite: the file and its WAL; PostgreSQL: the
    /// database, indexes included).
    fn size_bytes(&self) -> Result<u64>;

    /// Where log imports of `source` stopped, by file path (`sources::logs`).
    fn cursors(&self, source: &str) -> Result<std::collections::HashMap<String, Cursor>>;
    /// Remember where log imports of `source` stopped in these files.
    fn put_cursors(&self, source: &str, cursors: &[(String, Cursor)]) -> Result<()>;

    /// Price every estimated and unpriced execution again with `pricer` (a newer or amended
    /// price table); those whose cost changes are updated, with every rollup, in transactions
    /// of a bounded number of rows (ingest waits for one at most).
    fn reprice(&self, pricer: Pricer<'_>) -> Result<Repriced>;

    /// Alert rules, firing conditions and the event log (`alerts`).
    fn alerts(&self) -> &dyn alerts::AlertLog;
}

impl dyn Store + '_ {
    /// Run `f` on one consistent snapshot: every question it asks sees the same data.
    pub fn read<T>(&self, f: impl FnOnce(&dyn Snapshot) -> Result<T>) -> Result<T> {
        let mut f = Some(f);
        let mut out = None;
        self.read_dyn(&mut |s| {
            let f = f.take().expect("read_dyn calls its closure once");
            out = Some(f(s)?);
            Ok(())
        })?;
        out.ok_or_else(|| Error::Internal("the store answered no snapshot".into()))
    }

    /// Is the database reachable?
    pub fn ping(&self) -> Result<()> {
        self.read(|_| Ok(()))
    }

    /// Is the database empty of executions?
    pub fn is_empty(&self) -> Result<bool> {
        self.read(|s| Ok(s.execution_count()? == 0))
    }

    /// Run `f`, a bulk load, in bulk mode (`Store::bulk_mode`).
    pub fn bulk<T>(&self, f: impl FnOnce() -> T) -> T {
        struct Done<'a, 'b>(&'a (dyn Store + 'b));
        impl Drop for Done<'_, '_> {
            fn drop(&mut self) {
                self.0.bulk_mode(false);
            }
        }
        self.bulk_mode(true);
        let _done = Done(self);
        f()
    }
}

/// One consistent view of the data and the typed questions the dashboard asks of it. A
/// `Filter` names agents and models; an unknown name matches nothing.
pub trait Snapshot {
    /// Sums over the window.
    fn totals(&self, w: &Window, f: &Filter) -> Result<Totals>;
    /// The 95th percentile of the known durations (nearest rank; SPEC §2.3's tolerance when
    /// answered from histograms).
    fn p95_duration(&self, w: &Window, f: &Filter) -> Result<Option<f64>>;
    /// Per-agent sums (agents with at least one execution), in no set order.
    fn agent_totals(&self, w: &Window, f: &Filter) -> Result<Vec<AgentTotals>>;
    /// Per-model sums, in no set order.
    fn model_totals(&self, w: &Window, f: &Filter) -> Result<Vec<ModelTotals>>;
    /// Sums per time unit of `unit` ms (`ts / unit`) and per agent id or model name when asked
    /// (`""` for `GroupKey::None`); each (unit, key) once.
    fn grouped(
        &self,
        w: &Window,
        f: &Filter,
        unit: Millis,
        key: GroupKey,
    ) -> Result<Vec<(i64, String, Totals)>>;
    /// A page of executions, newest first, ties by id; and how many match in all.
    fn executions(
        &self,
        w: &Window,
        ef: &ExecutionFilter,
        limit: u32,
        offset: u64,
        cancel: &Cancel,
    ) -> Result<(i64, Vec<ExecutionRow>)>;
    /// The detector's series: every non-empty (agent, UTC hour) of `range` for `agents`, one
    /// run per agent ordered by agent id.
    fn series(&self, range: &Window, agents: &Agents) -> Result<Vec<AgentRun>>;
    /// The generation of the latest write (0: none).
    fn latest_gen(&self) -> Result<i64>;
    /// The (agent id, hour) pairs written to after generation `seen` (`TooMany` past `limit`).
    fn changes_since(&self, seen: i64, limit: usize) -> Result<Changes>;
    /// Every agent id stored.
    fn agent_ids(&self) -> Result<Vec<String>>;
    /// The budget of `scope`, or every budget (the global one first, then by scope).
    fn budgets(&self, scope: Option<&str>) -> Result<Vec<Budget>>;
    /// Cost of `[start, end)` within a budget scope (`GLOBAL`: every agent).
    fn cost_between(&self, scope: &str, start: Millis, end: Millis) -> Result<Nanos>;
    /// How many executions are stored.
    fn execution_count(&self) -> Result<i64>;
    /// The ids of the first `n` agents stored (the benchmark's sample).
    fn first_agent_ids(&self, n: u32) -> Result<Vec<String>>;
    /// Per model, the estimated cost and calls and the unpriced calls of the window (models
    /// with neither left out), by model name.
    fn pricing(&self, w: &Window, f: &Filter) -> Result<Vec<Pricing>>;
}

/// A location as logs show it: a URL without its password.
pub fn describe_location(location: &str) -> String {
    if is_postgres(location) {
        postgres::redact(location)
    } else {
        location.to_owned()
    }
}

/// Send the inserted ones of `records` (by their `outcomes`) to the live feed's subscribers,
/// if any; an engine calls it after its commit.
fn publish(
    feed: &broadcast::Sender<Arc<Vec<Execution>>>,
    records: &[&Execution],
    outcomes: &[Outcome],
) {
    if feed.receiver_count() == 0 {
        return;
    }
    let batch: Vec<Execution> = records
        .iter()
        .zip(outcomes)
        .filter(|(_, o)| matches!(o, Outcome::Inserted | Outcome::Replaced))
        .map(|(e, _)| (*e).clone())
        .collect();
    if !batch.is_empty() {
        // An error only means nobody listens any more.
        let _ = feed.send(Arc::new(batch));
    }
}

/// Where the database is: a `postgres://` (or `postgresql://`) URL, or a SQLite file path.
pub fn is_postgres(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// Open the store at `location` (see `is_postgres`), migrating it; `missing` says what a SQLite
/// path without a file does.
pub fn open(location: &str, missing: Missing) -> Result<Arc<dyn Store>> {
    if is_postgres(location) {
        Ok(Arc::new(postgres::PgStore::open(location)?))
    } else {
        Ok(Arc::new(sqlite::SqliteStore::open_with(
            std::path::Path::new(location),
            missing,
        )?))
    }
}

/// For the test suites: a new, empty store of the engine under test. SQLite (a file in `dir`)
/// unless `DASHBOARD_MCP_TEST_ENGINE=postgres`, then a throwaway database on the server of
/// `DASHBOARD_MCP_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/test`), dropped
/// with the store.
#[doc(hidden)]
pub mod testing {
    use std::path::Path;
    use std::sync::Arc;

    use super::{postgres::PgStore, SqliteStore, Store};

    /// The server the PostgreSQL runs of the suites use.
    pub fn postgres_url() -> String {
        std::env::var("DASHBOARD_MCP_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
    }

    /// Is the suite running against PostgreSQL?
    pub fn on_postgres() -> bool {
        std::env::var("DASHBOARD_MCP_TEST_ENGINE").is_ok_and(|e| e == "postgres")
    }

    pub fn open(dir: &Path) -> Arc<dyn Store> {
        if on_postgres() {
            let url = postgres_url();
            // The driver blocks on a runtime of its own: never on an async test's thread.
            let made = std::thread::scope(|s| s.spawn(|| PgStore::throwaway(&url)).join());
            let made = made.unwrap_or_else(|p| std::panic::resume_unwind(p));
            Arc::new(made.unwrap_or_else(|e| {
                panic!(
                    "DASHBOARD_MCP_TEST_ENGINE=postgres but no throwaway database could be made on \
                     {url}: {e}; point DASHBOARD_MCP_TEST_POSTGRES at a PostgreSQL server \
                     (postgres://user@host:port/db) whose user may create databases"
                )
            }))
        } else {
            Arc::new(SqliteStore::open(&dir.join("usage.db")).expect("open the test store"))
        }
    }
}
