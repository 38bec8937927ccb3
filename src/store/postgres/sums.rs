//! What one PostgreSQL write adds to (or, for a replaced or repriced execution, takes out of)
//! the rollups, accumulated in memory and upserted once per table: hour and day at four levels
//! (agent × model, agent, model, total), the pricing counts, the detector's `agent_hour`, the
//! latency histograms; and the tidying after executions were taken out.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::Result;
use crate::store::plan::{decode_counts, encode_counts};
use crate::store::{latency_bucket, CostSource, Execution, HourSums, Totals};
use crate::time::{Millis, DAY, HOUR};

use postgres::types::ToSql;

/// A stored execution as the rollups counted it (what replacing it takes back out).
pub(super) struct Taken {
    pub ts: Millis,
    pub agent: i32,
    pub model: i32,
    pub tokens: i64,
    pub cost: i64,
    pub duration_ms: Option<f64>,
    pub success: bool,
    pub cost_source: CostSource,
}

/// Add `rows` ((key values in the order of `cols`), totals) to the rollup `table`, whose
/// primary key is `cols`.
fn upsert_totals(
    tx: &mut postgres::Transaction<'_>,
    table: &str,
    cols: &[&str],
    rows: impl Iterator<Item = (Vec<i64>, Totals)>,
) -> Result<()> {
    let n = cols.len();
    let mut keys: Vec<Vec<i64>> = vec![Vec::new(); n];
    let mut ints: Vec<Vec<i64>> = vec![Vec::new(); 5];
    let mut durations: Vec<f64> = Vec::new();
    for (k, x) in rows {
        for (col, v) in keys.iter_mut().zip(k) {
            col.push(v);
        }
        for (col, v) in ints
            .iter_mut()
            .zip([x.calls, x.errors, x.tokens, x.cost, x.timed])
        {
            col.push(v);
        }
        durations.push(x.duration_sum);
    }
    if durations.is_empty() {
        return Ok(());
    }
    let arrays: Vec<String> = (1..=n + 5)
        .map(|i| format!("${i}::bigint[]"))
        .chain([format!("${}::float8[]", n + 6)])
        .collect();
    let key = cols.join(", ");
    let sql = format!(
        "INSERT INTO {table} ({key}, calls, errors, tokens, cost, timed, duration_sum)
         SELECT * FROM unnest({})
         ON CONFLICT ({key}) DO UPDATE SET
           calls = {table}.calls + EXCLUDED.calls,
           errors = {table}.errors + EXCLUDED.errors,
           tokens = {table}.tokens + EXCLUDED.tokens,
           cost = {table}.cost + EXCLUDED.cost,
           timed = {table}.timed + EXCLUDED.timed,
           duration_sum = {table}.duration_sum + EXCLUDED.duration_sum",
        arrays.join(", ")
    );
    let params: Vec<&(dyn ToSql + Sync)> = keys
        .iter()
        .chain(&ints)
        .map(|v| v as &(dyn ToSql + Sync))
        .chain([&durations as &(dyn ToSql + Sync)])
        .collect();
    tx.execute(&sql, &params)?;
    Ok(())
}

/// Add a batch's histograms ((agent, time) → bucket → count) to the stored blobs of `table`:
/// the stored ones of those keys are read, merged here and written back (writers are ordered
/// by the generation row, so nothing changes them in between). One row per agent and hour
/// instead of one per bucket: a tenth of the rows written.
fn merge_histograms(
    tx: &mut postgres::Transaction<'_>,
    table: &str,
    col: &str,
    rows: &BTreeMap<(i32, i64), BTreeMap<i64, i64>>,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let (agents, times): (Vec<i32>, Vec<i64>) = rows.keys().copied().unzip();
    let mut merged: BTreeMap<(i32, i64), BTreeMap<i64, i64>> = rows.clone();
    let stored = tx.query(
        &format!(
            "SELECT h.agent, h.{col}, h.counts FROM {table} h
             JOIN unnest($1::int[], $2::bigint[]) AS k(agent, t)
               ON h.agent = k.agent AND h.{col} = k.t"
        ),
        &[&agents, &times],
    )?;
    for r in stored {
        let into = merged.entry((r.get(0), r.get(1))).or_default();
        decode_counts(r.get(2), |b, n| *into.entry(b).or_default() += n)?;
    }
    // Replaced executions take counts out: a histogram left empty goes.
    for counts in merged.values_mut() {
        counts.retain(|_, n| *n != 0);
    }
    let (gone_agents, gone_times): (Vec<i32>, Vec<i64>) = merged
        .iter()
        .filter(|(_, c)| c.is_empty())
        .map(|(k, _)| *k)
        .unzip();
    if !gone_agents.is_empty() {
        tx.execute(
            &format!(
                "DELETE FROM {table} h USING unnest($1::int[], $2::bigint[]) AS k(agent, t)
                 WHERE h.agent = k.agent AND h.{col} = k.t"
            ),
            &[&gone_agents, &gone_times],
        )?;
    }
    merged.retain(|_, c| !c.is_empty());
    let (agents, times): (Vec<i32>, Vec<i64>) = merged.keys().copied().unzip();
    let blobs: Vec<Vec<u8>> = merged.values().map(encode_counts).collect();
    tx.execute(
        &format!(
            "INSERT INTO {table} (agent, {col}, counts)
             SELECT * FROM unnest($1::int[], $2::bigint[], $3::bytea[])
             ON CONFLICT (agent, {col}) DO UPDATE SET counts = EXCLUDED.counts"
        ),
        &[&agents, &times, &blobs],
    )?;
    Ok(())
}

/// After executions of `agent` in `hour` were taken out: the detector's maxima recomputed from
/// the rows left, and rollup rows whose calls fell to 0 removed (the detector's `agent_hour`
/// row stays, its generation telling the memo what changed).
fn tidy(tx: &mut postgres::Transaction<'_>, hour: i64, agent: i32) -> Result<()> {
    let (lo, hi) = (hour * HOUR, (hour + 1) * HOUR);
    // The maxima as the write path computes them (`HourSums::add`), over the rows left.
    let mut left = HourSums::default();
    for r in tx.query(
        "SELECT success, prompt_tokens + completion_tokens + cache_read_tokens +
           cache_write_tokens, cost, duration_ms
         FROM executions WHERE agent = $1 AND ts >= $2 AND ts < $3",
        &[&agent, &lo, &hi],
    )? {
        left.add(r.get(0), r.get(1), r.get(2), r.get(3));
    }
    tx.execute(
        "UPDATE agent_hour SET max_cost = $3, max_tokens = $4, ok_max_us = $5
         WHERE hour = $1 AND agent = $2",
        &[
            &hour,
            &agent,
            &left.max_cost,
            &left.max_tokens,
            &left.ok_max_us,
        ],
    )?;
    let day = hour.div_euclid(24);
    let agent = i64::from(agent);
    for (table, unit, at, by_agent) in [
        ("rollup_hour", "hour", hour, true),
        ("rollup_day", "day", day, true),
        ("agent_rollup_hour", "hour", hour, true),
        ("agent_rollup_day", "day", day, true),
        ("model_rollup_hour", "hour", hour, false),
        ("model_rollup_day", "day", day, false),
        ("total_hour", "hour", hour, false),
        ("total_day", "day", day, false),
    ] {
        if by_agent {
            tx.execute(
                &format!("DELETE FROM {table} WHERE {unit} = $1 AND agent = $2 AND calls = 0"),
                &[&at, &(agent as i32)],
            )?;
        } else {
            tx.execute(
                &format!("DELETE FROM {table} WHERE {unit} = $1 AND calls = 0"),
                &[&at],
            )?;
        }
    }
    Ok(())
}

/// What one batch adds to the rollups.
#[derive(Default)]
pub(super) struct Sums {
    /// (hour, agent, model) and (day, agent, model) → totals.
    hours: BTreeMap<(i64, i32, i32), Totals>,
    days: BTreeMap<(i64, i32, i32), Totals>,
    /// (hour, agent) → the detector's sums.
    agent_hours: BTreeMap<(i64, i32), HourSums>,
    /// (agent, hour or day, bucket) → count; agent 0 holds every agent together.
    hist_hours: BTreeMap<(i32, i64), BTreeMap<i64, i64>>,
    hist_days: BTreeMap<(i32, i64), BTreeMap<i64, i64>>,
    /// (agent, 7-day block = day / 7) → bucket → count.
    hist_weeks: BTreeMap<(i32, i64), BTreeMap<i64, i64>>,
    /// (hour, agent, model) and (day, agent, model) → estimated cost, estimated calls,
    /// unpriced calls.
    priced_hours: BTreeMap<(i64, i32, i32), [i64; 3]>,
    priced_days: BTreeMap<(i64, i32, i32), [i64; 3]>,
    /// (hour, agent) cells an execution was taken out of (`tidy`).
    emptied: BTreeSet<(i64, i32)>,
}

impl Sums {
    pub(super) fn add(&mut self, e: &Execution, agent: i32, model: i32) {
        self.add_taken(&Taken {
            ts: e.ts,
            agent,
            model,
            tokens: e.prompt_tokens
                + e.completion_tokens
                + e.cache_read_tokens
                + e.cache_write_tokens,
            cost: e.cost,
            duration_ms: e.duration_ms,
            success: e.success,
            cost_source: e.cost_source,
        });
    }

    /// Count one stored execution, as the rollups see it.
    pub(super) fn add_taken(&mut self, x: &Taken) {
        self.count(x, 1);
    }

    /// Take a stored execution back out (it is being replaced or repriced). The detector's
    /// maxima cannot be taken back: `tidy` recomputes them.
    pub(super) fn remove(&mut self, x: &Taken) {
        self.count(x, -1);
        self.emptied.insert((x.ts.div_euclid(HOUR), x.agent));
    }

    /// Add (`sign` 1) or take out (−1) one execution everywhere it is counted.
    fn count(&mut self, x: &Taken, sign: i64) {
        let t = Totals {
            calls: sign,
            errors: sign * i64::from(!x.success),
            tokens: sign * x.tokens,
            cost: sign * x.cost,
            timed: sign * i64::from(x.duration_ms.is_some()),
            duration_sum: sign as f64 * x.duration_ms.unwrap_or(0.0),
        };
        let (hour, day) = (x.ts.div_euclid(HOUR), x.ts.div_euclid(DAY));
        self.price(hour, day, x.agent, x.model, x.cost, x.cost_source, sign);
        self.hours
            .entry((hour, x.agent, x.model))
            .or_default()
            .add(&t);
        self.days
            .entry((day, x.agent, x.model))
            .or_default()
            .add(&t);
        let sums = self.agent_hours.entry((hour, x.agent)).or_default();
        if sign > 0 {
            sums.add(x.success, x.tokens, x.cost, x.duration_ms);
        } else {
            sums.remove(x.success, x.tokens, x.cost, x.duration_ms);
        }
        if let Some(d) = x.duration_ms {
            let b = latency_bucket(d);
            for a in [x.agent, 0] {
                for (map, t) in [
                    (&mut self.hist_hours, hour),
                    (&mut self.hist_days, day),
                    (&mut self.hist_weeks, day.div_euclid(7)),
                ] {
                    *map.entry((a, t)).or_default().entry(b).or_default() += sign;
                }
            }
        }
    }

    /// Count `sign` (±1) executions of `source` costing `cost` each into the pricing sums.
    #[allow(clippy::too_many_arguments)]
    fn price(
        &mut self,
        hour: i64,
        day: i64,
        agent: i32,
        model: i32,
        cost: i64,
        source: CostSource,
        sign: i64,
    ) {
        let add = match source {
            CostSource::Reported => return,
            CostSource::Estimated => [sign * cost, sign, 0],
            CostSource::Unpriced => [0, 0, sign],
        };
        for (map, t) in [(&mut self.priced_hours, hour), (&mut self.priced_days, day)] {
            let v = map.entry((t, agent, model)).or_default();
            for (a, b) in v.iter_mut().zip(add) {
                *a += b;
            }
        }
    }

    /// Add the sums to the stored rollups, in primary-key order.
    pub(super) fn flush(self, tx: &mut postgres::Transaction<'_>, gen: i64) -> Result<()> {
        let mut pricing = Vec::new();
        for (table, unit, rows) in [
            ("rollup_hour", "hour", &self.priced_hours),
            ("rollup_day", "day", &self.priced_days),
        ] {
            let rows: Vec<_> = rows.iter().filter(|(_, v)| **v != [0, 0, 0]).collect();
            if rows.is_empty() {
                continue;
            }
            // The rows exist: the sums of the same executions are upserted first (below).
            let mut cols: Vec<Vec<i64>> = vec![Vec::new(); 6];
            for (&(t, a, m), v) in rows {
                for (col, x) in
                    cols.iter_mut()
                        .zip([t, i64::from(a), i64::from(m), v[0], v[1], v[2]])
                {
                    col.push(x);
                }
            }
            pricing.push((table, unit, cols));
        }
        self.flush_sums(tx, gen)?;
        for (table, unit, cols) in pricing {
            tx.execute(
                &format!(
                    "UPDATE {table} r SET estimated_cost = r.estimated_cost + v.ec,
                       estimated = r.estimated + v.en, unpriced = r.unpriced + v.un
                     FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[],
                       $5::bigint[], $6::bigint[]) AS v(t, a, m, ec, en, un)
                     WHERE r.{unit} = v.t AND r.agent = v.a AND r.model = v.m"
                ),
                &[&cols[0], &cols[1], &cols[2], &cols[3], &cols[4], &cols[5]],
            )?;
        }
        for &(hour, agent) in &self.emptied {
            tidy(tx, hour, agent)?;
        }
        Ok(())
    }

    fn flush_sums(&self, tx: &mut postgres::Transaction<'_>, gen: i64) -> Result<()> {
        for (unit, rows) in [("hour", &self.hours), ("day", &self.days)] {
            // Every level: per agent × model, per agent, per model, in all.
            let mut agent: BTreeMap<(i64, i32), Totals> = BTreeMap::new();
            let mut model: BTreeMap<(i64, i32), Totals> = BTreeMap::new();
            let mut total: BTreeMap<i64, Totals> = BTreeMap::new();
            for (&(t, a, m), x) in rows {
                agent.entry((t, a)).or_default().add(x);
                model.entry((t, m)).or_default().add(x);
                total.entry(t).or_default().add(x);
            }
            let both = rows
                .iter()
                .map(|(&(t, a, m), x)| (vec![t, i64::from(a), i64::from(m)], *x));
            upsert_totals(
                tx,
                &format!("rollup_{unit}"),
                &[unit, "agent", "model"],
                both,
            )?;
            let by_agent = agent.iter().map(|(&(t, a), x)| (vec![t, i64::from(a)], *x));
            upsert_totals(
                tx,
                &format!("agent_rollup_{unit}"),
                &[unit, "agent"],
                by_agent,
            )?;
            let by_model = model.iter().map(|(&(t, m), x)| (vec![t, i64::from(m)], *x));
            upsert_totals(
                tx,
                &format!("model_rollup_{unit}"),
                &[unit, "model"],
                by_model,
            )?;
            let all = total.iter().map(|(&t, x)| (vec![t], *x));
            upsert_totals(tx, &format!("total_{unit}"), &[unit], all)?;
        }
        let mut c: Vec<Vec<i64>> = vec![Vec::new(); 10];
        let mut agents: Vec<i32> = Vec::new();
        let mut squares: Vec<Vec<String>> = vec![Vec::new(); 4];
        for (&(hour, agent), s) in &self.agent_hours {
            c[0].push(hour);
            agents.push(agent);
            c[1].push(s.totals.calls);
            c[2].push(s.totals.errors);
            c[3].push(s.totals.tokens);
            c[4].push(s.totals.cost);
            c[5].push(s.max_cost);
            c[6].push(s.max_tokens);
            c[7].push(s.ok_timed);
            c[8].push(s.ok_max_us);
            squares[0].push(s.cost_sq.to_string());
            squares[1].push(s.tokens_sq.to_string());
            squares[2].push(s.ok_us.to_string());
            squares[3].push(s.ok_ms_sq.to_string());
        }
        tx.execute(
            "INSERT INTO agent_hour (hour, agent, calls, errors, tokens, cost, max_cost,
               max_tokens, ok_timed, ok_max_us, cost_sq, tokens_sq, ok_us, ok_ms_sq, gen)
             SELECT h, a, calls, errors, tokens, cost, max_cost, max_tokens, ok_timed, ok_max_us,
               cost_sq::numeric, tokens_sq::numeric, ok_us::numeric, ok_ms_sq::numeric, $15
             FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[],
               $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[],
               $11::text[], $12::text[], $13::text[], $14::text[])
               AS v(h, a, calls, errors, tokens, cost, max_cost, max_tokens, ok_timed,
                    ok_max_us, cost_sq, tokens_sq, ok_us, ok_ms_sq)
             ON CONFLICT (hour, agent) DO UPDATE SET
               calls = agent_hour.calls + EXCLUDED.calls,
               errors = agent_hour.errors + EXCLUDED.errors,
               tokens = agent_hour.tokens + EXCLUDED.tokens,
               cost = agent_hour.cost + EXCLUDED.cost,
               max_cost = GREATEST(agent_hour.max_cost, EXCLUDED.max_cost),
               max_tokens = GREATEST(agent_hour.max_tokens, EXCLUDED.max_tokens),
               ok_timed = agent_hour.ok_timed + EXCLUDED.ok_timed,
               ok_max_us = GREATEST(agent_hour.ok_max_us, EXCLUDED.ok_max_us),
               cost_sq = agent_hour.cost_sq + EXCLUDED.cost_sq,
               tokens_sq = agent_hour.tokens_sq + EXCLUDED.tokens_sq,
               ok_us = agent_hour.ok_us + EXCLUDED.ok_us,
               ok_ms_sq = agent_hour.ok_ms_sq + EXCLUDED.ok_ms_sq,
               gen = EXCLUDED.gen",
            &[
                &c[0],
                &agents,
                &c[1],
                &c[2],
                &c[3],
                &c[4],
                &c[5],
                &c[6],
                &c[7],
                &c[8],
                &squares[0],
                &squares[1],
                &squares[2],
                &squares[3],
                &gen,
            ],
        )?;
        for (table, col, rows) in [
            ("hist_hour", "hour", &self.hist_hours),
            ("hist_day", "day", &self.hist_days),
            ("hist_week", "week", &self.hist_weeks),
        ] {
            merge_histograms(tx, table, col, rows)?;
        }
        Ok(())
    }
}
