//! The SQLite store: opening, pragmas, the connection pool and the write path's single
//! connection. Only `store/` contains SQL.
//!
//! Why this shape: SQLite in WAL mode lets any number of readers run beside one writer, so reads
//! take a connection from a small pool and writes serialise on one connection behind a mutex.
//! Both are blocking calls; async callers run them on tokio's blocking pool (`spawn_blocking`) so
//! no executor thread ever waits on the disk, and no `Connection` is ever held across an `.await`.

pub mod budgets;
mod ingest;
pub mod query;
pub mod rollup;
mod schema;
pub mod series;

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{broadcast, watch};

use crate::error::{Error, Result};

pub use budgets::Budget;
pub use ingest::{Execution, InsertOutcome, Inserter};
pub use query as query_fns;
pub use query::{
    AgentTotals, ExecutionFilter, ExecutionRow, Filter, GroupKey, ModelTotals, Totals,
};
pub use series::{AgentRun, HourStats};

/// Executions are stored in time order under the rowid `pos` = ts · `PER_MILLISECOND` + n, n
/// numbering the executions of one millisecond in ingest order (schema migration 5).
pub const PER_MILLISECOND: i64 = 1 << 15;

/// The first `pos` at or after the instant `ts`: `ts <= e.ts` exactly when `pos(ts) <= e.pos`,
/// so a time range of executions is the rowid range `[pos(start), pos(end))`. Instants outside
/// what ingest accepts (1970 to year 9999) are clamped, which changes no answer.
pub fn pos(ts: crate::time::Millis) -> i64 {
    ts.clamp(0, crate::time::MAX_INSTANT + 1) * PER_MILLISECOND
}

/// How long a connection waits for a lock before giving up (a writer in another process).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;
/// Write batches the live feed keeps for a subscriber that is behind; one further behind is
/// dropped (it lags) rather than slowing ingest.
const FEED_CAPACITY: usize = 64;

/// WAL pages between checkpoints while serving (SQLite's default, ~4 MB): reads stay fast…
const LIVE_CHECKPOINT_PAGES: u32 = 1000;
/// …and during a bulk load (`Store::bulk`, ~80 MB).
const BULK_CHECKPOINT_PAGES: u32 = 20_000;

/// The usage store. Cheap to share behind an `Arc`.
pub struct Store {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// Bumped by every committed write; a reader that saw generation `g` saw every write up to it.
    generation: AtomicU64,
    /// The live feed (HTTP stream, MCP resource notifications). Sending on either never blocks a
    /// writer: `changed` keeps only the latest generation, `inserted` is a bounded broadcast
    /// whose slow receivers lag.
    changed: watch::Sender<u64>,
    inserted: broadcast::Sender<Arc<Vec<Execution>>>,
    /// Answer from the rollups (the default) or, for benchmarks and exactness tests, from raw
    /// rows only.
    rollups: AtomicBool,
    /// Bulk loads running (`bulk`).
    bulk: AtomicUsize,
    /// The connection `data_version` asks (opened on first use).
    watch: Mutex<Option<Connection>>,
}

/// A pooled read connection, and whether queries on it may use the rollups.
pub struct Reader<'a> {
    conn: &'a Connection,
    pub rollups: bool,
}

impl Deref for Reader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Store {
    /// Open (creating when missing, with its directory) and migrate the database at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::Internal(format!(
                        "cannot create the database directory {}: {e}",
                        dir.display()
                    ))
                })?;
            }
        }
        let mut writer = Connection::open(path).map_err(|e| {
            Error::Internal(format!("cannot open the database {}: {e}", path.display()))
        })?;
        configure(&writer)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        writer.pragma_update(None, "wal_autocheckpoint", LIVE_CHECKPOINT_PAGES)?;
        schema::migrate(&mut writer)?;
        Ok(Store {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            changed: watch::Sender::new(0),
            inserted: broadcast::Sender::new(FEED_CAPACITY),
            rollups: AtomicBool::new(true),
            bulk: AtomicUsize::new(0),
            watch: Mutex::new(None),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current data generation (see the field).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// SQLite's `PRAGMA data_version` seen from a connection of its own: changes whenever any
    /// other connection (this process's writer or another process) commits. With `generation`
    /// it tells a cache whether anything changed.
    pub fn data_version(&self) -> Result<i64> {
        let mut watch = self.watch.lock().unwrap_or_else(|p| p.into_inner());
        if watch.is_none() {
            let c = Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            configure(&c)?;
            *watch = Some(c);
        }
        let c = watch.as_ref().expect("opened above");
        Ok(c.pragma_query_value(None, "data_version", |r| r.get(0))?)
    }

    /// Does the store answer from the rollups? (See `set_rollups`.)
    pub fn rollups(&self) -> bool {
        self.rollups.load(Ordering::Acquire)
    }

    /// Answer reads from the rollups (`true`, the default) or from raw rows only (`false`: the
    /// plain-SQL baseline of `bench` and the reference of the exactness tests).
    pub fn set_rollups(&self, on: bool) {
        self.rollups.store(on, Ordering::Release);
    }

    /// Run `f` on a read connection from the pool.
    pub fn read<T>(&self, f: impl FnOnce(&Reader<'_>) -> Result<T>) -> Result<T> {
        let conn = match self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY
                        | OpenFlags::SQLITE_OPEN_NO_MUTEX
                        | OpenFlags::SQLITE_OPEN_URI,
                )?;
                configure(&c)?;
                c
            }
        };
        // One read transaction: everything `f` reads comes from one snapshot (a plan checks that
        // part of an hour is empty, then sums the hour's rollup: nothing may land in between).
        conn.execute_batch("BEGIN")?;
        let out = f(&Reader {
            conn: &conn,
            rollups: self.rollups.load(Ordering::Acquire),
        });
        conn.execute_batch("COMMIT")?;
        let mut idle = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        out
    }

    /// Run `f`, a bulk load, with the WAL checkpointed every `BULK_CHECKPOINT_PAGES` instead of
    /// `LIVE_CHECKPOINT_PAGES`: a bulk import otherwise rewrites the same index pages into the
    /// database file over and over (800 k records: 69 k/s → 91 k/s). Afterwards the WAL is
    /// checkpointed, as a long one slows every read down (a week's executions: 50 ms with an
    /// 80 MB WAL, 20 ms without).
    pub fn bulk<T>(&self, f: impl FnOnce() -> T) -> T {
        struct Done<'a>(&'a Store);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                if self.0.bulk.fetch_sub(1, Ordering::AcqRel) == 1 {
                    let c = self.0.writer.lock().unwrap_or_else(|p| p.into_inner());
                    // Best effort: a failure here leaves the data as it is, only slower to read.
                    let _ = c.pragma_update(None, "wal_autocheckpoint", LIVE_CHECKPOINT_PAGES);
                    let _ = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            }
        }
        if self.bulk.fetch_add(1, Ordering::AcqRel) == 0 {
            let c = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            let _ = c.pragma_update(None, "wal_autocheckpoint", BULK_CHECKPOINT_PAGES);
        }
        let _done = Done(self);
        f()
    }

    /// Run `f` inside one write transaction; commit when it returns `Ok`, roll back otherwise.
    pub fn write<T>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.changed.send_replace(generation);
        Ok(out)
    }

    /// Watch the data generation: changes after every committed write (coalesced).
    pub fn watch_changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Receive every batch of executions the ingest path stores from now on.
    pub fn subscribe_executions(&self) -> broadcast::Receiver<Arc<Vec<Execution>>> {
        self.inserted.subscribe()
    }

    /// Does anyone listen to the executions feed? (Lets the write path skip building batches.)
    pub fn wants_executions(&self) -> bool {
        self.inserted.receiver_count() > 0
    }

    /// Hand newly committed executions to the feed's subscribers, if any.
    pub fn publish_executions(&self, batch: Vec<Execution>) {
        if !batch.is_empty() {
            // An error only means nobody listens.
            let _ = self.inserted.send(Arc::new(batch));
        }
    }

    /// Move the write-ahead log into the database file and truncate it (so the file size is the
    /// store's size).
    pub fn checkpoint(&self) -> Result<()> {
        let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Is the database reachable? (A trivial query on a pooled read connection.)
    pub fn ping(&self) -> Result<()> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .map(|_| ())
    }

    /// Is the database empty of executions?
    pub fn is_empty(&self) -> Result<bool> {
        self.read(|c| Ok(query::execution_count(c)? == 0))
    }
}

fn configure(c: &Connection) -> Result<()> {
    c.busy_timeout(BUSY_TIMEOUT)?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.pragma_update(None, "cache_size", -65536)?;
    c.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_version_sees_writes_of_other_connections() {
        let dir = std::env::temp_dir().join(format!("dv-{}", std::process::id()));
        let path = dir.join("usage.db");
        let a = Store::open(&path).unwrap();
        let before = a.data_version().unwrap();
        assert_eq!(a.data_version().unwrap(), before);
        // Another store on the same file stands for another process.
        let b = Store::open(&path).unwrap();
        b.write(|tx| Ok(tx.execute("INSERT INTO models (name) VALUES ('m')", [])?))
            .unwrap();
        assert_ne!(a.data_version().unwrap(), before);
        let seen = a.data_version().unwrap();
        a.write(|tx| Ok(tx.execute("INSERT INTO models (name) VALUES ('n')", [])?))
            .unwrap();
        assert_ne!(a.data_version().unwrap(), seen);
        let _ = std::fs::remove_dir_all(dir);
    }
}
