//! `serve --watch claude-code,codex`: follow the log roots and ingest new lines as they are
//! written. File notifications (`notify`) say which files changed; those are read on from their
//! cursors within `SETTLE` of the last change. A full rescan of the roots runs every
//! `RESCAN` as well (new roots, missed events), and every `POLL` when notifications are not
//! available: a new line is stored within 2 s either way. What is stored flows to the live feed
//! and the change watch as any ingest does.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};

use super::logs::{self, LogFile, Quiet};
use super::Kind;
use crate::store::Store;

/// Quiet time after a notification before the changed files are read (a burst of writes is
/// read once).
const SETTLE: Duration = Duration::from_millis(150);
/// A full rescan while notifications work.
const RESCAN: Duration = Duration::from_secs(30);
/// A full rescan when they do not.
const POLL: Duration = Duration::from_secs(1);

/// The watching thread; `stop` ends it.
pub struct Watch {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl Watch {
    /// Watch the default roots of `kinds` (`logs::default_roots`).
    pub fn start(store: Arc<dyn Store>, kinds: Vec<Kind>) -> Watch {
        let roots: Vec<(Kind, Vec<PathBuf>)> = kinds
            .into_iter()
            .map(|k| {
                // Canonical, as notifications name the files: one cursor per file.
                let dirs = logs::default_roots(k)
                    .into_iter()
                    .map(|d| d.canonicalize().unwrap_or(d))
                    .collect();
                (k, dirs)
            })
            .collect();
        let (stop, stopped) = channel::<()>();
        let thread = std::thread::spawn(move || run(&*store, &roots, &stopped));
        Watch { stop, thread }
    }

    /// Stop watching and wait for the thread (an import under way finishes first).
    pub fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

fn scan(store: &dyn Store, roots: &[(Kind, Vec<PathBuf>)]) {
    for (kind, dirs) in roots {
        match logs::discover(*kind, dirs, false) {
            Ok(files) => ingest(store, *kind, &files),
            Err(e) => tracing::warn!(source = kind.name(), error = %e, "cannot list the logs"),
        }
    }
}

fn ingest(store: &dyn Store, kind: Kind, files: &[LogFile]) {
    match logs::import(store, kind, files, &mut Quiet) {
        Ok(r) if r.accepted + r.replaced + r.rejected > 0 => tracing::info!(
            source = kind.name(),
            accepted = r.accepted,
            replaced = r.replaced,
            rejected = r.rejected,
            "ingested new log lines"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(source = kind.name(), error = %e, "log import failed"),
    }
}

fn run(store: &dyn Store, roots: &[(Kind, Vec<PathBuf>)], stopped: &Receiver<()>) {
    let (tx, events) = channel::<notify::Result<notify::Event>>();
    let mut watcher = notify::recommended_watcher(move |e| {
        let _ = tx.send(e);
    });
    let mut watching = false;
    if let Ok(w) = watcher.as_mut() {
        for (_, dirs) in roots {
            for d in dirs.iter().filter(|d| d.exists()) {
                match w.watch(d, RecursiveMode::Recursive) {
                    Ok(()) => watching = true,
                    Err(e) => tracing::warn!(dir = %d.display(), error = %e,
                        "no file notifications; polling"),
                }
            }
        }
    }
    let every = if watching { RESCAN } else { POLL };
    tracing::info!(
        sources = ?roots.iter().map(|(k, _)| k.name()).collect::<Vec<_>>(),
        notifications = watching,
        "watching agent logs"
    );
    scan(store, roots);
    let mut last_scan = Instant::now();
    let mut changed: BTreeSet<PathBuf> = BTreeSet::new();
    let mut last_event = Instant::now();
    loop {
        match stopped.recv_timeout(Duration::from_millis(50)) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        while let Ok(e) = events.try_recv() {
            if let Ok(e) = e {
                changed.extend(
                    e.paths
                        .into_iter()
                        .filter(|p| p.extension().is_some_and(|x| x == "jsonl")),
                );
                last_event = Instant::now();
            }
        }
        if last_scan.elapsed() >= every {
            changed.clear();
            scan(store, roots);
            last_scan = Instant::now();
        } else if !changed.is_empty() && last_event.elapsed() >= SETTLE {
            let paths = std::mem::take(&mut changed);
            for (kind, files) in files_of(roots, &paths) {
                ingest(store, kind, &files);
            }
        }
    }
}

/// The changed `paths` by the kind whose root holds them, as the log files a scan would find.
fn files_of(
    roots: &[(Kind, Vec<PathBuf>)],
    paths: &BTreeSet<PathBuf>,
) -> HashMap<Kind, Vec<LogFile>> {
    let mut out: HashMap<Kind, Vec<LogFile>> = HashMap::new();
    for p in paths.iter().filter(|p| p.is_file()) {
        let Some((kind, root)) = roots
            .iter()
            .flat_map(|(k, dirs)| dirs.iter().map(move |d| (*k, d)))
            .find(|(_, d)| p.starts_with(d))
        else {
            continue;
        };
        out.entry(kind)
            .or_default()
            .push(logs::file_under(root, Path::new(p)));
    }
    out
}
