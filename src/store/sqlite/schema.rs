//! Schema migrations: an ordered list, applied once each and tracked by `PRAGMA user_version`.
//! Never remove or edit an entry; append a new one.

use rusqlite::{Connection, OptionalExtension};

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
    // 5: executions stored in time order. The rowid `pos` is ts · 2^15 + n (n: the row's place
    // among the executions of its millisecond, in ingest order), so the rows of a time range are
    // one contiguous rowid range: the raw edges of a window are read in sequence instead of
    // through the `ts` index and a table lookup per row (which was most of a short window's
    // time). `ts` becomes a virtual column computed from `pos`; the `ts` index goes, and the
    // agent index needs no `ts` (an index entry ends with the rowid). Year 9999 · 2^15 still
    // fits an i64. What the memo of anomaly verdicts needs to learn what changed, which `seq`
    // told before, is now `agent_hour.gen`: the write transaction that last added to the row.
    r#"
    CREATE TABLE executions_by_time (
        pos                INTEGER PRIMARY KEY,
        id                 TEXT NOT NULL UNIQUE,
        ts                 INTEGER NOT NULL GENERATED ALWAYS AS (pos >> 15) VIRTUAL,
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
    INSERT INTO executions_by_time (pos, id, agent, model, prompt_tokens, completion_tokens,
            cache_read_tokens, cache_write_tokens, cost, duration_ms, success, error, status_code,
            session_id, task_type, metadata)
        SELECT (ts << 15) + row_number() OVER (PARTITION BY ts ORDER BY seq) - 1, id, agent,
               model, prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens,
               cost, duration_ms, success, error, status_code, session_id, task_type, metadata
        FROM executions ORDER BY ts, seq;
    DROP TABLE executions;
    ALTER TABLE executions_by_time RENAME TO executions;
    CREATE INDEX executions_by_agent ON executions(agent);
    ALTER TABLE agent_hour ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX agent_hour_by_gen ON agent_hour(gen);
    "#,
    // 6: latency histograms one row per agent and hour (or day), the counts in a blob
    // (`rollup::encode_counts`), instead of one row per bucket: a quarter's p95 read ~50 k rows.
    // `rollup::backfill_histograms` converts `latency_hour` / `latency_day` and drops them.
    r#"
    CREATE TABLE hist_hour (
        agent  INTEGER NOT NULL,
        hour   INTEGER NOT NULL,
        counts BLOB NOT NULL,
        PRIMARY KEY (agent, hour)
    ) WITHOUT ROWID;
    CREATE TABLE hist_day (
        agent  INTEGER NOT NULL,
        day    INTEGER NOT NULL,
        counts BLOB NOT NULL,
        PRIMARY KEY (agent, day)
    ) WITHOUT ROWID;
    "#,
    // 7: per-agent totals of 7-day blocks (`week` = day / 7, so blocks start on a Thursday, the
    // weekday of 1970-01-01; they are only a coarser level, never shown): a window's whole
    // blocks read one row per agent instead of seven (a quarter: ~4.8 k rows instead of 18 k).
    r#"
    CREATE TABLE agent_week (
        week         INTEGER NOT NULL,
        agent        INTEGER NOT NULL,
        calls        INTEGER NOT NULL,
        errors       INTEGER NOT NULL,
        tokens       INTEGER NOT NULL,
        cost         INTEGER NOT NULL,
        timed        INTEGER NOT NULL,
        duration_sum REAL NOT NULL,
        PRIMARY KEY (week, agent)
    ) WITHOUT ROWID;
    INSERT INTO agent_week
        SELECT day / 7, agent, SUM(calls), SUM(errors), SUM(tokens), SUM(cost), SUM(timed),
               SUM(duration_sum)
        FROM agent_day GROUP BY day / 7, agent;
    "#,
    // 8: real usage in (`sources`). An execution's `revision` (a log line written again with
    // more tokens replaces the stored one of lower revision) and where its cost came from
    // (`cost_source`: 0 reported, 1 estimated from the price table, 2 unpriced). The agent ×
    // model rollups count the estimated cost and calls and the unpriced calls, so answers can
    // say how much of a total is an estimate and which models had no price. Where log imports
    // stopped in each file: `source_cursors`.
    r#"
    ALTER TABLE executions ADD COLUMN revision INTEGER;
    ALTER TABLE executions ADD COLUMN cost_source INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rollup_hour ADD COLUMN estimated_cost INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rollup_hour ADD COLUMN estimated INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rollup_hour ADD COLUMN unpriced INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rollup_day ADD COLUMN estimated_cost INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rollup_day ADD COLUMN estimated INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rollup_day ADD COLUMN unpriced INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE source_cursors (
        source TEXT NOT NULL,
        path   TEXT NOT NULL,
        read_to INTEGER NOT NULL,
        line   INTEGER NOT NULL,
        head   TEXT NOT NULL,
        state  TEXT,
        PRIMARY KEY (source, path)
    ) WITHOUT ROWID;
    "#,
    // 9: alerts (`alerts`, `store::alerts`): the rules (each one JSON spec), the conditions
    // firing now (one row per rule and key: a crossing fires once), and the event log with each
    // event's webhook delivery (pending until delivered, failed after the last retry, or
    // cancelled when its rule changes).
    r#"
    CREATE TABLE alert_rules (
        id         TEXT PRIMARY KEY,
        spec       TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE alert_firing (
        rule_id  TEXT NOT NULL,
        key      TEXT NOT NULL,
        since_ms INTEGER NOT NULL,
        notice   TEXT NOT NULL,
        PRIMARY KEY (rule_id, key)
    ) WITHOUT ROWID;
    CREATE TABLE alert_events (
        id          INTEGER PRIMARY KEY,
        rule_id     TEXT NOT NULL,
        key         TEXT NOT NULL,
        kind        TEXT NOT NULL,
        at_ms       INTEGER NOT NULL,
        notice      TEXT NOT NULL,
        state       TEXT NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        next_ms     INTEGER NOT NULL,
        last_status INTEGER,
        last_error  TEXT
    );
    CREATE INDEX alert_events_pending ON alert_events (rule_id, id) WHERE state = 'pending';
    "#,
];

/// Work a migration does beyond its SQL, in the same transaction.
type Backfill = fn(&rusqlite::Transaction<'_>) -> Result<()>;

/// (the version a migration reaches, its back-fill).
const BACKFILLS: &[(usize, Backfill)] = &[
    (4, super::series::backfill),
    (6, super::rollup::backfill_histograms),
];

/// (the version a migration reaches, what must hold before its SQL runs).
const CHECKS: &[(usize, Backfill)] = &[(TIME_ORDER, fits_time_order)];

/// Migration 5 numbers the executions of one millisecond 0..2^15: refuse a database holding more
/// (none written by ingest can: it refuses the 2^15 + 1st).
fn fits_time_order(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    let crowded: Option<i64> = tx
        .query_row(
            "SELECT ts FROM executions GROUP BY ts HAVING COUNT(*) > ?1 LIMIT 1",
            [super::PER_MILLISECOND],
            |r| r.get(0),
        )
        .optional()?;
    match crowded {
        None => Ok(()),
        Some(ts) => Err(Error::Internal(format!(
            "cannot migrate: more than {} executions share the timestamp {} ms; this version stores at most that many per millisecond",
            super::PER_MILLISECOND,
            ts
        ))),
    }
}

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
        for (version, check) in CHECKS {
            if *version == i + 1 {
                check(&tx)?;
            }
        }
        tx.execute_batch(sql)?;
        for (version, step) in BACKFILLS {
            if *version == i + 1 {
                step(&tx)?;
            }
        }
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    if (1..RECLAIMS).contains(&current) {
        // Migrations 5 and 6 rewrote the executions table and dropped the per-bucket histograms:
        // give their pages back to the disk (a one-off, about as long as the migration itself).
        conn.execute_batch("VACUUM")?;
    }
    Ok(())
}

/// The version whose migration stores executions in time order.
const TIME_ORDER: usize = 5;
/// The last migration that leaves much free space (5, 6): a database older than it is vacuumed
/// once migrated.
const RECLAIMS: usize = 6;

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
            revision: None,
            cost_source: Default::default(),
        }
    }

    fn rollup_rows(c: &Connection) -> Vec<Vec<rusqlite::types::Value>> {
        let mut out = Vec::new();
        for table in [
            "rollup_hour",
            "rollup_day",
            "hist_hour",
            "hist_day",
            "agent_hour",
            "agent_day",
            "agent_week",
            "model_hour",
            "model_day",
        ] {
            // Every column but the write generation, which the back-fill leaves at 0.
            let columns: Vec<String> = c
                .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(|n| n.unwrap())
                .filter(|n: &String| n != "gen")
                .collect();
            let mut stmt = c
                .prepare(&format!(
                    "SELECT {} FROM {table} ORDER BY 1, 2, 3",
                    columns.join(", ")
                ))
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

    /// A database at schema version `v` (with its back-fills).
    fn at_version(v: usize) -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::rollup::register_functions(&c).unwrap();
        for (i, sql) in MIGRATIONS[..v].iter().enumerate() {
            let tx = c.transaction().unwrap();
            tx.execute_batch(sql).unwrap();
            for (version, step) in BACKFILLS {
                if *version == i + 1 {
                    step(&tx).unwrap();
                }
            }
            tx.commit().unwrap();
        }
        c.pragma_update(None, "user_version", v as i64).unwrap();
        c
    }

    #[test]
    fn migration_5_keeps_every_execution_and_orders_them_by_time() {
        let mut c = at_version(4);
        c.execute_batch(
            "INSERT INTO agents (id) VALUES ('a'); INSERT INTO models (name) VALUES ('m');",
        )
        .unwrap();
        // (id, ts) in write order: ties of one millisecond written out of id order, a late row.
        let written = [
            ("k", 5_000),
            ("b", 7_000),
            ("z", 7_000),
            ("a", 7_000),
            ("late", 1_000),
            ("c", 7_001),
            ("y", 7_000),
        ];
        for (i, (id, ts)) in written.iter().enumerate() {
            c.execute(
                "INSERT INTO executions (id, ts, agent, model, prompt_tokens, completion_tokens,
                   cache_read_tokens, cache_write_tokens, cost, duration_ms, success, error,
                   metadata)
                 VALUES (?1, ?2, 1, 1, ?3, 2, 3, 4, ?4, 1.5, 1, 'e', '{\"k\":1}')",
                rusqlite::params![id, ts, i as i64, 1000 * i as i64],
            )
            .unwrap();
        }
        migrate(&mut c).unwrap();
        let rows: Vec<(i64, String, i64, i64, i64, String, String)> = c
            .prepare(
                "SELECT pos, id, ts, prompt_tokens, cost, error, metadata FROM executions
                 ORDER BY pos",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let p = super::super::PER_MILLISECOND;
        // By time, then by write order within a millisecond; every column kept.
        let expected: Vec<(i64, &str, i64, i64)> = vec![
            (1_000 * p, "late", 1_000, 4),
            (5_000 * p, "k", 5_000, 0),
            (7_000 * p, "b", 7_000, 1),
            (7_000 * p + 1, "z", 7_000, 2),
            (7_000 * p + 2, "a", 7_000, 3),
            (7_000 * p + 3, "y", 7_000, 6),
            (7_001 * p, "c", 7_001, 5),
        ];
        assert_eq!(rows.len(), expected.len());
        for (row, (pos, id, ts, i)) in rows.iter().zip(expected) {
            assert_eq!(
                row,
                &(
                    pos,
                    id.to_owned(),
                    ts,
                    i,
                    1000 * i,
                    "e".to_owned(),
                    "{\"k\":1}".to_owned()
                )
            );
        }
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, latest_version());
    }

    #[test]
    fn migration_5_refuses_a_millisecond_it_cannot_number() {
        let mut c = at_version(4);
        c.execute_batch(
            "INSERT INTO agents (id) VALUES ('a'); INSERT INTO models (name) VALUES ('m');",
        )
        .unwrap();
        let tx = c.transaction().unwrap();
        for i in 0..=super::super::PER_MILLISECOND {
            tx.execute(
                "INSERT INTO executions (id, ts, agent, model, prompt_tokens, completion_tokens,
                   cache_read_tokens, cache_write_tokens, cost, success)
                 VALUES (?1, 42, 1, 1, 0, 0, 0, 0, 0, 1)",
                [format!("e{i}")],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        let err = migrate(&mut c).unwrap_err().to_string();
        assert_eq!(
            err,
            "cannot migrate: more than 32768 executions share the timestamp 42 ms; this version stores at most that many per millisecond"
        );
        // Nothing changed: still version 4, every row there.
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, 4);
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM executions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 32769);
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
        let gens = |c: &Connection| -> Vec<i64> {
            c.prepare("SELECT DISTINCT gen FROM agent_hour")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(|g| g.unwrap())
                .collect()
        };
        assert_eq!(gens(&old), vec![0]);
        assert_eq!(gens(&new), vec![1]);
        assert_eq!(rollup_rows(&old), rows);
    }
}
