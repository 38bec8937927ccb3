//! The read path: aggregates over a window of executions, with optional agent/model filters.
//! Every sum of money is an integer sum. Each aggregate is answered from the rollups for the
//! window's whole hours and days and from raw rows for its edges (`rollup`), or, when the reader
//! says so (`Reader::rollups` off), by the plain SQL over raw rows kept here as `raw_*`: the
//! reference the exactness tests compare against and the baseline `bench` measures.

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OptionalExtension};

use crate::cancel::Cancel;
use crate::error::Result;
use crate::time::{Millis, Window, DAY, HOUR};

use super::rollup::{self, By, Keys};
use super::{pos, Reader};
use crate::store::{
    p95_of, AgentTotals, ExecutionFilter, ExecutionRow, Filter, GroupKey, ModelTotals, Plan,
    Totals, EXACT_P95_MAX,
};

pub(crate) const TOTALS_COLUMNS: &str = "COUNT(*), COALESCE(SUM(e.success = 0), 0),
    COALESCE(SUM(e.prompt_tokens + e.completion_tokens + e.cache_read_tokens + e.cache_write_tokens), 0),
    COALESCE(SUM(e.cost), 0), COUNT(e.duration_ms), COALESCE(SUM(e.duration_ms), 0.0)";

/// The six columns of `TOTALS_COLUMNS` (or the rollups' equivalent) from column `i` on.
pub(crate) fn totals_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Totals> {
    Ok(Totals {
        calls: r.get(i)?,
        errors: r.get(i + 1)?,
        tokens: r.get(i + 2)?,
        cost: r.get(i + 3)?,
        timed: r.get(i + 4)?,
        duration_sum: r.get(i + 5)?,
    })
}

/// The `WHERE` clause for a window and filter, with its parameters. `None` when a filter names
/// an agent or model that was never stored (so nothing can match).
fn where_clause(c: &Reader<'_>, w: &Window, f: &Filter) -> Result<Option<(String, Vec<Value>)>> {
    let Some(k) = keys(c, f)? else {
        return Ok(None);
    };
    let mut sql = String::from("e.pos >= ? AND e.pos < ?");
    let mut params = vec![Value::Integer(pos(w.start)), Value::Integer(pos(w.end))];
    if let Some(key) = k.agent {
        sql.push_str(" AND e.agent = ?");
        params.push(Value::Integer(key));
    }
    if let Some(key) = k.model {
        sql.push_str(" AND e.model = ?");
        params.push(Value::Integer(key));
    }
    Ok(Some((sql, params)))
}

/// The ids of the first `n` agents stored.
pub fn first_agent_ids(c: &Connection, n: u32) -> Result<Vec<String>> {
    let mut stmt = c.prepare_cached("SELECT id FROM agents ORDER BY key LIMIT ?1")?;
    let ids = stmt.query_map([n], |r| r.get(0))?;
    Ok(ids.collect::<rusqlite::Result<_>>()?)
}

pub fn execution_count(c: &Connection) -> Result<i64> {
    Ok(c.query_row("SELECT COUNT(*) FROM executions", [], |r| r.get(0))?)
}

/// Sums over the window.
pub fn raw_totals(c: &Reader<'_>, w: &Window, f: &Filter) -> Result<Totals> {
    let Some((cond, params)) = where_clause(c, w, f)? else {
        return Ok(Totals::default());
    };
    let sql = format!("SELECT {TOTALS_COLUMNS} FROM executions e WHERE {cond}");
    Ok(c.prepare_cached(&sql)?
        .query_row(params_from_iter(params), |r| totals_at(r, 0))?)
}

/// The nearest-rank 95th percentile of the known durations: the value at rank ⌈0.95·n⌉.
pub fn raw_p95_duration(c: &Reader<'_>, w: &Window, f: &Filter) -> Result<Option<f64>> {
    let Some((cond, params)) = where_clause(c, w, f)? else {
        return Ok(None);
    };
    let n: i64 = c
        .prepare_cached(&format!(
            "SELECT COUNT(e.duration_ms) FROM executions e WHERE {cond}"
        ))?
        .query_row(params_from_iter(params.iter()), |r| r.get(0))?;
    if n == 0 {
        return Ok(None);
    }
    let rank = (n * 95 + 99) / 100;
    let sql = format!(
        "SELECT e.duration_ms FROM executions e WHERE {cond} AND e.duration_ms IS NOT NULL
         ORDER BY e.duration_ms LIMIT 1 OFFSET {}",
        rank - 1
    );
    Ok(c.prepare_cached(&sql)?
        .query_row(params_from_iter(params), |r| r.get(0))
        .optional()?)
}

/// Per-agent sums over the window (agents with at least one execution), in no set order.
pub fn raw_agent_totals(c: &Reader<'_>, w: &Window, f: &Filter) -> Result<Vec<AgentTotals>> {
    let Some((cond, params)) = where_clause(c, w, f)? else {
        return Ok(Vec::new());
    };
    let sql = format!(
        "SELECT a.id, COALESCE(a.name, a.id), t.* FROM (
             SELECT e.agent AS agent, {TOTALS_COLUMNS} FROM executions e WHERE {cond} GROUP BY e.agent
         ) t JOIN agents a ON a.key = t.agent"
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(params), |r| {
        Ok(AgentTotals {
            id: r.get(0)?,
            name: r.get(1)?,
            totals: totals_at(r, 3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Per-model sums over the window, in no set order.
pub fn raw_model_totals(c: &Reader<'_>, w: &Window, f: &Filter) -> Result<Vec<ModelTotals>> {
    let Some((cond, params)) = where_clause(c, w, f)? else {
        return Ok(Vec::new());
    };
    let sql = format!(
        "SELECT m.name, t.* FROM (
             SELECT e.model AS model, {TOTALS_COLUMNS} FROM executions e WHERE {cond} GROUP BY e.model
         ) t JOIN models m ON m.key = t.model"
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(params), |r| {
        Ok(ModelTotals {
            name: r.get(0)?,
            totals: totals_at(r, 2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Sums per time unit of `unit` milliseconds (`ts / unit`), and per agent or model when asked;
/// the key is `""` for `GroupKey::None`.
pub fn raw_grouped(
    c: &Reader<'_>,
    w: &Window,
    f: &Filter,
    unit: Millis,
    key: GroupKey,
) -> Result<Vec<(i64, String, Totals)>> {
    let Some((cond, params)) = where_clause(c, w, f)? else {
        return Ok(Vec::new());
    };
    let sql = match key {
        GroupKey::None => format!(
            "SELECT e.ts / {unit} AS u, '', {TOTALS_COLUMNS} FROM executions e WHERE {cond} GROUP BY u"
        ),
        GroupKey::Agent => format!(
            "SELECT t.u, a.id, t.* FROM (
                 SELECT e.ts / {unit} AS u, e.agent AS k, {TOTALS_COLUMNS} FROM executions e WHERE {cond} GROUP BY u, k
             ) t JOIN agents a ON a.key = t.k"
        ),
        GroupKey::Model => format!(
            "SELECT t.u, m.name, t.* FROM (
                 SELECT e.ts / {unit} AS u, e.model AS k, {TOTALS_COLUMNS} FROM executions e WHERE {cond} GROUP BY u, k
             ) t JOIN models m ON m.key = t.k"
        ),
    };
    let first = if key == GroupKey::None { 2 } else { 4 };
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(params), |r| {
        Ok((r.get(0)?, r.get(1)?, totals_at(r, first)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A page of executions, newest first, ties by id; and how many match in all.
pub fn executions(
    c: &Reader<'_>,
    w: &Window,
    ef: &ExecutionFilter,
    limit: u32,
    offset: u64,
    cancel: &Cancel,
) -> Result<(i64, Vec<ExecutionRow>)> {
    let Some((mut cond, params)) = where_clause(c, w, &ef.filter)? else {
        return Ok((0, Vec::new()));
    };
    match ef.success {
        Some(true) => cond.push_str(" AND e.success = 1"),
        Some(false) => cond.push_str(" AND e.success = 0"),
        None => {}
    }
    let total = match rollup_count(c, w, ef)? {
        Some(n) => n,
        None => c
            .prepare_cached(&format!("SELECT COUNT(*) FROM executions e WHERE {cond}"))?
            .query_row(params_from_iter(params.iter()), |r| r.get(0))?,
    };
    if offset >= total as u64 {
        return Ok((total, Vec::new()));
    }
    // The rows come in time order (`pos` descending); only the ties of one millisecond need
    // sorting by id, so rows are read a millisecond at a time until the page is full and its
    // last millisecond complete. Milliseconds wholly before `offset` are counted, not kept.
    let sql = format!(
        "SELECT e.id, e.ts, a.id, m.name, e.prompt_tokens, e.completion_tokens, e.cache_read_tokens,
                e.cache_write_tokens, e.cost, e.duration_ms, e.success, e.error, e.status_code,
                e.session_id, e.task_type, e.metadata, e.cost_source
         FROM executions e JOIN agents a ON a.key = e.agent JOIN models m ON m.key = e.model
         WHERE {cond} ORDER BY e.pos DESC"
    );
    let wanted = usize::try_from(offset.saturating_add(u64::from(limit))).unwrap_or(usize::MAX);
    let mut stmt = c.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(params))?;
    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
    // Rows of whole milliseconds before the page; the milliseconds overlapping it; the current one.
    let (mut skipped, mut page, mut ms) = (0usize, Vec::new(), Vec::<ExecutionRow>::new());
    let close = |ms: &mut Vec<ExecutionRow>, skipped: &mut usize, page: &mut Vec<_>| {
        if page.is_empty() && *skipped + ms.len() <= skip {
            *skipped += ms.len();
            ms.clear();
        } else {
            page.append(ms);
        }
    };
    // A millisecond holds at most `PER_MILLISECOND` rows, so one that begins at least that many
    // rows before `offset` ends before the page: its rows are only counted, never decoded.
    let per_ms = super::PER_MILLISECOND as usize;
    let (mut current, mut counted, mut light) = (None::<Millis>, 0usize, false);
    let mut seen = 0u32;
    while let Some(r) = rows.next()? {
        seen = seen.wrapping_add(1);
        if seen.is_multiple_of(8192) {
            cancel.check()?;
        }
        let ts: Millis = r.get(1)?;
        if current != Some(ts) {
            if current.is_some() {
                skipped += std::mem::take(&mut counted);
                close(&mut ms, &mut skipped, &mut page);
                if skipped + page.len() >= wanted {
                    break;
                }
            }
            current = Some(ts);
            light = page.is_empty() && skipped + per_ms <= skip;
        }
        if light {
            counted += 1;
            continue;
        }
        ms.push(ExecutionRow {
            id: r.get(0)?,
            ts,
            agent_id: r.get(2)?,
            model: r.get(3)?,
            prompt_tokens: r.get(4)?,
            completion_tokens: r.get(5)?,
            cache_read_tokens: r.get(6)?,
            cache_write_tokens: r.get(7)?,
            cost: r.get(8)?,
            duration_ms: r.get(9)?,
            success: r.get(10)?,
            error: r.get(11)?,
            status_code: r.get(12)?,
            session_id: r.get(13)?,
            task_type: r.get(14)?,
            metadata: r.get(15)?,
            cost_source: crate::store::CostSource::from_code(r.get(16)?),
        });
    }
    skipped += counted;
    close(&mut ms, &mut skipped, &mut page);
    page.sort_by(|a, b| b.ts.cmp(&a.ts).then_with(|| a.id.cmp(&b.id)));
    Ok((
        total,
        page.into_iter()
            .skip(skip - skipped)
            .take(limit as usize)
            .collect(),
    ))
}

/// The agent and model keys of a filter; `None` when it names one never stored. Resolved once
/// per read: the reader remembers them.
pub(super) fn keys(c: &Reader<'_>, f: &Filter) -> Result<Option<Keys>> {
    if let Some(k) = c.keys.borrow().get(f) {
        return Ok(*k);
    }
    let k = lookup_keys(c, f)?;
    c.keys.borrow_mut().insert(f.clone(), k);
    Ok(k)
}

fn lookup_keys(c: &Connection, f: &Filter) -> Result<Option<Keys>> {
    let mut k = Keys::default();
    if let Some(agent) = &f.agent {
        k.agent = c
            .prepare_cached("SELECT key FROM agents WHERE id = ?1")?
            .query_row([agent], |r| r.get(0))
            .optional()?;
        if k.agent.is_none() {
            return Ok(None);
        }
    }
    if let Some(model) = &f.model {
        k.model = c
            .prepare_cached("SELECT key FROM models WHERE name = ?1")?
            .query_row([model], |r| r.get(0))
            .optional()?;
        if k.model.is_none() {
            return Ok(None);
        }
    }
    Ok(Some(k))
}

/// The rollup plan of `w` (widened to whole hours where that adds no row, `rollup::widened`)
/// when the reader may use rollups (`None`: answer by plain SQL). A window without a whole hour
/// is all raw edge: its rows are streamed and summed in Rust, which beats SQL's `GROUP BY` (it
/// sorts the rows first).
pub(super) fn plan(c: &Reader<'_>, w: &Window, use_days: bool) -> Result<Option<Plan>> {
    if !c.rollups {
        return Ok(None);
    }
    Ok(Some(Plan::of(&rollup::widened(c, w)?, use_days)))
}

/// Sums over the window.
pub fn totals(c: &Reader<'_>, w: &Window, f: &Filter) -> Result<Totals> {
    let Some(plan) = plan(c, w, true)? else {
        return raw_totals(c, w, f);
    };
    let Some(k) = keys(c, f)? else {
        return Ok(Totals::default());
    };
    let mut t = Totals::default();
    for (_, _, x) in rollup::sums(c, &plan, &k, None, By::Nothing)? {
        t.add(&x);
    }
    Ok(t)
}

/// The 95th percentile of the known durations: the exact nearest-rank value when the window
/// holds no whole hour or at most `EXACT_P95_MAX` timed executions, else within 0.7 % of it
/// from the latency histograms (`rollup`).
pub fn p95_duration(c: &Reader<'_>, w: &Window, f: &Filter) -> Result<Option<f64>> {
    // Histograms are kept per agent, not per model.
    if !c.rollups {
        return raw_p95_duration(c, w, f);
    }
    let plan = plan(c, w, true)?.filter(|p| f.model.is_none() && p.uses_rollups());
    let Some(plan) = plan else {
        return exact_p95_duration(c, w, f);
    };
    let Some(k) = keys(c, f)? else {
        return Ok(None);
    };
    let hist = rollup::histogram(c, &plan, k.agent)?;
    if hist.values().sum::<i64>() <= EXACT_P95_MAX {
        return exact_p95_duration(c, w, f);
    }
    Ok(p95_of(&hist))
}

/// `raw_p95_duration`'s value with one pass over the rows: the durations are streamed and the
/// nearest-rank one selected here (SQL's `ORDER BY … OFFSET` after a `COUNT` reads the rows
/// twice and sorts them).
fn exact_p95_duration(c: &Reader<'_>, w: &Window, f: &Filter) -> Result<Option<f64>> {
    let Some((cond, params)) = where_clause(c, w, f)? else {
        return Ok(None);
    };
    let mut stmt = c.prepare_cached(&format!(
        "SELECT e.duration_ms FROM executions e WHERE {cond} AND e.duration_ms IS NOT NULL"
    ))?;
    let mut durations = stmt
        .query_map(params_from_iter(params), |r| r.get::<_, f64>(0))?
        .collect::<rusqlite::Result<Vec<f64>>>()?;
    if durations.is_empty() {
        return Ok(None);
    }
    let rank = (durations.len() * 95).div_ceil(100);
    let (_, p95, _) = durations.select_nth_unstable_by(rank - 1, f64::total_cmp);
    Ok(Some(*p95))
}

/// Per-agent sums over the window (agents with at least one execution), in no set order.
pub fn agent_totals(c: &Reader<'_>, w: &Window, f: &Filter) -> Result<Vec<AgentTotals>> {
    let Some(plan) = plan(c, w, true)? else {
        return raw_agent_totals(c, w, f);
    };
    let Some(k) = keys(c, f)? else {
        return Ok(Vec::new());
    };
    let mut name = c.prepare_cached("SELECT id, COALESCE(name, id) FROM agents WHERE key = ?1")?;
    rollup::sums(c, &plan, &k, None, By::Agent)?
        .into_iter()
        .map(|(_, key, totals)| {
            let (id, name) = name.query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(AgentTotals { id, name, totals })
        })
        .collect()
}

/// Per-model sums over the window, in no set order.
pub fn model_totals(c: &Reader<'_>, w: &Window, f: &Filter) -> Result<Vec<ModelTotals>> {
    let Some(plan) = plan(c, w, true)? else {
        return raw_model_totals(c, w, f);
    };
    let Some(k) = keys(c, f)? else {
        return Ok(Vec::new());
    };
    let mut name = c.prepare_cached("SELECT name FROM models WHERE key = ?1")?;
    rollup::sums(c, &plan, &k, None, By::Model)?
        .into_iter()
        .map(|(_, key, totals)| {
            let name = name.query_row([key], |r| r.get(0))?;
            Ok(ModelTotals { name, totals })
        })
        .collect()
}

/// Sums per time unit of `unit` milliseconds (`ts / unit`), and per agent or model when asked;
/// the key is `""` for `GroupKey::None`. Each (unit, key) appears once.
pub fn grouped(
    c: &Reader<'_>,
    w: &Window,
    f: &Filter,
    unit: Millis,
    key: GroupKey,
) -> Result<Vec<(i64, String, Totals)>> {
    // A rollup row must fall into one unit: hours serve units of whole hours, days whole days.
    // Finer units are summed from raw rows only.
    let plan = if unit % HOUR == 0 {
        plan(c, w, unit % DAY == 0)?
    } else {
        c.rollups.then(|| Plan::raw(w))
    };
    let Some(plan) = plan else {
        return raw_grouped(c, w, f, unit, key);
    };
    let Some(k) = keys(c, f)? else {
        return Ok(Vec::new());
    };
    let by = match key {
        GroupKey::None => By::Nothing,
        GroupKey::Agent => By::Agent,
        GroupKey::Model => By::Model,
    };
    let rows = rollup::sums(c, &plan, &k, Some(unit), by)?;
    let mut names: std::collections::HashMap<i64, String> = std::collections::HashMap::new();
    let mut name_of = |key: i64| -> Result<String> {
        if let Some(n) = names.get(&key) {
            return Ok(n.clone());
        }
        let n: String = match by {
            By::Nothing => String::new(),
            By::Agent => c
                .prepare_cached("SELECT id FROM agents WHERE key = ?1")?
                .query_row([key], |r| r.get(0))?,
            By::Model => c
                .prepare_cached("SELECT name FROM models WHERE key = ?1")?
                .query_row([key], |r| r.get(0))?,
        };
        names.insert(key, n.clone());
        Ok(n)
    };
    rows.into_iter()
        .map(|(u, key, t)| Ok((u, name_of(key)?, t)))
        .collect()
}

/// How many executions match, from the rollups (`None`: count raw rows).
fn rollup_count(c: &Reader<'_>, w: &Window, ef: &ExecutionFilter) -> Result<Option<i64>> {
    let Some(plan) = plan(c, w, true)? else {
        return Ok(None);
    };
    let Some(k) = keys(c, &ef.filter)? else {
        return Ok(Some(0));
    };
    let mut t = Totals::default();
    for (_, _, x) in rollup::sums(c, &plan, &k, None, By::Nothing)? {
        t.add(&x);
    }
    Ok(Some(match ef.success {
        None => t.calls,
        Some(true) => t.calls - t.errors,
        Some(false) => t.errors,
    }))
}
