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

mod alerts;
mod listen;
mod read;
mod reprice;
mod rollup;
mod schema;
mod sums;
mod write;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::{Client, IsolationLevel, NoTls};
use tokio::sync::{broadcast, watch};

use crate::error::{Error, Result};

use super::{Atomic, Budget, Cursor, Execution, Outcome, Snapshot, Store, Version};
use listen::{listen_loop, Listening};

/// The `LISTEN` / `NOTIFY` channel of data changes.
pub(crate) const CHANNEL: &str = "dashboard_mcp";
/// Idle pooled connections kept open.
const MAX_IDLE: usize = 8;
/// Connections of one replica for reads, budget writes and `version` at once (the writer and
/// the listener's two come on top): a request beyond waits for one to come back, so replicas
/// stay within the server's `max_connections` (100 by default) whatever the load.
const MAX_OPEN: usize = 16;
/// How long the listener waits before connecting again after losing its connection.
const RECONNECT: Duration = Duration::from_secs(1);
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
    /// The pool: idle connections, and how many are open (idle or in use).
    idle: Mutex<(Vec<Client>, usize)>,
    returned: std::sync::Condvar,
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
    /// This replica's name in its notifications (`<origin>:<generation>`): its own writes were
    /// published by its writer, so the listener skips them.
    origin: String,
}

impl Shared {
    /// Generation `gen` is committed: move `changed` on (never back).
    fn committed(&self, gen: u64) {
        self.changed.send_if_modified(|v| {
            let new = gen.max(*v);
            std::mem::replace(v, new) != new
        });
    }

    /// Hand this replica's newly committed executions to the feed's subscribers, if any.
    fn publish(&self, records: &[&Execution], outcomes: &[Outcome]) {
        super::publish(&self.inserted, records, outcomes);
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
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let months = schema::present_months(now);
        schema::ensure_partitions(&mut c, &months)?;
        let generation: i64 = c.query_one("SELECT generation FROM meta", &[])?.get(0);
        let origin = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let shared = Arc::new(Shared {
            changed: watch::Sender::new(generation as u64),
            inserted: broadcast::Sender::new(FEED_CAPACITY),
            stop: AtomicBool::new(false),
            origin,
        });
        let listening = Listening::connect(url)?;
        let listener = {
            let (shared, url) = (shared.clone(), url.to_owned());
            std::thread::Builder::new()
                .name("pg-listen".into())
                .spawn(move || listen_loop(listening, &url, &shared))
                .map_err(|e| Error::Internal(format!("cannot start the listener: {e}")))?
        };
        Ok(PgStore {
            url: url.to_owned(),
            idle: Mutex::new((vec![c], 1)),
            returned: std::sync::Condvar::new(),
            writer: Mutex::new((None, months.iter().map(|m| m.1).collect::<HashSet<_>>())),
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

    /// A connection from the pool, or a new one while fewer than `MAX_OPEN` are open (else wait
    /// for one to come back). Every `take` is matched by a `give`.
    fn take(&self) -> Result<Client> {
        let mut pool = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(c) = pool.0.pop() {
                if !c.is_closed() {
                    return Ok(c);
                }
                pool.1 -= 1;
                continue;
            }
            if pool.1 < MAX_OPEN {
                pool.1 += 1;
                drop(pool);
                return connect(&self.url).inspect_err(|_| self.forget_one());
            }
            pool = self.returned.wait(pool).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// One open connection less (closed, failed or not kept).
    fn forget_one(&self) {
        let mut pool = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        pool.1 = pool.1.saturating_sub(1);
        self.returned.notify_one();
    }

    fn give(&self, c: Client) {
        let mut pool = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if c.is_closed() || pool.0.len() >= MAX_IDLE {
            pool.1 = pool.1.saturating_sub(1);
        } else {
            pool.0.push(c);
        }
        self.returned.notify_one();
    }

    /// Run `f` on a pooled connection. A connection that turns out dead before `f` passed its
    /// point of no return (it sets `committed`; the server restarted and the pool holds only
    /// dead connections) is dropped and `f` runs once more on a fresh one.
    fn with_client<T>(
        &self,
        mut f: impl FnMut(&mut Client, &std::cell::Cell<bool>) -> Result<T>,
    ) -> Result<T> {
        for attempt in 0.. {
            let mut c = self.take()?;
            let committed = std::cell::Cell::new(false);
            let out = f(&mut c, &committed);
            let dead = c.is_closed();
            self.give(c);
            if dead && attempt == 0 && out.is_err() && !committed.get() {
                // The others idle beside it are likely dead too.
                let stale =
                    std::mem::take(&mut self.idle.lock().unwrap_or_else(|p| p.into_inner()).0);
                for _ in stale {
                    self.forget_one();
                }
                continue;
            }
            return out;
        }
        unreachable!("the loop returns")
    }

    /// Run `f` in a write transaction that bumps the generation and notifies every replica.
    fn bump<T>(&self, f: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut f = Some(f);
        self.with_client(|c, committed| {
            let mut tx = c.transaction()?;
            let gen: i64 = tx
                .query_one(
                    "UPDATE meta SET generation = generation + 1 RETURNING generation",
                    &[],
                )?
                .get(0);
            committed.set(true);
            let f = f.take().expect("no retry once committed is set");
            let out = f(&mut tx)?;
            let payload = format!("{}:{gen}", self.shared.origin);
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])?;
            tx.commit()?;
            self.shared.committed(gen as u64);
            Ok(out)
        })
    }
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
            let mut written = write::insert(&mut c, months, records, atomic, &shared.origin);
            if written.is_err() && c.is_closed() {
                // A dead connection (the server restarted): once more on a new one. Had the
                // commit gone through unacknowledged, the retry finds the ids taken and
                // reports them as duplicates: nothing is lost or counted twice.
                c = connect(&self.url)?;
                written = write::insert(&mut c, months, records, atomic, &shared.origin);
            }
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
            self.with_client(|c, committed| {
                let tx = c
                    .build_transaction()
                    .isolation_level(IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()?;
                committed.set(true);
                let snap = read::PgSnapshot::new(tx, self.rollups.load(Ordering::Acquire));
                let out = f(&snap);
                snap.into_inner().commit()?;
                out
            })
        })
    }

    /// The database's generation: moved on by every write of every replica.
    fn version(&self) -> Result<Version> {
        sync(|| {
            self.with_client(|c, _| {
                let g = c.query_one("SELECT generation FROM meta", &[])?;
                Ok((g.get::<_, i64>(0) as u64, 0))
            })
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
        sync(|| self.with_client(|c, _| Ok(c.batch_execute("VACUUM ANALYZE")?)))
    }

    fn size_bytes(&self) -> Result<u64> {
        sync(|| {
            self.with_client(|c, _| {
                let row = c.query_one("SELECT pg_database_size(current_database())", &[])?;
                Ok(row.get::<_, i64>(0) as u64)
            })
        })
    }

    fn alerts(&self) -> &dyn super::alerts::AlertLog {
        self
    }

    fn reprice(&self, pricer: super::Pricer<'_>) -> Result<super::Repriced> {
        let mut out = super::Repriced::default();
        let mut after = (i64::MIN, String::new());
        sync(|| {
            // One transaction per chunk: writers of every replica wait for one chunk at most.
            while let Some(last) = self.bump(|tx| {
                let gen: i64 = tx.query_one("SELECT generation FROM meta", &[])?.get(0);
                reprice::chunk(tx, gen, &after, pricer, &mut out)
            })? {
                after = last;
            }
            Ok(out)
        })
    }

    fn cursors(&self, source: &str) -> Result<std::collections::HashMap<String, Cursor>> {
        sync(|| {
            self.with_client(|c, _| {
                let rows = c.query(
                    "SELECT path, read_to, line, head, state FROM source_cursors
                     WHERE source = $1",
                    &[&source],
                )?;
                Ok(rows
                    .into_iter()
                    .map(|r| {
                        (
                            r.get(0),
                            Cursor {
                                offset: r.get::<_, i64>(1) as u64,
                                line: r.get::<_, i64>(2) as u64,
                                head: r.get(3),
                                state: r.get(4),
                            },
                        )
                    })
                    .collect())
            })
        })
    }

    fn put_cursors(&self, source: &str, list: &[(String, Cursor)]) -> Result<()> {
        let paths: Vec<&str> = list.iter().map(|(p, _)| p.as_str()).collect();
        let read_to: Vec<i64> = list.iter().map(|(_, k)| k.offset as i64).collect();
        let lines: Vec<i64> = list.iter().map(|(_, k)| k.line as i64).collect();
        let heads: Vec<&str> = list.iter().map(|(_, k)| k.head.as_str()).collect();
        let states: Vec<Option<&str>> = list.iter().map(|(_, k)| k.state.as_deref()).collect();
        sync(|| {
            self.with_client(|c, _| {
                c.execute(
                    "INSERT INTO source_cursors (source, path, read_to, line, head, state)
                     SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::bigint[],
                       $5::text[], $6::text[])
                     ON CONFLICT (source, path) DO UPDATE SET read_to = EXCLUDED.read_to,
                       line = EXCLUDED.line, head = EXCLUDED.head, state = EXCLUDED.state",
                    &[&source, &paths, &read_to, &lines, &heads, &states],
                )?;
                Ok(())
            })
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
            let (copy, source) = (ident(&name), ident(&source));
            c.batch_execute(&format!("DROP DATABASE IF EXISTS {copy} WITH (FORCE)"))?;
            c.batch_execute(&format!("CREATE DATABASE {copy} TEMPLATE {source}"))?;
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
        let (admin, name) = (self.admin.clone(), ident(&self.name));
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

/// `name` as a quoted SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
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
        let idle = std::mem::take(&mut self.idle.get_mut().unwrap_or_else(|p| p.into_inner()).0);
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
