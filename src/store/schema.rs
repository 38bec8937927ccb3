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
];

/// Bring the schema up to date. A database newer than this binary is refused.
pub fn migrate(conn: &mut Connection) -> Result<()> {
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
}
