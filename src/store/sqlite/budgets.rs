//! Budgets at rest: the `budgets` table (one row per scope) and the cost sums a budget needs.
//! Limits are integer nano-dollars like every other amount; spent sums are integer sums.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Error, Result};
use crate::money::Nanos;
use crate::time::{Millis, Window};

use super::query;
use super::{pos, Reader};
use crate::store::{Budget, Filter, GLOBAL};

const COLUMNS: &str = "scope, limit_nanos, period, thresholds";

fn budget_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, Nanos, String, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn decode((scope, limit, period, thresholds): (String, Nanos, String, String)) -> Result<Budget> {
    Budget::from_stored(scope, limit, &period, &thresholds)
}

/// Every budget: the global one first, then agent budgets by scope.
pub fn list(c: &Connection) -> Result<Vec<Budget>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM budgets ORDER BY scope <> '{GLOBAL}', scope"
    ))?;
    let rows = stmt.query_map([], budget_of)?;
    rows.map(|r| decode(r?)).collect()
}

/// The budget of `scope`, if one is set.
pub fn get(c: &Connection, scope: &str) -> Result<Option<Budget>> {
    let row = c
        .prepare_cached(&format!("SELECT {COLUMNS} FROM budgets WHERE scope = ?1"))?
        .query_row([scope], budget_of)
        .optional()?;
    row.map(decode).transpose()
}

/// Create or replace the budget of `b.scope`. Returns whether one was replaced.
pub fn put(c: &Connection, b: &Budget) -> Result<bool> {
    let existed = get(c, &b.scope)?.is_some();
    let thresholds = serde_json::to_string(&b.thresholds)
        .map_err(|e| Error::Internal(format!("cannot encode thresholds: {e}")))?;
    c.prepare_cached(
        "INSERT INTO budgets (scope, limit_nanos, period, thresholds) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(scope) DO UPDATE SET limit_nanos = excluded.limit_nanos,
             period = excluded.period, thresholds = excluded.thresholds",
    )?
    .execute(params![b.scope, b.limit, b.period.as_str(), thresholds])?;
    Ok(existed)
}

/// Delete the budget of `scope`. Returns whether there was one.
pub fn delete(c: &Connection, scope: &str) -> Result<bool> {
    Ok(c.prepare_cached("DELETE FROM budgets WHERE scope = ?1")?
        .execute([scope])?
        > 0)
}

/// Cost of the executions in `[start, end)` within `scope` (all agents for `GLOBAL`), from the
/// rollups where the reader may.
pub fn cost_between(c: &Reader<'_>, scope: &str, start: Millis, end: Millis) -> Result<Nanos> {
    if c.rollups {
        let f = Filter {
            agent: (scope != GLOBAL).then(|| scope.to_owned()),
            model: None,
        };
        return Ok(query::totals(c, &Window { start, end }, &f)?.cost);
    }
    raw_cost_between(c, scope, start, end)
}

/// `cost_between` by plain SQL over raw rows.
pub fn raw_cost_between(c: &Connection, scope: &str, start: Millis, end: Millis) -> Result<Nanos> {
    let cost = if scope == GLOBAL {
        c.prepare_cached(
            "SELECT COALESCE(SUM(cost), 0) FROM executions WHERE pos >= ?1 AND pos < ?2",
        )?
        .query_row(params![pos(start), pos(end)], |r| r.get(0))?
    } else {
        c.prepare_cached(
            "SELECT COALESCE(SUM(cost), 0) FROM executions
             WHERE agent = (SELECT key FROM agents WHERE id = ?1) AND pos >= ?2 AND pos < ?3",
        )?
        .query_row(params![scope, pos(start), pos(end)], |r| r.get(0))?
    };
    Ok(cost)
}
