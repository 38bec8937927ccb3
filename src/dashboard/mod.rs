//! The dashboard: one service that answers every tool from the store. It knows nothing of MCP,
//! HTTP or the CLI; the adapters call these methods and ship the returned wire types as they are.

mod agents;
mod alerts;
pub mod anomalies;
mod budget_check;
mod budgets;
mod executions;
pub mod memo;
mod models;
mod overview;
mod timeline;

pub use executions::execution_item;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

pub use budgets::{is_early, period_bounds, project, Evaluated, DEFAULT_THRESHOLDS};

use serde::Serialize;

use crate::cache::ResultCache;
use crate::cancel::{Cancel, CancelOnDrop};
use crate::error::{Error, Result};
use crate::ingest;
use crate::input::check_range;
use crate::store::Store;
use crate::time::{self, format_utc, Clock, Millis, Window, Zone, MAX_WINDOW};
use crate::wire::{ImportReport, Pagination, Period, RecordUsageInput, Timeframe, WindowArgs};

/// A scoped thread's result; its panic goes on up to the tool's own guard (`catalog::call`).
pub(crate) fn joined<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// The most text one tool result may carry (agents' clients reject larger results).
pub const MAX_RESULT_BYTES: usize = 80_000;
/// Records one `dashboard_record_usage` call may carry.
pub const MAX_RECORDS_PER_CALL: usize = 10_000;
/// The largest `offset` accepted (the input schemas say so too).
pub const MAX_OFFSET: u64 = 1_000_000_000;

/// Shared state of every handler: the store, the clock, the time zone, the result cache of the
/// read tools (`catalog::call` uses it) and the anomaly detector's memo.
#[derive(Clone)]
pub struct Dashboard {
    pub store: Arc<dyn Store>,
    pub clock: Clock,
    pub zone: Zone,
    pub cache: Arc<ResultCache>,
    pub memo: Arc<Mutex<memo::Memo>>,
    /// Whether the request this copy serves is still wanted (`cancellable`).
    pub cancel: Cancel,
    /// Calls stopped because their request was given up (reported by `/healthz`).
    pub cancelled: Arc<AtomicU64>,
}

impl Dashboard {
    pub fn new(store: Arc<dyn Store>, clock: Clock, zone: Zone) -> Self {
        Dashboard {
            store,
            clock,
            zone,
            cache: Arc::new(ResultCache::default()),
            memo: Arc::default(),
            cancel: Cancel::default(),
            cancelled: Arc::default(),
        }
    }

    /// A copy for one request whose work stops when the returned guard is dropped: adapters
    /// keep the guard in the request's future (`cancel`).
    pub fn cancellable(&self) -> (Dashboard, CancelOnDrop) {
        let (cancel, guard) = Cancel::new();
        (
            Dashboard {
                cancel,
                ..self.clone()
            },
            guard,
        )
    }

    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// `dashboard_record_usage`: store a batch of records, answering with the import report.
    pub fn record_usage(&self, input: RecordUsageInput) -> Result<ImportReport> {
        let n = input.records.len();
        if n == 0 || n > MAX_RECORDS_PER_CALL {
            return Err(Error::invalid(
                "records",
                format!("{n} records given; allowed are 1..={MAX_RECORDS_PER_CALL} per call (import larger files with `dashboard-mcp import`)"),
            ));
        }
        let strict = input.strict.unwrap_or(false);
        ingest::import_values_with(&*self.store, &input.records, "records", strict)
    }
}

/// Resolve the window of a query (SPEC §2.3): `[start, end)` with `end` = now unless given and
/// `start` = `end` − timeframe unless given.
pub fn resolve_window(args: &WindowArgs, now: Millis) -> Result<Window> {
    let end = match &args.end {
        Some(s) => time::parse_rfc3339("end", s)?,
        None => now,
    };
    let start = match &args.start {
        Some(s) => time::parse_rfc3339("start", s)?,
        None => end - args.timeframe.unwrap_or(Timeframe::Day).millis(),
    };
    if start >= end {
        let end_text = if args.end.is_some() {
            "end"
        } else {
            "now (end defaults to now)"
        };
        return Err(Error::invalid(
            "start",
            format!(
                "{} is not before {end_text} {}; a window needs start < end",
                format_utc(start),
                format_utc(end)
            ),
        ));
    }
    if start < 0 {
        // Only `end` minus a timeframe can get here: a given `start` before 1970 is refused
        // when it is parsed.
        return Err(Error::invalid(
            "end",
            format!(
                "a {} window ending at {} would start before 1970-01-01T00:00:00Z, the earliest instant stored; give a later end or a start",
                args.timeframe.unwrap_or(Timeframe::Day).as_str(),
                format_utc(end)
            ),
        ));
    }
    if end - start > MAX_WINDOW {
        let field = if args.start.is_some() { "start" } else { "end" };
        return Err(Error::invalid(
            field,
            format!(
                "the window {} .. {} is {:.1} days long; the longest allowed is 400 days",
                format_utc(start),
                format_utc(end),
                (end - start) as f64 / time::DAY as f64
            ),
        ));
    }
    Ok(Window { start, end })
}

pub fn period(w: &Window) -> Period {
    Period {
        start: format_utc(w.start),
        end: format_utc(w.end),
    }
}

/// Percent change from `previous` to `current`; `None` when `previous` is 0.
pub fn trend(current: f64, previous: f64) -> Option<f64> {
    (previous != 0.0).then(|| (current - previous) / previous * 100.0)
}

/// `part / whole * 100`, `None` over nothing.
pub fn percent(part: f64, whole: f64) -> Option<f64> {
    (whole != 0.0).then(|| part / whole * 100.0)
}

/// Validated `limit` (default `default`, `1..=max`) and `offset`.
pub fn page_args(
    limit: Option<u64>,
    offset: Option<u64>,
    default: u64,
    max: u64,
) -> Result<(u64, u64)> {
    let limit = check_range("limit", limit.unwrap_or(default), 1, max)?;
    let offset = check_range("offset", offset.unwrap_or(0), 0, MAX_OFFSET)?;
    Ok((limit, offset))
}

pub fn pagination(total: u64, limit: u64, offset: u64, returned: usize) -> Pagination {
    let next = offset + returned as u64;
    let has_more = next < total;
    Pagination {
        total,
        limit,
        offset,
        has_more,
        next_offset: has_more.then_some(next),
    }
}

/// Drop trailing `items` until the whole result (whose other parts serialise to `fixed` bytes)
/// fits in `MAX_RESULT_BYTES`. Returns whether anything was dropped.
pub fn fit_items<T: Serialize>(items: &mut Vec<T>, fixed: usize) -> bool {
    let n = fitting(items, fixed);
    let cut = n < items.len();
    items.truncate(n);
    cut
}

/// How many leading `items` fit in `MAX_RESULT_BYTES` beside parts that serialise to `fixed`.
pub fn fitting<T: Serialize>(items: &[T], fixed: usize) -> usize {
    // Room for the numbers in the paging fields that change once the page is cut.
    let mut size = fixed + 64;
    for (i, item) in items.iter().enumerate() {
        size += serde_json::to_vec(item).map(|v| v.len()).unwrap_or(0) + 1;
        if size > MAX_RESULT_BYTES {
            return i;
        }
    }
    items.len()
}

/// Serialized size of `value`.
pub fn json_len<T: Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).map(|v| v.len()).unwrap_or(0)
}
