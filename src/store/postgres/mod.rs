//! The PostgreSQL engine: several dashboard servers (replicas) over one database. Opening
//! migrates (`schema`), reads run on pooled connections in one `REPEATABLE READ READ ONLY`
//! transaction each (`read`), writes take the generation row first (`write`).
//!
//! Many replicas behave as one service:
//! - the generation lives in the database (`meta.generation`), so `version()`, the cache key,
//!   changes with a write through any replica;
//! - every write transaction sends `NOTIFY dashboard_mcp, '<generation>'`; each replica's
//!   listener thread turns it into `watch_changes` and, for the live feed, reads the rows of that
//!   generation (`executions.gen`) and broadcasts them: subscribers of every replica see every
//!   write, their own replica's included, once;
//! - the anomaly memo asks what changed since a generation (`agent_hour.gen`), whichever
//!   replica wrote it.

mod read;
mod schema;
mod write;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, IsolationLevel, NoTls};
use tokio::sync::{broadcast, watch};

use crate::error::{Error, Result};

use super::{Atomic, Budget, Execution, Outcome, Snapshot, Store, Version};

/// The `LISTEN` / `NOTIFY` channel of data changes.
pub(crate) const CHANNEL: &str = "dashboard_mcp";
/// Idle pooled connections kept open.
const MAX_IDLE: usize = 8;
/// Write batches the live feed keeps for a subscriber that is behind.
const FEED_CAPACITY: usize = 64;
/// How long the listener waits for a notification before checking whether it should stop.
const LISTEN_TICK: Duration = Duration::from_millis(200);

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        // The server's message (and detail) when there is one, else the driver's.
        match e.as_db_error() {
            Some(db) => Error::Store(match db.detail() {
                Some(d) => format!("{} ({d})", db.message()),
                None => db.message().to_owned(),
            }),
            None => Error::Store(e.to_string()),
        }
    }
}

/// The PostgreSQL store. Cheap to share behind an `Arc`.
pub struct PgStore {
    /// The connection URL (`describe` shows it without a password).
    url: String,
    idle: Mutex<Vec<Client>>,
    /// Writers of this replica go one at a time (the database orders all replicas' writers on
    /// the generation row anyway); holds the months whose partitions are known to exist.
    writer: Mutex<(Option<Client>, HashSet<i64>)>,
    rollups: AtomicBool,
    shared: Arc<Shared>,
    listener: Option<std::thread::JoinHandle<()>>,
    /// A test's throwaway database: (URL of the database to drop it from, its name).
    throwaway: Option<(String, String)>,
}

/// What the listener thread shares with the store.
struct Shared {
    changed: watch::Sender<u64>,
    inserted: broadcast::Sender<Arc<Vec<Execution>>>,
    stop: AtomicBool,
    /// Generations this replica wrote whose notification has not come back yet: their batches
    /// were published by the writer.
    own: Mutex<HashSet<i64>>,
}

impl Shared {
    fn lock_own(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.own.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Generation `gen` is committed: move `changed` on (never back).
    fn committed(&self, gen: u64) {
        self.changed.send_if_modified(|v| {
            let new = gen.max(*v);
            std::mem::replace(v, new) != new
        });
    }

    /// Hand this replica's newly committed executions to the feed's subscribers, if any.
    fn publish(&self, records: &[&Execution], outcomes: &[Outcome]) {
        if self.inserted.receiver_count() == 0 {
            return;
        }
        let batch: Vec<Execution> = records
            .iter()
            .zip(outcomes)
            .filter(|(_, o)| **o == Outcome::Inserted)
            .map(|(e, _)| (*e).clone())
            .collect();
        if !batch.is_empty() {
            let _ = self.inserted.send(Arc::new(batch));
        }
    }
}

/// Run `f`, which blocks on the driver's own runtime. On a worker of a multi-threaded tokio
/// runtime (a caller that did not use `spawn_blocking`) the worker first hands its tasks over
/// (`block_in_place`): blocking on a runtime from inside another's task is refused.
fn sync<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

fn connect(url: &str) -> Result<Client> {
    Client::connect(url, NoTls).map_err(|e| {
        Error::Internal(format!(
            "cannot connect to the database {}: {}",
            redact(url),
            Error::from(e)
                .to_string()
                .trim_start_matches("store error: ")
        ))
    })
}

/// `url` without its password.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let user = &url[s + 3..at];
            match user.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..s + 3], &user[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl PgStore {
    /// Connect to `url` (`postgres://user@host:port/db`), migrate, and start listening for
    /// other replicas' writes.
    pub fn open(url: &str) -> Result<PgStore> {
        sync(|| PgStore::open_here(url))
    }

    fn open_here(url: &str) -> Result<PgStore> {
        let mut c = connect(url)?;
        schema::migrate(&mut c)?;
        let generation: i64 = c.query_one("SELECT generation FROM meta", &[])?.get(0);
        let shared = Arc::new(Shared {
            changed: watch::Sender::new(generation as u64),
            inserted: broadcast::Sender::new(FEED_CAPACITY),
            stop: AtomicBool::new(false),
            own: Mutex::new(HashSet::new()),
        });
        let mut listen = connect(url)?;
        listen.batch_execute(&format!("LISTEN {CHANNEL}"))?;
        let fetch = connect(url)?;
        let listener = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("pg-listen".into())
                .spawn(move || listen_loop(listen, fetch, &shared))
                .map_err(|e| Error::Internal(format!("cannot start the listener: {e}")))?
        };
        Ok(PgStore {
            url: url.to_owned(),
            idle: Mutex::new(vec![c]),
            writer: Mutex::new((None, HashSet::new())),
            rollups: AtomicBool::new(true),
            shared,
            listener: Some(listener),
            throwaway: None,
        })
    }

    /// A new, empty database on the server of `admin_url`, dropped with the store (tests).
    pub fn throwaway(admin_url: &str) -> Result<PgStore> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let name = format!(
            "dmcp_test_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        sync(|| {
            let mut admin = connect(admin_url)?;
            drop_abandoned(&mut admin);
            admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
            Ok::<_, Error>(())
        })?;
        let url = match admin_url.rfind('/') {
            Some(i) if i > admin_url.find("://").map_or(0, |s| s + 2) => {
                let (base, rest) = admin_url.split_at(i);
                let query = rest.find('?').map_or("", |q| &rest[q..]);
                format!("{base}/{name}{query}")
            }
            _ => format!("{admin_url}/{name}"),
        };
        let mut store = PgStore::open(&url)?;
        store.throwaway = Some((admin_url.to_owned(), name));
        Ok(store)
    }

    fn take(&self) -> Result<Client> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match pooled {
            Some(c) if !c.is_closed() => Ok(c),
            _ => connect(&self.url),
        }
    }

    fn give(&self, c: Client) {
        if c.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(c);
        }
    }

    /// Run `f` in a write transaction that bumps the generation and notifies every replica.
    fn bump<T>(&self, f: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut c = self.take()?;
        let out = (|| {
            let mut tx = c.transaction()?;
            let gen: i64 = tx
                .query_one(
                    "UPDATE meta SET generation = generation + 1 RETURNING generation",
                    &[],
                )?
                .get(0);
            self.shared.lock_own().insert(gen);
            let out = f(&mut tx)?;
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &gen.to_string()])?;
            tx.commit()?;
            self.shared.committed(gen as u64);
            Ok(out)
        })();
        self.give(c);
        out
    }
}

/// The listener: each notification moves `changed` on and broadcasts the executions written
/// under that generation, when anyone listens.
fn listen_loop(mut listen: Client, mut fetch: Client, shared: &Shared) {
    while !shared.stop.load(Ordering::Acquire) {
        let mut gens: Vec<i64> = Vec::new();
        {
            let mut n = listen.notifications();
            let mut it = n.timeout_iter(LISTEN_TICK);
            loop {
                match it.next() {
                    Ok(Some(note)) => {
                        if let Ok(g) = note.payload().parse() {
                            gens.push(g);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "the database listener stopped");
                        return;
                    }
                }
                if gens.len() >= 64 {
                    break;
                }
            }
        }
        let Some(&latest) = gens.iter().max() else {
            continue;
        };
        // Other replicas' writes; this one's were published by its writer.
        let others: Vec<i64> = {
            let mut own = shared.lock_own();
            gens.into_iter().filter(|g| !own.remove(g)).collect()
        };
        if !others.is_empty() && shared.inserted.receiver_count() > 0 {
            match feed_batches(&mut fetch, &others) {
                Ok(batches) => {
                    for batch in batches {
                        let _ = shared.inserted.send(Arc::new(batch));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read a write for the live feed"),
            }
        }
        shared.committed(latest as u64);
    }
}

/// The executions written under the generations `gens`, one batch per generation in
/// generation order, as the live feed sends them.
fn feed_batches(c: &mut Client, gens: &[i64]) -> Result<Vec<Vec<Execution>>> {
    let mut batches: std::collections::BTreeMap<i64, Vec<Execution>> = Default::default();
    let rows = c.query(
        "SELECT e.id, e.ts, a.id, a.name, m.name, e.prompt_tokens, e.completion_tokens,
                e.cache_read_tokens, e.cache_write_tokens, e.cost, e.duration_ms, e.success,
                e.error, e.status_code, e.session_id, e.task_type, e.metadata, e.gen
         FROM executions e JOIN agents a ON a.key = e.agent JOIN models m ON m.key = e.model
         WHERE e.gen = ANY($1) ORDER BY e.gen, e.ts, e.id COLLATE \"C\"",
        &[&gens],
    )?;
    for r in rows {
        batches.entry(r.get(17)).or_default().push(Execution {
            id: r.get(0),
            ts: r.get(1),
            agent_id: r.get(2),
            agent_name: r.get(3),
            model: r.get(4),
            prompt_tokens: r.get(5),
            completion_tokens: r.get(6),
            cache_read_tokens: r.get(7),
            cache_write_tokens: r.get(8),
            cost: r.get(9),
            duration_ms: r.get(10),
            success: r.get(11),
            error: r.get(12),
            status_code: r.get(13),
            session_id: r.get(14),
            task_type: r.get(15),
            metadata: r.get(16),
        });
    }
    Ok(batches.into_values().collect())
}

impl Store for PgStore {
    fn describe(&self) -> String {
        format!("PostgreSQL {}", redact(&self.url))
    }

    fn location(&self) -> String {
        self.url.clone()
    }

    fn insert(&self, records: &[&Execution], atomic: Atomic) -> Result<Vec<Outcome>> {
        sync(|| {
            let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            let (conn, months) = &mut *w;
            let mut c = match conn.take() {
                Some(c) if !c.is_closed() => c,
                _ => connect(&self.url)?,
            };
            let shared = &self.shared;
            let mut mine = |gen: i64| {
                shared.lock_own().insert(gen);
            };
            let written = write::insert(&mut c, months, records, atomic, &mut mine);
            *conn = Some(c);
            let (outcomes, gen) = written?;
            if let Some(gen) = gen {
                shared.committed(gen as u64);
                shared.publish(records, &outcomes);
            }
            Ok(outcomes)
        })
    }

    fn put_budget(&self, b: &Budget) -> Result<bool> {
        if b.scope.contains('\0') {
            return Err(Error::invalid(
                "scope",
                "holds a NUL character (\\u0000), which PostgreSQL cannot store",
            ));
        }
        sync(|| {
            let thresholds = serde_json::to_string(&b.thresholds)
                .map_err(|e| Error::Internal(format!("cannot encode thresholds: {e}")))?;
            self.bump(|tx| {
                let existed = tx
                    .query_opt(
                        "SELECT 1 FROM budgets WHERE scope = $1 FOR UPDATE",
                        &[&b.scope],
                    )?
                    .is_some();
                tx.execute(
                    "INSERT INTO budgets (scope, limit_nanos, period, thresholds)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (scope) DO UPDATE SET limit_nanos = EXCLUDED.limit_nanos,
                       period = EXCLUDED.period, thresholds = EXCLUDED.thresholds",
                    &[&b.scope, &b.limit, &b.period.as_str(), &thresholds],
                )?;
                Ok(existed)
            })
        })
    }

    fn delete_budget(&self, scope: &str) -> Result<bool> {
        if scope.contains('\0') {
            return Ok(false); // PostgreSQL text holds no NUL: no such budget.
        }
        sync(|| {
            self.bump(|tx| Ok(tx.execute("DELETE FROM budgets WHERE scope = $1", &[&scope])? > 0))
        })
    }

    fn read_dyn(&self, f: &mut dyn FnMut(&dyn Snapshot) -> Result<()>) -> Result<()> {
        sync(|| {
            let mut c = self.take()?;
            let out = (|| {
                let tx = c
                    .build_transaction()
                    .isolation_level(IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()?;
                let snap = read::PgSnapshot::new(tx, self.rollups.load(Ordering::Acquire));
                let out = f(&snap);
                snap.into_inner().commit()?;
                out
            })();
            self.give(c);
            out
        })
    }

    /// The database's generation: moved on by every write of every replica.
    fn version(&self) -> Result<Version> {
        sync(|| {
            let mut c = self.take()?;
            let g = c.query_one("SELECT generation FROM meta", &[]);
            self.give(c);
            Ok((g?.get::<_, i64>(0) as u64, 0))
        })
    }

    fn set_rollups(&self, on: bool) {
        self.rollups.store(on, Ordering::Release);
    }

    fn rollups(&self) -> bool {
        self.rollups.load(Ordering::Acquire)
    }

    fn bulk_mode(&self, _on: bool) {}

    fn watch_changes(&self) -> watch::Receiver<u64> {
        self.shared.changed.subscribe()
    }

    fn subscribe_executions(&self) -> broadcast::Receiver<Arc<Vec<Execution>>> {
        self.shared.inserted.subscribe()
    }

    /// `VACUUM ANALYZE` after a bulk load: the planner's statistics and the visibility map
    /// (index-only scans) are then current.
    fn checkpoint(&self) -> Result<()> {
        sync(|| {
            let mut c = self.take()?;
            let out = c.batch_execute("VACUUM ANALYZE").map_err(Error::from);
            self.give(c);
            out
        })
    }

    fn size_bytes(&self) -> Result<u64> {
        sync(|| {
            let mut c = self.take()?;
            let out = c.query_one("SELECT pg_database_size(current_database())", &[]);
            self.give(c);
            Ok(out?.get::<_, i64>(0) as u64)
        })
    }
}

/// A copy of the database at `url` (`CREATE DATABASE … TEMPLATE`, which needs no other
/// connection to it), dropped with this value: the benchmark's working copy.
pub struct DatabaseCopy {
    admin: String,
    name: String,
    pub url: String,
}

impl DatabaseCopy {
    pub fn of(url: &str) -> Result<DatabaseCopy> {
        let (base, source) = split_database(url);
        let name = format!("{source}_bench_run");
        let admin = format!("{base}/postgres");
        sync(|| {
            let mut c = connect(&admin)?;
            // Two statements: neither may run inside a transaction block.
            c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
            c.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {source}"))?;
            Ok::<_, Error>(())
        })?;
        Ok(DatabaseCopy {
            url: format!("{base}/{name}"),
            admin,
            name,
        })
    }
}

impl Drop for DatabaseCopy {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        std::thread::scope(|s| {
            s.spawn(move || {
                if let Ok(mut c) = connect(&admin) {
                    let _ =
                        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                }
            });
        });
    }
}

/// A URL split into everything before its database name, and the name (query strings are not
/// kept).
fn split_database(url: &str) -> (String, String) {
    let url = url.split('?').next().unwrap_or(url);
    let after = url.find("://").map_or(0, |i| i + 3);
    match url[after..].find('/') {
        Some(i) => (url[..after + i].to_owned(), url[after + i + 1..].to_owned()),
        None => (url.to_owned(), "postgres".to_owned()),
    }
}

/// Drop the throwaway databases of test processes that are gone (a test that panicked, or a
/// store never dropped): their names hold the process id (`dmcp_test_<pid>_…`, and
/// `dmcp_py_<pid>_…` of the Python suites).
fn drop_abandoned(admin: &mut Client) {
    let Ok(rows) = admin.query(
        "SELECT datname FROM pg_database WHERE datname LIKE 'dmcp\\_test\\_%'
            OR datname LIKE 'dmcp\\_py\\_%'",
        &[],
    ) else {
        return;
    };
    for r in rows {
        let name: String = r.get(0);
        let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

impl Drop for PgStore {
    /// The connections close on a thread of their own: the driver blocks on a runtime of its
    /// own, which must not happen on an async task's thread (the last `Arc` may go there).
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        let listener = self.listener.take();
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|p| p.into_inner()));
        let writer = self
            .writer
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .take();
        let throwaway = self.throwaway.take();
        std::thread::scope(|s| {
            s.spawn(move || {
                if let Some(h) = listener {
                    let _ = h.join();
                }
                drop(idle);
                drop(writer);
                if let Some((admin, name)) = throwaway {
                    if let Ok(mut c) = connect(&admin) {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = c.batch_execute(&sql);
                    }
                }
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://me:secret@db:5432/usage"),
            "postgres://me:***@db:5432/usage"
        );
        assert_eq!(redact("postgres://me@db/usage"), "postgres://me@db/usage");
        assert_eq!(redact("postgres://db/usage"), "postgres://db/usage");
    }
}
