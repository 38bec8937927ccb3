//! The PostgreSQL schema: an append-only list of migrations, tracked in `schema_migrations`
//! and applied under an advisory lock (replicas starting together migrate once), and the
//! monthly partitions of `executions`, created as rows arrive.
//!
//! Layout (see ARCHITECTURE.md, "Scale-out"):
//! - `executions` is range-partitioned by `ts` (UTC milliseconds), one partition per calendar
//!   month (`executions_pYYYYMM`): old data leaves with `DROP TABLE` of a partition (after
//!   deleting its months from the rollups). A unique index of a partitioned table must hold the
//!   partition key, so idempotency by id lives in `execution_ids` (one row per id).
//! - Amounts are `bigint` nano-dollars; the detector's sums of squares are `numeric` (exact).
//! - `meta.generation` is the data generation every write transaction bumps first: the lock on
//!   that row orders writers of every replica, and readers compare it for the cache.

use chrono::{Datelike, TimeZone, Utc};
use postgres::Client;

use crate::error::{Error, Result};
use crate::time::Millis;

/// The advisory lock key migrations run under (any constant; "dmcp" in ASCII).
const MIGRATION_LOCK: i64 = 0x646d_6370;

const MIGRATIONS: &[&str] = &[
    // 1: everything.
    "CREATE TABLE meta (
        one        boolean PRIMARY KEY DEFAULT true CHECK (one),
        generation bigint NOT NULL
     );
     INSERT INTO meta (one, generation) VALUES (true, 0);
     CREATE TABLE agents (
        key  serial PRIMARY KEY,
        id   text NOT NULL UNIQUE,
        name text
     );
     CREATE TABLE models (
        key  serial PRIMARY KEY,
        name text NOT NULL UNIQUE
     );
     CREATE TABLE execution_ids (id text PRIMARY KEY);
     CREATE TABLE executions (
        id                 text NOT NULL,
        ts                 bigint NOT NULL,
        agent              integer NOT NULL,
        model              integer NOT NULL,
        prompt_tokens      bigint NOT NULL,
        completion_tokens  bigint NOT NULL,
        cache_read_tokens  bigint NOT NULL,
        cache_write_tokens bigint NOT NULL,
        cost               bigint NOT NULL,
        duration_ms        double precision,
        success            boolean NOT NULL,
        error              text,
        status_code        bigint,
        session_id         text,
        task_type          text,
        metadata           text,
        gen                bigint NOT NULL
     ) PARTITION BY RANGE (ts);
     CREATE INDEX executions_ts ON executions (ts);
     CREATE INDEX executions_agent_ts ON executions (agent, ts);
     -- Rows arrive in generation order: a BRIN index finds a generation's rows (the live feed of
     -- other replicas) for almost nothing per row.
     CREATE INDEX executions_gen ON executions USING brin (gen);
     CREATE TABLE budgets (
        scope       text PRIMARY KEY,
        limit_nanos bigint NOT NULL CHECK (limit_nanos > 0),
        period      text NOT NULL CHECK (period IN ('day', 'week', 'month')),
        thresholds  text NOT NULL
     );
     -- The rollups, by hour and by day, at four levels: a question reads the smallest that has
     -- the columns it needs (a quarter's total is 90 rows, not every agent × model of 90 days).
     CREATE TABLE rollup_hour (
        hour         bigint NOT NULL,
        agent        integer NOT NULL,
        model        integer NOT NULL,
        calls        bigint NOT NULL,
        errors       bigint NOT NULL,
        tokens       bigint NOT NULL,
        cost         bigint NOT NULL,
        timed        bigint NOT NULL,
        duration_sum double precision NOT NULL,
        PRIMARY KEY (hour, agent, model)
     );
     CREATE TABLE rollup_day (LIKE rollup_hour INCLUDING ALL);
     ALTER TABLE rollup_day RENAME COLUMN hour TO day;
     CREATE TABLE agent_rollup_hour (LIKE rollup_hour INCLUDING ALL);
     ALTER TABLE agent_rollup_hour DROP COLUMN model;
     ALTER TABLE agent_rollup_hour ADD PRIMARY KEY (hour, agent);
     CREATE TABLE agent_rollup_day (LIKE agent_rollup_hour INCLUDING ALL);
     ALTER TABLE agent_rollup_day RENAME COLUMN hour TO day;
     CREATE TABLE model_rollup_hour (LIKE rollup_hour INCLUDING ALL);
     ALTER TABLE model_rollup_hour DROP COLUMN agent;
     ALTER TABLE model_rollup_hour ADD PRIMARY KEY (hour, model);
     CREATE TABLE model_rollup_day (LIKE model_rollup_hour INCLUDING ALL);
     ALTER TABLE model_rollup_day RENAME COLUMN hour TO day;
     CREATE TABLE total_hour (LIKE agent_rollup_hour INCLUDING ALL);
     ALTER TABLE total_hour DROP COLUMN agent;
     ALTER TABLE total_hour ADD PRIMARY KEY (hour);
     CREATE TABLE total_day (LIKE total_hour INCLUDING ALL);
     ALTER TABLE total_day RENAME COLUMN hour TO day;
     CREATE TABLE agent_hour (
        hour         bigint NOT NULL,
        agent        integer NOT NULL,
        calls        bigint NOT NULL,
        errors       bigint NOT NULL,
        tokens       bigint NOT NULL,
        cost         bigint NOT NULL,
        cost_sq      numeric NOT NULL,
        tokens_sq    numeric NOT NULL,
        max_cost     bigint NOT NULL,
        max_tokens   bigint NOT NULL,
        ok_timed     bigint NOT NULL,
        ok_us        numeric NOT NULL,
        ok_ms_sq     numeric NOT NULL,
        ok_max_us    bigint NOT NULL,
        gen          bigint NOT NULL,
        PRIMARY KEY (hour, agent)
     );
     CREATE INDEX agent_hour_gen ON agent_hour (gen);
     -- Latency histograms, one row per agent (0: all agents) and hour, day or 7-day block
     -- (day / 7): the (bucket, count) pairs as varint blobs (store::plan::encode_counts).
     CREATE TABLE hist_hour (
        agent  integer NOT NULL,
        hour   bigint NOT NULL,
        counts bytea NOT NULL,
        PRIMARY KEY (agent, hour)
     );
     CREATE TABLE hist_day (LIKE hist_hour INCLUDING ALL);
     ALTER TABLE hist_day RENAME COLUMN hour TO day;
     CREATE TABLE hist_week (LIKE hist_hour INCLUDING ALL);
     ALTER TABLE hist_week RENAME COLUMN hour TO week;",
    // 2: real usage in (`sources`), as SQLite's migration 8: an execution's `revision` (also
    // in `execution_ids`, with its `ts`, so the stored row of an id is found in its partition)
    // and `cost_source` (0 reported, 1 estimated, 2 unpriced); the agent × model rollups count
    // estimated cost and calls and unpriced calls; `source_cursors` holds where log imports
    // stopped.
    "ALTER TABLE execution_ids ADD COLUMN ts bigint, ADD COLUMN revision bigint;
     ALTER TABLE executions ADD COLUMN revision bigint,
       ADD COLUMN cost_source smallint NOT NULL DEFAULT 0;
     ALTER TABLE rollup_hour ADD COLUMN estimated_cost bigint NOT NULL DEFAULT 0,
       ADD COLUMN estimated bigint NOT NULL DEFAULT 0,
       ADD COLUMN unpriced bigint NOT NULL DEFAULT 0;
     ALTER TABLE rollup_day ADD COLUMN estimated_cost bigint NOT NULL DEFAULT 0,
       ADD COLUMN estimated bigint NOT NULL DEFAULT 0,
       ADD COLUMN unpriced bigint NOT NULL DEFAULT 0;
     CREATE TABLE source_cursors (
        source text NOT NULL,
        path   text NOT NULL,
        read_to bigint NOT NULL,
        line   bigint NOT NULL,
        head   text NOT NULL,
        state  text,
        PRIMARY KEY (source, path)
     );",
    // 3: alerts, as SQLite's migration 9: the rules, the conditions firing now, and the event
    // log with each event's webhook delivery.
    "CREATE TABLE alert_rules (
        id         text PRIMARY KEY,
        spec       text NOT NULL,
        created_ms bigint NOT NULL
     );
     CREATE TABLE alert_firing (
        rule_id  text NOT NULL,
        key      text NOT NULL,
        since_ms bigint NOT NULL,
        notice   text NOT NULL,
        PRIMARY KEY (rule_id, key)
     );
     CREATE TABLE alert_events (
        id          bigserial PRIMARY KEY,
        rule_id     text NOT NULL,
        key         text NOT NULL,
        kind        text NOT NULL,
        at_ms       bigint NOT NULL,
        notice      text NOT NULL,
        state       text NOT NULL,
        attempts    integer NOT NULL DEFAULT 0,
        next_ms     bigint NOT NULL,
        last_status integer,
        last_error  text
     );
     CREATE INDEX alert_events_pending ON alert_events (rule_id, id) WHERE state = 'pending';",
];

/// Apply the migrations this database has not seen, each in its own transaction.
pub fn migrate(c: &mut Client) -> Result<()> {
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .or_else(|e| {
        // Two replicas creating it at once: one wins, the other sees it exists.
        if matches!(
            e.code(),
            Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
                | Some(&postgres::error::SqlState::DUPLICATE_TABLE)
        ) {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i as i32 + 1;
        let mut tx = c.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        let done: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)",
                &[&version],
            )?
            .get(0);
        if !done {
            tx.batch_execute(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[&version],
            )?;
        }
        tx.commit()?;
    }
    let newest: Option<i32> = c
        .query_one("SELECT MAX(version) FROM schema_migrations", &[])?
        .get(0);
    if newest.unwrap_or(0) as usize > MIGRATIONS.len() {
        return Err(Error::Internal(format!(
            "the database was migrated by a newer dashboard-mcp (schema version {}, this one knows {})",
            newest.unwrap_or(0),
            MIGRATIONS.len()
        )));
    }
    Ok(())
}

/// The calendar month (UTC) holding `ts`: its partition's name and `[start, end)` in ms.
pub fn month_of(ts: Millis) -> (String, Millis, Millis) {
    let t = Utc
        .timestamp_millis_opt(ts)
        .single()
        .unwrap_or_else(|| Utc.timestamp_millis_opt(0).unwrap());
    let (y, m) = (t.year(), t.month());
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let start = Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).unwrap();
    let end = Utc.with_ymd_and_hms(ny, nm, 1, 0, 0, 0).unwrap();
    (
        format!("executions_p{y:04}{m:02}"),
        start.timestamp_millis(),
        end.timestamp_millis(),
    )
}

/// Make sure the partition of each month in `months` exists (outside the write transaction:
/// DDL there would hold its lock until commit). A partition is made as a table of its own and
/// then attached: `ATTACH PARTITION` locks `executions` against other DDL only, where `CREATE
/// TABLE … PARTITION OF` would wait for every open transaction on it (a long import of another
/// replica) while every new read queued behind it. Another replica doing the same at once is
/// fine.
pub fn ensure_partitions(c: &mut Client, months: &[(String, Millis, Millis)]) -> Result<()> {
    let attached = |c: &mut Client, name: &str| -> Result<bool> {
        Ok(c.query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhrelid
                 WHERE p.relname = $1 AND i.inhparent = 'executions'::regclass)",
            &[&name],
        )?
        .get(0))
    };
    for (name, start, end) in months {
        if attached(c, name)? {
            continue;
        }
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {name}
               (LIKE executions INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        );
        if let Err(e) = c.batch_execute(&create) {
            let raced = matches!(
                e.code(),
                Some(&postgres::error::SqlState::DUPLICATE_TABLE)
                    | Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
            );
            if !raced {
                return Err(e.into());
            }
        }
        let attach = format!(
            "ALTER TABLE executions ATTACH PARTITION {name} FOR VALUES FROM ({start}) TO ({end})"
        );
        if let Err(e) = c.batch_execute(&attach) {
            // Attached meanwhile by another replica: fine.
            if !attached(c, name)? {
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// The month of `now` and the next one: made at start, so writes of the present rarely
/// make one.
pub fn present_months(now: Millis) -> Vec<(String, Millis, Millis)> {
    let this = month_of(now);
    let next = month_of(this.2);
    vec![this, next]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_calendar_months_in_utc() {
        let (name, s, e) = month_of(1_764_547_200_000); // 2025-12-01T00:00:00Z
        assert_eq!(name, "executions_p202512");
        assert_eq!(s, 1_764_547_200_000);
        assert_eq!(e, 1_767_225_600_000); // 2026-01-01
        let (name, s, _) = month_of(1_764_547_199_999);
        assert_eq!(name, "executions_p202511");
        assert_eq!(s, 1_761_955_200_000); // 2025-11-01
    }
}
