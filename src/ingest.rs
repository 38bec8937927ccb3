//! Ingest: reading execution records from JSONL, JSON arrays, CSV or a tool call, validating each
//! one with a reason naming the field, deriving ids, and writing them in batched transactions
//! with a per-source report. A bad record never aborts the batch; `strict` writes nothing at all
//! when any record is bad.

use std::io::{BufRead, BufReader, Read};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::input::{bool_of, float_of, int_of, shown};
use crate::money;
use crate::store::{Execution, InsertOutcome, Inserter, Store};
use crate::time;
use crate::wire::{FileReport, ImportReport, RecordError};

/// The fields a record may carry (camelCase, as in SPEC §2.1).
pub const FIELDS: &[&str] = &[
    "id",
    "timestamp",
    "agentId",
    "agentName",
    "model",
    "promptTokens",
    "completionTokens",
    "cacheReadTokens",
    "cacheWriteTokens",
    "cost",
    "durationMs",
    "success",
    "error",
    "statusCode",
    "sessionId",
    "taskType",
    "metadata",
];

/// Records written per transaction.
const BATCH: usize = 10_000;
/// Rejections listed per source (all are counted).
const MAX_LISTED_ERRORS: usize = 20;
/// Largest token count accepted per field: keeps every sum far from i64 overflow.
const MAX_TOKENS: i64 = 1_000_000_000_000;
/// Largest cost accepted for one execution, USD.
const MAX_COST_USD: i64 = 1_000_000;

/// Validate one record. `Err` is the reason, naming the field.
pub fn parse_record(obj: &Map<String, Value>) -> std::result::Result<Execution, String> {
    for key in obj.keys() {
        if !FIELDS.contains(&key.as_str()) {
            return Err(format!(
                "unknown field {key:?}; allowed fields are {} (put free-form data in metadata)",
                FIELDS.join(", ")
            ));
        }
    }
    let get = |k: &str| {
        obj.get(k)
            .filter(|v| !v.is_null() && *v != &Value::String(String::new()))
    };

    let ts = match get("timestamp") {
        None => {
            return Err(
                "timestamp: missing; give an RFC 3339 string or Unix epoch milliseconds".into(),
            )
        }
        Some(Value::String(s)) if !s.trim().bytes().all(|b| b.is_ascii_digit()) => {
            time::parse_rfc3339("timestamp", s).map_err(|e| e.to_string())?
        }
        Some(v) => {
            let ms = int_of(v).ok_or_else(|| {
                format!(
                    "timestamp: {} is neither an RFC 3339 string nor integer epoch milliseconds",
                    shown(v)
                )
            })?;
            time::check_range("timestamp", ms, &shown(v)).map_err(|e| e.to_string())?;
            ms
        }
    };
    let agent_id = text(get("agentId"), "agentId", 1, 128)?
        .ok_or("agentId: missing; every record names its agent")?;
    let model = text(get("model"), "model", 1, 128)?
        .ok_or("model: missing; every record names its model")?;
    let agent_name = text(get("agentName"), "agentName", 1, 256)?;
    let id = text(get("id"), "id", 1, 128)?;
    let tokens = |k: &str| -> std::result::Result<i64, String> {
        match get(k) {
            None => Ok(0),
            Some(v) => match int_of(v) {
                Some(n) if (0..=MAX_TOKENS).contains(&n) => Ok(n),
                _ => Err(format!(
                    "{k}: {} is not an integer in 0..={MAX_TOKENS}",
                    shown(v)
                )),
            },
        }
    };
    let prompt_tokens = tokens("promptTokens")?;
    let completion_tokens = tokens("completionTokens")?;
    let cache_read_tokens = tokens("cacheReadTokens")?;
    let cache_write_tokens = tokens("cacheWriteTokens")?;
    let cost = match get("cost") {
        None => 0,
        Some(v) => {
            let parsed = match v {
                Value::Number(n) => money::parse_usd(&n.to_string()),
                Value::String(s) => money::parse_usd(s),
                _ => None,
            };
            match parsed {
                Some(n) if n <= MAX_COST_USD * money::NANOS_PER_USD => n,
                _ => {
                    return Err(format!(
                        "cost: {} is not a number of USD in 0..={MAX_COST_USD}",
                        shown(v)
                    ))
                }
            }
        }
    };
    let duration_ms = match get("durationMs") {
        None => None,
        Some(v) => match float_of(v) {
            Some(d) if (0.0..=1.0e12).contains(&d) => Some(d),
            _ => {
                return Err(format!(
                    "durationMs: {} is not a number of milliseconds ≥ 0",
                    shown(v)
                ))
            }
        },
    };
    let error = text(get("error"), "error", 1, 4096)?;
    let success = match get("success") {
        None => error.is_none(),
        Some(v) => {
            bool_of(v).ok_or_else(|| format!("success: {} is not true or false", shown(v)))?
        }
    };
    let status_code = match get("statusCode") {
        None => None,
        Some(v) => match int_of(v) {
            Some(n) if (0..=999).contains(&n) => Some(n),
            _ => {
                return Err(format!(
                    "statusCode: {} is not an integer in 0..=999",
                    shown(v)
                ))
            }
        },
    };
    let session_id = text(get("sessionId"), "sessionId", 1, 128)?;
    let task_type = text(get("taskType"), "taskType", 1, 128)?;
    let metadata = match get("metadata") {
        None => None,
        Some(Value::Object(m)) => Some(Value::Object(m.clone()).to_string()),
        // CSV carries the object as JSON text.
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => Some(Value::Object(m).to_string()),
            _ => {
                return Err(format!(
                    "metadata: {} is not a JSON object",
                    shown(&Value::String(s.clone()))
                ))
            }
        },
        Some(v) => return Err(format!("metadata: {} is not a JSON object", shown(v))),
    };
    let mut e = Execution {
        id: String::new(),
        ts,
        agent_id,
        agent_name,
        model,
        prompt_tokens,
        completion_tokens,
        cache_read_tokens,
        cache_write_tokens,
        cost,
        duration_ms,
        success,
        error,
        status_code,
        session_id,
        task_type,
        metadata,
    };
    e.id = match id {
        Some(id) => id,
        None => derived_id(&e),
    };
    Ok(e)
}

/// A string field of `min..=max` characters, numbers taken as their text.
fn text(
    v: Option<&Value>,
    field: &str,
    min: usize,
    max: usize,
) -> std::result::Result<Option<String>, String> {
    let s = match v {
        None => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => return Err(format!("{field}: {} is not a string", shown(other))),
    };
    let n = s.chars().count();
    if n < min || n > max {
        return Err(format!(
            "{field}: {n} characters given; allowed are {min}..={max}"
        ));
    }
    Ok(Some(s))
}

/// The id of a record that has none: a hash of everything it says, so re-importing the same
/// line is idempotent and two different executions never share an id.
pub fn derived_id(e: &Execution) -> String {
    let canonical = serde_json::json!([
        e.ts,
        e.agent_id,
        e.model,
        e.prompt_tokens,
        e.completion_tokens,
        e.cache_read_tokens,
        e.cache_write_tokens,
        e.cost,
        e.duration_ms,
        e.success,
        e.error,
        e.status_code,
        e.session_id,
        e.task_type,
        e.metadata,
        e.agent_name,
    ]);
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("x{hex}")
}

/// A parsed source: each record with its line number, or the reason it was rejected.
pub type Parsed = Vec<(u64, std::result::Result<Execution, String>)>;

/// The format of a source, told from its first non-blank character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    JsonArray,
    Csv,
}

impl Format {
    pub fn name(&self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::JsonArray => "json",
            Format::Csv => "csv",
        }
    }

    pub fn detect(head: &[u8]) -> Format {
        match head
            .iter()
            .find(|b| !b.is_ascii_whitespace() && **b != 0xEF && **b != 0xBB && **b != 0xBF)
        {
            Some(b'{') => Format::Jsonl,
            Some(b'[') => Format::JsonArray,
            _ => Format::Csv,
        }
    }
}

/// Read a whole source and parse every record in it, calling `sink` with batches of parsed
/// records as they fill (so huge files stream).
pub fn parse_source(
    reader: impl Read,
    mut sink: impl FnMut(Parsed) -> Result<()>,
) -> Result<Format> {
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let head = reader.fill_buf()?.to_vec();
    let format = Format::detect(&head);
    let mut batch: Parsed = Vec::with_capacity(BATCH);
    let mut push =
        |line: u64, r: std::result::Result<Execution, String>, batch: &mut Parsed| -> Result<()> {
            batch.push((line, r));
            if batch.len() >= BATCH {
                sink(std::mem::take(batch))?;
            }
            Ok(())
        };
    match format {
        Format::Jsonl => {
            let mut line = String::new();
            let mut n = 0u64;
            loop {
                line.clear();
                let read = reader
                    .read_line(&mut line)
                    .map_err(|e| Error::Internal(format!("read error: {e}")))?;
                if read == 0 {
                    break;
                }
                n += 1;
                let t = line.trim().trim_start_matches('\u{feff}');
                if t.is_empty() {
                    continue;
                }
                let r = match serde_json::from_str::<Value>(t) {
                    Ok(Value::Object(o)) => parse_record(&o),
                    Ok(other) => Err(format!("not a JSON object: {}", shown(&other))),
                    Err(e) => Err(format!("invalid JSON: {e}")),
                };
                push(n, r, &mut batch)?;
            }
        }
        Format::JsonArray => {
            let mut text = String::new();
            reader
                .read_to_string(&mut text)
                .map_err(|e| Error::Internal(format!("read error: {e}")))?;
            let items: Vec<Value> = serde_json::from_str(text.trim_start_matches('\u{feff}'))
                .map_err(|e| Error::invalid("file", format!("not a JSON array of records: {e}")))?;
            for (i, v) in items.into_iter().enumerate() {
                let r = match v {
                    Value::Object(o) => parse_record(&o),
                    other => Err(format!("not a JSON object: {}", shown(&other))),
                };
                push(i as u64 + 1, r, &mut batch)?;
            }
        }
        Format::Csv => {
            let mut rdr = csv::ReaderBuilder::new()
                .flexible(false)
                .trim(csv::Trim::All)
                .from_reader(reader);
            let headers = rdr
                .headers()
                .map_err(|e| {
                    Error::invalid(
                        "file",
                        format!("not JSONL, JSON or CSV with a header row: {e}"),
                    )
                })?
                .clone();
            let headers: Vec<String> = headers
                .iter()
                .map(|h| h.trim_start_matches('\u{feff}').to_owned())
                .collect();
            let mut rec = csv::StringRecord::new();
            loop {
                match rdr.read_record(&mut rec) {
                    Ok(false) => break,
                    Ok(true) => {
                        let line = rec.position().map(|p| p.line()).unwrap_or(0);
                        let obj: Map<String, Value> = headers
                            .iter()
                            .zip(rec.iter())
                            .filter(|(_, v)| !v.is_empty())
                            .map(|(h, v)| (h.clone(), Value::String(v.to_owned())))
                            .collect();
                        push(line, parse_record(&obj), &mut batch)?;
                    }
                    Err(e) => {
                        let line = e.position().map(|p| p.line()).unwrap_or(0);
                        push(line, Err(format!("invalid CSV row: {e}")), &mut batch)?;
                    }
                }
            }
        }
    }
    if !batch.is_empty() {
        sink(batch)?;
    }
    Ok(format)
}

/// Write the good records of `parsed` in one transaction and count them into `report`.
/// Returns the indices in `parsed` of the executions actually inserted (for the live feed).
fn write_batch(
    tx: &rusqlite::Transaction<'_>,
    parsed: &Parsed,
    report: &mut FileReport,
) -> Result<Vec<usize>> {
    let mut ins = Inserter::new(tx);
    let mut inserted = Vec::new();
    for (i, (line, r)) in parsed.iter().enumerate() {
        match r {
            Ok(e) => match ins.insert(e) {
                Ok(InsertOutcome::Inserted) => {
                    report.accepted += 1;
                    inserted.push(i);
                }
                Ok(InsertOutcome::Duplicate) => report.duplicates += 1,
                // A record the store cannot take (a millisecond already full): that line only.
                Err(err @ Error::Invalid { .. }) => reject(report, *line, &err.to_string()),
                Err(err) => return Err(err),
            },
            Err(reason) => reject(report, *line, reason),
        }
    }
    ins.finish()?;
    Ok(inserted)
}

/// After the commit: hand the inserted executions of `parsed` to the store's live feed.
fn publish(store: &Store, parsed: Parsed, inserted: &[usize]) {
    if inserted.is_empty() || !store.wants_executions() {
        return;
    }
    let mut wanted = inserted.iter().peekable();
    let batch = parsed
        .into_iter()
        .enumerate()
        .filter_map(|(i, (_, r))| {
            if wanted.peek() == Some(&&i) {
                wanted.next();
                r.ok()
            } else {
                None
            }
        })
        .collect();
    store.publish_executions(batch);
}

fn reject(report: &mut FileReport, line: u64, reason: &str) {
    report.rejected += 1;
    if report.errors.len() < MAX_LISTED_ERRORS {
        report.errors.push(RecordError {
            line,
            reason: reason.to_owned(),
        });
    }
}

/// A named source to import.
pub struct Source<'a> {
    pub name: String,
    pub reader: Box<dyn Read + 'a>,
}

/// Import sources into the store. Without `strict`, good records are written batch by batch and
/// bad ones reported. With `strict`, everything is parsed first and written in one transaction,
/// only if no record is bad.
pub fn import(store: &Store, sources: Vec<Source<'_>>, strict: bool) -> Result<ImportReport> {
    let mut report = ImportReport::default();
    if strict {
        let mut all: Vec<(FileReport, Parsed)> = Vec::new();
        for src in sources {
            let mut parsed = Parsed::new();
            let format = parse_source(src.reader, |b| {
                parsed.extend(b);
                Ok(())
            })?;
            let mut fr = FileReport {
                source: src.name,
                format: format.name().into(),
                ..Default::default()
            };
            for (line, r) in &parsed {
                if let Err(reason) = r {
                    reject(&mut fr, *line, reason);
                }
            }
            all.push((fr, parsed));
        }
        let any_bad = all.iter().any(|(fr, _)| fr.rejected > 0);
        let mut inserted = Vec::new();
        if !any_bad {
            inserted = store.write(|tx| {
                let mut inserted = Vec::new();
                for (fr, parsed) in &mut all {
                    inserted.push(write_batch(tx, parsed, fr)?);
                }
                Ok(inserted)
            })?;
        }
        report.committed = !any_bad;
        report.files = Vec::with_capacity(all.len());
        let mut inserted = inserted.into_iter();
        for (fr, parsed) in all {
            publish(store, parsed, &inserted.next().unwrap_or_default());
            report.files.push(fr);
        }
    } else {
        for src in sources {
            let fr = FileReport {
                source: src.name,
                ..Default::default()
            };
            report.files.push(pipelined(store, src.reader, fr)?);
        }
        report.committed = true;
    }
    for f in &report.files {
        report.accepted += f.accepted;
        report.duplicates += f.duplicates;
        report.rejected += f.rejected;
    }
    Ok(report)
}

/// Parse `reader` on this thread while another writes the parsed batches, each in its own
/// transaction, as they come: parsing and writing take about as long as each other, and the
/// machine has more than one core. At most `QUEUED` batches wait between the two.
fn pipelined(store: &Store, reader: impl Read, mut fr: FileReport) -> Result<FileReport> {
    const QUEUED: usize = 2;
    std::thread::scope(|s| {
        let (send, batches) = std::sync::mpsc::sync_channel::<Parsed>(QUEUED);
        let writer = s.spawn(move || -> Result<FileReport> {
            for batch in batches {
                let inserted = store.write(|tx| write_batch(tx, &batch, &mut fr))?;
                publish(store, batch, &inserted);
            }
            Ok(fr)
        });
        // A failed send means the writer stopped on an error, which its join returns.
        let parsed = parse_source(reader, |batch| {
            send.send(batch)
                .map_err(|_| Error::Internal("the import writer stopped".into()))
        });
        drop(send);
        let mut fr = writer
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))?;
        fr.format = parsed?.name().into();
        Ok(fr)
    })
}

/// Import records given as JSON values (a tool call's `records`).
pub fn import_values(store: &Store, records: &[Value], source: &str) -> Result<ImportReport> {
    let parsed: Parsed = records
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let r = match v {
                Value::Object(o) => parse_record(o),
                other => Err(format!("not a JSON object: {}", shown(other))),
            };
            (i as u64 + 1, r)
        })
        .collect();
    let mut fr = FileReport {
        source: source.into(),
        format: "json".into(),
        ..Default::default()
    };
    let inserted = store.write(|tx| write_batch(tx, &parsed, &mut fr))?;
    publish(store, parsed, &inserted);
    Ok(ImportReport {
        accepted: fr.accepted,
        duplicates: fr.duplicates,
        rejected: fr.rejected,
        committed: true,
        files: vec![fr],
    })
}

/// Write already-validated executions (demo data, benchmarks) in batches.
pub fn insert_all(store: &Store, executions: impl IntoIterator<Item = Execution>) -> Result<u64> {
    let mut n = 0;
    let mut batch = Vec::with_capacity(BATCH);
    let mut flush = |batch: &mut Vec<Execution>| -> Result<()> {
        let inserted = store.write(|tx| {
            let mut ins = Inserter::new(tx);
            let mut inserted = vec![false; batch.len()];
            for (e, new) in batch.iter().zip(&mut inserted) {
                if ins.insert(e)? == InsertOutcome::Inserted {
                    n += 1;
                    *new = true;
                }
            }
            ins.finish()?;
            Ok(inserted)
        })?;
        if store.wants_executions() {
            let mut new = inserted.into_iter();
            store.publish_executions(
                batch
                    .drain(..)
                    .filter(|_| new.next().unwrap_or(false))
                    .collect(),
            );
        }
        batch.clear();
        Ok(())
    };
    for e in executions {
        batch.push(e);
        if batch.len() >= BATCH {
            flush(&mut batch)?;
        }
    }
    if !batch.is_empty() {
        flush(&mut batch)?;
    }
    Ok(n)
}
