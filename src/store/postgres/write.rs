//! The PostgreSQL write path: one transaction per batch that takes the next generation (the
//! `meta` row lock orders writers of every replica), claims the new ids in `execution_ids`
//! (`ON CONFLICT DO NOTHING`: idempotency), copies the new rows into `executions` with binary
//! `COPY`, adds their sums to the rollups with one `INSERT … ON CONFLICT DO UPDATE` per table,
//! and notifies every replica (`NOTIFY`, delivered at commit). The writing replica publishes its
//! own batch at once (as SQLite does); the others read it on the notification.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::Client;

use crate::error::Result;
use crate::store::plan::{decode_counts, encode_counts};
use crate::store::{latency_bucket, Atomic, CostSource, Execution, HourSums, Outcome, Totals};
use crate::time::{Millis, DAY, HOUR};

use super::schema::{ensure_partitions, month_of};
use super::CHANNEL;

/// The text fields PostgreSQL cannot hold a NUL character in, by their record names.
fn nul_field(e: &Execution) -> Option<&'static str> {
    let fields: [(&'static str, Option<&str>); 8] = [
        ("id", Some(&e.id)),
        ("agentId", Some(&e.agent_id)),
        ("agentName", e.agent_name.as_deref()),
        ("model", Some(&e.model)),
        ("error", e.error.as_deref()),
        ("sessionId", e.session_id.as_deref()),
        ("taskType", e.task_type.as_deref()),
        ("metadata", e.metadata.as_deref()),
    ];
    fields
        .into_iter()
        .find(|(_, v)| v.is_some_and(|s| s.contains('\0')))
        .map(|(name, _)| name)
}

/// Write `records` in one transaction (see the module docs).
pub fn insert(
    c: &mut Client,
    known_months: &mut HashSet<Millis>,
    records: &[&Execution],
    atomic: Atomic,
    origin: &str,
) -> Result<(Vec<Outcome>, Option<i64>)> {
    let mut outcomes: Vec<Option<Outcome>> = records
        .iter()
        .map(|e| {
            nul_field(e).map(|f| {
                Outcome::Refused(format!(
                    "{f}: holds a NUL character (\\u0000), which PostgreSQL cannot store"
                ))
            })
        })
        .collect();
    if atomic == Atomic::All && outcomes.iter().any(Option::is_some) {
        // Nothing is written; the refused records are named.
        let outcomes = outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Duplicate))
            .collect();
        return Ok((outcomes, None));
    }
    let fresh: Vec<usize> = (0..records.len())
        .filter(|&i| outcomes[i].is_none())
        .collect();
    let mut months: Vec<(String, Millis, Millis)> = Vec::new();
    for &i in &fresh {
        let m = month_of(records[i].ts);
        if !known_months.contains(&m.1) && !months.iter().any(|k| k.1 == m.1) {
            months.push(m);
        }
    }
    ensure_partitions(c, &months)?;
    known_months.extend(months.iter().map(|m| m.1));

    let mut tx = c.transaction()?;
    let gen: i64 = tx
        .query_one(
            "UPDATE meta SET generation = generation + 1 RETURNING generation",
            &[],
        )?
        .get(0);

    // Keys of agents and models, created when new.
    let agent_ids: Vec<&str> = distinct(fresh.iter().map(|&i| records[i].agent_id.as_str()));
    let model_names: Vec<&str> = distinct(fresh.iter().map(|&i| records[i].model.as_str()));
    // Only the missing ones: `ON CONFLICT` alone would draw a key from the sequence for every
    // row proposed, and a busy server would exhaust it.
    tx.execute(
        "INSERT INTO agents (id) SELECT x FROM unnest($1::text[]) AS x
         WHERE NOT EXISTS (SELECT 1 FROM agents a WHERE a.id = x) ORDER BY 1
         ON CONFLICT (id) DO NOTHING",
        &[&agent_ids],
    )?;
    tx.execute(
        "INSERT INTO models (name) SELECT x FROM unnest($1::text[]) AS x
         WHERE NOT EXISTS (SELECT 1 FROM models m WHERE m.name = x) ORDER BY 1
         ON CONFLICT (name) DO NOTHING",
        &[&model_names],
    )?;
    let agents: HashMap<String, i32> = tx
        .query(
            "SELECT id, key FROM agents WHERE id = ANY($1)",
            &[&agent_ids],
        )?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let models: HashMap<String, i32> = tx
        .query(
            "SELECT name, key FROM models WHERE name = ANY($1)",
            &[&model_names],
        )?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();

    // Of several records of one id in the batch, the first is tried, unless a later one has a
    // higher revision; the rest are duplicates.
    let mut chosen: HashMap<&str, usize> = HashMap::new();
    for &i in &fresh {
        let e = records[i];
        match chosen.get(e.id.as_str()) {
            Some(&j) if records[j].revision >= e.revision || e.revision.is_none() => {}
            _ => {
                chosen.insert(&e.id, i);
            }
        }
    }
    let tried: Vec<usize> = fresh
        .iter()
        .copied()
        .filter(|&i| chosen[records[i].id.as_str()] == i)
        .collect();
    // Claim the ids: those this statement inserts are new.
    let ids: Vec<&str> = tried.iter().map(|&i| records[i].id.as_str()).collect();
    let tss: Vec<i64> = tried.iter().map(|&i| records[i].ts).collect();
    let revisions: Vec<Option<i64>> = tried.iter().map(|&i| records[i].revision).collect();
    let claimed: HashSet<String> = tx
        .query(
            "INSERT INTO execution_ids (id, ts, revision)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
             ON CONFLICT (id) DO NOTHING RETURNING id",
            &[&ids, &tss, &revisions],
        )?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    let mut sums = Sums::default();
    // Stored ids of lower revision: the stored row goes (out of the rollups too).
    let revised: Vec<usize> = tried
        .iter()
        .copied()
        .filter(|&i| !claimed.contains(records[i].id.as_str()) && records[i].revision.is_some())
        .collect();
    let replaced = replace_stored(&mut tx, records, &revised, &mut sums)?;
    let mut new: Vec<usize> = Vec::new();
    for &i in &fresh {
        let id = records[i].id.as_str();
        outcomes[i] = Some(if chosen[id] != i {
            Outcome::Duplicate
        } else if claimed.contains(id) {
            new.push(i);
            Outcome::Inserted
        } else if replaced.contains(&i) {
            new.push(i);
            Outcome::Replaced
        } else {
            Outcome::Duplicate
        });
    }

    if !new.is_empty() {
        copy_rows(&mut tx, records, &new, &agents, &models, gen)?;
        for &i in &new {
            let e = records[i];
            sums.add(e, agents[&e.agent_id], models[&e.model]);
        }
        sums.flush(&mut tx, gen)?;
        // The latest name given for each agent (ingest order).
        let mut names: BTreeMap<i32, &str> = BTreeMap::new();
        for &i in &new {
            if let Some(n) = &records[i].agent_name {
                names.insert(agents[&records[i].agent_id], n);
            }
        }
        if !names.is_empty() {
            let (keys, names): (Vec<i32>, Vec<&str>) = names.into_iter().unzip();
            tx.execute(
                "UPDATE agents a SET name = v.name
                 FROM unnest($1::int[], $2::text[]) AS v(key, name)
                 WHERE a.key = v.key AND a.name IS DISTINCT FROM v.name",
                &[&keys, &names],
            )?;
        }
    }
    // `origin:generation[:first ts:last ts]`. The listener of the writing replica skips its
    // own (`origin`: the writer publishes them); the others read the rows of the generation
    // within the time range (one partition, not all of them), when there are rows.
    let span = new.iter().map(|&i| records[i].ts);
    let payload = match (span.clone().min(), span.max()) {
        (Some(lo), Some(hi)) => format!("{origin}:{gen}:{lo}:{hi}"),
        _ => format!("{origin}:{gen}"),
    };
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])?;
    tx.commit()?;
    let outcomes = outcomes
        .into_iter()
        .map(|o| o.expect("every record has an outcome"))
        .collect();
    Ok((outcomes, Some(gen)))
}

fn distinct<'a>(it: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = it.collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// For each record of `revised` whose id is stored with a lower revision: the stored row is
/// deleted and taken out of `sums`, and `execution_ids` takes the record's time and revision.
/// The records that replaced one.
fn replace_stored(
    tx: &mut postgres::Transaction<'_>,
    records: &[&Execution],
    revised: &[usize],
    sums: &mut Sums,
) -> Result<HashSet<usize>> {
    let mut replaced = HashSet::new();
    if revised.is_empty() {
        return Ok(replaced);
    }
    let ids: Vec<&str> = revised.iter().map(|&i| records[i].id.as_str()).collect();
    let stored: HashMap<String, (Option<i64>, Option<i64>)> = tx
        .query(
            "SELECT id, ts, revision FROM execution_ids WHERE id = ANY($1) FOR UPDATE",
            &[&ids],
        )?
        .into_iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    for &i in revised {
        let e = records[i];
        let Some(&(Some(ts), Some(old))) = stored.get(&e.id) else {
            continue;
        };
        if e.revision.is_none_or(|new| new <= old) {
            continue;
        }
        let row = tx.query_opt(
            "DELETE FROM executions WHERE id = $1 AND ts = $2
             RETURNING agent, model, prompt_tokens + completion_tokens + cache_read_tokens +
               cache_write_tokens, cost, duration_ms, success, cost_source",
            &[&e.id, &ts],
        )?;
        if let Some(r) = row {
            let source: i16 = r.get(6);
            sums.remove(&Taken {
                ts,
                agent: r.get(0),
                model: r.get(1),
                tokens: r.get(2),
                cost: r.get(3),
                duration_ms: r.get(4),
                success: r.get(5),
                cost_source: CostSource::from_code(i64::from(source)),
            });
        }
        tx.execute(
            "UPDATE execution_ids SET ts = $2, revision = $3 WHERE id = $1",
            &[&e.id, &e.ts, &e.revision],
        )?;
        replaced.insert(i);
    }
    Ok(replaced)
}

/// A stored execution as the rollups counted it (what replacing it takes back out).
struct Taken {
    ts: Millis,
    agent: i32,
    model: i32,
    tokens: i64,
    cost: i64,
    duration_ms: Option<f64>,
    success: bool,
    cost_source: CostSource,
}

/// `COPY … FROM STDIN (FORMAT binary)` of the new rows.
fn copy_rows(
    tx: &mut postgres::Transaction<'_>,
    records: &[&Execution],
    new: &[usize],
    agents: &HashMap<String, i32>,
    models: &HashMap<String, i32>,
    gen: i64,
) -> Result<()> {
    let sink = tx.copy_in(
        "COPY executions (id, ts, agent, model, prompt_tokens, completion_tokens,
           cache_read_tokens, cache_write_tokens, cost, duration_ms, success, error, status_code,
           session_id, task_type, metadata, gen, revision, cost_source)
           FROM STDIN (FORMAT binary)",
    )?;
    let types = [
        Type::TEXT,
        Type::INT8,
        Type::INT4,
        Type::INT4,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::FLOAT8,
        Type::BOOL,
        Type::TEXT,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::INT8,
        Type::INT2,
    ];
    let mut w = BinaryCopyInWriter::new(sink, &types);
    for &i in new {
        let e = records[i];
        let source = e.cost_source.code();
        let row: [&(dyn ToSql + Sync); 19] = [
            &e.id,
            &e.ts,
            &agents[&e.agent_id],
            &models[&e.model],
            &e.prompt_tokens,
            &e.completion_tokens,
            &e.cache_read_tokens,
            &e.cache_write_tokens,
            &e.cost,
            &e.duration_ms,
            &e.success,
            &e.error,
            &e.status_code,
            &e.session_id,
            &e.task_type,
            &e.metadata,
            &gen,
            &e.revision,
            &source,
        ];
        w.write(&row)?;
    }
    w.finish()?;
    Ok(())
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
struct Sums {
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
    fn add(&mut self, e: &Execution, agent: i32, model: i32) {
        let tokens =
            e.prompt_tokens + e.completion_tokens + e.cache_read_tokens + e.cache_write_tokens;
        let t = Totals {
            calls: 1,
            errors: i64::from(!e.success),
            tokens,
            cost: e.cost,
            timed: i64::from(e.duration_ms.is_some()),
            duration_sum: e.duration_ms.unwrap_or(0.0),
        };
        let (hour, day) = (e.ts.div_euclid(HOUR), e.ts.div_euclid(DAY));
        self.price(hour, day, agent, model, e.cost, e.cost_source, 1);
        self.hours.entry((hour, agent, model)).or_default().add(&t);
        self.days.entry((day, agent, model)).or_default().add(&t);
        self.agent_hours.entry((hour, agent)).or_default().add(
            e.success,
            tokens,
            e.cost,
            e.duration_ms,
        );
        if let Some(d) = e.duration_ms {
            let b = latency_bucket(d);
            for a in [agent, 0] {
                for (map, t) in [
                    (&mut self.hist_hours, hour),
                    (&mut self.hist_days, day),
                    (&mut self.hist_weeks, day.div_euclid(7)),
                ] {
                    *map.entry((a, t)).or_default().entry(b).or_default() += 1;
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

    /// Take a stored execution back out (it is being replaced).
    fn remove(&mut self, x: &Taken) {
        let t = Totals {
            calls: -1,
            errors: -i64::from(!x.success),
            tokens: -x.tokens,
            cost: -x.cost,
            timed: -i64::from(x.duration_ms.is_some()),
            duration_sum: -x.duration_ms.unwrap_or(0.0),
        };
        let (hour, day) = (x.ts.div_euclid(HOUR), x.ts.div_euclid(DAY));
        self.price(hour, day, x.agent, x.model, x.cost, x.cost_source, -1);
        self.hours
            .entry((hour, x.agent, x.model))
            .or_default()
            .add(&t);
        self.days
            .entry((day, x.agent, x.model))
            .or_default()
            .add(&t);
        self.agent_hours.entry((hour, x.agent)).or_default().remove(
            x.success,
            x.tokens,
            x.cost,
            x.duration_ms,
        );
        if let Some(d) = x.duration_ms {
            let b = latency_bucket(d);
            for a in [x.agent, 0] {
                for (map, t) in [
                    (&mut self.hist_hours, hour),
                    (&mut self.hist_days, day),
                    (&mut self.hist_weeks, day.div_euclid(7)),
                ] {
                    *map.entry((a, t)).or_default().entry(b).or_default() -= 1;
                }
            }
        }
        self.emptied.insert((hour, x.agent));
    }

    /// Add the sums to the stored rollups, in primary-key order.
    fn flush(self, tx: &mut postgres::Transaction<'_>, gen: i64) -> Result<()> {
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
