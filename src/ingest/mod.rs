//! Ingest: reading execution records from JSONL, JSON arrays, CSV or a tool call, validating each
//! one with a reason naming the field, deriving ids, and writing them in batched transactions
//! with a per-source report. A bad record never aborts the batch; `strict` writes nothing at all
//! when any record is bad. `record` owns one record's rules and caps, `read` the formats.

pub mod price;
mod read;
mod record;

use std::io::Read;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::store::{Atomic, Execution, Outcome, Store};
use crate::wire::{FileReport, ImportReport, RecordError};

pub use read::{
    parse_source, record_of_value, Format, Parsed, SourceSummary, UnknownFields,
    OTHER_UNKNOWN_FIELDS,
};
pub use record::*;

use read::BATCH;

/// Rejections listed per source (all are counted).
const MAX_LISTED_ERRORS: usize = 20;

/// Write the good records of `parsed` in one transaction (`atomic`: all or nothing) and count
/// them into `report`, bad ones and those the store refused in order. `false` when the store
/// refused a record under `Atomic::All` (nothing was written).
fn write_batch(
    store: &dyn Store,
    parsed: &Parsed,
    report: &mut FileReport,
    atomic: Atomic,
) -> Result<bool> {
    let good: Vec<&Execution> = parsed.iter().filter_map(|(_, r)| r.as_ref().ok()).collect();
    let outcomes = if good.is_empty() {
        Vec::new()
    } else {
        store.insert(&good, atomic)?
    };
    count(parsed, &outcomes, report);
    Ok(!outcomes.iter().any(|o| matches!(o, Outcome::Refused(_))))
}

/// Count `parsed` into `report`: each good record by its outcome (in order), each bad one rejected.
fn count(parsed: &Parsed, outcomes: &[Outcome], report: &mut FileReport) {
    let mut outcomes = outcomes.iter();
    for (line, r) in parsed {
        tally(report, *line, r, &mut outcomes);
    }
}

/// Count one record (`line`) into `report`: a good one by the next of the store's `outcomes`,
/// a bad one rejected with its reason.
fn tally<'o>(
    report: &mut FileReport,
    line: u64,
    r: &std::result::Result<Execution, String>,
    outcomes: &mut impl Iterator<Item = &'o Outcome>,
) {
    match r {
        Ok(_) => match outcomes.next() {
            Some(Outcome::Inserted) => report.accepted += 1,
            Some(Outcome::Duplicate) => report.duplicates += 1,
            Some(Outcome::Replaced) => report.replaced += 1,
            Some(Outcome::Refused(reason)) => reject(report, line, reason),
            None => {}
        },
        Err(reason) => reject(report, line, reason),
    }
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

/// Count a rejected line or record into `report` (the first ones are listed with the reason).
pub fn note_rejected(report: &mut FileReport, line: u64, reason: &str) {
    reject(report, line, reason);
}

/// Validate and write records read from logs (`sources`), each with the index of its file's
/// report and its line number, in one transaction, counting into the reports; bad ones are
/// rejected with the reason and never stop the rest.
pub fn write_lines(
    store: &dyn Store,
    records: &[(usize, u64, Value)],
    reports: &mut [FileReport],
) -> Result<()> {
    let mut unknown: std::collections::BTreeMap<usize, UnknownFields> = Default::default();
    let parsed: Vec<(usize, u64, std::result::Result<Execution, String>)> = records
        .iter()
        .map(|(file, line, v)| {
            let r = record_of_value(v, unknown.entry(*file).or_default());
            (*file, *line, r)
        })
        .collect();
    let good: Vec<&Execution> = parsed
        .iter()
        .filter_map(|(_, _, r)| r.as_ref().ok())
        .collect();
    let outcomes = if good.is_empty() {
        Vec::new()
    } else {
        store.insert(&good, Atomic::PerRecord)?
    };
    let mut outcomes = outcomes.iter();
    for (file, line, r) in &parsed {
        tally(&mut reports[*file], *line, r, &mut outcomes);
    }
    for (file, u) in unknown {
        for (k, n) in u.0 {
            *reports[file].unknown_fields.entry(k).or_default() += n;
        }
    }
    Ok(())
}

/// A named source to import.
pub struct Source<'a> {
    pub name: String,
    pub reader: Box<dyn Read + 'a>,
}

/// Import sources into the store. Without `strict`, good records are written batch by batch and
/// bad ones reported. With `strict`, everything is parsed first and written in one transaction,
/// only if no record is bad.
pub fn import(store: &dyn Store, sources: Vec<Source<'_>>, strict: bool) -> Result<ImportReport> {
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
        report.committed = false;
        if !any_bad {
            // Every file's records in one transaction.
            let good: Vec<&Execution> = all
                .iter()
                .flat_map(|(_, parsed)| parsed.iter().filter_map(|(_, r)| r.as_ref().ok()))
                .collect();
            let outcomes = store.insert(&good, Atomic::All)?;
            let mut rest = &outcomes[..];
            for (fr, parsed) in &mut all {
                let n = parsed.iter().filter(|(_, r)| r.is_ok()).count();
                count(parsed, &rest[..n], fr);
                rest = &rest[n..];
            }
            report.committed = !outcomes.iter().any(|o| matches!(o, Outcome::Refused(_)));
            if !report.committed {
                // The store refused a record (a millisecond already full): nothing was written.
                for (fr, _) in &mut all {
                    fr.accepted = 0;
                    fr.duplicates = 0;
                }
            }
        }
        report.files = all.into_iter().map(|(fr, _)| fr).collect();
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
        report.replaced += f.replaced;
        report.rejected += f.rejected;
    }
    Ok(report)
}

/// Parse `reader` on this thread while another writes the parsed batches, each in its own
/// transaction, as they come: parsing and writing take about as long as each other, and the
/// machine has more than one core. At most `QUEUED` batches wait between the two.
fn pipelined(store: &dyn Store, reader: impl Read, mut fr: FileReport) -> Result<FileReport> {
    const QUEUED: usize = 2;
    std::thread::scope(|s| {
        let (send, batches) = std::sync::mpsc::sync_channel::<Parsed>(QUEUED);
        let writer = s.spawn(move || -> Result<FileReport> {
            for batch in batches {
                write_batch(store, &batch, &mut fr, Atomic::PerRecord)?;
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
pub fn import_values(store: &dyn Store, records: &[Value], source: &str) -> Result<ImportReport> {
    import_values_with(store, records, source, false)
}

/// Import records given as JSON values. With `strict`, any bad record writes nothing and is an
/// invalid-input error naming the first one (`records[i]`, 0-based) and its reason.
pub fn import_values_with(
    store: &dyn Store,
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
    let atomic = if strict {
        Atomic::All
    } else {
        Atomic::PerRecord
    };
    if !write_batch(store, &parsed, &mut fr, atomic)? {
        let e = &fr.errors[0];
        return Err(strict_refusal(
            e.line,
            &e.reason,
            fr.rejected as usize,
            parsed.len(),
        ));
    }
    Ok(ImportReport {
        accepted: fr.accepted,
        duplicates: fr.duplicates,
        replaced: fr.replaced,
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
pub fn insert_all(
    store: &dyn Store,
    executions: impl IntoIterator<Item = Execution>,
) -> Result<u64> {
    let mut n = 0;
    let mut batch = Vec::with_capacity(BATCH);
    let mut flush = |batch: &mut Vec<Execution>| -> Result<()> {
        let records: Vec<&Execution> = batch.iter().collect();
        for o in store.insert(&records, Atomic::PerRecord)? {
            match o {
                Outcome::Inserted => n += 1,
                Outcome::Duplicate | Outcome::Replaced => {}
                Outcome::Refused(reason) => return Err(Error::invalid("records", reason)),
            }
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
