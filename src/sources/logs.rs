//! Log files in: finding Claude Code's and Codex's session files, and reading each on from where
//! the last import stopped.
//!
//! The store keeps a cursor per file (`Store::cursors`): the byte offset read up to (always the
//! end of a complete line: a line still being written is left for the next read), the number of
//! lines before it, a hash of the file's head (a file replaced or truncated is read again from
//! the start; the ids make that idempotent) and the format's parse state (Codex's running
//! totals). Records are written before their cursor moves, so a crash in between re-reads lines
//! whose records are already stored: duplicates, never losses.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{claude, codex, Kind, Line};
use crate::error::{Error, Result};
use crate::ingest;
use crate::store::{Cursor, Store};
use crate::wire::{FileReport, ImportReport};

/// Bytes of a file's head that identify it (hashed into the cursor).
const HEAD_BYTES: u64 = 4096;
/// Bytes read at a time (one buffer for the whole import); a longer line is read whole.
const CHUNK: usize = 1 << 20;
/// Records written per store transaction.
const BATCH: usize = 5_000;
/// Directory levels walked below a given folder.
const MAX_DEPTH: usize = 12;
/// A log line longer than this is reported and skipped (Claude Code writes whole file contents
/// into tool results; those lines carry no usage worth 64 MiB of memory).
const MAX_LINE_BYTES: usize = 64 << 20;

/// One log file to read, and what its place says about it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogFile {
    pub path: PathBuf,
    /// Claude Code: the project folder's name.
    pub project: String,
    /// Claude Code: a file under `subagents/`.
    pub subagent: bool,
}

/// The usual roots when no folder is given: Claude Code's `$CLAUDE_CONFIG_DIR` entries (comma
/// separated), else `~/.config/claude` and `~/.claude`; Codex's `$CODEX_HOME`, else `~/.codex`.
pub fn default_roots(kind: Kind) -> Vec<PathBuf> {
    let home = dirs::home_dir();
    match kind {
        Kind::ClaudeCode => match std::env::var("CLAUDE_CONFIG_DIR") {
            Ok(v) if !v.trim().is_empty() => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect(),
            _ => home
                .map(|h| vec![h.join(".config/claude"), h.join(".claude")])
                .unwrap_or_default(),
        },
        Kind::Codex => match std::env::var("CODEX_HOME") {
            Ok(v) if !v.trim().is_empty() => vec![PathBuf::from(v)],
            _ => home.map(|h| vec![h.join(".codex")]).unwrap_or_default(),
        },
    }
}

/// The log files under `dirs` (each a root, a `projects` / `sessions` folder, one project's
/// folder or one file), sorted, each once. A missing path given by the user is an error; a
/// missing default root is not.
pub fn discover(kind: Kind, dirs: &[PathBuf], given: bool) -> Result<Vec<LogFile>> {
    let mut out = BTreeMap::new();
    for d in dirs {
        if !d.exists() {
            if given {
                return Err(Error::invalid(
                    "DIR",
                    format!("{} does not exist; give a {} root, its {} folder, a project's folder or a .jsonl file", d.display(), kind.name(), match kind { Kind::ClaudeCode => "projects", Kind::Codex => "sessions" }),
                ));
            }
            continue;
        }
        for f in files_of(kind, d) {
            out.entry(f.path.clone()).or_insert(f);
        }
    }
    Ok(out.into_values().collect())
}

fn files_of(kind: Kind, d: &Path) -> Vec<LogFile> {
    let mut found = Vec::new();
    if d.is_file() {
        found.push(d.to_path_buf());
    } else {
        let tops: Vec<PathBuf> = match kind {
            Kind::ClaudeCode if d.join("projects").is_dir() => vec![d.join("projects")],
            Kind::Codex if d.join("sessions").is_dir() || d.join("archived_sessions").is_dir() => {
                vec![d.join("sessions"), d.join("archived_sessions")]
            }
            _ => vec![d.to_path_buf()],
        };
        for t in tops {
            walk(&t, 0, &mut found);
        }
    }
    found
        .into_iter()
        .map(|path| {
            let (project, subagent) = place(&path, d);
            LogFile {
                path,
                project,
                subagent,
            }
        })
        .collect()
}

/// `path`, a log file below the folder `root`, as a scan of `root` would find it.
pub fn file_under(root: &Path, path: &Path) -> LogFile {
    let (project, subagent) = place(path, root);
    LogFile {
        path: path.to_path_buf(),
        project,
        subagent,
    }
}

/// Every `*.jsonl` below `dir`, not following symbolic links to folders.
fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if depth > MAX_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(t) = e.file_type() else { continue };
        let p = e.path();
        if t.is_dir() {
            walk(&p, depth + 1, out);
        } else if p.extension().is_some_and(|x| x == "jsonl") {
            out.push(p);
        }
    }
}

/// A Claude Code file's project (the folder under `projects/`, else the given folder's name,
/// else the file's folder) and whether it is a subagent's file.
fn place(path: &Path, given: &Path) -> (String, bool) {
    let parts: Vec<String> = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let subagent = parts.iter().any(|p| p == "subagents");
    let under_projects = parts
        .iter()
        .rposition(|p| p == "projects")
        .and_then(|i| parts.get(i + 1))
        .filter(|p| !p.ends_with(".jsonl"));
    let project = match under_projects {
        Some(p) => p.clone(),
        None if given.is_dir() => name_of(given),
        None => path.parent().map(name_of).unwrap_or_default(),
    };
    (project, subagent)
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// What a run read, for a progress display.
pub trait Progress {
    fn start(&mut self, _bytes: u64) {}
    fn advance(&mut self, _bytes: u64, _records: u64) {}
    fn finish(&mut self) {}
}

/// No display.
pub struct Quiet;
impl Progress for Quiet {}

/// Import what is new in `files` into `store`. The report lists the files that gave records or
/// problems; malformed lines are reported with their line number and never stop the rest.
pub fn import(
    store: &dyn Store,
    kind: Kind,
    files: &[LogFile],
    progress: &mut dyn Progress,
) -> Result<ImportReport> {
    let cursors = store.cursors(kind.name())?;
    let mut plans = Vec::new();
    let mut todo = 0u64;
    for f in files {
        let key = f.path.to_string_lossy().into_owned();
        let Ok(meta) = std::fs::metadata(&f.path) else {
            continue;
        };
        let size = meta.len();
        let cursor = match cursors.get(&key) {
            Some(c) if c.offset <= size && head_hash(&f.path, c.offset)? == c.head => c.clone(),
            _ => Cursor::default(),
        };
        if cursor.offset < size {
            todo += size - cursor.offset;
            plans.push((f, key, cursor));
        }
    }
    progress.start(todo);
    let mut reports: Vec<FileReport> = plans
        .iter()
        .map(|(_, key, _)| FileReport {
            source: key.clone(),
            format: kind.name().into(),
            ..Default::default()
        })
        .collect();
    let mut batch = Batch::default();
    for (i, (f, key, cursor)) in plans.into_iter().enumerate() {
        read_file(
            store,
            kind,
            f,
            (i, &key),
            cursor,
            &mut batch,
            &mut reports,
            progress,
        )?;
    }
    batch.flush(store, kind, &mut reports, progress)?;
    progress.finish();
    let mut report = ImportReport {
        committed: true,
        ..Default::default()
    };
    for fr in reports {
        report.accepted += fr.accepted;
        report.duplicates += fr.duplicates;
        report.replaced += fr.replaced;
        report.rejected += fr.rejected;
        if fr.accepted + fr.duplicates + fr.replaced + fr.rejected > 0 {
            report.files.push(fr);
        }
    }
    Ok(report)
}

/// Records read and not yet stored, from any number of files (by index), and the cursors that
/// may move once they are: one store transaction for many small files.
#[derive(Default)]
struct Batch {
    records: Vec<(usize, u64, Value)>,
    cursors: Vec<(String, Cursor)>,
    /// The read buffer, reused by every file.
    chunk: Vec<u8>,
}

impl Batch {
    /// Store the records (of several with one id, the highest revision: streaming repeats; the
    /// store keeps the highest across imports too), then move the cursors.
    fn flush(
        &mut self,
        store: &dyn Store,
        kind: Kind,
        reports: &mut [FileReport],
        progress: &mut dyn Progress,
    ) -> Result<()> {
        if !self.records.is_empty() {
            let mut best: HashMap<String, usize> = HashMap::new();
            let mut keep = vec![true; self.records.len()];
            let rev = |v: &Value| v.get("revision").and_then(Value::as_i64);
            for i in 0..self.records.len() {
                let (file, _, v) = &self.records[i];
                let Some(id) = v.get("id").and_then(Value::as_str) else {
                    continue;
                };
                match best.get(id) {
                    Some(&j) if rev(&self.records[j].2) >= rev(v) => {
                        keep[i] = false;
                        reports[*file].duplicates += 1;
                    }
                    Some(&j) => {
                        keep[j] = false;
                        reports[self.records[j].0].duplicates += 1;
                        best.insert(id.to_owned(), i);
                    }
                    None => {
                        best.insert(id.to_owned(), i);
                    }
                }
            }
            let records: Vec<(usize, u64, Value)> = self
                .records
                .drain(..)
                .zip(keep)
                .filter_map(|(r, k)| k.then_some(r))
                .collect();
            ingest::write_lines(store, &records, reports)?;
            progress.advance(0, records.len() as u64);
        }
        if !self.cursors.is_empty() {
            store.put_cursors(kind.name(), &self.cursors)?;
            self.cursors.clear();
        }
        Ok(())
    }
}

/// SHA-256 (hex) of the first `min(offset, HEAD_BYTES)` bytes of `path`.
fn head_hash(path: &Path, offset: u64) -> Result<String> {
    let mut f = File::open(path).map_err(|e| io_error(path, e))?;
    let mut buf = vec![0u8; offset.min(HEAD_BYTES) as usize];
    f.read_exact(&mut buf).map_err(|e| io_error(path, e))?;
    Ok(Sha256::digest(&buf)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::invalid("DIR", format!("cannot read {}: {e}", path.display()))
}

/// The format's state for one file.
enum Parser {
    Claude(claude::FileContext),
    Codex(codex::State),
}

impl Parser {
    fn line(&mut self, v: &Value, offset: u64) -> Line {
        match self {
            Parser::Claude(ctx) => claude::line(v, ctx),
            Parser::Codex(state) => codex::line(v, offset, state),
        }
    }

    /// Whether a line may carry what the format counts, told from its bytes: most lines
    /// (prompts, tool results with whole files in them) are not parsed at all.
    fn may_count(&self, line: &[u8]) -> bool {
        let has = |needle: &[u8]| line.windows(needle.len()).any(|w| w == needle);
        match self {
            Parser::Claude(_) => has(b"\"usage\""),
            Parser::Codex(_) => {
                has(b"\"token_count\"") || has(b"\"turn_context\"") || has(b"\"session_meta\"")
            }
        }
    }

    fn state(&self) -> Option<String> {
        match self {
            Parser::Claude(_) => None,
            Parser::Codex(s) => serde_json::to_string(s).ok(),
        }
    }
}

/// Read `f` on from `cursor` to its last complete line into `batch` (stored whenever it is full),
/// queueing the file's cursor to move with the records it read.
#[allow(clippy::too_many_arguments)]
fn read_file(
    store: &dyn Store,
    kind: Kind,
    f: &LogFile,
    (index, key): (usize, &str),
    cursor: Cursor,
    batch: &mut Batch,
    reports: &mut [FileReport],
    progress: &mut dyn Progress,
) -> Result<()> {
    let mut parser = match kind {
        Kind::ClaudeCode => Parser::Claude(claude::FileContext {
            project: f.project.clone(),
            subagent_file: f.subagent,
        }),
        Kind::Codex => {
            let stem = f
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let state = cursor
                .state
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok())
                .filter(|_| cursor.offset > 0)
                .unwrap_or_else(|| codex::start(&stem));
            Parser::Codex(state)
        }
    };
    let mut file = File::open(&f.path).map_err(|e| io_error(&f.path, e))?;
    file.seek(SeekFrom::Start(cursor.offset))
        .map_err(|e| io_error(&f.path, e))?;
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = std::mem::take(&mut batch.chunk);
    chunk.resize(CHUNK, 0);
    // Where `buf[0]` sits in the file, and the line number of its first line.
    let mut at = cursor.offset;
    let mut line_no = cursor.line;
    let mut skipping_long = false;
    // Where a line too long to keep started: the cursor stays there while it has no end.
    let mut long_start = 0u64;
    loop {
        let n = file.read(&mut chunk).map_err(|e| io_error(&f.path, e))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut start = 0usize;
        while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
            let line = &buf[start..start + nl];
            let offset = at + start as u64;
            line_no += 1;
            if skipping_long {
                skipping_long = false;
            } else {
                match handle(&mut parser, line, offset) {
                    Ok(Some(r)) => batch.records.push((index, line_no, r)),
                    Ok(None) => {}
                    Err(reason) => report_line(&mut reports[index], line_no, reason),
                }
            }
            start += nl + 1;
        }
        buf.drain(..start);
        at += start as u64;
        progress.advance(start as u64, 0);
        if buf.len() > MAX_LINE_BYTES && !skipping_long {
            report_line(
                &mut reports[index],
                line_no + 1,
                format!("line longer than {} MiB; skipped", MAX_LINE_BYTES >> 20),
            );
            skipping_long = true;
            long_start = at;
        }
        if skipping_long {
            at += buf.len() as u64;
            buf.clear();
        }
        if batch.records.len() >= BATCH {
            let here = if skipping_long { long_start } else { at };
            batch
                .cursors
                .push((key.to_owned(), moved(&f.path, here, line_no, &parser)?));
            batch.flush(store, kind, reports, progress)?;
        }
    }
    batch.chunk = chunk;
    // `buf` holds a last line with no newline yet: it is being written; read it next time.
    if skipping_long {
        at = long_start;
    }
    if at != cursor.offset || line_no != cursor.line {
        batch
            .cursors
            .push((key.to_owned(), moved(&f.path, at, line_no, &parser)?));
    }
    Ok(())
}

fn moved(path: &Path, at: u64, line: u64, parser: &Parser) -> Result<Cursor> {
    Ok(Cursor {
        offset: at,
        line,
        head: head_hash(path, at)?,
        state: parser.state(),
    })
}

/// One complete line: its record, nothing (a line without usage), or the reason it is bad.
fn handle(
    parser: &mut Parser,
    line: &[u8],
    offset: u64,
) -> std::result::Result<Option<Value>, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !parser.may_count(line) {
        // Checked, not built: a line that is not JSON is still reported.
        return serde_json::from_slice::<serde::de::IgnoredAny>(line)
            .map(|_| None)
            .map_err(|e| format!("not JSON: {e}"));
    }
    let v: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    match parser.line(&v, offset) {
        Line::Record(r) => Ok(Some(Value::Object(r))),
        Line::Skip => Ok(None),
        Line::Bad(reason) => Err(reason),
    }
}

fn report_line(report: &mut FileReport, line: u64, reason: String) {
    ingest::note_rejected(report, line, &reason);
}
