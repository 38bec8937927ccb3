//! Every read tool against a small hand-made fixture with a pinned clock. Each expected number is
//! worked out by hand from tests/fixtures/small.jsonl (the arithmetic is in the comments).
//!
//! Clock: 2026-11-23T12:00:00Z. Day window: [2026-11-22T12:00Z, 2026-11-23T12:00Z); it holds
//! e1 (exactly at start), e3 (15:30+02:00 = 13:30Z), e4 (epoch ms = 2026-11-23T09:15Z),
//! e5 (11:59:59.999Z) and the id-less gamma record (10:00Z). e2 (exactly at end) is out.
//! Previous day window: p1 (exactly at its start) and p2 (1 ms before the day window).

mod common;

use common::{call, empty, fixture, NOW};
use serde_json::json;

#[test]
fn import_report_counts_and_reasons() {
    let (_env, r) = fixture();
    // 10 good records (e1 e2 e3 e4 e5 p1 p2 gamma tie-b tie-a), 2 duplicates (the second e1 and
    // the repeated id-less gamma line), 5 bad lines (14..18); line 6 is blank.
    assert_eq!((r.accepted, r.duplicates, r.rejected), (10, 2, 5));
    let f = &r.files[0];
    assert_eq!(f.format, "jsonl");
    let lines: Vec<u64> = f.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![14, 15, 16, 17, 18]);
    assert!(
        f.errors[0].reason.starts_with("invalid JSON"),
        "{}",
        f.errors[0].reason
    );
    assert!(
        f.errors[1].reason.starts_with("agentId: missing"),
        "{}",
        f.errors[1].reason
    );
    assert!(
        f.errors[2].reason.starts_with("cost: -1 is not"),
        "{}",
        f.errors[2].reason
    );
    assert!(
        f.errors[3]
            .reason
            .starts_with("timestamp: 1795428000000.5 has a fraction"),
        "{}",
        f.errors[3].reason
    );
    assert!(
        f.errors[4]
            .reason
            .starts_with("timestamp: \"yesterday\" is not an RFC 3339"),
        "{}",
        f.errors[4].reason
    );
}

#[test]
fn reimport_is_idempotent() {
    let (env, _) = fixture();
    let file = std::fs::File::open(common::fixture_path()).unwrap();
    let r = dashboard_mcp::ingest::import(
        &*env.dashboard.store,
        vec![dashboard_mcp::ingest::Source {
            name: "again".into(),
            reader: Box::new(file),
        }],
        false,
    )
    .unwrap();
    assert_eq!((r.accepted, r.duplicates, r.rejected), (0, 12, 5));
    let o = call(&env, "dashboard_get_overview", json!({})).unwrap();
    assert_eq!(o["summary"]["totalCalls"], 5);
}

#[test]
fn overview_day() {
    let (env, _) = fixture();
    let o = call(&env, "dashboard_get_overview", json!({})).unwrap();
    assert_eq!(
        o["period"],
        json!({"start": "2026-11-22T12:00:00Z", "end": "2026-11-23T12:00:00Z"})
    );
    let s = &o["summary"];
    assert_eq!(s["period"], o["period"]);
    // 0.5 + 0.25 + 0.25 + 0 + 0.75
    assert_eq!(s["totalCost"], 1.75);
    assert_eq!(s["totalCalls"], 5);
    // e1 150 + e3 (200+100+1000) + e4 75 + e5 0 + gamma 2
    assert_eq!(s["totalTokens"], 1527);
    // alpha, beta, βeta-ü, gamma
    assert_eq!(s["activeAgents"], 4);
    // e3 has an error, gamma success=false
    assert_eq!(s["errorCount"], 2);
    assert_eq!(s["successRate"], 60.0);
    // timed: 1000, 3000, 500, 2000 (e4 has none) → 6500 / 4
    assert_eq!(s["avgLatencyMs"], 1625.0);
    // nearest rank ⌈0.95·4⌉ = 4 of [500, 1000, 2000, 3000]
    assert_eq!(s["p95LatencyMs"], 3000.0);
    assert_eq!(s["callsPerHour"], 5.0 / 24.0);
    let t = &o["trends"];
    // previous: p1 0.25 + p2 0.25, 2 calls, 100 + 10 tokens
    assert_eq!(t["costTrend"], (1.75 - 0.5) / 0.5 * 100.0);
    assert_eq!(t["callsTrend"], 150.0);
    assert_eq!(t["tokensTrend"], (1527.0 - 110.0) / 110.0 * 100.0);
    assert_eq!(t["topAgent"], json!({"id": "gamma", "cost": 0.75}));
}

#[test]
fn overview_for_one_agent_and_unknown_agent() {
    let (env, _) = fixture();
    let o = call(&env, "dashboard_get_overview", json!({"agentId": "alpha"})).unwrap();
    // e1 0.5 + e5 0; previous p1 0.25
    assert_eq!(o["summary"]["totalCost"], 0.5);
    assert_eq!(o["summary"]["totalCalls"], 2);
    assert_eq!(o["summary"]["activeAgents"], 1);
    assert_eq!(o["trends"]["costTrend"], 100.0);
    let o = call(&env, "dashboard_get_overview", json!({"agentId": "nobody"})).unwrap();
    assert_eq!(o["summary"]["totalCalls"], 0);
    assert_eq!(o["summary"]["successRate"], json!(null));
    assert_eq!(o["trends"]["costTrend"], json!(null));
    assert_eq!(o["trends"]["topAgent"], json!(null));
}

/// A filter naming an agent or model with a NUL character matches nothing, on every engine
/// (PostgreSQL text cannot hold one: a query with it would be an error, not a mismatch).
#[test]
fn filters_with_a_nul_character_match_nothing() {
    let (env, _) = fixture();
    for (tool, args) in [
        ("dashboard_get_overview", json!({"agentId": "al\u{0}pha"})),
        (
            "dashboard_get_executions",
            json!({"agentId": "alpha", "model": "m\u{0}"}),
        ),
        ("dashboard_get_timeline", json!({"agentId": "\u{0}"})),
        ("dashboard_get_anomalies", json!({"agentId": "\u{0}x"})),
    ] {
        let out = call(&env, tool, args.clone()).unwrap_or_else(|e| panic!("{tool} {args}: {e}"));
        let empty = match tool {
            "dashboard_get_overview" => out["summary"]["totalCalls"] == 0,
            "dashboard_get_executions" => out["pagination"]["total"] == 0,
            "dashboard_get_timeline" => out["aggregate"]["total"] == 0.0,
            _ => out["anomalies"] == json!([]),
        };
        assert!(empty, "{tool} {args}: {out}");
    }
}

#[test]
fn window_edges_and_custom_windows() {
    let (env, _) = fixture();
    // e2 lies exactly at 12:00 on the 23rd: out of the day window, in a window ending 1 ms later.
    let o = call(
        &env,
        "dashboard_get_overview",
        json!({"end": "2026-11-23T12:00:00.001Z"}),
    )
    .unwrap();
    // shifted by 1 ms: e1 (at the old start) falls out, e2 comes in: 1.75 - 0.5 + 9.99
    assert_eq!(o["summary"]["totalCost"], 11.24);
    assert_eq!(o["period"]["start"], "2026-11-22T12:00:00.001Z");
    // start alone runs to now; an offset in start is normalised to UTC.
    let o = call(
        &env,
        "dashboard_get_overview",
        json!({"start": "2026-11-23T11:00:00+01:00"}),
    )
    .unwrap();
    assert_eq!(o["period"]["start"], "2026-11-23T10:00:00Z");
    // gamma (10:00) and e5: 0.75 + 0
    assert_eq!(o["summary"]["totalCost"], 0.75);
    assert_eq!(o["summary"]["callsPerHour"], 1.0);
    // aliases and a number sent as a string are forgiven
    let week = call(&env, "dashboard_get_overview", json!({"timeframe": "7d"})).unwrap();
    assert_eq!(week["period"]["start"], "2026-11-16T12:00:00Z");
    // week: day window + p1 + p2 + tie-a + tie-b = 1.75 + 0.5 + 0.2
    assert_eq!(week["summary"]["totalCost"], 2.45);
}

#[test]
fn agents_sorting_ties_and_paging() {
    let (env, _) = fixture();
    let a = call(&env, "dashboard_get_agents", json!({})).unwrap();
    let ids: Vec<&str> = a["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    // cost: gamma 0.75, alpha 0.5, beta 0.25 = βeta-ü 0.25 (tie → id order, "beta" < "βeta-ü")
    assert_eq!(ids, vec!["gamma", "alpha", "beta", "βeta-ü"]);
    assert_eq!(a["total"], 4);
    let alpha = &a["agents"][1];
    assert_eq!(alpha["name"], "Alpha Prime"); // the latest agentName by ingest order
    assert_eq!(
        alpha["metrics"],
        json!({"totalCost": 0.5, "totalCalls": 2, "totalTokens": 150, "averageCost": 0.25, "successRate": 100.0, "errorCount": 0})
    );
    // previous: p1 0.25, 1 call
    assert_eq!(
        alpha["trend"],
        json!({"costChange": 100.0, "callsChange": 100.0})
    );
    assert_eq!(
        a["agents"][0]["trend"],
        json!({"costChange": null, "callsChange": null})
    );
    assert_eq!(a["agents"][3]["name"], "Бета");
    assert_eq!(a["agents"][2]["name"], "beta"); // no agentName given: the id

    let page = call(
        &env,
        "dashboard_get_agents",
        json!({"limit": 2, "offset": "1"}),
    )
    .unwrap();
    let ids: Vec<&str> = page["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["alpha", "beta"]);
    assert_eq!(
        page["pagination"],
        json!({"total": 4, "limit": 2, "offset": 1, "hasMore": true, "nextOffset": 3})
    );

    let asc = call(
        &env,
        "dashboard_get_agents",
        json!({"sortBy": "calls", "order": "asc"}),
    )
    .unwrap();
    let ids: Vec<&str> = asc["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    // one call each for beta, gamma, βeta-ü (id order), then alpha with two
    assert_eq!(ids, vec!["beta", "gamma", "βeta-ü", "alpha"]);

    let sr = call(
        &env,
        "dashboard_get_agents",
        json!({"sortBy": "successRate"}),
    )
    .unwrap();
    let ids: Vec<&str> = sr["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["alpha", "βeta-ü", "beta", "gamma"]);

    let errs = call(
        &env,
        "dashboard_get_agents",
        json!({"sortBy": "errors", "limit": 1}),
    )
    .unwrap();
    assert_eq!(errs["agents"][0]["id"], "beta");
}

#[test]
fn models_distribution() {
    let (env, _) = fixture();
    let m = call(&env, "dashboard_get_models", json!({})).unwrap();
    // m-big: e1 0.5 + gamma 0.75 = 1.25 (2 calls, 152 tokens, 1 error, durations 1000 and 2000)
    // m-small: e3 + e4 + e5 = 0.5 (3 calls, 1375 tokens, 1 error, durations 3000 and 500);
    // e5 gave no cost and m-small has no price: one unpriced call.
    assert_eq!(
        m["models"],
        json!([
            {"name": "m-big", "metrics": {"totalCost": 1.25, "totalCalls": 2, "totalTokens": 152, "averageCostPerCall": 0.625, "successRate": 50.0, "avgLatencyMs": 1500.0, "estimatedCost": 0.0, "unpricedCalls": 0}, "distribution": 1.25 / 1.75 * 100.0},
            {"name": "m-small", "metrics": {"totalCost": 0.5, "totalCalls": 3, "totalTokens": 1375, "averageCostPerCall": 0.5 / 3.0, "successRate": 2.0 / 3.0 * 100.0, "avgLatencyMs": 1750.0, "estimatedCost": 0.0, "unpricedCalls": 1}, "distribution": 0.5 / 1.75 * 100.0}
        ])
    );
    // delta's two tie records cost 0.1 each and are the only ones of that agent: 100 % m-small
    let d = call(
        &env,
        "dashboard_get_models",
        json!({"timeframe": "week", "agentId": "delta"}),
    )
    .unwrap();
    assert_eq!(d["models"][0]["distribution"], 100.0);
    assert_eq!(d["models"][0]["metrics"]["totalCost"], 0.2);
}

#[test]
fn timeline_hourly_with_partial_buckets() {
    let (env, _) = fixture();
    let t = call(&env, "dashboard_get_timeline", json!({})).unwrap();
    assert_eq!(t["granularity"], "hour");
    let series = t["series"].as_array().unwrap();
    assert_eq!(series.len(), 24);
    assert_eq!(
        series[0],
        json!({"timestamp": "2026-11-22T12:00:00Z", "value": 0.5})
    );
    assert_eq!(
        series[1],
        json!({"timestamp": "2026-11-22T13:00:00Z", "value": 0.25})
    );
    assert_eq!(series[2]["value"], 0.0); // empty buckets are present with 0
    assert_eq!(
        series[21],
        json!({"timestamp": "2026-11-23T09:00:00Z", "value": 0.25})
    );
    assert_eq!(
        series[22],
        json!({"timestamp": "2026-11-23T10:00:00Z", "value": 0.75})
    );
    assert_eq!(
        series[23],
        json!({"timestamp": "2026-11-23T11:00:00Z", "value": 0.0})
    );
    assert_eq!(
        t["aggregate"],
        json!({"total": 1.75, "average": 1.75 / 24.0, "peak": 0.75, "peakTime": "2026-11-23T10:00:00Z"})
    );

    // partial edges: [12:30, 10:30) keeps e3, e4 and gamma but not e1 (12:00)
    let p = call(
        &env,
        "dashboard_get_timeline",
        json!({"start": "2026-11-22T12:30:00Z", "end": "2026-11-23T10:30:00Z"}),
    )
    .unwrap();
    let series = p["series"].as_array().unwrap();
    assert_eq!(series.len(), 23); // 12:00 (partial) .. 10:00 (partial)
    assert_eq!(
        series[0],
        json!({"timestamp": "2026-11-22T12:00:00Z", "value": 0.0})
    );
    assert_eq!(
        series[22],
        json!({"timestamp": "2026-11-23T10:00:00Z", "value": 0.75})
    );
    assert_eq!(p["aggregate"]["total"], 1.25);
}

#[test]
fn timeline_metrics_breakdown_and_days() {
    let (env, _) = fixture();
    let lat = call(&env, "dashboard_get_timeline", json!({"metric": "latency"})).unwrap();
    let s = lat["series"].as_array().unwrap();
    assert_eq!(s[0]["value"], 1000.0);
    assert_eq!(s[1]["value"], 3000.0);
    assert_eq!(s[2]["value"], json!(null));
    assert_eq!(s[21]["value"], json!(null)); // e4 has no duration
    assert_eq!(
        lat["aggregate"],
        json!({"total": null, "average": 1625.0, "peak": 3000.0, "peakTime": "2026-11-22T13:00:00Z"})
    );

    let calls = call(
        &env,
        "dashboard_get_timeline",
        json!({"metric": "calls", "breakdown": "model"}),
    )
    .unwrap();
    let s = calls["series"].as_array().unwrap();
    assert_eq!(
        s[0]["breakdown"],
        json!({"m-big": 1.0, "m-small": 0.0, "other": 0.0})
    );
    assert_eq!(
        s[1]["breakdown"],
        json!({"m-big": 0.0, "m-small": 1.0, "other": 0.0})
    );
    assert_eq!(calls["aggregate"]["total"], 5.0);

    // a week by day: buckets from 2026-11-16 (partial, from 12:00) to 2026-11-23 (partial, to 12:00)
    let d = call(
        &env,
        "dashboard_get_timeline",
        json!({"timeframe": "week", "metric": "errors"}),
    )
    .unwrap();
    assert_eq!(d["granularity"], "day");
    let s = d["series"].as_array().unwrap();
    assert_eq!(s.len(), 8);
    assert_eq!(s[0]["timestamp"], "2026-11-16T00:00:00Z");
    assert_eq!(
        s[6],
        json!({"timestamp": "2026-11-22T00:00:00Z", "value": 1.0})
    ); // e3
    assert_eq!(
        s[7],
        json!({"timestamp": "2026-11-23T00:00:00Z", "value": 1.0})
    ); // gamma
       // minute over an hour: 60 buckets
    let m = call(
        &env,
        "dashboard_get_timeline",
        json!({"timeframe": "hour", "granularity": "minute", "metric": "calls"}),
    )
    .unwrap();
    assert_eq!(m["series"].as_array().unwrap().len(), 60);
    assert_eq!(
        m["series"][59],
        json!({"timestamp": "2026-11-23T11:59:00Z", "value": 1.0})
    ); // e5
}

#[test]
fn executions_order_filters_and_fields() {
    let (env, _) = fixture();
    let x = call(&env, "dashboard_get_executions", json!({})).unwrap();
    let ids: Vec<&str> = x["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids[0], "e5");
    assert!(ids[1].starts_with('x')); // gamma's derived id
    assert_eq!(&ids[2..], &["e4", "e3", "e1"]);
    assert_eq!(
        x["pagination"],
        json!({"total": 5, "limit": 50, "offset": 0, "hasMore": false, "nextOffset": null})
    );
    let e3 = &x["executions"][3];
    assert_eq!(
        *e3,
        json!({"id": "e3", "timestamp": "2026-11-22T13:30:00Z", "agentId": "beta", "model": "m-small", "duration": 3000.0,
               "cost": 0.25, "costSource": "reported", "tokens": {"prompt": 200, "completion": 100, "cacheRead": 1000, "cacheWrite": 0, "total": 1300},
               "success": false, "error": "rate_limit", "statusCode": 429, "sessionId": "s-1", "taskType": "search",
               "metadata": {"region": "eu", "attempt": 2}})
    );
    assert_eq!(x["executions"][2]["duration"], json!(null));
    assert!(x["executions"][2].get("error").is_none());

    let errs = call(&env, "dashboard_get_executions", json!({"status": "error"})).unwrap();
    assert_eq!(errs["pagination"]["total"], 2);
    let ties = call(
        &env,
        "dashboard_get_executions",
        json!({"timeframe": "week", "agentId": "delta"}),
    )
    .unwrap();
    let ids: Vec<&str> = ties["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["tie-a", "tie-b"]); // same instant: by id
    let m = call(
        &env,
        "dashboard_get_executions",
        json!({"model": "m-big", "limit": 1, "offset": 1}),
    )
    .unwrap();
    assert_eq!(m["executions"][0]["id"], "e1");
    assert_eq!(
        m["pagination"],
        json!({"total": 2, "limit": 1, "offset": 1, "hasMore": false, "nextOffset": null})
    );
}

#[test]
fn empty_database_is_not_an_error() {
    let env = empty(NOW);
    let o = call(&env, "dashboard_get_overview", json!({})).unwrap();
    assert_eq!(
        o["summary"],
        json!({"totalCost": 0.0, "totalCalls": 0, "totalTokens": 0, "activeAgents": 0,
               "period": {"start": "2026-11-22T12:00:00Z", "end": "2026-11-23T12:00:00Z"},
               "successRate": null, "errorCount": 0, "avgLatencyMs": null, "p95LatencyMs": null, "callsPerHour": 0.0,
               "estimatedCost": 0.0, "unpricedCalls": 0, "unpricedModels": []})
    );
    assert_eq!(
        o["trends"],
        json!({"costTrend": null, "callsTrend": null, "tokensTrend": null, "topAgent": null})
    );
    assert_eq!(
        call(&env, "dashboard_get_agents", json!({})).unwrap()["agents"],
        json!([])
    );
    assert_eq!(
        call(&env, "dashboard_get_models", json!({})).unwrap()["models"],
        json!([])
    );
    let t = call(&env, "dashboard_get_timeline", json!({"metric": "latency"})).unwrap();
    assert_eq!(
        t["aggregate"],
        json!({"total": null, "average": null, "peak": null, "peakTime": null})
    );
    let t = call(&env, "dashboard_get_timeline", json!({})).unwrap();
    assert_eq!(
        t["aggregate"],
        json!({"total": 0.0, "average": 0.0, "peak": 0.0, "peakTime": "2026-11-22T12:00:00Z"})
    );
    assert_eq!(
        call(&env, "dashboard_get_executions", json!({})).unwrap()["executions"],
        json!([])
    );
}

#[test]
fn a_day_bucket_in_a_zone_behind_utc_holds_a_window_inside_one_local_day() {
    // Regression: one local-day bucket let SQL group by whole UTC days, and the UTC day started
    // before the bucket (New York midnight is 05:00Z), which underflowed the bucket index.
    let (env, _) = fixture();
    let ny = dashboard_mcp::Dashboard::new(
        env.dashboard.store.clone(),
        dashboard_mcp::time::Clock::Fixed(dashboard_mcp::time::parse_rfc3339("now", NOW).unwrap()),
        dashboard_mcp::time::Zone::parse("America/New_York").unwrap(),
    );
    let args = json!({"start": "2026-11-23T06:30:00Z", "end": "2026-11-23T12:00:00Z",
                      "granularity": "day", "metric": "cost"});
    let serde_json::Value::Object(args) = args else {
        unreachable!()
    };
    let t = dashboard_mcp::catalog::call(&ny, false, "dashboard_get_timeline", Some(args)).unwrap();
    // 01:30–07:00 on 23 Nov in New York (EST, UTC−5): e4 $0.25 (09:15Z), gamma $0.75 (10:00Z)
    // and e5 $0 (11:59:59.999Z) = $1.00 in the one bucket.
    // The bucket is the local day, starting at local midnight (05:00Z).
    assert_eq!(
        t["series"],
        json!([{"timestamp": "2026-11-23T00:00:00-05:00", "value": 1.0}]),
        "{t}"
    );
    assert_eq!(t["aggregate"]["total"], json!(1.0));
}
