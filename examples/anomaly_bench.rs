//! Measures anomaly detection by hand (see docs/anomalies.md):
//!
//! - `cargo run --release --example anomaly_bench -- speed [EVENTS]`: a 30-day
//!   `dashboard_get_anomalies` over 200 agents (the §6 density by default: 10M executions per 90
//!   days, so 4.9M in the 44 days the window and its 14-day history cover), split into the SQL
//!   pass and the detector, plus the overview's `day` window.
//! - `cargo run --release --example anomaly_bench -- eval [SEEDS]`: precision and recall against
//!   labelled demo data over several seeds and clock positions.
#![allow(clippy::print_stdout)]

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use dashboard_mcp::anomaly::{AgentSeries, Scope, HISTORY};
use dashboard_mcp::demo::{self, DemoConfig};
use dashboard_mcp::store::{Agents, Execution, HourSums, SqliteStore, Store};
use dashboard_mcp::time::{parse_rfc3339, Clock, Millis, Window, Zone, DAY, HOUR};
use dashboard_mcp::wire::{AnomaliesInput, OverviewInput, Severity, Timeframe};
use dashboard_mcp::{ingest, Dashboard};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = |i: usize, default: u64| args.get(i).map_or(default, |s| s.parse().unwrap());
    match args.first().map(String::as_str) {
        Some("eval") => eval(n(1, 8)),
        _ => speed(n(1, 4_900_000)),
    }
}

fn now() -> Millis {
    parse_rfc3339("now", "2026-11-23T14:20:00Z").unwrap()
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn speed(events: u64) {
    // ANOMALY_BENCH_DB=path keeps (and reuses) the database between runs.
    let dir = tempfile::tempdir().unwrap();
    let path = std::env::var_os("ANOMALY_BENCH_DB")
        .map_or_else(|| dir.path().join("usage.db"), Into::into);
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    if store.is_empty().unwrap() {
        let cfg = DemoConfig {
            agents: 200,
            models: 20,
            days: 44,
            events,
            seed: 1,
        };
        let t = Instant::now();
        let n = ingest::insert_all(&*store, demo::generate(&cfg, now())).unwrap();
        println!(
            "stored {n} executions (200 agents, 44 days) in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    let d = Dashboard::new(store.clone(), Clock::Fixed(now()), Zone::default());
    let month = AnomaliesInput {
        timeframe: Some(Timeframe::Month),
        ..Default::default()
    };
    // Warm the page cache once, as a running server would be.
    d.anomalies(month.clone()).unwrap();

    let mut total = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let out = d.anomalies(month.clone()).unwrap();
        total.push(ms(t.elapsed()));
        assert!(out.summary.total < 10_000);
    }
    // The two halves: the grouped SQL pass, and the detector over its rows.
    let w = Window {
        start: now() - 30 * DAY,
        end: now(),
    };
    let first = w.start.div_euclid(HOUR) * HOUR;
    let fetch = Window {
        start: first - HISTORY,
        end: w.end,
    };
    let t = Instant::now();
    let rows = store.read(|c| c.series(&fetch, &Agents::All)).unwrap();
    let sql = ms(t.elapsed());
    let t = Instant::now();
    let scope = Scope {
        from: first,
        to: w.end,
        complete_until: w.end,
        zone: Zone::default(),
    };
    let mut found = 0;
    for run in &rows {
        if let Some(s) = AgentSeries::from_sparse(run.hours.iter().copied(), w.end) {
            found += s.detect(&scope).len();
        }
    }
    let detect = ms(t.elapsed());
    total.sort_by(f64::total_cmp);
    println!(
        "dashboard_get_anomalies, month, 200 agents: median {:.0} ms, max {:.0} ms of 5 runs \
         ({} agent-hours from SQL in {sql:.0} ms, detector {detect:.0} ms, {found} anomalies)",
        total[2],
        total[4],
        rows.iter().map(|r| r.hours.len()).sum::<usize>()
    );
    let mut day = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        d.overview(OverviewInput::default()).unwrap();
        day.push(ms(t.elapsed()));
    }
    day.sort_by(f64::total_cmp);
    println!(
        "dashboard_get_overview, day (with its anomaly counts): median {:.0} ms",
        day[2]
    );
}

/// Hourly sums per agent, as `store::series` computes them (tests/anomalies.rs holds the two
/// to each other), so that many seeds can be judged without a database.
fn aggregate(executions: &[Execution], end: Millis) -> BTreeMap<String, AgentSeries> {
    let mut by_agent: BTreeMap<String, BTreeMap<Millis, HourSums>> = BTreeMap::new();
    for e in executions {
        let tokens =
            e.prompt_tokens + e.completion_tokens + e.cache_read_tokens + e.cache_write_tokens;
        by_agent
            .entry(e.agent_id.clone())
            .or_default()
            .entry(e.ts.div_euclid(HOUR) * HOUR)
            .or_default()
            .add(e.success, tokens, e.cost, e.duration_ms);
    }
    by_agent
        .into_iter()
        .map(|(a, hours)| {
            let rows: Vec<_> = hours.into_iter().map(|(t, s)| (t, s.stats())).collect();
            (
                a,
                AgentSeries::from_sparse(rows.iter().copied(), end).unwrap(),
            )
        })
        .collect()
}

fn eval(seeds: u64) {
    let (mut labels_n, mut hits_n, mut false_n) = (0, 0, 0);
    let mut by_severity: BTreeMap<Severity, (u32, u32)> = BTreeMap::new();
    for seed in 1..=seeds {
        // Move the clock through the week so that anomalies land on different days.
        let now = now() + (seed as i64 * 37 * HOUR) % (7 * DAY);
        let cfg = DemoConfig {
            agents: 20,
            models: 6,
            days: 44,
            events: 120_000,
            seed,
        };
        let l = demo::generate_with_anomalies(&cfg, now);
        let scope = Scope {
            from: now - 30 * DAY,
            to: now,
            complete_until: now,
            zone: Zone::default(),
        };
        let labels: HashSet<_> = l
            .labels
            .iter()
            .map(|x| (x.agent_id.clone(), x.hour_start, x.metric))
            .collect();
        let (mut hits, mut false_alarms) = (0, 0);
        for (agent, s) in aggregate(&l.executions, now) {
            for f in s.detect(&scope) {
                let hit = labels.contains(&(agent.clone(), f.hour, f.metric));
                let e = by_severity.entry(f.severity).or_default();
                if hit {
                    hits += 1;
                    e.0 += 1;
                } else {
                    false_alarms += 1;
                    e.1 += 1;
                }
            }
        }
        println!(
            "seed {seed}: {} labels, {hits} found, {false_alarms} false alarms",
            labels.len()
        );
        labels_n += labels.len();
        hits_n += hits;
        false_n += false_alarms;
    }
    println!(
        "{seeds} seeds × 20 agents × 30 days: recall {hits_n}/{labels_n}, precision {:.3}, \
         {:.1} false alarms per seed",
        hits_n as f64 / (hits_n + false_n) as f64,
        false_n as f64 / seeds as f64
    );
    for (s, (hit, false_alarm)) in by_severity {
        println!("  {s:?}: {hit} true, {false_alarm} false");
    }
}
