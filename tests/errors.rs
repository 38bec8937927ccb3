//! Bad input: every tool answers a precise error naming the field, the value and what is allowed.

mod common;

use common::{call, fixture};
use serde_json::json;

fn err(tool: &str, args: serde_json::Value) -> String {
    let (env, _) = fixture();
    match call(&env, tool, args.clone()) {
        Ok(v) => panic!("{tool} {args} should fail, answered {v}"),
        Err(e) => e,
    }
}

const READ_TOOLS: &[&str] = &[
    "dashboard_get_overview",
    "dashboard_get_agents",
    "dashboard_get_models",
    "dashboard_get_timeline",
    "dashboard_get_executions",
];

#[test]
fn every_tool_rejects_bad_windows_and_unknown_fields() {
    for tool in READ_TOOLS {
        assert_eq!(
            err(tool, json!({"timeframe": "fortnight"})),
            "timeframe: \"fortnight\" is not one of hour, day, week, month, quarter"
        );
        assert_eq!(
            err(tool, json!({"timeframe": 7})),
            "timeframe: 7 is not one of hour, day, week, month, quarter"
        );
        let e = err(tool, json!({"bogus": 1}));
        assert!(
            e.starts_with(
                "bogus: unknown field \"bogus\"; allowed fields are timeframe, start, end"
            ),
            "{tool}: {e}"
        );
        let e = err(tool, json!({"start": "2026-13-01"}));
        assert!(
            e.starts_with("start: \"2026-13-01\" is not an RFC 3339 timestamp"),
            "{tool}: {e}"
        );
        let e = err(tool, json!({"end": "tomorrow"}));
        assert!(
            e.starts_with("end: \"tomorrow\" is not an RFC 3339 timestamp"),
            "{tool}: {e}"
        );
        assert_eq!(
            err(tool, json!({"start": "2026-11-23T12:00:00Z", "end": "2026-11-23T12:00:00Z"})),
            "start: 2026-11-23T12:00:00Z is not before end 2026-11-23T12:00:00Z; a window needs start < end"
        );
        assert_eq!(
            err(tool, json!({"start": "2026-11-24T00:00:00Z"})),
            "start: 2026-11-24T00:00:00Z is not before now (end defaults to now) 2026-11-23T12:00:00Z; a window needs start < end"
        );
        assert_eq!(
            err(tool, json!({"start": "2025-01-01T00:00:00Z"})),
            "start: the window 2025-01-01T00:00:00Z .. 2026-11-23T12:00:00Z is 691.5 days long; the longest allowed is 400 days"
        );
        assert_eq!(
            err(tool, json!({"start": true})),
            "start: true is not a string"
        );
    }
}

#[test]
fn limits_and_offsets() {
    assert_eq!(
        err("dashboard_get_agents", json!({"limit": 0})),
        "limit: 0 is out of range; allowed is 1..=1000"
    );
    assert_eq!(
        err("dashboard_get_agents", json!({"limit": "1001"})),
        "limit: 1001 is out of range; allowed is 1..=1000"
    );
    assert_eq!(
        err("dashboard_get_agents", json!({"limit": -1})),
        "limit: -1 is not a non-negative integer"
    );
    assert_eq!(
        err("dashboard_get_agents", json!({"limit": 2.5})),
        "limit: 2.5 is not a non-negative integer"
    );
    assert_eq!(
        err("dashboard_get_agents", json!({"limit": "ten"})),
        "limit: \"ten\" is not a non-negative integer"
    );
    assert_eq!(
        err("dashboard_get_executions", json!({"limit": 501})),
        "limit: 501 is out of range; allowed is 1..=500"
    );
    assert_eq!(
        err(
            "dashboard_get_executions",
            json!({"offset": 1_000_000_001u64})
        ),
        "offset: 1000000001 is out of range; allowed is 0..=1000000000"
    );
    assert_eq!(
        err("dashboard_get_agents", json!({"sortBy": "price"})),
        "sortBy: \"price\" is not one of cost, calls, tokens, successRate, errors"
    );
    assert_eq!(
        err("dashboard_get_agents", json!({"order": "up"})),
        "order: \"up\" is not one of desc, asc"
    );
    assert_eq!(
        err("dashboard_get_executions", json!({"status": "maybe"})),
        "status: \"maybe\" is not one of success, error"
    );
}

#[test]
fn timeline_specific_errors() {
    assert_eq!(
        err("dashboard_get_timeline", json!({"timeframe": "day", "granularity": "minute"})),
        "granularity: \"minute\" is allowed for windows up to 6 hours; use hour or day for longer windows"
    );
    assert_eq!(
        err("dashboard_get_timeline", json!({"timeframe": "quarter", "granularity": "hour"})),
        "granularity: \"hour\" over this window gives more than 2000 buckets; choose a coarser granularity or a shorter window"
    );
    assert_eq!(
        err("dashboard_get_timeline", json!({"metric": "money"})),
        "metric: \"money\" is not one of cost, calls, tokens, errors, latency"
    );
    assert_eq!(
        err("dashboard_get_timeline", json!({"breakdown": "team"})),
        "breakdown: \"team\" is not one of agent, model"
    );
}

#[test]
fn unknown_tool_and_disabled_writes() {
    let (env, _) = fixture();
    let e = dashboard_mcp::catalog::call(&env.dashboard, false, "dashboard_get_everything", None)
        .unwrap_err();
    assert!(e.to_string().starts_with(
        "unknown tool \"dashboard_get_everything\"; available tools are dashboard_get_overview"
    ));
    let e = dashboard_mcp::catalog::call(&env.dashboard, false, "dashboard_record_usage", None)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "\"dashboard_record_usage\" changes stored data and is available only when the server runs with --allow-writes"
    );
}

#[test]
fn record_usage_reports_each_record() {
    let (env, _) = fixture();
    let r = call(
        &env,
        "dashboard_record_usage",
        json!({"records": [
            {"id": "n1", "timestamp": "2026-11-23T11:00:00Z", "agentId": "alpha", "model": "m-big", "cost": 1},
            {"id": "e1", "timestamp": "2026-11-22T12:00:00Z", "agentId": "alpha", "model": "m-big"},
            {"timestamp": "2026-11-23T11:00:00Z", "agentId": "alpha"},
            "not an object"
        ]}),
    )
    .unwrap();
    assert_eq!(r["accepted"], 1);
    assert_eq!(r["duplicates"], 1);
    assert_eq!(r["rejected"], 2);
    assert_eq!(
        r["files"][0]["errors"],
        json!([{"line": 3, "reason": "model: missing; every record names its model"}, {"line": 4, "reason": "not a JSON object: \"not an object\""}])
    );
    let o = call(&env, "dashboard_get_overview", json!({})).unwrap();
    assert_eq!(o["summary"]["totalCost"], 2.75);
    assert_eq!(
        call(&env, "dashboard_record_usage", json!({"records": []})).unwrap_err(),
        "records: 0 records given; allowed are 1..=10000 per call (import larger files with `dashboard-mcp import`)"
    );
    assert_eq!(
        call(&env, "dashboard_record_usage", json!({})).unwrap_err(),
        "records: missing; this field is required"
    );
}
