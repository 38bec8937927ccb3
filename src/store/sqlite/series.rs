//! The per-agent rollups and the anomaly detector's hourly series, summed by (agent, UTC hour).
//! Hours without executions are absent; the caller fills the gaps.
//!
//! `agent_hour` (migration 4) holds, per agent and hour, the totals every tool sums (calls,
//! errors, tokens, cost, timed, duration_sum: `rollup` reads them when no model filter or
//! grouping needs `rollup_hour`'s model dimension) and the detector's extra sums; `agent_day` the
//! totals per day. Both are kept by the write path in the same transaction as the rows. A 30-day
//! anomaly window over 200 agents reads ~200 k `agent_hour` rows (whole hours) plus the raw rows
//! of at most two partial hours, instead of every execution of 44 days.
//!
//! Every sum the detector reads is an exact integer, so the series — and so the anomalies and
//! their ids — do not depend on the order executions arrived in (float sums would, in their last
//! bits):
//! - cost squares are taken in micro-dollars (the detector's cost floor is a tenth of a cent),
//!   token squares in tokens, duration squares in whole milliseconds; duration sums and the
//!   slowest call are kept in microseconds;
//! - a square (up to ~2^84 for the largest values ingest accepts) is stored as two integer limbs,
//!   `hi = sq >> 32` and `lo = sq & (2^32 − 1)`, whose column sums stay exact far beyond any real
//!   hour (SQLite turns an integer sum that overflows into a float: read back approximately,
//!   never an error).

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, Transaction};

use crate::error::Result;
use crate::time::{Millis, Window, HOUR};

use super::query::keys;
use super::rollup::Keys;
use super::{pos, Reader};
use crate::store::{AgentRun, Agents, Changes, Filter, HourSums, Plan, Totals};

const TOKENS: &str =
    "e.prompt_tokens + e.completion_tokens + e.cache_read_tokens + e.cache_write_tokens";

const LIMB: u32 = 32;
const LIMB_MASK: i128 = (1 << LIMB) - 1;

/// A non-negative square as (hi, lo) limbs. Beyond i64 in `hi` (values far past what ingest
/// accepts) it saturates; `join` of the sums is then approximate, never an error.
fn split(sq: i128) -> (i64, i64) {
    let hi = i64::try_from(sq >> LIMB).unwrap_or(i64::MAX);
    (hi, (sq & LIMB_MASK) as i64)
}

/// A sum of squares back from its summed limbs.
fn join(hi: &Value, lo: &Value) -> i128 {
    (int(hi) << LIMB) + int(lo)
}

/// An integer column that SQLite may have turned into a float on overflow.
fn int(v: &Value) -> i128 {
    match v {
        Value::Integer(i) => i128::from(*i),
        Value::Real(r) => *r as i128,
        _ => 0,
    }
}

/// Add `sums` ((UTC hour number, agent key) → sums) to the `agent_hour` rollup, marking each row
/// with the write's generation `gen` (`next_gen`), their days to `agent_day` and their 7-day
/// blocks to `agent_week`, in `tx`. `gen` is `None` only for the back-fill of migration 4, which
/// runs before the `gen` column (migration 5) and `agent_week` (migration 7) exist.
pub fn upsert(
    tx: &Transaction<'_>,
    sums: &HashMap<(i64, i64), HourSums>,
    gen: Option<i64>,
) -> Result<()> {
    let (gen_column, gen_value, gen_update) = match gen {
        Some(_) => (", gen", ", ?20", "gen = excluded.gen,"),
        None => ("", "", ""),
    };
    let mut stmt = tx.prepare_cached(&format!(
        "INSERT INTO agent_hour (hour, agent, calls, errors, tokens, cost, timed, duration_sum,
             cost_sq_hi, cost_sq_lo, tokens_sq_hi, tokens_sq_lo, max_cost, max_tokens, ok_timed,
             ok_us, ok_ms_sq_hi, ok_ms_sq_lo, ok_max_us{gen_column})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
             ?19{gen_value})
         ON CONFLICT (hour, agent) DO UPDATE SET {gen_update}
             calls = calls + excluded.calls, errors = errors + excluded.errors,
             tokens = tokens + excluded.tokens, cost = cost + excluded.cost,
             timed = timed + excluded.timed, duration_sum = duration_sum + excluded.duration_sum,
             cost_sq_hi = cost_sq_hi + excluded.cost_sq_hi,
             cost_sq_lo = cost_sq_lo + excluded.cost_sq_lo,
             tokens_sq_hi = tokens_sq_hi + excluded.tokens_sq_hi,
             tokens_sq_lo = tokens_sq_lo + excluded.tokens_sq_lo,
             max_cost = max(max_cost, excluded.max_cost),
             max_tokens = max(max_tokens, excluded.max_tokens),
             ok_timed = ok_timed + excluded.ok_timed, ok_us = ok_us + excluded.ok_us,
             ok_ms_sq_hi = ok_ms_sq_hi + excluded.ok_ms_sq_hi,
             ok_ms_sq_lo = ok_ms_sq_lo + excluded.ok_ms_sq_lo,
             ok_max_us = max(ok_max_us, excluded.ok_max_us)"
    ))?;
    let mut days: HashMap<(i64, i64), Totals> = HashMap::new();
    for (&(hour, agent), s) in sums {
        let (cost_hi, cost_lo) = split(s.cost_sq);
        let (tok_hi, tok_lo) = split(s.tokens_sq);
        let (ms_hi, ms_lo) = split(s.ok_ms_sq);
        let ok_us = i64::try_from(s.ok_us).unwrap_or(i64::MAX);
        let mut values: Vec<&dyn rusqlite::ToSql> = vec![
            &hour,
            &agent,
            &s.totals.calls,
            &s.totals.errors,
            &s.totals.tokens,
            &s.totals.cost,
            &s.totals.timed,
            &s.totals.duration_sum,
            &cost_hi,
            &cost_lo,
            &tok_hi,
            &tok_lo,
            &s.max_cost,
            &s.max_tokens,
            &s.ok_timed,
            &ok_us,
            &ms_hi,
            &ms_lo,
            &s.ok_max_us,
        ];
        if let Some(g) = &gen {
            values.push(g);
        }
        stmt.execute(values.as_slice())?;
        days.entry((hour.div_euclid(24), agent))
            .or_default()
            .add(&s.totals);
    }
    let mut weeks: HashMap<(i64, i64), Totals> = HashMap::new();
    for ((day, agent), t) in days {
        super::pending::upsert_level(tx, "agent_day", ("day", day), ("agent", agent), &t)?;
        weeks.entry((day.div_euclid(7), agent)).or_default().add(&t);
    }
    if gen.is_some() {
        for ((week, agent), t) in weeks {
            super::pending::upsert_level(tx, "agent_week", ("week", week), ("agent", agent), &t)?;
        }
    }
    Ok(())
}

/// Migration 4: fill `agent_hour` from the executions already stored, through the very sums the
/// write path uses.
pub fn backfill(tx: &Transaction<'_>) -> Result<()> {
    let mut sums: HashMap<(i64, i64), HourSums> = HashMap::new();
    {
        let mut stmt = tx.prepare(&format!(
            "SELECT e.agent, e.ts, e.success, {TOKENS}, e.cost, e.duration_ms FROM executions e"
        ))?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (agent, ts): (i64, Millis) = (r.get(0)?, r.get(1)?);
            sums.entry((ts.div_euclid(HOUR), agent)).or_default().add(
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            );
        }
    }
    upsert(tx, &sums, None)
}

/// Every agent: key → id.
fn agent_ids(c: &Connection) -> Result<HashMap<i64, String>> {
    Ok(c.prepare_cached("SELECT key, id FROM agents")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

/// The generation the next write transaction marks its `agent_hour` rows with: one more than any
/// stored, so generations only grow (rows are never deleted).
pub fn next_gen(tx: &Transaction<'_>) -> Result<i64> {
    Ok(latest_gen(tx)? + 1)
}

/// The generation of the latest write (0: none since migration 5).
pub fn latest_gen(c: &Connection) -> Result<i64> {
    Ok(
        c.prepare_cached("SELECT COALESCE(MAX(gen), 0) FROM agent_hour")?
            .query_row([], |r| r.get(0))?,
    )
}

/// The (agent, hour) pairs written to after generation `seen` (`Changes::TooMany` beyond `limit`).
/// One statement, so one snapshot: a row's `gen` moves on with every write to it, and a second
/// read could miss a pair that was written to again in between.
pub fn changes_since(c: &Connection, seen: i64, limit: usize) -> Result<Changes> {
    let mut gen = seen;
    let mut pairs = Vec::new();
    let mut stmt = c.prepare_cached("SELECT agent, hour, gen FROM agent_hour WHERE gen > ?1")?;
    let mut rows = stmt.query([seen])?;
    while let Some(r) = rows.next()? {
        if pairs.len() == limit {
            // Reading the latest generation after this snapshot is safe: whatever is loaded
            // afresh is at least that new.
            drop(rows);
            return Ok(Changes::TooMany {
                gen: latest_gen(c)?,
            });
        }
        let (agent, hour, g): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        pairs.push((agent, hour * HOUR));
        gen = gen.max(g);
    }
    drop(rows);
    let ids = agent_ids(c)?;
    let mut pairs: Vec<(String, Millis)> = pairs
        .into_iter()
        .filter_map(|(agent, hour)| Some((ids.get(&agent)?.clone(), hour)))
        .collect();
    pairs.sort_unstable();
    Ok(Changes::Touched { gen, pairs })
}

/// Which agents a series query reads, by key.
#[derive(Debug, Clone, Copy)]
enum Sel {
    All,
    One(i64),
    /// Keys ≡ .0 (mod .1).
    Part(i64, i64),
}

impl Sel {
    /// The SQL condition on the agent key column `col`, and its parameters.
    fn condition(self, col: &str) -> (String, Vec<i64>) {
        match self {
            Sel::All => ("1".into(), vec![]),
            Sel::One(k) => (format!("{col} = ?"), vec![k]),
            Sel::Part(part, parts) => (format!("{col} % ? = ?"), vec![parts, part]),
        }
    }
}

/// Every non-empty (agent, UTC hour) of `range` for `agents`, one run per agent ordered by
/// agent id. `range.start` should be an hour boundary, or its first hour is partial.
///
/// Whole hours come from the `agent_hour` rollup and partial edges from raw rows, unless the
/// reader is told not to use rollups (then every hour is summed from raw rows).
pub fn series(c: &Reader<'_>, range: &Window, agents: &Agents) -> Result<Vec<AgentRun>> {
    let key = match agents {
        Agents::All => Sel::All,
        Agents::Part(part, parts) => Sel::Part(*part, *parts),
        Agents::One(id) => {
            let filter = Filter {
                agent: Some(id.clone()),
                model: None,
            };
            match keys(c, &filter)? {
                Some(Keys { agent: Some(k), .. }) => Sel::One(k),
                _ => return Ok(Vec::new()),
            }
        }
    };
    // agent key → (hour number, sums), each in hour order once sorted.
    let mut by_agent: HashMap<i64, Vec<(i64, HourSums)>> = HashMap::new();
    let mut edges: HashMap<(i64, i64), HourSums> = HashMap::new();
    // Whole hours from `agent_hour`, the partial edges from raw rows (all raw without rollups).
    let plan = super::query::plan(c, range, false)?.unwrap_or_else(|| Plan::raw(range));
    for w in &plan.raw {
        raw_sums(c, w.start, w.end, key, &mut edges)?;
    }
    for w in &plan.hours {
        rollup_sums(c, w.start / HOUR, w.end / HOUR, key, &mut by_agent)?;
    }
    for ((agent, hour), sums) in edges {
        by_agent.entry(agent).or_default().push((hour, sums));
    }
    let ids = agent_ids(c)?;
    let mut out: Vec<AgentRun> = by_agent
        .into_iter()
        .filter_map(|(agent, mut hours)| {
            // Rollup hours arrive in order; the (at most two) edge hours were pushed last.
            hours.sort_unstable_by_key(|h| h.0);
            Some(AgentRun {
                agent_id: ids.get(&agent)?.clone(),
                hours: hours
                    .into_iter()
                    .map(|(hour, sums)| (hour * HOUR, sums.stats()))
                    .collect(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
    Ok(out)
}

/// Sum the raw executions of `[start, end)` into `groups`.
///
/// One query streams the rows in time order and the sums are made here: SQLite's `GROUP BY` on
/// an expression of `ts` sorts every row in a temporary B-tree first, and that sort cost 8× the
/// whole scan (21 s against 2.8 s for 4.9 M rows, see docs/anomalies.md).
fn raw_sums(
    c: &Connection,
    start: Millis,
    end: Millis,
    agents: Sel,
    groups: &mut HashMap<(i64, i64), HourSums>,
) -> Result<()> {
    if start >= end {
        return Ok(());
    }
    let (cond, mut params) = agents.condition("e.agent");
    params.splice(0..0, [pos(start), pos(end)]);
    let sql = format!(
        "SELECT e.agent, e.ts, e.success, {TOKENS}, e.cost, e.duration_ms FROM executions e
         WHERE e.pos >= ? AND e.pos < ? AND {cond}"
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(params))?;
    while let Some(r) = rows.next()? {
        let (agent, ts): (i64, Millis) = (r.get(0)?, r.get(1)?);
        groups.entry((agent, ts.div_euclid(HOUR))).or_default().add(
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        );
    }
    Ok(())
}

/// Add the `agent_hour` rows of hours `[from, to)` (hour numbers) into `groups`.
fn rollup_sums(
    c: &Connection,
    from: i64,
    to: i64,
    agents: Sel,
    by_agent: &mut HashMap<i64, Vec<(i64, HourSums)>>,
) -> Result<()> {
    let cols = "h.hour, h.agent, calls, errors, tokens, cost, cost_sq_hi, cost_sq_lo, tokens_sq_hi,
                tokens_sq_lo, max_cost, max_tokens, ok_timed, ok_us, ok_ms_sq_hi, ok_ms_sq_lo,
                ok_max_us";
    // One range of the (hour, agent) primary key; an agent filter is checked on each row.
    let (cond, mut params) = agents.condition("h.agent");
    params.splice(0..0, [from, to]);
    let sql =
        format!("SELECT {cols} FROM agent_hour h WHERE h.hour >= ? AND h.hour < ? AND {cond}");
    let mut stmt = c.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(params))?;
    while let Some(r) = rows.next()? {
        let v = |i: usize| r.get::<_, Value>(i);
        let s = HourSums {
            // The detector reads no duration but its own successful-call sums.
            totals: Totals {
                calls: r.get(2)?,
                errors: r.get(3)?,
                tokens: r.get(4)?,
                cost: r.get(5)?,
                ..Totals::default()
            },
            cost_sq: join(&v(6)?, &v(7)?),
            tokens_sq: join(&v(8)?, &v(9)?),
            max_cost: r.get(10)?,
            max_tokens: r.get(11)?,
            ok_timed: r.get(12)?,
            ok_us: int(&v(13)?),
            ok_ms_sq: join(&v(14)?, &v(15)?),
            ok_max_us: r.get(16)?,
        };
        by_agent.entry(r.get(1)?).or_default().push((r.get(0)?, s));
    }
    Ok(())
}
