//! `Snapshot` on PostgreSQL: every question of one call runs in one `REPEATABLE READ READ ONLY`
//! transaction, so all of them see the same data. The rules are the SQLite engine's (the shared
//! suite holds both to the same JSON): a window splits into raw edges, whole hours and whole
//! days (`Plan`, after widening its partial edge hours that hold no row); sums are exact
//! integers (`bigint`, squares `numeric`); the p95 is the exact nearest rank up to
//! `EXACT_P95_MAX` timed executions or without a whole hour, else the histograms' value.
//! With rollups off every question is plain SQL over the raw rows (the exactness reference).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use postgres::types::ToSql;
use postgres::Transaction;

use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::money::Nanos;
use crate::store::plan::decode_counts;
use crate::store::{
    latency_bucket, p95_of, AgentRun, AgentTotals, Agents, Budget, Changes, ExecutionFilter,
    ExecutionRow, Filter, GroupKey, HourSums, ModelTotals, Plan, Snapshot, Totals, EXACT_P95_MAX,
    GLOBAL,
};
use crate::time::{Millis, Window, DAY, HOUR};

/// A filter resolved to keys (`None` = no filter on that column).
#[derive(Debug, Clone, Copy, Default)]
struct Keys {
    agent: Option<i32>,
    model: Option<i32>,
}

/// What sums are grouped by besides the time unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum By {
    Nothing,
    Agent,
    Model,
}

pub struct PgSnapshot<'a> {
    tx: RefCell<Transaction<'a>>,
    rollups: bool,
    /// Filters resolved in this snapshot (each once per call).
    keys: RefCell<HashMap<Filter, Option<Keys>>>,
}

type Params<'p> = Vec<&'p (dyn ToSql + Sync)>;

const TOTALS: &str = "COUNT(*)::bigint, COALESCE(SUM((NOT success)::int), 0)::bigint,
    COALESCE(SUM(prompt_tokens + completion_tokens + cache_read_tokens + cache_write_tokens), 0)::bigint,
    COALESCE(SUM(cost), 0)::bigint, COUNT(duration_ms)::bigint,
    COALESCE(SUM(duration_ms), 0)::float8";

const ROLLED: &str = "COALESCE(SUM(calls), 0)::bigint, COALESCE(SUM(errors), 0)::bigint,
    COALESCE(SUM(tokens), 0)::bigint, COALESCE(SUM(cost), 0)::bigint,
    COALESCE(SUM(timed), 0)::bigint, COALESCE(SUM(duration_sum), 0)::float8";

fn totals_at(r: &postgres::Row, i: usize) -> Totals {
    Totals {
        calls: r.get(i),
        errors: r.get(i + 1),
        tokens: r.get(i + 2),
        cost: r.get(i + 3),
        timed: r.get(i + 4),
        duration_sum: r.get(i + 5),
    }
}

/// ` AND agent = $i AND model = $j` for the keys a filter resolved to (columns prefixed with
/// `prefix`), their values appended to `params`.
fn key_cond<'p>(k: &'p Keys, prefix: &str, params: &mut Params<'p>) -> String {
    let mut cond = String::new();
    if let Some(a) = &k.agent {
        params.push(a);
        cond.push_str(&format!(" AND {prefix}agent = ${}", params.len()));
    }
    if let Some(m) = &k.model {
        params.push(m);
        cond.push_str(&format!(" AND {prefix}model = ${}", params.len()));
    }
    cond
}

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

    fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<postgres::Row>> {
        Ok(self.tx.borrow_mut().query(sql, params)?)
    }

    fn one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<postgres::Row> {
        Ok(self.tx.borrow_mut().query_one(sql, params)?)
    }

    /// The keys a filter names; `None` when it names an agent or model never stored.
    fn keys(&self, f: &Filter) -> Result<Option<Keys>> {
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

    fn holds_none(&self, start: Millis, end: Millis) -> Result<bool> {
        Ok(self
            .one(
                "SELECT NOT EXISTS (SELECT 1 FROM executions WHERE ts >= $1 AND ts < $2)",
                &[&start, &end],
            )?
            .get(0))
    }

    /// `w` with its partial edge hours widened where the part added holds no execution.
    fn widened(&self, w: &Window) -> Result<Window> {
        let mut out = Window {
            start: w.start.max(0),
            end: w.end,
        };
        if out.is_empty() {
            return Ok(out);
        }
        let s = out.start.div_euclid(HOUR) * HOUR;
        let e = -((-out.end).div_euclid(HOUR) * HOUR);
        if s < out.start && self.holds_none(s, out.start)? {
            out.start = s;
        }
        if out.end < e && self.holds_none(out.end, e)? {
            out.end = e;
        }
        Ok(out)
    }

    /// The rollup plan of `w`, or all raw rows when rollups are off.
    fn plan(&self, w: &Window, use_days: bool) -> Result<Plan> {
        if self.rollups {
            Ok(Plan::of(&self.widened(w)?, use_days))
        } else {
            Ok(Plan::raw(w))
        }
    }

    /// Sums over `plan` per time unit (`None`: one) and per `by` key: (unit, key) → totals.
    fn sums(
        &self,
        plan: &Plan,
        k: &Keys,
        unit: Option<Millis>,
        by: By,
    ) -> Result<BTreeMap<(i64, i32), Totals>> {
        let mut out: BTreeMap<(i64, i32), Totals> = BTreeMap::new();
        let key = match by {
            By::Nothing => "0",
            By::Agent => "agent",
            By::Model => "model",
        };
        let unit_of = |col: &str, len: Millis| match unit {
            None => "0::bigint".to_owned(),
            Some(u) => format!("({col} * {len}) / {u}"),
        };
        // The smallest level of the rollups that has the columns the question needs.
        let level = match (
            k.agent.is_some() || by == By::Agent,
            k.model.is_some() || by == By::Model,
        ) {
            (true, true) => "rollup",
            (true, false) => "agent_rollup",
            (false, true) => "model_rollup",
            (false, false) => "total",
        };
        let (hours, days) = (format!("{level}_hour"), format!("{level}_day"));
        // (table, its time column, the column's unit in ms, what it sums, the window).
        let parts = plan
            .raw
            .iter()
            .map(|w| ("executions", "ts", 1, TOTALS, w))
            .chain(
                plan.hours
                    .iter()
                    .map(|w| (hours.as_str(), "hour", HOUR, ROLLED, w)),
            )
            .chain(
                plan.days
                    .iter()
                    .map(|w| (days.as_str(), "day", DAY, ROLLED, w)),
            );
        for (table, col, len, sums, w) in parts {
            let (lo, hi) = (w.start / len, w.end / len);
            let mut params: Params = vec![&lo, &hi];
            let cond = key_cond(k, "", &mut params);
            let sql = format!(
                "SELECT {}, {key}::int, {sums} FROM {table}
                 WHERE {col} >= $1 AND {col} < $2{cond} GROUP BY 1, 2",
                unit_of(col, len)
            );
            for r in self.query(&sql, &params)? {
                let key: i32 = r.get(1);
                out.entry((r.get(0), key))
                    .or_default()
                    .add(&totals_at(&r, 2));
            }
        }
        Ok(out)
    }

    fn total(&self, w: &Window, f: &Filter) -> Result<Totals> {
        let Some(k) = self.keys(f)? else {
            return Ok(Totals::default());
        };
        let plan = self.plan(w, true)?;
        let mut t = Totals::default();
        for x in self.sums(&plan, &k, None, By::Nothing)?.values() {
            t.add(x);
        }
        Ok(t)
    }

    fn names(&self, table: &str, col: &str, keys: Vec<i32>) -> Result<HashMap<i32, String>> {
        Ok(self
            .query(
                &format!("SELECT key, {col} FROM {table} WHERE key = ANY($1)"),
                &[&keys],
            )?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    fn exact_p95(&self, w: &Window, k: &Keys) -> Result<Option<f64>> {
        let mut params: Params = vec![&w.start, &w.end];
        let cond = key_cond(k, "", &mut params);
        Ok(self
            .one(
                &format!(
                    "SELECT percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms)
                     FROM executions WHERE ts >= $1 AND ts < $2{cond}
                       AND duration_ms IS NOT NULL"
                ),
                &params,
            )?
            .get(0))
    }

    /// The latency histogram of `plan` for one agent or all (agent 0).
    fn histogram(&self, plan: &Plan, agent: Option<i32>) -> Result<BTreeMap<i64, i64>> {
        let mut hist: BTreeMap<i64, i64> = BTreeMap::new();
        let a = agent.unwrap_or(0);
        for w in &plan.raw {
            let rows = match agent {
                Some(key) => self.query(
                    "SELECT duration_ms FROM executions
                     WHERE ts >= $1 AND ts < $2 AND agent = $3 AND duration_ms IS NOT NULL",
                    &[&w.start, &w.end, &key],
                )?,
                None => self.query(
                    "SELECT duration_ms FROM executions
                     WHERE ts >= $1 AND ts < $2 AND duration_ms IS NOT NULL",
                    &[&w.start, &w.end],
                )?,
            };
            for r in rows {
                *hist.entry(latency_bucket(r.get(0))).or_default() += 1;
            }
        }
        // Whole days as whole 7-day blocks (`day / 7`) and the days beside them.
        const WEEK: Millis = 7 * DAY;
        let mut parts: Vec<(&str, &str, Millis, Window)> = plan
            .hours
            .iter()
            .map(|w| ("hist_hour", "hour", HOUR, *w))
            .collect();
        if let Some(d) = plan.days {
            let (ws, we) = (
                -((-d.start).div_euclid(WEEK)) * WEEK,
                d.end.div_euclid(WEEK) * WEEK,
            );
            if ws < we {
                for (start, end) in [(d.start, ws), (we, d.end)] {
                    if start < end {
                        parts.push(("hist_day", "day", DAY, Window { start, end }));
                    }
                }
                let weeks = Window { start: ws, end: we };
                parts.push(("hist_week", "week", WEEK, weeks));
            } else {
                parts.push(("hist_day", "day", DAY, d));
            }
        }
        for (table, col, len, w) in parts {
            let (lo, hi) = (w.start / len, w.end / len);
            for r in self.query(
                &format!(
                    "SELECT counts FROM {table} WHERE agent = $1 AND {col} >= $2 AND {col} < $3"
                ),
                &[&a, &lo, &hi],
            )? {
                decode_counts(r.get(0), |b, n| *hist.entry(b).or_default() += n)?;
            }
        }
        Ok(hist)
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
                        e.success, e.error, e.status_code, e.session_id, e.task_type, e.metadata
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
}
