//! The write side of the rollups: what one write transaction adds to them (or, for a replaced
//! or repriced execution, takes out), accumulated per cell in memory and written once before
//! the transaction commits (`Pending::flush`); and the tidying after executions were taken out
//! (the detector's maxima recomputed, emptied rows removed). `rollup` reads them back.

use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::{params, params_from_iter, OptionalExtension, Transaction};

use crate::error::Result;
use crate::store::plan::{decode_counts, encode_counts};
use crate::store::{latency_bucket, CostSource, Totals};
use crate::time::{Millis, HOUR};

/// Sums of one rollup cell, as the write path accumulates them.
#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    calls: i64,
    errors: i64,
    prompt: i64,
    completion: i64,
    cache_read: i64,
    cache_write: i64,
    cost: i64,
    timed: i64,
    duration_sum: f64,
    /// The part of `cost` estimated from the price table, and its calls; calls unpriced.
    estimated_cost: i64,
    estimated: i64,
    unpriced: i64,
}

/// A stored execution as the rollups counted it (what replacing it takes back out).
#[derive(Debug, Clone)]
pub struct Stored {
    pub ts: Millis,
    pub agent: i64,
    pub model: i64,
    /// Prompt, completion, cache read, cache write.
    pub tokens: [i64; 4],
    pub cost: i64,
    pub duration_ms: Option<f64>,
    pub success: bool,
    pub revision: Option<i64>,
    pub cost_source: CostSource,
}

impl Cell {
    fn of(
        success: bool,
        tokens: [i64; 4],
        cost: i64,
        duration_ms: Option<f64>,
        source: CostSource,
    ) -> Cell {
        let estimated = source == CostSource::Estimated;
        Cell {
            calls: 1,
            errors: i64::from(!success),
            prompt: tokens[0],
            completion: tokens[1],
            cache_read: tokens[2],
            cache_write: tokens[3],
            cost,
            timed: i64::from(duration_ms.is_some()),
            duration_sum: duration_ms.unwrap_or(0.0),
            estimated_cost: if estimated { cost } else { 0 },
            estimated: i64::from(estimated),
            unpriced: i64::from(source == CostSource::Unpriced),
        }
    }

    fn negated(&self) -> Cell {
        Cell {
            calls: -self.calls,
            errors: -self.errors,
            prompt: -self.prompt,
            completion: -self.completion,
            cache_read: -self.cache_read,
            cache_write: -self.cache_write,
            cost: -self.cost,
            timed: -self.timed,
            duration_sum: -self.duration_sum,
            estimated_cost: -self.estimated_cost,
            estimated: -self.estimated,
            unpriced: -self.unpriced,
        }
    }

    /// The cell as totals (the four token kinds summed).
    fn totals(&self) -> Totals {
        Totals {
            calls: self.calls,
            errors: self.errors,
            tokens: self.prompt + self.completion + self.cache_read + self.cache_write,
            cost: self.cost,
            timed: self.timed,
            duration_sum: self.duration_sum,
        }
    }

    fn add(&mut self, o: &Cell) {
        self.calls += o.calls;
        self.errors += o.errors;
        self.prompt += o.prompt;
        self.completion += o.completion;
        self.cache_read += o.cache_read;
        self.cache_write += o.cache_write;
        self.cost += o.cost;
        self.timed += o.timed;
        self.duration_sum += o.duration_sum;
        self.estimated_cost += o.estimated_cost;
        self.estimated += o.estimated;
        self.unpriced += o.unpriced;
    }
}

/// What one write transaction adds to the rollups, flushed once before it commits.
#[derive(Debug, Default)]
pub struct Pending {
    /// (hour, agent, model) → sums.
    sums: HashMap<(i64, i64, i64), Cell>,
    /// (agent or 0 for all, hour) → bucket → count.
    latency: HashMap<(i64, i64), BTreeMap<i64, i64>>,
    /// (hour, agent) → the anomaly detector's sums (`agent_hour`).
    agent_hours: HashMap<(i64, i64), crate::store::HourSums>,
    /// (hour, agent) cells an execution was taken out of: their maxima are recomputed from
    /// the rows and emptied rollup rows removed.
    emptied: HashSet<(i64, i64)>,
}

impl Pending {
    /// Count one stored execution.
    pub fn add(&mut self, e: &super::Execution, agent: i64, model: i64) {
        self.add_stored(&Stored {
            ts: e.ts,
            agent,
            model,
            tokens: [
                e.prompt_tokens,
                e.completion_tokens,
                e.cache_read_tokens,
                e.cache_write_tokens,
            ],
            cost: e.cost,
            duration_ms: e.duration_ms,
            success: e.success,
            revision: e.revision,
            cost_source: e.cost_source,
        });
    }

    /// Count one stored execution, as the rollups see it.
    pub fn add_stored(&mut self, s: &Stored) {
        self.count(s, 1);
    }

    /// Take a stored execution back out (it is being replaced or repriced). The detector's
    /// maxima cannot be taken back: `tidy` recomputes them.
    pub fn remove(&mut self, s: &Stored) {
        self.count(s, -1);
        self.emptied.insert((s.ts.div_euclid(HOUR), s.agent));
    }

    /// Add (`sign` 1) or take out (−1) one execution everywhere it is counted.
    fn count(&mut self, s: &Stored, sign: i64) {
        let hour = s.ts.div_euclid(HOUR);
        let cell = Cell::of(s.success, s.tokens, s.cost, s.duration_ms, s.cost_source);
        self.sums
            .entry((hour, s.agent, s.model))
            .or_default()
            .add(&if sign > 0 { cell } else { cell.negated() });
        let sums = self.agent_hours.entry((hour, s.agent)).or_default();
        let tokens = s.tokens.iter().sum();
        if sign > 0 {
            sums.add(s.success, tokens, s.cost, s.duration_ms);
        } else {
            sums.remove(s.success, tokens, s.cost, s.duration_ms);
        }
        if let Some(d) = s.duration_ms {
            let b = latency_bucket(d);
            for key in [(s.agent, hour), (0, hour)] {
                *self.latency.entry(key).or_default().entry(b).or_default() += sign;
            }
        }
    }

    /// Add everything counted to the rollup tables, in `tx`.
    pub fn flush(&mut self, tx: &Transaction<'_>) -> Result<()> {
        self.flush_sums(tx)?;
        for (hour, agent) in std::mem::take(&mut self.emptied) {
            tidy(tx, hour, agent)?;
        }
        Ok(())
    }

    fn flush_sums(&mut self, tx: &Transaction<'_>) -> Result<()> {
        if !self.agent_hours.is_empty() {
            let gen = super::series::next_gen(tx)?;
            super::series::upsert(tx, &self.agent_hours, Some(gen))?;
        }
        self.agent_hours.clear();
        let mut days: HashMap<(i64, i64, i64), Cell> = HashMap::new();
        let mut model_hours: HashMap<(i64, i64), Cell> = HashMap::new();
        for ((hour, agent, model), c) in self.sums.drain() {
            upsert_cell(tx, "rollup_hour", "hour", hour, agent, model, &c)?;
            days.entry((hour.div_euclid(24), agent, model))
                .or_default()
                .add(&c);
            model_hours.entry((hour, model)).or_default().add(&c);
        }
        let mut model_days: HashMap<(i64, i64), Cell> = HashMap::new();
        for (&(day, agent, model), c) in &days {
            upsert_cell(tx, "rollup_day", "day", day, agent, model, c)?;
            model_days.entry((day, model)).or_default().add(c);
        }
        for ((hour, model), c) in model_hours {
            upsert_level(
                tx,
                "model_hour",
                ("hour", hour),
                ("model", model),
                &c.totals(),
            )?;
        }
        for ((day, model), c) in model_days {
            upsert_level(tx, "model_day", ("day", day), ("model", model), &c.totals())?;
        }
        let mut lat_days: HashMap<(i64, i64), BTreeMap<i64, i64>> = HashMap::new();
        for ((agent, hour), counts) in self.latency.drain() {
            let day = lat_days.entry((agent, hour.div_euclid(24))).or_default();
            for (&b, &n) in &counts {
                *day.entry(b).or_default() += n;
            }
            merge_histogram(tx, "hist_hour", "hour", (agent, hour), counts)?;
        }
        for ((agent, day), counts) in lat_days {
            merge_histogram(tx, "hist_day", "day", (agent, day), counts)?;
        }
        Ok(())
    }
}

/// After executions of `agent` in `hour` were taken out: the detector's maxima recomputed from
/// the rows left, and rows whose calls fell to 0 removed (the detector's `agent_hour` row stays,
/// its generation telling the memo what changed).
fn tidy(tx: &Transaction<'_>, hour: i64, agent: i64) -> Result<()> {
    let (lo, hi) = (super::pos(hour * HOUR), super::pos((hour + 1) * HOUR));
    // The maxima as the write path computes them (`HourSums::add`), over the rows left.
    let mut left = crate::store::HourSums::default();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT success, prompt_tokens + completion_tokens + cache_read_tokens +
               cache_write_tokens, cost, duration_ms
             FROM executions WHERE agent = ?1 AND pos >= ?2 AND pos < ?3",
        )?;
        let mut rows = stmt.query(params![agent, lo, hi])?;
        while let Some(r) = rows.next()? {
            left.add(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
        }
    }
    tx.prepare_cached(
        "UPDATE agent_hour SET max_cost = ?3, max_tokens = ?4, ok_max_us = ?5
         WHERE hour = ?1 AND agent = ?2",
    )?
    .execute(params![
        hour,
        agent,
        left.max_cost,
        left.max_tokens,
        left.ok_max_us
    ])?;
    let (day, week) = (hour.div_euclid(24), hour.div_euclid(24).div_euclid(7));
    for (table, unit, at, by_agent) in [
        ("rollup_hour", "hour", hour, true),
        ("rollup_day", "day", day, true),
        ("agent_day", "day", day, true),
        ("agent_week", "week", week, true),
        ("model_hour", "hour", hour, false),
        ("model_day", "day", day, false),
    ] {
        let agent_cond = if by_agent { " AND agent = ?2" } else { "" };
        tx.prepare_cached(&format!(
            "DELETE FROM {table} WHERE {unit} = ?1 AND calls = 0{agent_cond}"
        ))?
        .execute(params_from_iter(
            [at].into_iter().chain(by_agent.then_some(agent)),
        ))?;
    }
    Ok(())
}

/// Add `t` to the row (`unit` = `at`, `key` = `id`) of a per-agent or per-model table
/// (`agent_day`, `model_hour`, `model_day`: calls, errors, tokens, cost, timed, duration_sum).
pub(super) fn upsert_level(
    tx: &Transaction<'_>,
    table: &str,
    (unit, at): (&str, i64),
    (key, id): (&str, i64),
    t: &Totals,
) -> Result<()> {
    tx.prepare_cached(&format!(
        "INSERT INTO {table} ({unit}, {key}, calls, errors, tokens, cost, timed, duration_sum)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT ({unit}, {key}) DO UPDATE SET
             calls = calls + excluded.calls, errors = errors + excluded.errors,
             tokens = tokens + excluded.tokens, cost = cost + excluded.cost,
             timed = timed + excluded.timed, duration_sum = duration_sum + excluded.duration_sum"
    ))?
    .execute(params![
        at,
        id,
        t.calls,
        t.errors,
        t.tokens,
        t.cost,
        t.timed,
        t.duration_sum
    ])?;
    Ok(())
}

fn upsert_cell(
    tx: &Transaction<'_>,
    table: &str,
    unit: &str,
    at: i64,
    agent: i64,
    model: i64,
    c: &Cell,
) -> Result<()> {
    tx.prepare_cached(&format!(
        "INSERT INTO {table} ({unit}, agent, model, calls, errors, prompt_tokens, completion_tokens,
             cache_read_tokens, cache_write_tokens, cost, timed, duration_sum, estimated_cost,
             estimated, unpriced)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
         ON CONFLICT ({unit}, agent, model) DO UPDATE SET
             calls = calls + excluded.calls, errors = errors + excluded.errors,
             prompt_tokens = prompt_tokens + excluded.prompt_tokens,
             completion_tokens = completion_tokens + excluded.completion_tokens,
             cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
             cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
             cost = cost + excluded.cost, timed = timed + excluded.timed,
             duration_sum = duration_sum + excluded.duration_sum,
             estimated_cost = estimated_cost + excluded.estimated_cost,
             estimated = estimated + excluded.estimated, unpriced = unpriced + excluded.unpriced"
    ))?
    .execute(params![
        at,
        agent,
        model,
        c.calls,
        c.errors,
        c.prompt,
        c.completion,
        c.cache_read,
        c.cache_write,
        c.cost,
        c.timed,
        c.duration_sum,
        c.estimated_cost,
        c.estimated,
        c.unpriced
    ])?;
    Ok(())
}

/// Add `counts` to the stored histogram of (`agent`, `at`) in `table` (`hist_hour`, `hist_day`).
fn merge_histogram(
    tx: &Transaction<'_>,
    table: &str,
    unit: &str,
    (agent, at): (i64, i64),
    mut counts: BTreeMap<i64, i64>,
) -> Result<()> {
    let stored: Option<Vec<u8>> = tx
        .prepare_cached(&format!(
            "SELECT counts FROM {table} WHERE agent = ?1 AND {unit} = ?2"
        ))?
        .query_row(params![agent, at], |r| r.get(0))
        .optional()?;
    if let Some(blob) = stored {
        decode_counts(&blob, |b, n| *counts.entry(b).or_default() += n)?;
    }
    // Replaced executions take counts out.
    counts.retain(|_, n| *n != 0);
    if counts.is_empty() {
        tx.prepare_cached(&format!(
            "DELETE FROM {table} WHERE agent = ?1 AND {unit} = ?2"
        ))?
        .execute(params![agent, at])?;
        return Ok(());
    }
    tx.prepare_cached(&format!(
        "INSERT INTO {table} (agent, {unit}, counts) VALUES (?1, ?2, ?3)
         ON CONFLICT (agent, {unit}) DO UPDATE SET counts = excluded.counts"
    ))?
    .execute(params![agent, at, encode_counts(&counts)])?;
    Ok(())
}
