//! The replica's listener thread: `LISTEN` for every replica's writes, move the change watch
//! on, read other replicas' rows for the live feed, and connect again when the connection is
//! lost.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;

use crate::error::Result;
use crate::store::{CostSource, Execution};

use super::{connect, Shared, CHANNEL, LISTEN_TICK, RECONNECT};

/// The listener's two connections: one `LISTEN`s, one reads other replicas' batches.
pub(super) struct Listening {
    listen: Client,
    fetch: Client,
}

impl Listening {
    pub(super) fn connect(url: &str) -> Result<Listening> {
        let mut listen = connect(url)?;
        listen.batch_execute(&format!("LISTEN {CHANNEL}"))?;
        Ok(Listening {
            listen,
            fetch: connect(url)?,
        })
    }
}

/// The listener: each notification moves `changed` on and, for other replicas' writes,
/// broadcasts the executions written under that generation when anyone listens. A lost
/// connection is made again (every `RECONNECT`) and `changed` is then set from the database,
/// as notifications sent meanwhile are lost.
pub(super) fn listen_loop(mut conn: Listening, url: &str, shared: &Shared) {
    while !shared.stop.load(Ordering::Acquire) {
        let mut gens: Vec<i64> = Vec::new();
        // Other replicas' generations that wrote rows, and the time span of those rows.
        let mut others: Vec<i64> = Vec::new();
        let mut span: Option<(i64, i64)> = None;
        let mut lost = false;
        {
            let mut n = conn.listen.notifications();
            let mut it = n.timeout_iter(LISTEN_TICK);
            loop {
                match it.next() {
                    Ok(Some(note)) => {
                        let mut parts = note.payload().split(':');
                        let origin = parts.next().unwrap_or_default();
                        let mut num = || parts.next().and_then(|p| p.parse::<i64>().ok());
                        let (gen, lo, hi) = (num(), num(), num());
                        if let Some(g) = gen {
                            gens.push(g);
                            if let (true, Some(lo), Some(hi)) = (origin != shared.origin, lo, hi) {
                                others.push(g);
                                span = Some(span.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "the database listener lost its connection");
                        lost = true;
                        break;
                    }
                }
                if gens.len() >= 64 {
                    break;
                }
            }
        }
        if lost || conn.listen.is_closed() || conn.fetch.is_closed() {
            conn = loop {
                if shared.stop.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(RECONNECT);
                match Listening::connect(url) {
                    Ok(mut c) => {
                        if let Ok(row) = c.fetch.query_one("SELECT generation FROM meta", &[]) {
                            shared.committed(row.get::<_, i64>(0) as u64);
                        }
                        tracing::info!("the database listener is connected again");
                        break c;
                    }
                    Err(e) => tracing::warn!(error = %e, "the database listener cannot connect"),
                }
            };
            continue;
        }
        let Some(&latest) = gens.iter().max() else {
            continue;
        };
        if let (Some(span), true) = (span, shared.inserted.receiver_count() > 0) {
            match feed_batches(&mut conn.fetch, &others, span) {
                Ok(batches) => {
                    for batch in batches {
                        let _ = shared.inserted.send(Arc::new(batch));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read a write for the live feed"),
            }
        }
        shared.committed(latest as u64);
    }
}

/// The executions written under the generations `gens`, all within `span` (first and last
/// `ts`: the partitions to read), one batch per generation in generation order, as the live
/// feed sends them.
fn feed_batches(c: &mut Client, gens: &[i64], span: (i64, i64)) -> Result<Vec<Vec<Execution>>> {
    let mut batches: std::collections::BTreeMap<i64, Vec<Execution>> = Default::default();
    let rows = c.query(
        "SELECT e.id, e.ts, a.id, a.name, m.name, e.prompt_tokens, e.completion_tokens,
                e.cache_read_tokens, e.cache_write_tokens, e.cost, e.duration_ms, e.success,
                e.error, e.status_code, e.session_id, e.task_type, e.metadata, e.gen,
                e.revision, e.cost_source
         FROM executions e JOIN agents a ON a.key = e.agent JOIN models m ON m.key = e.model
         WHERE e.gen = ANY($1) AND e.ts >= $2 AND e.ts <= $3
         ORDER BY e.gen, e.ts, e.id COLLATE \"C\"",
        &[&gens, &span.0, &span.1],
    )?;
    for r in rows {
        batches.entry(r.get(17)).or_default().push(Execution {
            id: r.get(0),
            ts: r.get(1),
            agent_id: r.get(2),
            agent_name: r.get(3),
            model: r.get(4),
            prompt_tokens: r.get(5),
            completion_tokens: r.get(6),
            cache_read_tokens: r.get(7),
            cache_write_tokens: r.get(8),
            cost: r.get(9),
            duration_ms: r.get(10),
            success: r.get(11),
            error: r.get(12),
            status_code: r.get(13),
            session_id: r.get(14),
            task_type: r.get(15),
            metadata: r.get(16),
            revision: r.get(18),
            cost_source: CostSource::from_code(i64::from(r.get::<_, i16>(19))),
        });
    }
    Ok(batches.into_values().collect())
}
