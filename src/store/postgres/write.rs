//! The PostgreSQL write path: one transaction per batch that takes the next generation (the
//! `meta` row lock orders writers of every replica), claims the new ids in `execution_ids`
//! (`ON CONFLICT DO NOTHING`: idempotency), copies the new rows into `executions` with binary
//! `COPY`, adds their sums to the rollups with one `INSERT … ON CONFLICT DO UPDATE` per table,
//! and notifies every replica (`NOTIFY`, delivered at commit). The writing replica publishes its
//! own batch at once (as SQLite does); the others read it on the notification.

use std::collections::{BTreeMap, HashMap, HashSet};

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::Client;

use crate::error::Result;
use crate::store::{Atomic, CostSource, Execution, Outcome};
use crate::time::Millis;

use super::sums::{Sums, Taken};

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
