//! Ingest: reading execution records from JSONL, JSON arrays, CSV or a tool call, validating each
//! one with a reason naming the field, deriving ids, and writing them in batched transactions
//! with a per-source report. A bad record never aborts the batch; `strict` writes nothing at all
//! when any record is bad. `record` owns one record's rules and caps, `read` the formats.

mod read;
mod record;

use std::io::Read;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::store::{Execution, InsertOutcome, Inserter, Store};
use crate::wire::{FileReport, ImportReport, RecordError};

pub use read::{
    parse_source, record_of_value, Format, Parsed, SourceSummary, UnknownFields,
    OTHER_UNKNOWN_FIELDS,
};
pub use record::*;

use read::BATCH;

/// Rejections listed per source (all are counted).
const MAX_LISTED_ERRORS: usize = 20;

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
            let summary = parse_source(src.reader, |b| {
                parsed.extend(b);
                Ok(())
            })?;
            let mut fr = FileReport {
                source: src.name,
                format: summary.format.name().into(),
                unknown_fields: summary.unknown_fields.0,
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
        report.committed = false;
        if !any_bad {
            match store.write(|tx| {
                let mut inserted = Vec::new();
                for (fr, parsed) in &mut all {
                    inserted.push(write_batch(tx, parsed, fr)?);
                }
                refuse_if_rejected(all.iter().map(|(fr, _)| fr))?;
                Ok(inserted)
            }) {
                Ok(ins) => {
                    inserted = ins;
                    report.committed = true;
                }
                // The store refused a record (a millisecond already full): roll everything back.
                Err(Error::Invalid { .. }) => {
                    for (fr, _) in &mut all {
                        fr.accepted = 0;
                        fr.duplicates = 0;
                    }
                }
                Err(e) => return Err(e),
            }
        }
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

/// In a strict write: an error (rolling the transaction back) when the store refused a record.
fn refuse_if_rejected<'a>(files: impl IntoIterator<Item = &'a FileReport>) -> Result<()> {
    for fr in files {
        if let Some(e) = fr.errors.first() {
            return Err(Error::invalid(
                "records",
                format!("line {}: {}; strict: nothing was written", e.line, e.reason),
            ));
        }
    }
    Ok(())
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
        let summary = parsed?;
        fr.format = summary.format.name().into();
        fr.unknown_fields = summary.unknown_fields.0;
        Ok(fr)
    })
}

/// Import records given as JSON values (a tool call's `records`), keeping the good ones.
pub fn import_values(store: &Store, records: &[Value], source: &str) -> Result<ImportReport> {
    import_values_with(store, records, source, false)
}

/// Import records given as JSON values. With `strict`, any bad record writes nothing and is an
/// invalid-input error naming the first one (`records[i]`, 0-based) and its reason.
pub fn import_values_with(
    store: &Store,
    records: &[Value],
    source: &str,
    strict: bool,
) -> Result<ImportReport> {
    let mut unknown = UnknownFields::default();
    let parsed: Parsed = records
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64 + 1, record_of_value(v, &mut unknown)))
        .collect();
    if strict {
        let mut bad = parsed
            .iter()
            .filter_map(|(i, r)| Some(i).zip(r.as_ref().err()));
        if let Some((i, reason)) = bad.next() {
            return Err(strict_refusal(*i, reason, 1 + bad.count(), parsed.len()));
        }
    }
    let mut fr = FileReport {
        source: source.into(),
        format: "json".into(),
        unknown_fields: unknown.0,
        ..Default::default()
    };
    let inserted = store.write(|tx| {
        let inserted = write_batch(tx, &parsed, &mut fr)?;
        if strict {
            if let Some(e) = fr.errors.first() {
                return Err(strict_refusal(
                    e.line,
                    &e.reason,
                    fr.rejected as usize,
                    parsed.len(),
                ));
            }
        }
        Ok(inserted)
    })?;
    publish(store, parsed, &inserted);
    Ok(ImportReport {
        accepted: fr.accepted,
        duplicates: fr.duplicates,
        rejected: fr.rejected,
        committed: true,
        files: vec![fr],
    })
}

/// The error of a strict call refused for its record number `line` (1-based).
fn strict_refusal(line: u64, reason: &str, bad: usize, total: usize) -> Error {
    Error::invalid(
        format!("records[{}]", line - 1),
        format!("{reason}; strict: nothing was written ({bad} of {total} records are bad)"),
    )
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
