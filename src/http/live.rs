//! `GET /api/stream` (SPEC §3.8): Server-Sent Events of the live dashboard. An `execution` event
//! (the `dashboard_get_executions` item shape) for every execution this server ingests, and an
//! `overview` event (the `day` overview) at once and then at most every `interval` seconds when
//! the data changed. Filters `agentId` and `model` apply. The feed never waits for a client: one
//! that falls behind (its buffer full, or the store's feed lagging) is dropped.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Map, Value};
use tokio::sync::{broadcast, mpsc};

use super::error::quote;
use super::rest::{query_args, query_pairs};
use super::{ApiError, AppState};
use crate::catalog;
use crate::dashboard::execution_item;
use crate::store::{Execution, ExecutionRow};

const DEFAULT_INTERVAL_SECS: u64 = 5;
const MAX_INTERVAL_SECS: u64 = 300;
/// Events buffered for one client; a client this far behind is dropped.
const CLIENT_BUFFER: usize = 1024;
const KEEP_ALIVE: Duration = Duration::from_secs(15);

struct Filters {
    interval: Duration,
    agent_id: Option<String>,
    model: Option<String>,
}

fn filters(args: Map<String, Value>) -> Result<Filters, ApiError> {
    let mut f = Filters {
        interval: Duration::from_secs(DEFAULT_INTERVAL_SECS),
        agent_id: None,
        model: None,
    };
    for (k, v) in args {
        let v = v.as_str().unwrap_or_default().to_owned();
        match k.as_str() {
            "interval" => {
                let secs = v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (1..=MAX_INTERVAL_SECS).contains(s))
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "interval",
                            format!(
                                "{} is not a whole number of seconds in 1..={MAX_INTERVAL_SECS}",
                                quote(&v)
                            ),
                        )
                    })?;
                f.interval = Duration::from_secs(secs);
            }
            "agentId" => f.agent_id = Some(v),
            "model" => f.model = Some(v),
            _ => {
                return Err(ApiError::invalid(
                    &k,
                    format!(
                        "unknown parameter {}; allowed are interval, agentId, model",
                        quote(&k)
                    ),
                ))
            }
        }
    }
    Ok(f)
}

pub(crate) async fn stream(State(st): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let f = match query_pairs(query.as_deref())
        .and_then(query_args)
        .and_then(filters)
    {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    // Subscribe before answering, so nothing ingested after the response starts is missed.
    let executions = st.server.dashboard().store.subscribe_executions();
    let (tx, rx) = mpsc::channel::<Event>(CLIENT_BUFFER);
    tokio::spawn(feed(st, f, executions, tx));
    let events = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    })
    .boxed();
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// Feed one client until it goes away, falls behind, or the server stops.
async fn feed(
    st: AppState,
    f: Filters,
    mut executions: broadcast::Receiver<std::sync::Arc<Vec<Execution>>>,
    tx: mpsc::Sender<Event>,
) {
    let store = st.server.dashboard().store.clone();
    let mut tick = tokio::time::interval(f.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent_generation = None;
    loop {
        tokio::select! {
            _ = st.stop.cancelled() => return,
            _ = tx.closed() => return,
            batch = executions.recv() => match batch {
                Ok(batch) => {
                    for e in batch.iter().filter(|e| wanted(&f, e)) {
                        let Ok(data) = serde_json::to_string(&execution_item(row(e))) else { continue };
                        let event = Event::default().event("execution").id(e.id.clone()).data(data);
                        if tx.try_send(event).is_err() {
                            tracing::debug!("live stream client fell behind; dropped");
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(missed_batches = n, "live stream client lagged; dropped");
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                let generation = *store.watch_changes().borrow();
                if sent_generation == Some(generation) {
                    continue;
                }
                sent_generation = Some(generation);
                let Some(data) = overview(&st, f.agent_id.clone()).await else { continue };
                if tx.try_send(Event::default().event("overview").data(data)).is_err() {
                    return;
                }
            }
        }
    }
}

fn wanted(f: &Filters, e: &Execution) -> bool {
    f.agent_id.as_ref().is_none_or(|a| *a == e.agent_id)
        && f.model.as_ref().is_none_or(|m| *m == e.model)
}

/// The `day` overview (of one agent with the filter) as JSON text.
async fn overview(st: &AppState, agent_id: Option<String>) -> Option<String> {
    let d = st.server.dashboard().clone();
    let allow = st.server.allow_writes();
    let mut args = Map::new();
    args.insert("timeframe".into(), "day".into());
    if let Some(a) = agent_id {
        args.insert("agentId".into(), a.into());
    }
    let out = tokio::task::spawn_blocking(move || {
        catalog::call(&d, allow, "dashboard_get_overview", Some(args))
    })
    .await;
    match out {
        Ok(Ok(v)) => serde_json::to_string(&v).ok(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "live overview failed");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "live overview task failed");
            None
        }
    }
}

/// A stored execution as the row the executions tool reads.
fn row(e: &Execution) -> ExecutionRow {
    ExecutionRow {
        id: e.id.clone(),
        ts: e.ts,
        agent_id: e.agent_id.clone(),
        model: e.model.clone(),
        prompt_tokens: e.prompt_tokens,
        completion_tokens: e.completion_tokens,
        cache_read_tokens: e.cache_read_tokens,
        cache_write_tokens: e.cache_write_tokens,
        cost: e.cost,
        duration_ms: e.duration_ms,
        success: e.success,
        error: e.error.clone(),
        status_code: e.status_code,
        session_id: e.session_id.clone(),
        task_type: e.task_type.clone(),
        metadata: e.metadata.clone(),
        cost_source: e.cost_source,
    }
}
