//! The result cache of the read tools, with single flight: identical concurrent calls run the
//! query once and share its answer.
//!
//! An answer is a pure function of the tool, its arguments, the clock reading and the stored
//! data, so the key holds exactly those:
//! - the tool name and its arguments as canonical JSON (keys sorted; an alias such as `"7d"` for
//!   `"week"` is only a different key, never a wrong answer);
//! - `now` in milliseconds, unless the answer cannot depend on it: the models, timeline and
//!   executions tools given an explicit `end` (their window is then fixed). The overview, agents
//!   and budgets tools always depend on `now` (budget periods and projections). A rolling window
//!   is therefore a new question every millisecond on a running clock: never a stale answer, and
//!   a hit only for calls within the same millisecond, for a pinned `end`, or with `--now`. The
//!   call runs with its clock pinned to the `now` of its key, so the entry answers that key;
//! - the data version: `Store::version()`, which changes whenever anyone commits (SQLite: this
//!   process's write generation and `PRAGMA data_version`, which changes when another
//!   connection, in this process or another, commits; PostgreSQL: the generation row every
//!   write transaction bumps, shared by every replica). It is read before the query runs, so
//!   a write that lands during the query leaves an entry under the old version that no later
//!   call looks up;
//! - whether the store answers from rollups (the exactness tests and `bench` switch it).
//!
//! Errors are not cached. Entries of an older data version are dropped when the cache is full.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use serde_json::{Map, Value};

use crate::error::Result;

/// Entries kept before the cache makes room.
const CAPACITY: usize = 1024;

/// What an answer depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub tool: &'static str,
    pub args: String,
    pub now: Option<i64>,
    /// `Store::version()`: changes with any write anywhere.
    pub version: crate::store::Version,
    pub rollups: bool,
}

impl Key {
    /// The canonical text of some arguments: object keys sorted at every level.
    pub fn canonical(args: Option<&Map<String, Value>>) -> String {
        fn sorted(v: &Value) -> Value {
            match v {
                Value::Object(o) => {
                    let mut keys: Vec<&String> = o.keys().collect();
                    keys.sort();
                    Value::Object(
                        keys.into_iter()
                            .map(|k| (k.clone(), sorted(&o[k])))
                            .collect(),
                    )
                }
                Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
                x => x.clone(),
            }
        }
        args.map_or_else(String::new, |a| {
            sorted(&Value::Object(a.clone())).to_string()
        })
    }
}

/// A query in flight; waiters block on it until the runner publishes.
#[derive(Default)]
struct Flight {
    /// `Some(answer)` once done; `Some(None)` when the runner failed (waiters run themselves).
    done: Mutex<Option<Option<Arc<Value>>>>,
    cv: Condvar,
}

impl Flight {
    fn publish(&self, v: Option<Arc<Value>>) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
        self.cv.notify_all();
    }

    fn wait(&self) -> Option<Arc<Value>> {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(v) = done.as_ref() {
                return v.clone();
            }
            done = self.cv.wait(done).unwrap_or_else(|p| p.into_inner());
        }
    }
}

enum Entry {
    Ready(Arc<Value>),
    Running(Arc<Flight>),
}

/// Counters reported by `/healthz`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Calls that waited for an identical call in flight instead of running the query.
    pub coalesced: u64,
    pub entries: u64,
}

#[derive(Default)]
pub struct ResultCache {
    map: Mutex<HashMap<Key, Entry>>,
    hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
}

/// Publishes a failure to waiters if the runner returns early or panics.
struct Runner<'a> {
    cache: &'a ResultCache,
    key: Option<Key>,
    flight: Arc<Flight>,
}

impl Drop for Runner<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.cache.lock().remove(&key);
            self.flight.publish(None);
        }
    }
}

impl ResultCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached answer of `key`, or `run`'s, computed once however many identical calls
    /// arrive meanwhile.
    pub fn get_or_run(&self, key: Key, run: impl FnOnce() -> Result<Value>) -> Result<Value> {
        let flight = {
            let mut map = self.lock();
            match map.get(&key) {
                Some(Entry::Ready(v)) => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(v.as_ref().clone());
                }
                Some(Entry::Running(f)) => Err(f.clone()),
                None => {
                    if map.len() >= CAPACITY {
                        make_room(&mut map, &key);
                    }
                    let f = Arc::new(Flight::default());
                    map.insert(key.clone(), Entry::Running(f.clone()));
                    Ok(f)
                }
            }
        };
        let flight = match flight {
            Ok(f) => f,
            Err(theirs) => {
                self.coalesced.fetch_add(1, Ordering::Relaxed);
                if let Some(v) = theirs.wait() {
                    return Ok(v.as_ref().clone());
                }
                // The identical call failed; run it here to get this call's own error.
                self.misses.fetch_add(1, Ordering::Relaxed);
                return run();
            }
        };
        self.misses.fetch_add(1, Ordering::Relaxed);
        let mut runner = Runner {
            cache: self,
            key: Some(key),
            flight,
        };
        let value = run()?;
        let shared = Arc::new(value.clone());
        if let Some(key) = runner.key.take() {
            self.lock().insert(key, Entry::Ready(shared.clone()));
        }
        runner.flight.publish(Some(shared));
        Ok(value)
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            coalesced: self.coalesced.load(Ordering::Relaxed),
            entries: self.lock().len() as u64,
        }
    }
}

/// Drop finished entries of other data versions; if that frees too little, every finished one.
fn make_room(map: &mut HashMap<Key, Entry>, current: &Key) {
    map.retain(|k, e| matches!(e, Entry::Running(_)) || k.version == current.version);
    if map.len() >= CAPACITY / 2 {
        map.retain(|_, e| matches!(e, Entry::Running(_)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn key(args: &str) -> Key {
        Key {
            tool: "t",
            args: args.into(),
            now: None,
            version: (0, 0),
            rollups: true,
        }
    }

    #[test]
    fn identical_concurrent_calls_run_once() {
        let cache = ResultCache::default();
        let runs = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let v = cache
                        .get_or_run(key("a"), || {
                            runs.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            Ok(Value::from(42))
                        })
                        .unwrap();
                    assert_eq!(v, Value::from(42));
                });
            }
        });
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let s = cache.stats();
        assert_eq!((s.misses, s.hits + s.coalesced), (1, 7));
    }

    #[test]
    fn errors_are_not_cached() {
        let cache = ResultCache::default();
        let fail = || Err(crate::error::Error::invalid("x", "bad"));
        assert!(cache.get_or_run(key("b"), fail).is_err());
        assert_eq!(
            cache.get_or_run(key("b"), || Ok(Value::from(1))).unwrap(),
            1
        );
        assert_eq!(cache.stats().entries, 1);
    }

    #[test]
    fn canonical_sorts_keys() {
        let a: Map<String, Value> = serde_json::from_str(r#"{"b":1,"a":{"d":2,"c":3}}"#).unwrap();
        assert_eq!(Key::canonical(Some(&a)), r#"{"a":{"c":3,"d":2},"b":1}"#);
    }
}
