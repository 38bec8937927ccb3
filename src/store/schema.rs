//! Schema migrations: an ordered list, applied once each and tracked by `PRAGMA user_version`.
//! Never remove or edit an entry; append a new one.

use rusqlite::Connection;

use crate::error::{Error, Result};

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: executions and the names they refer to. Money is integer nano-dollars; instants are
    // UTC milliseconds; `seq` is the ingest order ("latest name wins" and stable tie-breaks).
    r#"
    CREATE TABLE agents (
        key  INTEGER PRIMARY KEY,
        id   TEXT NOT NULL UNIQUE,
        name TEXT
    );
    CREATE TABLE models (
        key  INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE
    );
    CREATE TABLE executions (
        seq                INTEGER PRIMARY KEY,
        id                 TEXT NOT NULL UNIQUE,
        ts                 INTEGER NOT NULL,
        agent              INTEGER NOT NULL REFERENCES agents(key),
        model              INTEGER NOT NULL REFERENCES models(key),
        prompt_tokens      INTEGER NOT NULL,
        completion_tokens  INTEGER NOT NULL,
        cache_read_tokens  INTEGER NOT NULL,
        cache_write_tokens INTEGER NOT NULL,
        cost               INTEGER NOT NULL,
        duration_ms        REAL,
        success            INTEGER NOT NULL,
        error              TEXT,
        status_code        INTEGER,
        session_id         TEXT,
        task_type          TEXT,
        metadata           TEXT
    );
    CREATE INDEX executions_by_ts ON executions(ts);
    CREATE INDEX executions_by_agent_ts ON executions(agent, ts);
    "#,
    // 2: budgets, one per scope ('global' or an agent id, which need not have executions yet).
    // The limit is integer nano-dollars; thresholds a JSON array of whole percents, increasing.
    r#"
    CREATE TABLE budgets (
        scope       TEXT PRIMARY KEY,
        limit_nanos INTEGER NOT NULL CHECK (limit_nanos > 0),
        period      TEXT NOT NULL CHECK (period IN ('day', 'week', 'month')),
        thresholds  TEXT NOT NULL
    );
    "#,
    // 3: rollups, kept by the write path in the same transaction as the rows they sum
    // (`store::rollup`). Hour = ts / 3,600,000 and day = ts / 86,400,000 (UTC; ts >= 0). Sums per
    // agent x model; latency histograms per agent, and for all agents together under agent 0
    // (agent keys start at 1), counting durations per log-spaced bucket (`latency_bucket`).
    // Back-filled here from the executions already stored.
    r#"
    CREATE TABLE rollup_hour (
        hour               INTEGER NOT NULL,
        agent              INTEGER NOT NULL,
        model              INTEGER NOT NULL,
        calls              INTEGER NOT NULL,
        errors             INTEGER NOT NULL,
        prompt_tokens      INTEGER NOT NULL,
        completion_tokens  INTEGER NOT NULL,
        cache_read_tokens  INTEGER NOT NULL,
        cache_write_tokens INTEGER NOT NULL,
        cost               INTEGER NOT NULL,
        timed              INTEGER NOT NULL,
        duration_sum       REAL NOT NULL,
        PRIMARY KEY (hour, agent, model)
    ) WITHOUT ROWID;
    CREATE TABLE rollup_day (
        day                INTEGER NOT NULL,
        agent              INTEGER NOT NULL,
        model              INTEGER NOT NULL,
        calls              INTEGER NOT NULL,
        errors             INTEGER NOT NULL,
        prompt_tokens      INTEGER NOT NULL,
        completion_tokens  INTEGER NOT NULL,
        cache_read_tokens  INTEGER NOT NULL,
        cache_write_tokens INTEGER NOT NULL,
        cost               INTEGER NOT NULL,
        timed              INTEGER NOT NULL,
        duration_sum       REAL NOT NULL,
        PRIMARY KEY (day, agent, model)
    ) WITHOUT ROWID;
    CREATE TABLE latency_hour (
        hour   INTEGER NOT NULL,
        agent  INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        n      INTEGER NOT NULL,
        PRIMARY KEY (agent, hour, bucket)
    ) WITHOUT ROWID;
    CREATE TABLE latency_day (
        day    INTEGER NOT NULL,
        agent  INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        n      INTEGER NOT NULL,
        PRIMARY KEY (agent, day, bucket)
    ) WITHOUT ROWID;
    INSERT INTO rollup_hour
        SELECT ts / 3600000, agent, model, COUNT(*), SUM(success = 0), SUM(prompt_tokens),
               SUM(completion_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(cost),
               COUNT(duration_ms), COALESCE(SUM(duration_ms), 0.0)
        FROM executions GROUP BY 1, 2, 3;
    INSERT INTO rollup_day
        SELECT ts / 86400000, agent, model, COUNT(*), SUM(success = 0), SUM(prompt_tokens),
               SUM(completion_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(cost),
               COUNT(duration_ms), COALESCE(SUM(duration_ms), 0.0)
        FROM executions GROUP BY 1, 2, 3;
    INSERT INTO latency_hour
        SELECT ts / 3600000, agent, latency_bucket(duration_ms), COUNT(*)
        FROM executions WHERE duration_ms IS NOT NULL GROUP BY 1, 2, 3;
    INSERT INTO latency_hour
        SELECT hour, 0, bucket, SUM(n) FROM latency_hour GROUP BY hour, bucket;
    INSERT INTO latency_day
        SELECT hour / 24, agent, bucket, SUM(n) FROM latency_hour GROUP BY 1, 2, 3;
    "#,
    // 4: per-agent rollups, the model summed out: `agent_hour` holds the totals (calls, errors,
    // tokens, cost, timed, duration_sum) and the anomaly detector's exact sums (store/series.rs:
    // units and limbs); `agent_day` the totals per day. Per-model rollups, the agent summed out:
    // `model_hour`, `model_day`. Queries whose filter and grouping allow read these instead of
    // `rollup_hour`/`rollup_day` (10–200× fewer rows at §6 density). The agent tables are
    // back-filled by `series::backfill` (the write path's own arithmetic), the model tables from
    // the agent × model rollups, in the same transaction.
    r#"
    CREATE TABLE agent_hour (
        hour         INTEGER NOT NULL,
        agent        INTEGER NOT NULL,
        calls        INTEGER NOT NULL,
        errors       INTEGER NOT NULL,
        tokens       INTEGER NOT NULL,
        cost         INTEGER NOT NULL,
        timed        INTEGER NOT NULL,
        duration_sum REAL NOT NULL,
        cost_sq_hi   INTEGER NOT NULL,
        cost_sq_lo   INTEGER NOT NULL,
        tokens_sq_hi INTEGER NOT NULL,
        tokens_sq_lo INTEGER NOT NULL,
        max_cost     INTEGER NOT NULL,
        max_tokens   INTEGER NOT NULL,
        ok_timed     INTEGER NOT NULL,
        ok_us        INTEGER NOT NULL,
        ok_ms_sq_hi  INTEGER NOT NULL,
        ok_ms_sq_lo  INTEGER NOT NULL,
        ok_max_us    INTEGER NOT NULL,
        PRIMARY KEY (hour, agent)
    ) WITHOUT ROWID;
    CREATE TABLE agent_day (
        day          INTEGER NOT NULL,
        agent        INTEGER NOT NULL,
        calls        INTEGER NOT NULL,
        errors       INTEGER NOT NULL,
        tokens       INTEGER NOT NULL,
        cost         INTEGER NOT NULL,
        timed        INTEGER NOT NULL,
        duration_sum REAL NOT NULL,
        PRIMARY KEY (day, agent)
    ) WITHOUT ROWID;
    CREATE TABLE model_hour (
        hour         INTEGER NOT NULL,
        model        INTEGER NOT NULL,
        calls        INTEGER NOT NULL,
        errors       INTEGER NOT NULL,
        tokens       INTEGER NOT NULL,
        cost         INTEGER NOT NULL,
        timed        INTEGER NOT NULL,
        duration_sum REAL NOT NULL,
        PRIMARY KEY (hour, model)
    ) WITHOUT ROWID;
    CREATE TABLE model_day (
        day          INTEGER NOT NULL,
        model        INTEGER NOT NULL,
        calls        INTEGER NOT NULL,
        errors       INTEGER NOT NULL,
        tokens       INTEGER NOT NULL,
        cost         INTEGER NOT NULL,
        timed        INTEGER NOT NULL,
        duration_sum REAL NOT NULL,
        PRIMARY KEY (day, model)
    ) WITHOUT ROWID;
    INSERT INTO model_hour
        SELECT hour, model, SUM(calls), SUM(errors),
               SUM(prompt_tokens + completion_tokens + cache_read_tokens + cache_write_tokens),
               SUM(cost), SUM(timed), SUM(duration_sum)
        FROM rollup_hour GROUP BY hour, model;
    INSERT INTO model_day
        SELECT day, model, SUM(calls), SUM(errors),
               SUM(prompt_tokens + completion_tokens + cache_read_tokens + cache_write_tokens),
               SUM(cost), SUM(timed), SUM(duration_sum)
        FROM rollup_day GROUP BY day, model;
    "#,
];

/// Work a migration does beyond its SQL, in the same transaction.
type Backfill = fn(&rusqlite::Transaction<'_>) -> Result<()>;

/// (the version a migration reaches, its back-fill).
const BACKFILLS: &[(usize, Backfill)] = &[(4, super::series::backfill)];

/// Bring the schema up to date. A database newer than this binary is refused.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    // Migration 3 back-fills latency histograms with the very bucket function the write path
    // uses, so both agree to the bit.
    super::rollup::register_functions(conn)?;
    let current: usize =
        conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
    if current > MIGRATIONS.len() {
        return Err(Error::Internal(format!(
            "the database has schema version {current}, newer than this dashboard-mcp knows ({}); upgrade dashboard-mcp",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        for (version, step) in BACKFILLS {
            if *version == i + 1 {
                step(&tx)?;
            }
        }
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// The schema version this binary writes.
#[cfg(test)]
pub fn latest_version() -> usize {
    MIGRATIONS.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrate_twice() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        migrate(&mut c).unwrap();
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, latest_version());
    }

    fn execution(i: i64) -> super::super::Execution {
        super::super::Execution {
            id: format!("e{i}"),
            ts: 1_790_000_000_000 + i * 1_234_567,
            agent_id: format!("a{}", i % 3),
            agent_name: None,
            model: format!("m{}", i % 2),
            prompt_tokens: i,
            completion_tokens: 2 * i,
            cache_read_tokens: i % 5,
            cache_write_tokens: i % 7,
            cost: 1_000 * i,
            duration_ms: (i % 4 != 0).then_some(i as f64 * 10.5),
            success: i % 6 != 0,
            error: None,
            status_code: None,
            session_id: None,
            task_type: None,
            metadata: None,
        }
    }

    fn rollup_rows(c: &Connection) -> Vec<Vec<rusqlite::types::Value>> {
        let mut out = Vec::new();
        for table in [
            "rollup_hour",
            "rollup_day",
            "latency_hour",
            "latency_day",
            "agent_hour",
            "agent_day",
            "model_hour",
            "model_day",
        ] {
            let mut stmt = c
                .prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2, 3"))
                .unwrap();
            let n = stmt.column_count();
            let rows = stmt
                .query_map([], |r| {
                    (0..n)
                        .map(|i| r.get(i))
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .unwrap();
            out.extend(rows.map(|r| r.unwrap()));
        }
        out
    }

    #[test]
    fn backfill_matches_the_write_path() {
        let execs: Vec<_> = (0..500).map(execution).collect();
        // A database of schema version 2 holding executions, then migrated.
        let mut old = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..2] {
            old.execute_batch(sql).unwrap();
        }
        old.pragma_update(None, "user_version", 2).unwrap();
        old.execute_batch(
            "INSERT INTO agents (id) VALUES ('a0'), ('a1'), ('a2');
             INSERT INTO models (name) VALUES ('m0'), ('m1');",
        )
        .unwrap();
        for e in &execs {
            old.execute(
                "INSERT INTO executions (id, ts, agent, model, prompt_tokens, completion_tokens,
                   cache_read_tokens, cache_write_tokens, cost, duration_ms, success)
                 VALUES (?1, ?2, (SELECT key FROM agents WHERE id = ?3),
                   (SELECT key FROM models WHERE name = ?4), ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                rusqlite::params![
                    e.id,
                    e.ts,
                    e.agent_id,
                    e.model,
                    e.prompt_tokens,
                    e.completion_tokens,
                    e.cache_read_tokens,
                    e.cache_write_tokens,
                    e.cost,
                    e.duration_ms,
                    e.success
                ],
            )
            .unwrap();
        }
        migrate(&mut old).unwrap();
        // The same executions through the write path of a new database.
        let mut new = Connection::open_in_memory().unwrap();
        migrate(&mut new).unwrap();
        let tx = new.transaction().unwrap();
        let mut ins = super::super::Inserter::new(&tx);
        for e in &execs {
            ins.insert(e).unwrap();
        }
        ins.finish().unwrap();
        tx.commit().unwrap();
        let rows = rollup_rows(&new);
        assert!(rows.len() > 500, "{}", rows.len());
        assert_eq!(rollup_rows(&old), rows);
    }
}
