//! Per-agent hourly series for anomaly detection: one grouped pass over a range of executions,
//! by (agent, UTC hour). Hours without executions are absent; the caller fills the gaps.

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OptionalExtension};

use crate::error::Result;
use crate::money::Nanos;
use crate::time::{Millis, Window, HOUR};

const TOKENS: &str =
    "e.prompt_tokens + e.completion_tokens + e.cache_read_tokens + e.cache_write_tokens";

/// Sums over one agent's executions in one hour.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HourStats {
    pub calls: i64,
    pub errors: i64,
    pub tokens: i64,
    pub cost: Nanos,
    /// Per-execution sums of squares and maxima of cost and tokens: the spread of one call, and
    /// whether an hour's excess is down to a single execution.
    pub cost_sq_sum: f64,
    pub tokens_sq_sum: f64,
    pub max_cost: Nanos,
    pub max_tokens: i64,
    /// Successful executions with a known duration, the sum of their durations and of their
    /// squares. Latency is judged on successful calls only: a fast 429 or a 30 s timeout moves
    /// the mean for reasons the error rate already reports.
    pub ok_timed: i64,
    pub ok_duration_sum: f64,
    pub ok_duration_sq_sum: f64,
    /// The slowest successful call (0 without any).
    pub ok_duration_max: f64,
}

/// One non-empty (agent, hour) group; `hour` is the hour's start in UTC milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentHour {
    pub agent_id: String,
    pub hour: Millis,
    pub stats: HourStats,
}

/// Every non-empty (agent, UTC hour) of `range`, optionally for one agent only, ordered by agent
/// id then hour. `range.start` should be an hour boundary, or its first hour is partial.
pub fn agent_hours(c: &Connection, range: &Window, agent: Option<&str>) -> Result<Vec<AgentHour>> {
    let mut cond = String::from("e.ts >= ? AND e.ts < ?");
    let mut params = vec![Value::Integer(range.start), Value::Integer(range.end)];
    if let Some(agent) = agent {
        let key: Option<i64> = c
            .prepare_cached("SELECT key FROM agents WHERE id = ?1")?
            .query_row([agent], |r| r.get(0))
            .optional()?;
        let Some(key) = key else {
            return Ok(Vec::new());
        };
        cond.push_str(" AND e.agent = ?");
        params.push(Value::Integer(key));
    }
    let sql = format!(
        "SELECT a.id, t.h, t.calls, t.errors, t.tokens, t.cost, t.ok_timed, t.ok_sum, t.ok_sq,
                t.cost_sq, t.tokens_sq, t.max_cost, t.max_tokens, t.ok_max FROM (
             SELECT e.agent AS k, e.ts / {HOUR} AS h, COUNT(*) AS calls,
                    SUM(e.success = 0) AS errors,
                    SUM({TOKENS}) AS tokens,
                    SUM(e.cost) AS cost,
                    TOTAL(CAST(e.cost AS REAL) * e.cost) AS cost_sq,
                    TOTAL(CAST({TOKENS} AS REAL) * ({TOKENS})) AS tokens_sq,
                    MAX(e.cost) AS max_cost,
                    MAX({TOKENS}) AS max_tokens,
                    COUNT(CASE WHEN e.success THEN e.duration_ms END) AS ok_timed,
                    TOTAL(CASE WHEN e.success THEN e.duration_ms END) AS ok_sum,
                    TOTAL(CASE WHEN e.success THEN e.duration_ms * e.duration_ms END) AS ok_sq,
                    COALESCE(MAX(CASE WHEN e.success THEN e.duration_ms END), 0.0) AS ok_max
             FROM executions e WHERE {cond} GROUP BY k, h
         ) t JOIN agents a ON a.key = t.k ORDER BY a.id, t.h"
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(params), |r| {
        Ok(AgentHour {
            agent_id: r.get(0)?,
            hour: r.get::<_, i64>(1)? * HOUR,
            stats: HourStats {
                calls: r.get(2)?,
                errors: r.get(3)?,
                tokens: r.get(4)?,
                cost: r.get(5)?,
                ok_timed: r.get(6)?,
                ok_duration_sum: r.get(7)?,
                ok_duration_sq_sum: r.get(8)?,
                cost_sq_sum: r.get(9)?,
                tokens_sq_sum: r.get(10)?,
                max_cost: r.get(11)?,
                max_tokens: r.get(12)?,
                ok_duration_max: r.get(13)?,
            },
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
