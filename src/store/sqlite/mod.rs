//! The SQLite engine (the embedded default): opening, pragmas, the connection pool and the write
//! path's single connection; `snapshot.rs` answers the `Snapshot` questions on a pooled reader.
//!
//! Why this shape: SQLite in WAL mode lets any number of readers run beside one writer, so reads
//! take a connection from a small pool and writes serialise on one connection behind a mutex.
//! Both are blocking calls; async callers run them on tokio's blocking pool (`spawn_blocking`) so
//! no executor thread ever waits on the disk, and no `Connection` is ever held across an `.await`.

mod alerts;
mod budgets;
mod cursors;
mod ingest;
mod pending;
mod pricing;
mod query;
mod reprice;
mod rollup;
mod schema;
mod series;
mod snapshot;

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{broadcast, watch};

use crate::error::{Error, Result};

use super::{Atomic, Budget, Cursor, Execution, InsertOutcome, Outcome, Snapshot, Store, Version};
use ingest::Inserter;

/// Executions are stored in time order under the rowid `pos` = ts · `PER_MILLISECOND` + n, n
/// numbering the executions of one millisecond in ingest order (schema migration 5).
pub const PER_MILLISECOND: i64 = 1 << 15;

/// The first `pos` at or after the instant `ts`: `ts <= e.ts` exactly when `pos(ts) <= e.pos`,
/// so a time range of executions is the rowid range `[pos(start), pos(end))`. Instants outside
/// what ingest accepts (1970 to year 9999) are clamped, which changes no answer.
pub fn pos(ts: crate::time::Millis) -> i64 {
    ts.clamp(0, crate::time::MAX_INSTANT + 1) * PER_MILLISECOND
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Store(e.to_string())
    }
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

/// The SQLite store. Cheap to share behind an `Arc`.
pub struct SqliteStore {
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
    /// Filters resolved to keys in this read (each once per call; `query::keys`).
    keys: std::cell::RefCell<std::collections::HashMap<super::Filter, Option<rollup::Keys>>>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(conn: &'a Connection, rollups: bool) -> Self {
        Reader {
            conn,
            rollups,
            keys: Default::default(),
        }
    }
}

impl Deref for Reader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

/// What opening a database file that does not exist yet does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Create it, when its directory exists (a directory is never created here: a mistyped
    /// path must not leave directories and an empty database behind).
    Create,
    /// Refuse: a reading command on a path that holds no database says so instead of answering
    /// zeros from a database it just created.
    Refuse,
}

/// Check that `path` is a plain file path, the only database location the store accepts: not
/// an SQLite URI (`file:…`, which SQLite would interpret and for which a directory named `file:`
/// used to be created), not `:memory:` (each connection of the read pool would open a database
/// of its own, empty, and the data would vanish with the process), not a URL (`postgres://…`)
/// and not empty. The error says what was given (a bounded prefix) and what is accepted.
pub fn check_location(path: &Path) -> std::result::Result<(), String> {
    let text = path.to_string_lossy();
    let quoted = crate::input::quoted(&text);
    let accepted =
        "give the path of a SQLite file, e.g. ./usage.db (created when its directory exists)";
    if text.trim().is_empty() {
        return Err(format!("{quoted} is empty; {accepted}"));
    }
    if text == ":memory:" {
        return Err(format!(
            "{quoted} (an in-memory database) is not supported: every connection of the store would \
             see a database of its own, and the data would vanish when the command ends; {accepted}"
        ));
    }
    if let Some(rest) = text.strip_prefix("file:") {
        let plain = rest.split(['?', '#']).next().unwrap_or_default();
        let hint = if plain.is_empty() || plain == ":memory:" {
            String::new()
        } else {
            format!(" (here: {})", crate::input::quoted(plain))
        };
        return Err(format!(
            "{quoted} is an SQLite URI, which is not supported; give a plain file path instead{hint}"
        ));
    }
    if let Some((scheme, _)) = text.split_once("://") {
        if !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return Err(format!(
                "{quoted} is a URL ({scheme}://), which is not supported; {accepted}, or a \
                 PostgreSQL URL (postgres://user@host:port/database)"
            ));
        }
    }
    Ok(())
}

/// Check, before anything touches the disk, that `path` can be opened as `missing` asks: a plain
/// file path (`check_location`), not a directory, and either an existing file, or (with
/// `Missing::Create`) one whose directory exists. The error names the path and what to do.
pub fn check_path(path: &Path, missing: Missing) -> std::result::Result<(), String> {
    check_location(path)?;
    if path.is_dir() {
        return Err(format!(
            "{} is a directory; give the database file's path, e.g. {}",
            path.display(),
            path.join("usage.db").display()
        ));
    }
    if path.exists() {
        return Ok(());
    }
    match missing {
        Missing::Refuse => Err(format!(
            "there is no database at {} (nothing was created)",
            path.display()
        )),
        Missing::Create => match path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) if !dir.is_dir() => Err(format!(
                "cannot create the database {}: the directory {} does not exist (check the \
                 path for a typo, or create the directory first)",
                path.display(),
                dir.display()
            )),
            _ => Ok(()),
        },
    }
}

/// Why opening `path` failed, naming the path (SQLite's own messages do not).
fn open_error(path: &Path, e: &Error) -> Error {
    // rusqlite's text for SQLITE_NOTADB.
    let not_a_database = matches!(e, Error::Store(m) if m == "file is not a database");
    if not_a_database {
        Error::Internal(format!(
            "{} is not a SQLite database (SQLite: file is not a database); check the path",
            path.display()
        ))
    } else {
        let detail = match e {
            Error::Store(s) => s.clone(),
            other => other.to_string(),
        };
        Error::Internal(format!(
            "cannot open the database {}: {detail}",
            path.display()
        ))
    }
}

impl SqliteStore {
    /// Open the database at `path`, creating it when missing if its directory exists (see
    /// `Missing::Create`), and migrate it.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        SqliteStore::open_with(path, Missing::Create)
    }

    /// Open the database at `path` and migrate it; `missing` says what happens when there is no
    /// file there yet. Every error names the path.
    pub fn open_with(path: &Path, missing: Missing) -> Result<SqliteStore> {
        check_path(path, missing).map_err(|m| Error::invalid("database path", m))?;
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if missing == Missing::Create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let writer = (|| {
            let mut writer = Connection::open_with_flags(path, flags)?;
            configure(&writer)?;
            writer.pragma_update(None, "journal_mode", "WAL")?;
            writer.pragma_update(None, "wal_autocheckpoint", LIVE_CHECKPOINT_PAGES)?;
            schema::migrate(&mut writer)?;
            Ok::<_, Error>(writer)
        })()
        .map_err(|e| open_error(path, &e))?;
        Ok(SqliteStore {
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

    /// A read-only connection to the database (the read pool's and `data_version`'s).
    fn open_reader(&self) -> Result<Connection> {
        (|| {
            let c = Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            configure(&c)?;
            Ok(c)
        })()
        .map_err(|e| open_error(&self.path, &e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// SQLite's `PRAGMA data_version` seen from a connection of its own: changes whenever any
    /// other connection (this process's writer or another process) commits.
    fn data_version(&self) -> Result<i64> {
        let mut watch = self.watch.lock().unwrap_or_else(|p| p.into_inner());
        if watch.is_none() {
            *watch = Some(self.open_reader()?);
        }
        let c = watch.as_ref().expect("opened above");
        Ok(c.pragma_query_value(None, "data_version", |r| r.get(0))?)
    }

    /// Run `f` on a read connection from the pool, in one read transaction: everything `f`
    /// reads comes from one snapshot (a plan checks that part of an hour is empty, then sums the
    /// hour's rollup: nothing may land in between).
    pub(crate) fn with_reader<T>(&self, f: impl FnOnce(&Reader<'_>) -> Result<T>) -> Result<T> {
        let conn = match self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            Some(c) => c,
            None => self.open_reader()?,
        };
        conn.execute_batch("BEGIN")?;
        let out = f(&Reader::new(&conn, self.rollups.load(Ordering::Acquire)));
        conn.execute_batch("COMMIT")?;
        let mut idle = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        out
    }

    /// Run `f` inside one write transaction; commit when it returns `Ok`, roll back otherwise.
    fn write<T>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.changed.send_replace(generation);
        Ok(out)
    }

    /// Hand newly committed executions to the feed's subscribers, if any.
    fn publish(&self, records: &[&Execution], outcomes: &[Outcome]) {
        super::publish(&self.inserted, records, outcomes);
    }
}

impl Store for SqliteStore {
    fn describe(&self) -> String {
        format!("SQLite {}", self.path.display())
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn insert(&self, records: &[&Execution], atomic: Atomic) -> Result<Vec<Outcome>> {
        // With `Atomic::All`, a refusal rolls the transaction back through this error and the
        // outcomes (saying which records were refused) come out beside it.
        let mut refused: Option<Vec<Outcome>> = None;
        let written = self.write(|tx| {
            let mut ins = Inserter::new(tx);
            let mut out = Vec::with_capacity(records.len());
            for e in records {
                out.push(match ins.insert(e) {
                    Ok(InsertOutcome::Inserted) => Outcome::Inserted,
                    Ok(InsertOutcome::Duplicate) => Outcome::Duplicate,
                    Ok(InsertOutcome::Replaced) => Outcome::Replaced,
                    // A record the store cannot take (a millisecond already full).
                    Err(err @ Error::Invalid { .. }) => Outcome::Refused(err.to_string()),
                    Err(err) => return Err(err),
                });
            }
            if atomic == Atomic::All && out.iter().any(|o| matches!(o, Outcome::Refused(_))) {
                refused = Some(out);
                return Err(Error::Internal("rolled back".into()));
            }
            ins.finish()?;
            Ok(out)
        });
        if let Some(out) = refused {
            return Ok(out);
        }
        let outcomes = written?;
        self.publish(records, &outcomes);
        Ok(outcomes)
    }

    fn put_budget(&self, budget: &Budget) -> Result<bool> {
        self.write(|tx| budgets::put(tx, budget))
    }

    fn delete_budget(&self, scope: &str) -> Result<bool> {
        self.write(|tx| budgets::delete(tx, scope))
    }

    fn read_dyn(&self, f: &mut dyn FnMut(&dyn Snapshot) -> Result<()>) -> Result<()> {
        self.with_reader(|r| f(r))
    }

    /// This process's write generation and SQLite's `data_version` (another process's commits).
    fn version(&self) -> Result<Version> {
        Ok((
            self.generation.load(Ordering::Acquire),
            self.data_version()?,
        ))
    }

    fn set_rollups(&self, on: bool) {
        self.rollups.store(on, Ordering::Release);
    }

    fn rollups(&self) -> bool {
        self.rollups.load(Ordering::Acquire)
    }

    /// The WAL is checkpointed every `BULK_CHECKPOINT_PAGES` instead of `LIVE_CHECKPOINT_PAGES`
    /// during a bulk load: a bulk import otherwise rewrites the same index pages into the
    /// database file over and over (800 k records: 69 k/s → 91 k/s). Afterwards the WAL is
    /// checkpointed, as a long one slows every read down (a week's executions: 50 ms with an
    /// 80 MB WAL, 20 ms without).
    fn bulk_mode(&self, on: bool) {
        let c = || self.writer.lock().unwrap_or_else(|p| p.into_inner());
        // Best effort: a failure here leaves the data as it is, only slower to write or read.
        if on {
            if self.bulk.fetch_add(1, Ordering::AcqRel) == 0 {
                let _ = c().pragma_update(None, "wal_autocheckpoint", BULK_CHECKPOINT_PAGES);
            }
        } else if self.bulk.fetch_sub(1, Ordering::AcqRel) == 1 {
            let c = c();
            let _ = c.pragma_update(None, "wal_autocheckpoint", LIVE_CHECKPOINT_PAGES);
            let _ = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        }
    }

    fn watch_changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn subscribe_executions(&self) -> broadcast::Receiver<Arc<Vec<Execution>>> {
        self.inserted.subscribe()
    }

    fn size_bytes(&self) -> Result<u64> {
        let len = |suffix: &str| {
            let mut p = self.path.as_os_str().to_owned();
            p.push(suffix);
            std::fs::metadata(PathBuf::from(p)).map_or(0, |m| m.len())
        };
        Ok(len("") + len("-wal"))
    }

    fn alerts(&self) -> &dyn super::alerts::AlertLog {
        self
    }

    fn reprice(&self, pricer: super::Pricer<'_>) -> Result<super::Repriced> {
        let mut out = super::Repriced::default();
        let mut after = i64::MIN;
        // One transaction per chunk: ingest waits for one chunk at most.
        while let Some(last) = self.write(|tx| reprice::chunk(tx, after, pricer, &mut out))? {
            after = last;
        }
        Ok(out)
    }

    fn cursors(&self, source: &str) -> Result<std::collections::HashMap<String, Cursor>> {
        let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        cursors::get(&conn, source)
    }

    fn put_cursors(&self, source: &str, list: &[(String, Cursor)]) -> Result<()> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        cursors::put(&mut conn, source, list)
    }

    /// Move the write-ahead log into the database file and truncate it (so the file size is the
    /// store's size).
    fn checkpoint(&self) -> Result<()> {
        let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

/// Close the read connections first and the writer last. SQLite checkpoints the write-ahead log
/// into the database and deletes the `-wal` and `-shm` files when the last connection to a
/// database closes, but only a connection that may write can do that: were a read-only pool
/// connection the last to go (fields drop in declaration order, the writer first), both files
/// would stay behind after every command.
impl Drop for SqliteStore {
    fn drop(&mut self) {
        let readers = std::mem::take(self.readers.get_mut().unwrap_or_else(|p| p.into_inner()));
        drop(readers);
        drop(
            self.watch
                .get_mut()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        // Dropping `writer` now closes the last connection of this store.
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
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        let a = SqliteStore::open(&path).unwrap();
        let before = a.data_version().unwrap();
        assert_eq!(a.data_version().unwrap(), before);
        // Another store on the same file stands for another process.
        let b = SqliteStore::open(&path).unwrap();
        b.write(|tx| Ok(tx.execute("INSERT INTO models (name) VALUES ('m')", [])?))
            .unwrap();
        assert_ne!(a.data_version().unwrap(), before);
        let seen = a.data_version().unwrap();
        a.write(|tx| Ok(tx.execute("INSERT INTO models (name) VALUES ('n')", [])?))
            .unwrap();
        assert_ne!(a.data_version().unwrap(), seen);
    }

    /// The files SQLite keeps beside `db` while a connection is open.
    fn sidecars(db: &Path) -> Vec<PathBuf> {
        ["-wal", "-shm"]
            .iter()
            .map(|s| PathBuf::from(format!("{}{s}", db.display())))
            .filter(|p| p.exists())
            .collect()
    }

    #[test]
    fn dropping_the_store_removes_the_wal_and_shm_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        let store = SqliteStore::open(&path).unwrap();
        store
            .write(|tx| Ok(tx.execute("INSERT INTO models (name) VALUES ('m')", [])?))
            .unwrap();
        // Two read connections in the pool at once, and the data_version one.
        store
            .with_reader(|_| {
                store.with_reader(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            })
            .unwrap();
        store.data_version().unwrap();
        assert_eq!(store.readers.lock().unwrap().len(), 2);
        assert_eq!(sidecars(&path).len(), 2, "WAL mode while open");
        drop(store);
        assert_eq!(sidecars(&path), Vec::<PathBuf>::new());
        // Nothing was lost: the log went into the database file.
        let again = SqliteStore::open_with(&path, Missing::Refuse).unwrap();
        let n: i64 = again
            .with_reader(|c| Ok(c.query_row("SELECT COUNT(*) FROM models", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn locations_other_than_a_file_path_are_refused_by_name() {
        let cases = [
            (
                "file:x.db?mode=rwc",
                "\"file:x.db?mode=rwc\" is an SQLite URI, which is not supported; give a plain file path instead (here: \"x.db\")",
            ),
            (
                ":memory:",
                "\":memory:\" (an in-memory database) is not supported: every connection of the store would see a database of its own, and the data would vanish when the command ends; give the path of a SQLite file, e.g. ./usage.db (created when its directory exists)",
            ),
            (
                "mysql://u@h/db",
                "\"mysql://u@h/db\" is a URL (mysql://), which is not supported; give the path of a SQLite file, e.g. ./usage.db (created when its directory exists), or a PostgreSQL URL (postgres://user@host:port/database)",
            ),
            (
                "",
                "\"\" is empty; give the path of a SQLite file, e.g. ./usage.db (created when its directory exists)",
            ),
        ];
        for (given, message) in cases {
            assert_eq!(check_location(Path::new(given)), Err(message.to_owned()));
        }
        let long = format!("file:{}", "a".repeat(500));
        let m = check_location(Path::new(&long)).unwrap_err();
        assert!(
            m.starts_with(&format!("\"file:{}\"… (505 characters)", "a".repeat(75))),
            "{m}"
        );
        assert!(m.len() < 300, "{m}");
        for fine in [
            "usage.db",
            "./data/usage.db",
            "/tmp/a:b.db",
            "dir/file:x.db",
        ] {
            assert_eq!(check_location(Path::new(fine)), Ok(()), "{fine}");
        }
    }

    #[test]
    fn a_missing_directory_or_database_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let typo = dir.path().join("no-such-dir").join("usage.db");
        let e = SqliteStore::open(&typo).err().unwrap().to_string();
        assert_eq!(
            e,
            format!(
                "database path: cannot create the database {}: the directory {} does not exist (check the path for a typo, or create the directory first)",
                typo.display(),
                dir.path().join("no-such-dir").display()
            )
        );
        assert!(!dir.path().join("no-such-dir").exists());
        let missing = dir.path().join("usage.db");
        let e = SqliteStore::open_with(&missing, Missing::Refuse)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            e,
            format!(
                "database path: there is no database at {} (nothing was created)",
                missing.display()
            )
        );
        assert!(!missing.exists());
        SqliteStore::open(&missing).unwrap();
        assert!(missing.exists());
    }

    #[test]
    fn a_file_that_is_not_a_database_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, "hello, this is not SQLite\n".repeat(100)).unwrap();
        let e = SqliteStore::open(&path).err().unwrap().to_string();
        assert_eq!(
            e,
            format!(
                "{} is not a SQLite database (SQLite: file is not a database); check the path",
                path.display()
            )
        );
        let e = SqliteStore::open(dir.path()).err().unwrap().to_string();
        assert_eq!(
            e,
            format!(
                "database path: {} is a directory; give the database file's path, e.g. {}",
                dir.path().display(),
                dir.path().join("usage.db").display()
            )
        );
    }
}
