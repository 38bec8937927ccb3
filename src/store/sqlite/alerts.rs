//! `AlertLog` on SQLite: reads on a pooled reader, writes on the writer connection in their own
//! transactions (no generation bump: alerts change no dashboard answer).

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::error::Result;
use crate::store::alerts::{
    attempt_columns, AlertEvent, AlertLog, Attempt, DeliveryState, EventKind, Firing, StoredRule,
    Transition, EVENT_COLUMNS, KEPT_EVENTS,
};
use crate::time::Millis;

use super::SqliteStore;

fn event_of(r: &Row<'_>) -> rusqlite::Result<AlertEvent> {
    Ok(AlertEvent {
        id: r.get(0)?,
        rule: r.get(1)?,
        key: r.get(2)?,
        kind: EventKind::parse(&r.get::<_, String>(3)?),
        at: r.get(4)?,
        notice: r.get(5)?,
        state: DeliveryState::parse(&r.get::<_, String>(6)?),
        attempts: r.get::<_, i64>(7)?.max(0) as u32,
        next: r.get(8)?,
        last_status: r.get::<_, Option<i64>>(9)?.map(|s| s.clamp(0, 999) as u16),
        last_error: r.get(10)?,
    })
}

impl SqliteStore {
    /// Run `f` in a write transaction of its own on the writer connection.
    fn alert_write<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

/// Forget a rule's firing conditions and cancel its pending deliveries.
fn reset(c: &Connection, id: &str) -> Result<()> {
    c.execute("DELETE FROM alert_firing WHERE rule_id = ?1", [id])?;
    c.execute(
        "UPDATE alert_events SET state = 'cancelled' WHERE rule_id = ?1 AND state = 'pending'",
        [id],
    )?;
    Ok(())
}

impl AlertLog for SqliteStore {
    fn rules(&self) -> Result<Vec<StoredRule>> {
        self.with_reader(|c| {
            let mut stmt =
                c.prepare_cached("SELECT id, spec, created_ms FROM alert_rules ORDER BY id")?;
            let rows = stmt.query_map([], |r| {
                Ok(StoredRule {
                    id: r.get(0)?,
                    spec: r.get(1)?,
                    created: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn put_rule(&self, rule: &StoredRule) -> Result<bool> {
        self.alert_write(|c| {
            let old: Option<String> = c
                .query_row(
                    "SELECT spec FROM alert_rules WHERE id = ?1",
                    [&rule.id],
                    |r| r.get(0),
                )
                .optional()?;
            match &old {
                Some(spec) if *spec == rule.spec => return Ok(true),
                Some(_) => {
                    reset(c, &rule.id)?;
                    c.execute(
                        "UPDATE alert_rules SET spec = ?2 WHERE id = ?1",
                        params![rule.id, rule.spec],
                    )?;
                }
                None => {
                    c.execute(
                        "INSERT INTO alert_rules (id, spec, created_ms) VALUES (?1, ?2, ?3)",
                        params![rule.id, rule.spec, rule.created],
                    )?;
                }
            }
            Ok(old.is_some())
        })
    }

    fn remove_rule(&self, id: &str) -> Result<bool> {
        self.alert_write(|c| {
            reset(c, id)?;
            Ok(c.execute("DELETE FROM alert_rules WHERE id = ?1", [id])? > 0)
        })
    }

    fn firing(&self) -> Result<Vec<Firing>> {
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT rule_id, key, since_ms, notice FROM alert_firing ORDER BY since_ms, rule_id, key",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Firing {
                    rule: r.get(0)?,
                    key: r.get(1)?,
                    since: r.get(2)?,
                    notice: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn record(&self, changes: &[Transition]) -> Result<usize> {
        if changes.is_empty() {
            return Ok(0);
        }
        self.alert_write(|c| {
            let mut written = 0;
            for t in changes {
                let changed = match t.kind {
                    EventKind::Fired => c.execute(
                        "INSERT INTO alert_firing (rule_id, key, since_ms, notice)
                         SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM alert_rules WHERE id = ?1)
                         ON CONFLICT (rule_id, key) DO NOTHING",
                        params![t.rule, t.key, t.at, t.notice],
                    )?,
                    EventKind::Resolved => c.execute(
                        "DELETE FROM alert_firing WHERE rule_id = ?1 AND key = ?2",
                        params![t.rule, t.key],
                    )?,
                };
                if changed == 0 || t.quiet {
                    continue;
                }
                c.execute(
                    "INSERT INTO alert_events (rule_id, key, kind, at_ms, notice, state, next_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6)",
                    params![t.rule, t.key, t.kind.as_str(), t.at, t.notice, t.due],
                )?;
                written += 1;
            }
            if written > 0 {
                c.execute(
                    "DELETE FROM alert_events WHERE state <> 'pending'
                     AND id <= (SELECT MAX(id) FROM alert_events) - ?1",
                    [KEPT_EVENTS],
                )?;
            }
            Ok(written)
        })
    }

    fn claim(&self, now: Millis, lease: Millis, limit: usize) -> Result<Vec<AlertEvent>> {
        // Most ticks find nothing due: asked on a reader, so they never wait for the writer.
        let due = self.with_reader(|c| {
            Ok(c.prepare_cached(
                "SELECT 1 FROM alert_events WHERE state = 'pending' AND next_ms <= ?1 LIMIT 1",
            )?
            .exists([now])?)
        })?;
        if !due {
            return Ok(Vec::new());
        }
        self.alert_write(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "UPDATE alert_events SET next_ms = ?2
                 WHERE id IN (
                   SELECT e.id FROM alert_events e
                   WHERE e.state = 'pending' AND e.next_ms <= ?1
                     AND NOT EXISTS (SELECT 1 FROM alert_events o
                       WHERE o.rule_id = e.rule_id AND o.state = 'pending' AND o.id < e.id)
                   ORDER BY e.id LIMIT ?3)
                 RETURNING {EVENT_COLUMNS}"
            ))?;
            let rows = stmt.query_map(params![now, lease, limit as i64], event_of)?;
            let mut out: Vec<AlertEvent> = rows.collect::<rusqlite::Result<_>>()?;
            out.sort_by_key(|e| e.id);
            Ok(out)
        })
    }

    fn attempted(&self, id: i64, attempt: &Attempt) -> Result<()> {
        let (state, status, error, next) = attempt_columns(attempt);
        self.alert_write(|c| {
            c.execute(
                "UPDATE alert_events SET state = ?2, attempts = attempts + 1, last_status = ?3,
                   last_error = ?4, next_ms = COALESCE(?5, next_ms)
                 WHERE id = ?1 AND state = 'pending'",
                params![id, state, status, error, next],
            )?;
            Ok(())
        })
    }

    fn events(&self, limit: usize) -> Result<Vec<AlertEvent>> {
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM alert_events ORDER BY id DESC LIMIT ?1"
            ))?;
            let rows = stmt.query_map([limit as i64], event_of)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}
