//! Cross-check against plain SQL: demo data goes through the real import path into the store, and
//! the same JSONL lines into a bare in-memory table; every tool's figures must equal what a
//! straightforward SQL query over the raw rows says, for several windows and filters.

mod common;

use std::collections::HashMap;

use chrono::DateTime;
use dashboard_mcp::demo::{self, DemoConfig};
use dashboard_mcp::ingest::{self, Source};
use rusqlite::{params, Connection};
use serde_json::{json, Value};

const NOW: &str = "2026-11-23T12:00:00Z";

struct Fixture {
    env: common::Env,
    raw: Connection,
}

fn setup() -> Fixture {
    let env = common::empty(NOW);
    let now = DateTime::parse_from_rfc3339(NOW)
        .unwrap()
        .timestamp_millis();
    let cfg = DemoConfig {
        agents: 9,
        models: 5,
        days: 10,
        events: 6000,
        seed: 11,
    };
    let lines: Vec<String> = demo::generate(&cfg, now)
        .iter()
        .map(|e| demo::to_record(e).to_string())
        .collect();
    let text = lines.join("\n");
    let report = ingest::import(
        &*env.dashboard.store,
        vec![Source {
            name: "demo".into(),
            reader: Box::new(text.as_bytes()),
        }],
        false,
    )
    .unwrap();
    assert_eq!(report.accepted, 6000);

    let raw = Connection::open_in_memory().unwrap();
    raw.execute_batch(
        "CREATE TABLE raw (id TEXT, ts INTEGER, agent TEXT, model TEXT, tokens INTEGER, cost INTEGER, duration REAL, ok INTEGER)",
    )
    .unwrap();
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap();
        let ts = DateTime::parse_from_rfc3339(v["timestamp"].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
        let tok = |k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
        let tokens = tok("promptTokens")
            + tok("completionTokens")
            + tok("cacheReadTokens")
            + tok("cacheWriteTokens");
        // demo costs have at most 9 decimals and stay far below 2^53 nano-dollars: rounding is exact
        let cost = (v["cost"].as_f64().unwrap() * 1e9).round() as i64;
        raw.execute(
            "INSERT INTO raw VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                v["id"].as_str(),
                ts,
                v["agentId"].as_str(),
                v["model"].as_str(),
                tokens,
                cost,
                v["durationMs"].as_f64(),
                v["success"].as_bool()
            ],
        )
        .unwrap();
    }
    Fixture { env, raw }
}

fn usd(nanos: i64) -> f64 {
    dashboard_mcp::money::to_usd(nanos)
}

fn ms(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
}

/// (calls, errors, tokens, cost nanos) of the raw rows in [s, e) matching `cond`.
fn sums(raw: &Connection, s: i64, e: i64, cond: &str) -> (i64, i64, i64, i64) {
    raw.query_row(
        &format!("SELECT COUNT(*), COALESCE(SUM(ok = 0), 0), COALESCE(SUM(tokens), 0), COALESCE(SUM(cost), 0) FROM raw WHERE ts >= ?1 AND ts < ?2 AND {cond}"),
        params![s, e],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
    .unwrap()
}

const WINDOWS: &[(&str, &str)] = &[
    ("2026-11-22T12:00:00Z", "2026-11-23T12:00:00Z"),
    ("2026-11-16T12:00:00Z", "2026-11-23T12:00:00Z"),
    ("2026-11-14T03:17:41.250Z", "2026-11-20T19:05:00Z"),
    ("2026-11-23T11:00:00Z", "2026-11-23T12:00:00Z"),
];

#[test]
fn overview_agents_models_match_plain_sql() {
    let f = setup();
    for (s, e) in WINDOWS {
        let (s_ms, e_ms) = (ms(s), ms(e));
        let o = common::call(
            &f.env,
            "dashboard_get_overview",
            json!({"start": s, "end": e}),
        )
        .unwrap();
        let (calls, errors, tokens, cost) = sums(&f.raw, s_ms, e_ms, "1");
        assert_eq!(o["summary"]["totalCalls"], calls, "{s}");
        assert_eq!(o["summary"]["errorCount"], errors, "{s}");
        assert_eq!(o["summary"]["totalTokens"], tokens, "{s}");
        assert_eq!(o["summary"]["totalCost"], usd(cost), "{s}");
        let (n, p95): (i64, Option<f64>) = f
            .raw
            .query_row(
                "SELECT COUNT(duration), NULL FROM raw WHERE ts >= ?1 AND ts < ?2",
                params![s_ms, e_ms],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let p95 = if n == 0 {
            p95
        } else {
            let rank = (95 * n + 99) / 100;
            Some(
                f.raw
                    .query_row(
                        "SELECT duration FROM raw WHERE ts >= ?1 AND ts < ?2 AND duration IS NOT NULL ORDER BY duration LIMIT 1 OFFSET ?3",
                        params![s_ms, e_ms, rank - 1],
                        |r| r.get(0),
                    )
                    .unwrap(),
            )
        };
        assert_eq!(o["summary"]["p95LatencyMs"], json!(p95), "{s}");

        let a = common::call(
            &f.env,
            "dashboard_get_agents",
            json!({"start": s, "end": e, "limit": 1000}),
        )
        .unwrap();
        let mut expected: Vec<(String, i64, i64)> = f
            .raw
            .prepare("SELECT agent, SUM(cost), COUNT(*) FROM raw WHERE ts >= ?1 AND ts < ?2 GROUP BY agent ORDER BY SUM(cost) DESC, agent")
            .unwrap()
            .query_map(params![s_ms, e_ms], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let got: Vec<(String, f64, i64)> = a["agents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["id"].as_str().unwrap().to_owned(),
                    x["metrics"]["totalCost"].as_f64().unwrap(),
                    x["metrics"]["totalCalls"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            expected
                .drain(..)
                .map(|(id, c, n)| (id, usd(c), n))
                .collect::<Vec<_>>(),
            "{s}"
        );

        let m = common::call(
            &f.env,
            "dashboard_get_models",
            json!({"start": s, "end": e}),
        )
        .unwrap();
        for model in m["models"].as_array().unwrap() {
            let name = model["name"].as_str().unwrap();
            let (calls, _, tokens, cost) = sums(&f.raw, s_ms, e_ms, &format!("model = '{name}'"));
            assert_eq!(model["metrics"]["totalCalls"], calls);
            assert_eq!(model["metrics"]["totalTokens"], tokens);
            assert_eq!(model["metrics"]["totalCost"], usd(cost));
        }
    }
}

#[test]
fn timeline_buckets_match_plain_sql() {
    let f = setup();
    for (s, e) in WINDOWS {
        let (s_ms, e_ms) = (ms(s), ms(e));
        for (granularity, unit) in [("hour", 3_600_000i64), ("day", 86_400_000)] {
            let t = common::call(
                &f.env,
                "dashboard_get_timeline",
                json!({"start": s, "end": e, "granularity": granularity, "metric": "cost"}),
            );
            let Ok(t) = t else { continue }; // too many buckets is covered elsewhere
            let by_bucket: HashMap<i64, i64> = f
                .raw
                .prepare(&format!("SELECT ts / {unit} * {unit}, SUM(cost) FROM raw WHERE ts >= ?1 AND ts < ?2 GROUP BY 1"))
                .unwrap()
                .query_map(params![s_ms, e_ms], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            for p in t["series"].as_array().unwrap() {
                let b = ms(p["timestamp"].as_str().unwrap());
                assert_eq!(
                    p["value"],
                    usd(by_bucket.get(&b).copied().unwrap_or(0)),
                    "{s} {granularity} {b}"
                );
            }
            let total: i64 = by_bucket.values().sum();
            assert_eq!(t["aggregate"]["total"], usd(total));
        }
        let calls = common::call(
            &f.env,
            "dashboard_get_timeline",
            json!({"start": s, "end": e, "metric": "calls", "breakdown": "agent"}),
        )
        .unwrap();
        for p in calls["series"].as_array().unwrap() {
            let parts: f64 = p["breakdown"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_f64().unwrap())
                .sum();
            assert_eq!(parts, p["value"].as_f64().unwrap());
        }
    }
}

#[test]
fn executions_counts_and_order_match_plain_sql() {
    let f = setup();
    let (s, e) = WINDOWS[1];
    let x = common::call(
        &f.env,
        "dashboard_get_executions",
        json!({"start": s, "end": e, "status": "error", "agentId": "researcher", "limit": 500}),
    )
    .unwrap();
    let ids: Vec<String> = f
        .raw
        .prepare("SELECT id FROM raw WHERE ts >= ?1 AND ts < ?2 AND ok = 0 AND agent = 'researcher' ORDER BY ts DESC, id")
        .unwrap()
        .query_map(params![ms(s), ms(e)], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!ids.is_empty());
    let got: Vec<&str> = x["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ids);
    assert_eq!(x["pagination"]["total"], ids.len());
}
