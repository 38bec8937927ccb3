//! How much of a window's cost was estimated, and which models had no price: the agent × model
//! rollups' `estimated_cost`, `estimated` and `unpriced` over whole hours and days, raw rows at
//! the edges (or everywhere, with rollups off).

use std::collections::BTreeMap;

use rusqlite::params_from_iter;
use rusqlite::types::Value;

use crate::error::Result;
use crate::store::{Filter, Plan, Pricing};
use crate::time::{Window, DAY, HOUR};

use super::query::{keys, plan};
use super::rollup::filter_sql;
use super::{pos, Reader};

pub fn pricing(c: &Reader<'_>, w: &Window, f: &Filter) -> Result<Vec<Pricing>> {
    let Some(k) = keys(c, f)? else {
        return Ok(Vec::new());
    };
    let plan = plan(c, w, true)?.unwrap_or_else(|| Plan::raw(w));
    let cond = |prefix: &str, params: &mut Vec<Value>| filter_sql(prefix, &k, params);
    // model key → [estimated cost, estimated calls, unpriced calls]
    let mut out: BTreeMap<i64, [i64; 3]> = BTreeMap::new();
    let mut run = |sql: String, params: Vec<Value>| -> Result<()> {
        let mut stmt = c.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(params))?;
        while let Some(r) = rows.next()? {
            let v = out.entry(r.get(0)?).or_default();
            for (i, slot) in v.iter_mut().enumerate() {
                *slot += r.get::<_, i64>(i + 1)?;
            }
        }
        Ok(())
    };
    for w in &plan.raw {
        let mut params = vec![Value::Integer(pos(w.start)), Value::Integer(pos(w.end))];
        let extra = cond("e.", &mut params);
        run(
            format!(
                "SELECT e.model, COALESCE(SUM(CASE WHEN e.cost_source = 1 THEN e.cost END), 0),
                        COALESCE(SUM(e.cost_source = 1), 0), COALESCE(SUM(e.cost_source = 2), 0)
                 FROM executions e
                 WHERE e.pos >= ? AND e.pos < ? AND e.cost_source <> 0{extra}
                 GROUP BY e.model"
            ),
            params,
        )?;
    }
    let tables = plan
        .hours
        .iter()
        .map(|w| ("rollup_hour", "hour", HOUR, w))
        .chain(plan.days.iter().map(|w| ("rollup_day", "day", DAY, w)));
    for (table, col, len, w) in tables {
        let mut params = vec![Value::Integer(w.start / len), Value::Integer(w.end / len)];
        let extra = cond("", &mut params);
        run(
            format!(
                "SELECT model, SUM(estimated_cost), SUM(estimated), SUM(unpriced) FROM {table}
                 WHERE {col} >= ? AND {col} < ?{extra} AND (estimated <> 0 OR unpriced <> 0)
                 GROUP BY model"
            ),
            params,
        )?;
    }
    let mut name = c.prepare_cached("SELECT name FROM models WHERE key = ?1")?;
    out.into_iter()
        .filter(|(_, v)| v[1] != 0 || v[2] != 0)
        .map(|(key, v)| {
            Ok(Pricing {
                model: name.query_row([key], |r| r.get(0))?,
                estimated_cost: v[0],
                estimated_calls: v[1],
                unpriced_calls: v[2],
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(|mut v| {
            v.sort_by(|a, b| a.model.cmp(&b.model));
            v
        })
}
