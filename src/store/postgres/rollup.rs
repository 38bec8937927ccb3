//! How the PostgreSQL snapshot sums a window: its plan (raw edges, whole hours, whole days,
//! partial edge hours widened where they hold no row), the sums from the smallest rollup level
//! that has the columns a question needs, and the p95 (exact nearest rank, or the histograms'
//! bucket above `EXACT_P95_MAX` timed executions). The same rules as `sqlite/rollup.rs`.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::store::plan::decode_counts;
use crate::store::{latency_bucket, Filter, Plan, Totals};
use crate::time::{Millis, Window, DAY, HOUR};

use super::read::{Keys, Params, PgSnapshot};

/// What sums are grouped by besides the time unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum By {
    Nothing,
    Agent,
    Model,
}

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
pub(super) fn key_cond<'p>(k: &'p Keys, prefix: &str, params: &mut Params<'p>) -> String {
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

impl PgSnapshot<'_> {
    pub(super) fn holds_none(&self, start: Millis, end: Millis) -> Result<bool> {
        Ok(self
            .one(
                "SELECT NOT EXISTS (SELECT 1 FROM executions WHERE ts >= $1 AND ts < $2)",
                &[&start, &end],
            )?
            .get(0))
    }

    /// `w` with its partial edge hours widened where the part added holds no execution.
    pub(super) fn widened(&self, w: &Window) -> Result<Window> {
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
    pub(super) fn plan(&self, w: &Window, use_days: bool) -> Result<Plan> {
        if self.rollups {
            Ok(Plan::of(&self.widened(w)?, use_days))
        } else {
            Ok(Plan::raw(w))
        }
    }

    /// Sums over `plan` per time unit (`None`: one) and per `by` key: (unit, key) → totals.
    pub(super) fn sums(
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

    pub(super) fn total(&self, w: &Window, f: &Filter) -> Result<Totals> {
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

    pub(super) fn exact_p95(&self, w: &Window, k: &Keys) -> Result<Option<f64>> {
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
    pub(super) fn histogram(&self, plan: &Plan, agent: Option<i32>) -> Result<BTreeMap<i64, i64>> {
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
}
