//! `Snapshot` on PostgreSQL: every question of one call runs in one `REPEATABLE READ READ ONLY`
//! transaction, so all of them see the same data. The rules are the SQLite engine's (the shared
//! suite holds both to the same JSON): a window splits into raw edges, whole hours and whole
//! days (`Plan`, after widening its partial edge hours that hold no row); sums are exact
//! integers (`bigint`, squares `numeric`); the p95 is the exact nearest rank up to
//! `EXACT_P95_MAX` timed executions or without a whole hour, else the histograms' value.
//! With rollups off every question is plain SQL over the raw rows (the exactness reference).

use std::cell::RefCell;
use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::Transaction;

use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::money::Nanos;
use crate::store::{
    p95_of, AgentRun, AgentTotals, Agents, Budget, Changes, CostSource, ExecutionFilter,
    ExecutionRow, Filter, GroupKey, HourSums, ModelTotals, Plan, Pricing, Snapshot, Totals,
    EXACT_P95_MAX, GLOBAL,
};
use crate::time::{Millis, Window, DAY, HOUR};

use super::rollup::{key_cond, By};

/// A filter resolved to keys (`None` = no filter on that column).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Keys {
    pub(super) agent: Option<i32>,
    pub(super) model: Option<i32>,
}

pub struct PgSnapshot<'a> {
    tx: RefCell<Transaction<'a>>,
    pub(super) rollups: bool,
    /// Filters resolved in this snapshot (each once per call).
    keys: RefCell<HashMap<Filter, Option<Keys>>>,
}

pub(super) type Params<'p> = Vec<&'p (dyn ToSql + Sync)>;

fn int(s: &str) -> Result<i128> {
    s.parse()
        .map_err(|_| Error::Internal(format!("a stored sum is not an integer: {s:?}")))
}

impl<'a> PgSnapshot<'a> {
    pub fn new(tx: Transaction<'a>, rollups: bool) -> Self {
        PgSnapshot {
            tx: RefCell::new(tx),
            rollups,
            keys: RefCell::new(HashMap::new()),
        }
    }

    pub fn into_inner(self) -> Transaction<'a> {
        self.tx.into_inner()
    }

    pub(super) fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>> {
        Ok(self.tx.borrow_mut().query(sql, params)?)
    }

    pub(super) fn one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<postgres::Row> {
        Ok(self.tx.borrow_mut().query_one(sql, params)?)
    }

    /// The keys a filter names; `None` when it names an agent or model never stored.
    pub(super) fn keys(&self, f: &Filter) -> Result<Option<Keys>> {
        if let Some(k) = self.keys.borrow().get(f) {
            return Ok(*k);
        }
        // PostgreSQL text holds no NUL character, so no stored name has one (and a parameter
        // with one is an error, not a mismatch).
        let nul = |v: &Option<String>| v.as_deref().is_some_and(|s| s.contains('\0'));
        if nul(&f.agent) || nul(&f.model) {
            self.keys.borrow_mut().insert(f.clone(), None);
            return Ok(None);
        }
        let mut k = Keys::default();
        let mut found = true;
        if let Some(a) = &f.agent {
            k.agent = self
                .query("SELECT key FROM agents WHERE id = $1", &[a])?
                .first()
                .map(|r| r.get(0));
            found &= k.agent.is_some();
        }
        if let Some(m) = &f.model {
            k.model = self
                .query("SELECT key FROM models WHERE name = $1", &[m])?
                .first()
                .map(|r| r.get(0));
            found &= k.model.is_some();
        }
        let k = found.then_some(k);
        self.keys.borrow_mut().insert(f.clone(), k);
        Ok(k)
    }

    /// Key → name of `keys` in `table` (`col`: the name column).
    pub(super) fn names(
        &self,
        table: &str,
        col: &str,
        keys: Vec<i32>,
    ) -> Result<HashMap<i32, String>> {
        Ok(self
            .query(
                &format!("SELECT key, {col} FROM {table} WHERE key = ANY($1)"),
                &[&keys],
            )?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    /// The agent condition of a series question, or `None` when it names no stored agent.
    fn agent_cond(&self, agents: &Agents, col: &str) -> Result<Option<String>> {
        Ok(Some(match agents {
            Agents::All => "true".to_owned(),
            Agents::Part(part, parts) => format!("{col} % {parts} = {part}"),
            Agents::One(id) => {
                let f = Filter {
                    agent: Some(id.clone()),
                    model: None,
                };
                match self.keys(&f)? {
                    Some(Keys { agent: Some(k), .. }) => format!("{col} = {k}"),
                    _ => return Ok(None),
                }
            }
        }))
    }
}

impl Snapshot for PgSnapshot<'_> {
    fn totals(&self, w: &Window, f: &Filter) -> Result<Totals> {
        self.total(w, f)
    }

    fn p95_duration(&self, w: &Window, f: &Filter) -> Result<Option<f64>> {
        let Some(k) = self.keys(f)? else {
            return Ok(None);
        };
        if !self.rollups || f.model.is_some() {
            return self.exact_p95(w, &k);
        }
        let plan = self.plan(w, true)?;
        if !plan.uses_rollups() {
            return self.exact_p95(w, &k);
        }
        let hist = self.histogram(&plan, k.agent)?;
        if hist.values().sum::<i64>() <= EXACT_P95_MAX {
            return self.exact_p95(w, &k);
        }
        Ok(p95_of(&hist))
    }

    fn agent_totals(&self, w: &Window, f: &Filter) -> Result<Vec<AgentTotals>> {
        let Some(k) = self.keys(f)? else {
            return Ok(Vec::new());
        };
        let sums = self.sums(&self.plan(w, true)?, &k, None, By::Agent)?;
        let keys: Vec<i32> = sums.keys().map(|(_, a)| *a).collect();
        let names: HashMap<i32, (String, String)> = self
            .query(
                "SELECT key, id, COALESCE(name, id) FROM agents WHERE key = ANY($1)",
                &[&keys],
            )?
            .into_iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect();
        sums.into_iter()
            .map(|((_, key), totals)| {
                let (id, name) = names
                    .get(&key)
                    .cloned()
                    .ok_or_else(|| Error::Internal(format!("agent key {key} has no agent")))?;
                Ok(AgentTotals { id, name, totals })
            })
            .collect()
    }

    fn model_totals(&self, w: &Window, f: &Filter) -> Result<Vec<ModelTotals>> {
        let Some(k) = self.keys(f)? else {
            return Ok(Vec::new());
        };
        let sums = self.sums(&self.plan(w, true)?, &k, None, By::Model)?;
        let names = self.names("models", "name", sums.keys().map(|(_, m)| *m).collect())?;
        Ok(sums
            .into_iter()
            .map(|((_, key), totals)| ModelTotals {
                name: names.get(&key).cloned().unwrap_or_default(),
                totals,
            })
            .collect())
    }

    fn grouped(
        &self,
        w: &Window,
        f: &Filter,
        unit: Millis,
        key: GroupKey,
    ) -> Result<Vec<(i64, String, Totals)>> {
        let Some(k) = self.keys(f)? else {
            return Ok(Vec::new());
        };
        // A rollup row must fall into one unit: hours serve units of whole hours, days whole
        // days; finer units are summed from raw rows only.
        let plan = if unit % HOUR == 0 {
            self.plan(w, unit % DAY == 0)?
        } else {
            Plan::raw(w)
        };
        let by = match key {
            GroupKey::None => By::Nothing,
            GroupKey::Agent => By::Agent,
            GroupKey::Model => By::Model,
        };
        let sums = self.sums(&plan, &k, Some(unit), by)?;
        let keys: Vec<i32> = sums.keys().map(|(_, x)| *x).collect();
        let names = match by {
            By::Nothing => HashMap::new(),
            By::Agent => self.names("agents", "id", keys)?,
            By::Model => self.names("models", "name", keys)?,
        };
        Ok(sums
            .into_iter()
            .map(|((u, key), t)| (u, names.get(&key).cloned().unwrap_or_default(), t))
            .collect())
    }

    fn executions(
        &self,
        w: &Window,
        ef: &ExecutionFilter,
        limit: u32,
        offset: u64,
        cancel: &Cancel,
    ) -> Result<(i64, Vec<ExecutionRow>)> {
        let Some(k) = self.keys(&ef.filter)? else {
            return Ok((0, Vec::new()));
        };
        cancel.check()?;
        let t = self.total(w, &ef.filter)?;
        let total = match ef.success {
            None => t.calls,
            Some(true) => t.calls - t.errors,
            Some(false) => t.errors,
        };
        if offset >= total as u64 {
            return Ok((total, Vec::new()));
        }
        let (lim, off) = (i64::from(limit), offset as i64);
        let mut params: Params = vec![&w.start, &w.end, &lim, &off];
        let mut cond = key_cond(&k, "e.", &mut params);
        match ef.success {
            Some(true) => cond.push_str(" AND e.success"),
            Some(false) => cond.push_str(" AND NOT e.success"),
            None => {}
        }
        let rows = self.query(
            &format!(
                "SELECT e.id, e.ts, a.id, m.name, e.prompt_tokens, e.completion_tokens,
                        e.cache_read_tokens, e.cache_write_tokens, e.cost, e.duration_ms,
                        e.success, e.error, e.status_code, e.session_id, e.task_type, e.metadata,
                        e.cost_source
                 FROM executions e JOIN agents a ON a.key = e.agent
                   JOIN models m ON m.key = e.model
                 WHERE e.ts >= $1 AND e.ts < $2{cond}
                 ORDER BY e.ts DESC, e.id COLLATE \"C\" LIMIT $3 OFFSET $4"
            ),
            &params,
        )?;
        let page = rows
            .into_iter()
            .map(|r| ExecutionRow {
                id: r.get(0),
                ts: r.get(1),
                agent_id: r.get(2),
                model: r.get(3),
                prompt_tokens: r.get(4),
                completion_tokens: r.get(5),
                cache_read_tokens: r.get(6),
                cache_write_tokens: r.get(7),
                cost: r.get(8),
                duration_ms: r.get(9),
                success: r.get(10),
                error: r.get(11),
                status_code: r.get(12),
                session_id: r.get(13),
                task_type: r.get(14),
                metadata: r.get(15),
                cost_source: CostSource::from_code(i64::from(r.get::<_, i16>(16))),
            })
            .collect();
        Ok((total, page))
    }

    fn series(&self, range: &Window, agents: &Agents) -> Result<Vec<AgentRun>> {
        let Some(cond) = self.agent_cond(agents, "agent")? else {
            return Ok(Vec::new());
        };
        let plan = if self.rollups {
            Plan::of(&self.widened(range)?, false)
        } else {
            Plan::raw(range)
        };
        let mut by: HashMap<(i32, i64), HourSums> = HashMap::new();
        for w in &plan.raw {
            for r in self.query(
                &format!(
                    "SELECT agent, ts, success,
                       prompt_tokens + completion_tokens + cache_read_tokens + cache_write_tokens,
                       cost, duration_ms
                     FROM executions WHERE ts >= $1 AND ts < $2 AND {cond}"
                ),
                &[&w.start, &w.end],
            )? {
                let ts: i64 = r.get(1);
                by.entry((r.get(0), ts.div_euclid(HOUR))).or_default().add(
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                );
            }
        }
        for w in &plan.hours {
            let (lo, hi) = (w.start / HOUR, w.end / HOUR);
            for r in self.query(
                &format!(
                    "SELECT agent, hour, calls, errors, tokens, cost, cost_sq::text,
                       tokens_sq::text, max_cost, max_tokens, ok_timed, ok_us::text,
                       ok_ms_sq::text, ok_max_us
                     FROM agent_hour WHERE hour >= $1 AND hour < $2 AND {cond}"
                ),
                &[&lo, &hi],
            )? {
                let s = HourSums {
                    totals: Totals {
                        calls: r.get(2),
                        errors: r.get(3),
                        tokens: r.get(4),
                        cost: r.get(5),
                        ..Totals::default()
                    },
                    cost_sq: int(r.get(6))?,
                    tokens_sq: int(r.get(7))?,
                    max_cost: r.get(8),
                    max_tokens: r.get(9),
                    ok_timed: r.get(10),
                    ok_us: int(r.get(11))?,
                    ok_ms_sq: int(r.get(12))?,
                    ok_max_us: r.get(13),
                };
                by.entry((r.get(0), r.get(1))).or_default().merge(&s);
            }
        }
        let keys: Vec<i32> = by.keys().map(|(a, _)| *a).collect();
        let ids = self.names("agents", "id", keys)?;
        let mut runs: HashMap<i32, Vec<(Millis, HourSums)>> = HashMap::new();
        for ((agent, hour), s) in by {
            runs.entry(agent).or_default().push((hour * HOUR, s));
        }
        let mut out: Vec<AgentRun> = runs
            .into_iter()
            .filter_map(|(agent, mut hours)| {
                hours.sort_unstable_by_key(|h| h.0);
                Some(AgentRun {
                    agent_id: ids.get(&agent)?.clone(),
                    hours: hours.into_iter().map(|(h, s)| (h, s.stats())).collect(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        Ok(out)
    }

    fn latest_gen(&self) -> Result<i64> {
        Ok(self.one("SELECT generation FROM meta", &[])?.get(0))
    }

    fn changes_since(&self, seen: i64, limit: usize) -> Result<Changes> {
        let lim = limit as i64 + 1;
        let rows = self.query(
            "SELECT a.id, h.hour, h.gen FROM agent_hour h JOIN agents a ON a.key = h.agent
             WHERE h.gen > $1 LIMIT $2",
            &[&seen, &lim],
        )?;
        if rows.len() > limit {
            return Ok(Changes::TooMany {
                gen: self.latest_gen()?,
            });
        }
        // Every write takes a generation, pairs or not: seen up to the latest.
        let gen = self.latest_gen()?.max(seen);
        let mut pairs: Vec<(String, Millis)> = rows
            .into_iter()
            .map(|r| (r.get(0), r.get::<_, i64>(1) * HOUR))
            .collect();
        pairs.sort_unstable();
        Ok(Changes::Touched { gen, pairs })
    }

    fn agent_ids(&self) -> Result<Vec<String>> {
        let mut ids: Vec<String> = self
            .query("SELECT id FROM agents", &[])?
            .into_iter()
            .map(|r| r.get(0))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    fn budgets(&self, scope: Option<&str>) -> Result<Vec<Budget>> {
        let rows = match scope {
            // No stored scope holds a NUL character (see `keys`).
            Some(s) if s.contains('\0') => return Ok(Vec::new()),
            Some(s) => self.query(
                "SELECT scope, limit_nanos, period, thresholds FROM budgets WHERE scope = $1",
                &[&s],
            )?,
            None => self.query(
                "SELECT scope, limit_nanos, period, thresholds FROM budgets",
                &[],
            )?,
        };
        let mut out = rows
            .into_iter()
            .map(|r| Budget::from_stored(r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect::<Result<Vec<Budget>>>()?;
        // The global budget first, then by scope (byte order, as SQLite sorts).
        out.sort_by(|a, b| {
            (a.scope != GLOBAL, a.scope.as_bytes()).cmp(&(b.scope != GLOBAL, b.scope.as_bytes()))
        });
        Ok(out)
    }

    fn cost_between(&self, scope: &str, start: Millis, end: Millis) -> Result<Nanos> {
        let f = Filter {
            agent: (scope != GLOBAL).then(|| scope.to_owned()),
            model: None,
        };
        Ok(self.total(&Window { start, end }, &f)?.cost)
    }

    fn execution_count(&self) -> Result<i64> {
        Ok(self
            .one("SELECT COUNT(*)::bigint FROM execution_ids", &[])?
            .get(0))
    }

    fn first_agent_ids(&self, n: u32) -> Result<Vec<String>> {
        let n = i64::from(n);
        Ok(self
            .query("SELECT id FROM agents ORDER BY key LIMIT $1", &[&n])?
            .into_iter()
            .map(|r| r.get(0))
            .collect())
    }

    /// The agent × model rollups' pricing counts over whole hours and days, raw rows at the
    /// edges (or everywhere, with rollups off).
    fn pricing(&self, w: &Window, f: &Filter) -> Result<Vec<Pricing>> {
        let Some(k) = self.keys(f)? else {
            return Ok(Vec::new());
        };
        let plan = self.plan(w, true)?;
        let mut out: std::collections::BTreeMap<i32, [i64; 3]> = Default::default();
        let parts = plan
            .raw
            .iter()
            .map(|w| ("executions", "ts", 1, w))
            .chain(plan.hours.iter().map(|w| ("rollup_hour", "hour", HOUR, w)))
            .chain(plan.days.iter().map(|w| ("rollup_day", "day", DAY, w)));
        for (table, col, len, w) in parts {
            let (lo, hi) = (w.start / len, w.end / len);
            let mut params: Params = vec![&lo, &hi];
            let cond = key_cond(&k, "", &mut params);
            let sql = if table == "executions" {
                format!(
                    "SELECT model, COALESCE(SUM(cost) FILTER (WHERE cost_source = 1), 0)::bigint,
                            COUNT(*) FILTER (WHERE cost_source = 1),
                            COUNT(*) FILTER (WHERE cost_source = 2)
                     FROM executions WHERE ts >= $1 AND ts < $2 AND cost_source <> 0{cond}
                     GROUP BY model"
                )
            } else {
                format!(
                    "SELECT model, SUM(estimated_cost)::bigint, SUM(estimated)::bigint,
                            SUM(unpriced)::bigint
                     FROM {table} WHERE {col} >= $1 AND {col} < $2{cond}
                       AND (estimated <> 0 OR unpriced <> 0)
                     GROUP BY model"
                )
            };
            for r in self.query(&sql, &params)? {
                let v = out.entry(r.get(0)).or_default();
                for (i, slot) in v.iter_mut().enumerate() {
                    *slot += r.get::<_, i64>(i + 1);
                }
            }
        }
        out.retain(|_, v| v[1] != 0 || v[2] != 0);
        let names = self.names("models", "name", out.keys().copied().collect())?;
        let mut v: Vec<Pricing> = out
            .into_iter()
            .map(|(key, v)| Pricing {
                model: names.get(&key).cloned().unwrap_or_default(),
                estimated_cost: v[0],
                estimated_calls: v[1],
                unpriced_calls: v[2],
            })
            .collect();
        v.sort_by(|a, b| a.model.cmp(&b.model));
        Ok(v)
    }
}
