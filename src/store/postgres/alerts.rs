//! `AlertLog` on PostgreSQL, as on SQLite. Several replicas may evaluate and deliver at once:
//! the firing table's key makes a crossing fire once, and claims skip rows another replica has
//! locked.

use postgres::{GenericClient, Row};

use crate::error::Result;
use crate::store::alerts::{
    attempt_columns, AlertEvent, AlertLog, Attempt, DeliveryState, EventKind, Firing, StoredRule,
    Transition, EVENT_COLUMNS, KEPT_EVENTS,
};
use crate::time::Millis;

use super::{sync, PgStore};

fn event_of(r: &Row) -> AlertEvent {
    AlertEvent {
        id: r.get(0),
        rule: r.get(1),
        key: r.get(2),
        kind: EventKind::parse(r.get(3)),
        at: r.get(4),
        notice: r.get(5),
        state: DeliveryState::parse(r.get(6)),
        attempts: r.get::<_, i32>(7).max(0) as u32,
        next: r.get(8),
        last_status: r.get::<_, Option<i32>>(9).map(|s| s.clamp(0, 999) as u16),
        last_error: r.get(10),
    }
}

impl PgStore {
    /// Run `f` in a transaction of its own (no generation bump).
    fn alert_write<T>(
        &self,
        mut f: impl FnMut(&mut postgres::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        sync(|| {
            self.with_client(|c, committed| {
                let mut tx = c.transaction()?;
                let out = f(&mut tx)?;
                committed.set(true);
                tx.commit()?;
                Ok(out)
            })
        })
    }

    fn alert_read<T>(&self, f: impl Fn(&mut postgres::Client) -> Result<T>) -> Result<T> {
        sync(|| self.with_client(|c, _| f(c)))
    }
}

fn reset(c: &mut impl GenericClient, id: &str) -> Result<()> {
    c.execute("DELETE FROM alert_firing WHERE rule_id = $1", &[&id])?;
    c.execute(
        "UPDATE alert_events SET state = 'cancelled' WHERE rule_id = $1 AND state = 'pending'",
        &[&id],
    )?;
    Ok(())
}

impl AlertLog for PgStore {
    fn rules(&self) -> Result<Vec<StoredRule>> {
        self.alert_read(|c| {
            Ok(c.query(
                "SELECT id, spec, created_ms FROM alert_rules ORDER BY id",
                &[],
            )?
            .iter()
            .map(|r| StoredRule {
                id: r.get(0),
                spec: r.get(1),
                created: r.get(2),
            })
            .collect())
        })
    }

    fn put_rule(&self, rule: &StoredRule) -> Result<bool> {
        self.alert_write(|tx| {
            let old: Option<String> = tx
                .query_opt(
                    "SELECT spec FROM alert_rules WHERE id = $1 FOR UPDATE",
                    &[&rule.id],
                )?
                .map(|r| r.get(0));
            match &old {
                Some(spec) if *spec == rule.spec => return Ok(true),
                Some(_) => {
                    reset(tx, &rule.id)?;
                    tx.execute(
                        "UPDATE alert_rules SET spec = $2 WHERE id = $1",
                        &[&rule.id, &rule.spec],
                    )?;
                }
                None => {
                    tx.execute(
                        "INSERT INTO alert_rules (id, spec, created_ms) VALUES ($1, $2, $3)
                         ON CONFLICT (id) DO UPDATE SET spec = EXCLUDED.spec",
                        &[&rule.id, &rule.spec, &rule.created],
                    )?;
                }
            }
            Ok(old.is_some())
        })
    }

    fn remove_rule(&self, id: &str) -> Result<bool> {
        if id.contains('\0') {
            return Ok(false); // PostgreSQL text holds no NUL: no such rule.
        }
        self.alert_write(|tx| {
            reset(tx, id)?;
            Ok(tx.execute("DELETE FROM alert_rules WHERE id = $1", &[&id])? > 0)
        })
    }

    fn firing(&self) -> Result<Vec<Firing>> {
        self.alert_read(|c| {
            Ok(c.query(
                "SELECT rule_id, key, since_ms, notice FROM alert_firing
                 ORDER BY since_ms, rule_id, key",
                &[],
            )?
            .iter()
            .map(|r| Firing {
                rule: r.get(0),
                key: r.get(1),
                since: r.get(2),
                notice: r.get(3),
            })
            .collect())
        })
    }

    fn record(&self, changes: &[Transition]) -> Result<usize> {
        if changes.is_empty() {
            return Ok(0);
        }
        self.alert_write(|tx| {
            let mut written = 0;
            for t in changes {
                let changed = match t.kind {
                    EventKind::Fired => tx.execute(
                        "INSERT INTO alert_firing (rule_id, key, since_ms, notice)
                         SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM alert_rules WHERE id = $1)
                         ON CONFLICT (rule_id, key) DO NOTHING",
                        &[&t.rule, &t.key, &t.at, &t.notice],
                    )?,
                    EventKind::Resolved => tx.execute(
                        "DELETE FROM alert_firing WHERE rule_id = $1 AND key = $2",
                        &[&t.rule, &t.key],
                    )?,
                };
                if changed == 0 || t.quiet {
                    continue;
                }
                tx.execute(
                    "INSERT INTO alert_events (rule_id, key, kind, at_ms, notice, state, next_ms)
                     VALUES ($1, $2, $3, $4, $5, 'pending', $6)",
                    &[&t.rule, &t.key, &t.kind.as_str(), &t.at, &t.notice, &t.due],
                )?;
                written += 1;
            }
            if written > 0 {
                tx.execute(
                    "DELETE FROM alert_events WHERE state <> 'pending'
                     AND id <= (SELECT MAX(id) FROM alert_events) - $1",
                    &[&KEPT_EVENTS],
                )?;
            }
            Ok(written)
        })
    }

    fn claim(&self, now: Millis, lease: Millis, limit: usize) -> Result<Vec<AlertEvent>> {
        let limit = limit as i64;
        self.alert_write(|tx| {
            let mut out: Vec<AlertEvent> = tx
                .query(
                    &format!(
                        "UPDATE alert_events SET next_ms = $2
                         WHERE next_ms <= $1 AND state = 'pending' AND id IN (
                           SELECT e.id FROM alert_events e
                           WHERE e.state = 'pending' AND e.next_ms <= $1
                             AND NOT EXISTS (SELECT 1 FROM alert_events o
                               WHERE o.rule_id = e.rule_id AND o.state = 'pending' AND o.id < e.id)
                           ORDER BY e.id LIMIT $3 FOR UPDATE SKIP LOCKED)
                         RETURNING {EVENT_COLUMNS}"
                    ),
                    &[&now, &lease, &limit],
                )?
                .iter()
                .map(event_of)
                .collect();
            out.sort_by_key(|e| e.id);
            Ok(out)
        })
    }

    fn attempted(&self, id: i64, attempt: &Attempt) -> Result<()> {
        let (state, status, error, next) = attempt_columns(attempt);
        let status = status.map(|s| s as i32);
        self.alert_write(|tx| {
            tx.execute(
                "UPDATE alert_events SET state = $2, attempts = attempts + 1, last_status = $3,
                   last_error = $4, next_ms = COALESCE($5, next_ms)
                 WHERE id = $1 AND state = 'pending'",
                &[&id, &state, &status, &error, &next],
            )?;
            Ok(())
        })
    }

    fn events(&self, limit: usize) -> Result<Vec<AlertEvent>> {
        let limit = limit as i64;
        self.alert_read(|c| {
            Ok(c.query(
                &format!("SELECT {EVENT_COLUMNS} FROM alert_events ORDER BY id DESC LIMIT $1"),
                &[&limit],
            )?
            .iter()
            .map(event_of)
            .collect())
        })
    }
}
