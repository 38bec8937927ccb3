//! `Store::reprice` on SQLite: the estimated and unpriced executions priced again, a chunk of
//! rows (in time order) per write transaction; a changed row's old cost goes out of the rollups
//! and its new one in (`pending::Pending`), as a replaced execution's would.

use rusqlite::{params, Transaction};

use crate::error::Result;
use crate::store::{CostSource, Priceable, Pricer, Repriced};

use super::pending::{Pending, Stored};

/// Rows looked at per transaction.
pub const CHUNK: i64 = 5_000;

/// Price the next `CHUNK` estimated or unpriced rows after `pos` again; the last `pos` looked
/// at, or `None` when there were none.
pub fn chunk(
    tx: &Transaction<'_>,
    after: i64,
    pricer: Pricer<'_>,
    out: &mut Repriced,
) -> Result<Option<i64>> {
    let mut pending = Pending::default();
    let mut last = None;
    let mut changes: Vec<(i64, i64, CostSource)> = Vec::new();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT e.pos, e.ts, e.agent, e.model, m.name, e.prompt_tokens, e.completion_tokens,
                    e.cache_read_tokens, e.cache_write_tokens, e.cost, e.duration_ms, e.success,
                    e.revision, e.cost_source, e.metadata
             FROM executions e JOIN models m ON m.key = e.model
             WHERE e.pos > ?1 AND e.cost_source <> 0 ORDER BY e.pos LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![after, CHUNK])?;
        while let Some(r) = rows.next()? {
            let pos: i64 = r.get(0)?;
            last = Some(pos);
            out.looked_at += 1;
            let model: String = r.get(4)?;
            let tokens: [i64; 4] = [r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?];
            let metadata: Option<String> = r.get(14)?;
            let old = Stored {
                ts: r.get(1)?,
                agent: r.get(2)?,
                model: r.get(3)?,
                tokens,
                cost: r.get(9)?,
                duration_ms: r.get(10)?,
                success: r.get(11)?,
                revision: r.get(12)?,
                cost_source: CostSource::from_code(r.get(13)?),
            };
            let priced = pricer(&Priceable::of(&model, tokens, metadata.as_deref()));
            let (cost, source) = match priced {
                Some(n) => (n, CostSource::Estimated),
                None => (0, CostSource::Unpriced),
            };
            if (cost, source) == (old.cost, old.cost_source) {
                continue;
            }
            out.changed += 1;
            out.cost_before += old.cost;
            out.cost_after += cost;
            pending.remove(&old);
            pending.add_stored(&Stored {
                cost,
                cost_source: source,
                ..old
            });
            changes.push((pos, cost, source));
        }
    }
    for (pos, cost, source) in changes {
        tx.prepare_cached("UPDATE executions SET cost = ?2, cost_source = ?3 WHERE pos = ?1")?
            .execute(params![pos, cost, source.code()])?;
    }
    pending.flush(tx)?;
    Ok(last)
}
