//! The write path: one validated execution at a time into an open transaction, idempotent by id.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension, Transaction};

use crate::error::{Error, Result};
use crate::time::Millis;

use super::pending::{Pending, Stored};
use crate::store::{CostSource, Execution, InsertOutcome};

/// Inserts executions into one transaction, remembering the agent and model keys it has seen and
/// counting what the rollups gain; `finish` writes those before the transaction commits.
pub struct Inserter<'t> {
    tx: &'t Transaction<'t>,
    agents: HashMap<String, (i64, Option<String>)>,
    models: HashMap<String, i64>,
    rollups: Pending,
}

impl<'t> Inserter<'t> {
    pub fn new(tx: &'t Transaction<'t>) -> Self {
        Inserter {
            tx,
            agents: HashMap::new(),
            models: HashMap::new(),
            rollups: Pending::default(),
        }
    }

    /// Add what was inserted to the rollups. Must be called before the transaction commits.
    pub fn finish(mut self) -> Result<()> {
        self.rollups.flush(self.tx)
    }

    pub fn insert(&mut self, e: &Execution) -> Result<InsertOutcome> {
        let agent = self.agent_key(&e.agent_id)?;
        let model = self.model_key(&e.model)?;
        let pos = self.next_pos(e.ts)?;
        let mut outcome = InsertOutcome::Inserted;
        if self.write_row(e, pos, agent, model)? == 0 {
            // A stored execution of this id: replaced when this record's revision is higher.
            match (e.revision, self.stored(&e.id)?) {
                (Some(new), Some((stored_pos, old))) if old.revision.is_some_and(|r| r < new) => {
                    self.tx
                        .prepare_cached("DELETE FROM executions WHERE pos = ?1")?
                        .execute([stored_pos])?;
                    self.rollups.remove(&old);
                    self.write_row(e, pos, agent, model)?;
                    outcome = InsertOutcome::Replaced;
                }
                _ => return Ok(InsertOutcome::Duplicate),
            }
        }
        self.rollups.add(e, agent, model);
        if let Some(name) = &e.agent_name {
            let cached = self
                .agents
                .get_mut(&e.agent_id)
                .expect("agent key cached above");
            if cached.1.as_deref() != Some(name.as_str()) {
                self.tx
                    .prepare_cached("UPDATE agents SET name = ?1 WHERE key = ?2")?
                    .execute(params![name, agent])?;
                cached.1 = Some(name.clone());
            }
        }
        Ok(outcome)
    }

    /// Insert the row of `e` unless its id is stored: the rows written (0 or 1).
    fn write_row(&self, e: &Execution, pos: i64, agent: i64, model: i64) -> Result<usize> {
        Ok(self
            .tx
            .prepare_cached(
                "INSERT INTO executions (id, pos, agent, model, prompt_tokens, completion_tokens,
                   cache_read_tokens, cache_write_tokens, cost, duration_ms, success, error,
                   status_code, session_id, task_type, metadata, revision, cost_source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                   ?17, ?18)
                 ON CONFLICT(id) DO NOTHING",
            )?
            .execute(params![
                e.id,
                pos,
                agent,
                model,
                e.prompt_tokens,
                e.completion_tokens,
                e.cache_read_tokens,
                e.cache_write_tokens,
                e.cost,
                e.duration_ms,
                e.success,
                e.error,
                e.status_code,
                e.session_id,
                e.task_type,
                e.metadata,
                e.revision,
                e.cost_source.code(),
            ])?)
    }

    /// The stored execution of `id` as the rollups counted it, and its `pos`.
    fn stored(&self, id: &str) -> Result<Option<(i64, Stored)>> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT pos, ts, agent, model, prompt_tokens + completion_tokens +
                   cache_read_tokens + cache_write_tokens, prompt_tokens, completion_tokens,
                   cache_read_tokens, cache_write_tokens, cost, duration_ms, success, revision,
                   cost_source
                 FROM executions WHERE id = ?1",
            )?
            .query_row([id], |r| {
                Ok((
                    r.get(0)?,
                    Stored {
                        ts: r.get(1)?,
                        agent: r.get(2)?,
                        model: r.get(3)?,
                        tokens: [r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?],
                        cost: r.get(9)?,
                        duration_ms: r.get(10)?,
                        success: r.get(11)?,
                        revision: r.get(12)?,
                        cost_source: CostSource::from_code(r.get(13)?),
                    },
                ))
            })
            .optional()?)
    }

    /// The next free `pos` of the millisecond `ts` (see `store::PER_MILLISECOND`).
    fn next_pos(&self, ts: Millis) -> Result<i64> {
        let first = super::pos(ts);
        let last: Option<i64> = self
            .tx
            .prepare_cached("SELECT MAX(pos) FROM executions WHERE pos >= ?1 AND pos < ?2")?
            .query_row([first, first + super::PER_MILLISECOND], |r| r.get(0))?;
        match last {
            None => Ok(first),
            Some(p) if p + 1 < first + super::PER_MILLISECOND => Ok(p + 1),
            Some(_) => Err(Error::Invalid {
                field: "timestamp".into(),
                message: format!(
                    "{} already has {} executions, the most one millisecond can hold; spread the timestamps",
                    crate::time::format_utc(ts),
                    super::PER_MILLISECOND
                ),
            }),
        }
    }

    fn agent_key(&mut self, id: &str) -> Result<i64> {
        if let Some((key, _)) = self.agents.get(id) {
            return Ok(*key);
        }
        let found: Option<(i64, Option<String>)> = self
            .tx
            .prepare_cached("SELECT key, name FROM agents WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let entry = match found {
            Some(v) => v,
            None => {
                self.tx
                    .prepare_cached("INSERT INTO agents (id) VALUES (?1)")?
                    .execute([id])?;
                (self.tx.last_insert_rowid(), None)
            }
        };
        let key = entry.0;
        self.agents.insert(id.to_owned(), entry);
        Ok(key)
    }

    fn model_key(&mut self, name: &str) -> Result<i64> {
        if let Some(key) = self.models.get(name) {
            return Ok(*key);
        }
        let found: Option<i64> = self
            .tx
            .prepare_cached("SELECT key FROM models WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?;
        let key = match found {
            Some(k) => k,
            None => {
                self.tx
                    .prepare_cached("INSERT INTO models (name) VALUES (?1)")?
                    .execute([name])?;
                self.tx.last_insert_rowid()
            }
        };
        self.models.insert(name.to_owned(), key);
        Ok(key)
    }
}
