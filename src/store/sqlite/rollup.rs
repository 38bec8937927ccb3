//! Rollups: hourly and daily sums per agent × model and latency histograms per agent, kept by the
//! write path in the same transaction as the rows they sum (so they are never behind), and read
//! back for the whole hours and days of a window while only its partial edges touch raw rows.
//! Questions that allow it read a smaller level: per model (`model_hour`, `model_day`) without an
//! agent filter or agent grouping, else per agent (`agent_hour`, `agent_day`, written with the
//! anomaly sums by `series::upsert`) without a model filter or model grouping; the per-agent
//! level also has 7-day blocks (`agent_week`) for the whole weeks of an ungrouped-in-time window.
//! At §6 density an hour holds ~2,000 agent × model rows, 200 agent rows and 20 model rows.
//!
//! Why this split: a 90-day window over 10 M executions is 10 M raw rows but about 36 k daily
//! rollup rows; the edges of a rolling window (less than an hour on each side) are a few thousand
//! raw rows, one contiguous rowid range (executions are stored in time order). Sums are exact
//! (integers; duration sums are floats whose last bits may depend on addition order, as SQLite's
//! own `SUM` does on the plan). The p95 comes from histograms (one blob per agent and hour or
//! day) with 50 log-spaced buckets per octave, reporting the bucket's geometric middle: at most
//! 2^(1/100) − 1 ≈ 0.70 % from the nearest-rank value (SPEC §2.3 allows 1 %).
//! A window with no whole hour, or with few enough timed executions (`store::EXACT_P95_MAX`),
//! gets the exact nearest-rank p95 from raw rows instead.

use std::collections::{BTreeMap, HashMap};

use rusqlite::functions::FunctionFlags;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, Transaction};

use crate::error::Result;
use crate::time::{Millis, Window, DAY, HOUR};

use super::pos;
use super::query::{totals_at, TOTALS_COLUMNS};
use crate::store::plan::{ceil, decode_counts, encode_counts, floor, push};
use crate::store::{latency_bucket, Plan, Totals};

/// The 7-day blocks of `agent_week` (day / 7: each starts on a Thursday, as 1970-01-01 did).
const WEEK: Millis = 7 * DAY;

/// Make `latency_bucket` callable from SQL (migration 3 back-fills with it).
pub fn register_functions(c: &Connection) -> Result<()> {
    c.create_scalar_function(
        "latency_bucket",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| Ok(latency_bucket(ctx.get::<f64>(0)?)),
    )?;
    Ok(())
}

/// Migration 6: the per-bucket histograms of `latency_hour` and `latency_day` into one blob per
/// agent and hour (day) in `hist_hour` and `hist_day`; the old tables are dropped.
pub fn backfill_histograms(tx: &Transaction<'_>) -> Result<()> {
    for (old, new, unit) in [
        ("latency_hour", "hist_hour", "hour"),
        ("latency_day", "hist_day", "day"),
    ] {
        let mut insert = tx.prepare(&format!(
            "INSERT INTO {new} (agent, {unit}, counts) VALUES (?1, ?2, ?3)"
        ))?;
        // The primary key's order: each (agent, unit)'s buckets come together, ascending.
        let mut stmt = tx.prepare(&format!(
            "SELECT agent, {unit}, bucket, n FROM {old} ORDER BY agent, {unit}, bucket"
        ))?;
        let mut rows = stmt.query([])?;
        let mut at: Option<(i64, i64)> = None;
        let mut counts = BTreeMap::new();
        while let Some(r) = rows.next()? {
            let key = (r.get(0)?, r.get(1)?);
            if at != Some(key) {
                if let Some((agent, unit)) = at {
                    insert.execute(params![agent, unit, encode_counts(&counts)])?;
                }
                at = Some(key);
                counts.clear();
            }
            counts.insert(r.get(2)?, r.get(3)?);
        }
        if let Some((agent, unit)) = at {
            insert.execute(params![agent, unit, encode_counts(&counts)])?;
        }
        drop(rows);
        drop(stmt);
        tx.execute_batch(&format!("DROP TABLE {old}"))?;
    }
    Ok(())
}

/// `w` with its partial first and last hours widened to whole hours where the part added holds no
/// execution: the same rows, more of them answered by the hour rollups. Under live ingest the
/// last hour of a window ending now is partial only because the hour has not ended, and nothing
/// is stored after now: at 10,000 records/s that hour alone would be millions of raw rows.
/// Callers read in one snapshot (`Store::read` runs `f` in one transaction), so no row can land
/// in the part added between this check and the sums.
pub fn widened(c: &Connection, w: &Window) -> Result<Window> {
    let mut out = Window {
        start: w.start.max(0),
        end: w.end,
    };
    if out.is_empty() {
        return Ok(out);
    }
    let (s, e) = (floor(out.start, HOUR), ceil(out.end, HOUR));
    if s < out.start && holds_none(c, s, out.start)? {
        out.start = s;
    }
    if out.end < e && holds_none(c, out.end, e)? {
        out.end = e;
    }
    Ok(out)
}

/// No execution in `[start, end)` (one seek on the time-ordered rowid).
fn holds_none(c: &Connection, start: Millis, end: Millis) -> Result<bool> {
    Ok(c.prepare_cached(
        "SELECT NOT EXISTS (SELECT 1 FROM executions WHERE pos >= ?1 AND pos < ?2)",
    )?
    .query_row([pos(start), pos(end)], |r| r.get(0))?)
}

/// Agent and model keys a filter resolved to (`None` = no filter).
#[derive(Debug, Clone, Copy, Default)]
pub struct Keys {
    pub agent: Option<i64>,
    pub model: Option<i64>,
}

/// What to group sums by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Nothing,
    Agent,
    Model,
}

impl By {
    fn column(self) -> &'static str {
        match self {
            By::Nothing => "0",
            By::Agent => "agent",
            By::Model => "model",
        }
    }
}

const ROLLUP_COLUMNS: &str = "calls, errors,
    prompt_tokens + completion_tokens + cache_read_tokens + cache_write_tokens, cost, timed,
    duration_sum";

/// `ROLLUP_COLUMNS` of the per-agent and per-model rollups (tokens summed already).
const LEVEL_COLUMNS: &str = "calls, errors, tokens, cost, timed, duration_sum";

/// ` AND agent = ? AND model = ?` for the keys a filter resolved to, their values in `params`.
pub(super) fn filter_sql(prefix: &str, k: &Keys, params: &mut Vec<Value>) -> String {
    let mut sql = String::new();
    if let Some(a) = k.agent {
        sql.push_str(&format!(" AND {prefix}agent = ?"));
        params.push(Value::Integer(a));
    }
    if let Some(m) = k.model {
        sql.push_str(&format!(" AND {prefix}model = ?"));
        params.push(Value::Integer(m));
    }
    sql
}

/// Sums over the window `plan` covers, per time unit of `unit` ms (`None`: one unit) and per
/// `by` key: `(unit index, key, totals)` with each (unit, key) once, in (unit, key) order.
pub fn sums(
    c: &Connection,
    plan: &Plan,
    k: &Keys,
    unit: Option<Millis>,
    by: By,
) -> Result<Vec<(i64, i64, Totals)>> {
    let mut out: BTreeMap<(i64, i64), Totals> = BTreeMap::new();
    let key = by.column();
    // Raw edges. One sum: SQLite's aggregate. Grouped: the rows are streamed and summed here,
    // as a `GROUP BY` would sort them first (a fifth of a short window's time went to that sort).
    for w in &plan.raw {
        let mut params = vec![Value::Integer(pos(w.start)), Value::Integer(pos(w.end))];
        let cond = filter_sql("e.", k, &mut params);
        if unit.is_none() && by == By::Nothing {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {TOTALS_COLUMNS} FROM executions e WHERE e.pos >= ? AND e.pos < ?{cond}"
            ))?;
            let t = stmt.query_row(params_from_iter(params), |r| totals_at(r, 0))?;
            out.entry((0, 0)).or_default().add(&t);
            continue;
        }
        let key = if by == By::Nothing {
            "0".to_owned()
        } else {
            format!("e.{key}")
        };
        let mut stmt = c.prepare_cached(&format!(
            "SELECT e.ts, {key}, e.success,
                 e.prompt_tokens + e.completion_tokens + e.cache_read_tokens + e.cache_write_tokens,
                 e.cost, e.duration_ms
             FROM executions e WHERE e.pos >= ? AND e.pos < ?{cond}"
        ))?;
        let mut rows = stmt.query(params_from_iter(params))?;
        while let Some(r) = rows.next()? {
            // Times are ≥ 0, so this is SQL's integer division.
            let ts: Millis = r.get(0)?;
            let at = unit.map_or(0, |u| ts / u);
            let duration: Option<f64> = r.get(5)?;
            let t = Totals {
                calls: 1,
                errors: i64::from(!r.get::<_, bool>(2)?),
                tokens: r.get(3)?,
                cost: r.get(4)?,
                timed: i64::from(duration.is_some()),
                duration_sum: duration.unwrap_or(0.0),
            };
            out.entry((at, r.get(1)?)).or_default().add(&t);
        }
    }
    let mut run = |sql: String, params: Vec<Value>| -> Result<()> {
        let mut stmt = c.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(params))?;
        while let Some(r) = rows.next()? {
            let t = totals_at(r, 2)?;
            out.entry((r.get(0)?, r.get(1)?)).or_default().add(&t);
        }
        Ok(())
    };
    // The smallest level that still has what the filter and grouping need: per model (one row
    // per model and hour or day), per agent (one per agent), else per agent × model.
    // The per-agent level also has 7-day blocks.
    let (hour_table, day_table, week_table, columns) = if k.agent.is_none() && by != By::Agent {
        ("model_hour", "model_day", None, LEVEL_COLUMNS)
    } else if k.model.is_none() && by != By::Model {
        ("agent_hour", "agent_day", Some("agent_week"), LEVEL_COLUMNS)
    } else {
        ("rollup_hour", "rollup_day", None, ROLLUP_COLUMNS)
    };
    // Whole 7-day blocks of the days, where the level has them and no finer unit is asked for.
    let mut days: Vec<Window> = plan.days.iter().copied().collect();
    let mut weeks = None;
    if let (Some(d), Some(week_table), None) = (plan.days, week_table, unit) {
        let (ws, we) = (ceil(d.start, WEEK), floor(d.end, WEEK));
        if ws < we {
            days.clear();
            push(&mut days, d.start, ws);
            push(&mut days, we, d.end);
            weeks = Some((week_table, Window { start: ws, end: we }));
        }
    }
    let tables = plan
        .hours
        .iter()
        .map(|w| (hour_table, "hour", HOUR, w))
        .chain(days.iter().map(|w| (day_table, "day", DAY, w)))
        .chain(weeks.iter().map(|(table, w)| (*table, "week", WEEK, w)));
    for (table, col, len, w) in tables {
        let mut params = vec![Value::Integer(w.start / len), Value::Integer(w.end / len)];
        let cond = filter_sql("", k, &mut params);
        let u = unit.map_or("0".to_owned(), |u| format!("{col} * {len} / {u}"));
        run(
            format!(
                "SELECT {u}, {key}, {columns} FROM {table} WHERE {col} >= ? AND {col} < ?{cond}"
            ),
            params,
        )?;
    }
    Ok(out.into_iter().map(|((u, k), t)| (u, k, t)).collect())
}

/// The latency histogram (bucket → count) of the window `plan` covers, for one agent or all:
/// raw edges are bucketed here, whole hours and days come from the stored histograms.
pub fn histogram(c: &Connection, plan: &Plan, agent: Option<i64>) -> Result<BTreeMap<i64, i64>> {
    let mut hist: BTreeMap<i64, i64> = BTreeMap::new();
    for w in &plan.raw {
        let mut params = vec![Value::Integer(pos(w.start)), Value::Integer(pos(w.end))];
        let cond = filter_sql("e.", &Keys { agent, model: None }, &mut params);
        let mut stmt = c.prepare_cached(&format!(
            "SELECT e.duration_ms FROM executions e
             WHERE e.pos >= ? AND e.pos < ?{cond} AND e.duration_ms IS NOT NULL"
        ))?;
        let mut rows = stmt.query(params_from_iter(params))?;
        while let Some(r) = rows.next()? {
            *hist.entry(latency_bucket(r.get(0)?)).or_default() += 1;
        }
    }
    let tables = plan
        .hours
        .iter()
        .map(|w| ("hist_hour", "hour", HOUR, w))
        .chain(plan.days.iter().map(|w| ("hist_day", "day", DAY, w)));
    let mut stored: HashMap<i64, i64> = HashMap::new();
    for (table, col, len, w) in tables {
        let mut stmt = c.prepare_cached(&format!(
            "SELECT counts FROM {table} WHERE agent = ?1 AND {col} >= ?2 AND {col} < ?3"
        ))?;
        let mut rows = stmt.query(params![agent.unwrap_or(0), w.start / len, w.end / len])?;
        while let Some(r) = rows.next()? {
            let blob = r.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
            decode_counts(blob, |b, n| *stored.entry(b).or_default() += n)?;
        }
    }
    for (b, n) in stored {
        *hist.entry(b).or_default() += n;
    }
    Ok(hist)
}
