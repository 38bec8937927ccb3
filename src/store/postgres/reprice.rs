//! `Store::reprice` on PostgreSQL: the estimated and unpriced executions priced again, a chunk
//! of rows (in (ts, id) order) per write transaction; a changed row's old cost goes out of the
//! rollups and its new one in (`sums::Sums`), as a replaced execution's would.

use crate::error::Result;
use crate::store::{CostSource, Priceable, Pricer, Repriced};

use super::sums::{Sums, Taken};

/// Rows looked at per transaction.
const CHUNK: i64 = 5_000;

/// Price the next `CHUNK` estimated or unpriced rows after `after` ((ts, id)) again, in `tx`
/// (whose generation is `gen`); the last (ts, id) looked at, or `None` when there were none.
pub fn chunk(
    tx: &mut postgres::Transaction<'_>,
    gen: i64,
    after: &(i64, String),
    pricer: Pricer<'_>,
    out: &mut Repriced,
) -> Result<Option<(i64, String)>> {
    let rows = tx.query(
        "SELECT e.ts, e.id, e.agent, e.model, m.name, e.prompt_tokens, e.completion_tokens,
                e.cache_read_tokens, e.cache_write_tokens, e.cost, e.duration_ms, e.success,
                e.cost_source, e.metadata
         FROM executions e JOIN models m ON m.key = e.model
         WHERE (e.ts, e.id COLLATE \"C\") > ($1, $2 COLLATE \"C\") AND e.cost_source <> 0
         ORDER BY e.ts, e.id COLLATE \"C\" LIMIT $3",
        &[&after.0, &after.1, &CHUNK],
    )?;
    let mut sums = Sums::default();
    let mut last = None;
    let mut changed = false;
    for r in rows {
        let (ts, id): (i64, String) = (r.get(0), r.get(1));
        out.looked_at += 1;
        let tokens: [i64; 4] = [r.get(5), r.get(6), r.get(7), r.get(8)];
        let metadata: Option<String> = r.get(13);
        let model: String = r.get(4);
        let source: i16 = r.get(12);
        let old = Taken {
            ts,
            agent: r.get(2),
            model: r.get(3),
            tokens: tokens.iter().sum(),
            cost: r.get(9),
            duration_ms: r.get(10),
            success: r.get(11),
            cost_source: CostSource::from_code(i64::from(source)),
        };
        let priced = pricer(&Priceable::of(&model, tokens, metadata.as_deref()));
        let (cost, source) = match priced {
            Some(n) => (n, CostSource::Estimated),
            None => (0, CostSource::Unpriced),
        };
        if (cost, source) != (old.cost, old.cost_source) {
            out.changed += 1;
            out.cost_before += old.cost;
            out.cost_after += cost;
            tx.execute(
                "UPDATE executions SET cost = $3, cost_source = $4, gen = $5
                 WHERE id = $1 AND ts = $2",
                &[&id, &ts, &cost, &source.code(), &gen],
            )?;
            sums.remove(&old);
            sums.add_taken(&Taken {
                cost,
                cost_source: source,
                ..old
            });
            changed = true;
        }
        last = Some((ts, id));
    }
    if changed {
        sums.flush(tx, gen)?;
    }
    Ok(last)
}
