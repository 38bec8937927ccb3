//! Regressions of the read side found by fuzzing a running server: windows that reach past now
//! (they panicked or exhausted the server), windows that would start before 1970, errors that
//! echoed a huge input whole, blank budget scopes, an execution larger than one result, deep
//! offsets, and work that goes on after its request was given up.

mod common;

use std::time::{Duration, Instant};

use common::{call, empty, fixture};
use dashboard_mcp::demo::{self, DemoConfig};
use dashboard_mcp::ingest;
use dashboard_mcp::store::Execution;
use dashboard_mcp::time::{format_utc, parse_rfc3339, Clock, Millis, Zone, DAY, HOUR};
use dashboard_mcp::{catalog, Dashboard, Error};
use serde_json::{json, Value};

/// Generous for a debug build on a busy 2-core machine; the defects took 100 s and 8 GB.
const BOUND: Duration = Duration::from_secs(5);

fn t(s: &str) -> Millis {
    parse_rfc3339("t", s).unwrap()
}

/// 20 days of demo traffic with labelled anomalies, the clock at its end.
fn demo_env() -> (tempfile::TempDir, Dashboard, Millis) {
    let now = t("2026-11-23T14:20:00Z");
    let cfg = DemoConfig {
        agents: 5,
        models: 3,
        days: 20,
        events: 30_000,
        seed: 3,
    };
    let executions = demo::generate_with_anomalies(&cfg, now).executions;
    let dir = tempfile::tempdir().unwrap();
    let store = dashboard_mcp::store::testing::open(dir.path());
    ingest::insert_all(&*store, executions).unwrap();
    let d = Dashboard::new(store, Clock::Fixed(now), Zone::default());
    (dir, d, now)
}

/// Call a tool, timed; the answer or the error text.
fn timed(d: &Dashboard, tool: &str, args: Value) -> Result<Value, String> {
    let Value::Object(m) = args else {
        panic!("args must be an object")
    };
    let started = Instant::now();
    let out = catalog::call(d, true, tool, Some(m)).map_err(|e| e.to_string());
    let took = started.elapsed();
    assert!(took < BOUND, "{tool} took {took:?}");
    out
}

#[test]
fn windows_past_now_answer_every_time_within_bounds() {
    let (_dir, d, now) = demo_env();
    let far = [
        json!({"end": "9999-12-31T23:59:59.999Z"}),
        json!({"end": "2100-01-01T00:00:00Z"}),
        json!({"timeframe": "hour", "end": format_utc(now + DAY)}),
        json!({"timeframe": "quarter", "end": format_utc(now + 12 * HOUR + 1)}),
        json!({"start": format_utc(now + HOUR), "end": format_utc(now + 400 * DAY)}),
    ];
    // The same questions twice (the memo panicked on the second), then with the memo warm.
    for round in 0..3 {
        for args in &far {
            for tool in ["dashboard_get_overview", "dashboard_get_anomalies"] {
                let out = timed(&d, tool, args.clone())
                    .unwrap_or_else(|e| panic!("round {round}: {tool} {args}: {e}"));
                // Nothing happened after now, so nothing is judged there.
                let summary = if tool == "dashboard_get_overview" {
                    &out["anomalies"]
                } else {
                    &out["summary"]
                };
                let ends_after_now = t(out["period"]["start"].as_str().unwrap()) >= now;
                if ends_after_now {
                    assert_eq!(summary["total"], 0, "{tool} {args}");
                }
            }
        }
        timed(&d, "dashboard_get_anomalies", json!({"timeframe": "month"})).unwrap();
    }
}

#[test]
fn a_window_reaching_past_now_judges_the_hours_up_to_now_only() {
    let (_dir, d, now) = demo_env();
    let anomalies = |start: Millis, end: Millis| {
        let out = timed(
            &d,
            "dashboard_get_anomalies",
            json!({"start": format_utc(start), "end": format_utc(end), "limit": 500}),
        )
        .unwrap();
        out["anomalies"].clone()
    };
    let start = now - 10 * DAY;
    let until_now = anomalies(start, now);
    assert!(
        until_now.as_array().unwrap().len() >= 3,
        "the demo's incidents: {until_now}"
    );
    assert_eq!(anomalies(start, now + 3 * DAY), until_now);
    assert_eq!(anomalies(start, now + 300 * DAY), until_now);
    // And the plain detector (no memo) agrees.
    d.store.set_rollups(false);
    assert_eq!(anomalies(start, now + 3 * DAY), until_now);
    d.store.set_rollups(true);
}

#[test]
fn future_windows_sum_only_what_is_stored_there() {
    let (env, _) = fixture();
    let out = call(
        &env,
        "dashboard_get_overview",
        json!({"end": "9999-12-31T23:59:59.999Z"}),
    )
    .unwrap();
    assert_eq!(out["summary"]["totalCalls"], 0);
    assert_eq!(out["summary"]["totalCost"], 0.0);
    assert_eq!(out["period"]["start"], "9999-12-30T23:59:59.999Z");
}

#[test]
fn a_window_that_would_start_before_1970_is_refused_naming_end() {
    let (env, _) = fixture();
    let e = call(
        &env,
        "dashboard_get_overview",
        json!({"end": "1970-01-01T00:00:01Z", "timeframe": "quarter"}),
    )
    .unwrap_err();
    assert!(e.starts_with("end: a quarter window ending at 1970-01-01T00:00:01Z would start before 1970-01-01T00:00:00Z"), "{e}");
    // A window that starts at the epoch itself is fine.
    let out = call(
        &env,
        "dashboard_get_overview",
        json!({"end": "1970-01-02T00:00:00Z", "timeframe": "day"}),
    )
    .unwrap();
    assert_eq!(out["period"]["start"], "1970-01-01T00:00:00Z");
}

#[test]
fn errors_quote_a_bounded_prefix_of_a_huge_input() {
    let (env, _) = fixture();
    let huge = "x".repeat(1_000_000);
    let cases = [
        ("dashboard_get_overview", json!({"timeframe": huge})),
        ("dashboard_get_overview", json!({"start": huge})),
        ("dashboard_get_overview", json!({ huge.clone(): 1 })),
        ("dashboard_get_timeline", json!({"metric": huge})),
        ("dashboard_get_agents", json!({"limit": huge})),
        (
            "dashboard_set_budget",
            json!({"scope": huge, "limitUsd": 5, "period": "day"}),
        ),
        (
            "dashboard_set_budget",
            json!({"scope": "a", "limitUsd": 5, "period": huge}),
        ),
    ];
    for (tool, args) in cases {
        let e = call(&env, tool, args).unwrap_err();
        assert!(e.len() < 2_500, "{tool}: {} bytes", e.len());
        assert!(e.contains("xxxx"), "{tool}: quotes the value: {e}");
    }
    // The length of what was cut is said.
    let e = call(&env, "dashboard_get_overview", json!({"timeframe": huge})).unwrap_err();
    assert!(e.contains("(1000000 characters)"), "{e}");
    assert!(e.starts_with("timeframe: "), "{e}");
    assert!(
        e.ends_with("is not one of hour, day, week, month, quarter"),
        "{e}"
    );
}

#[test]
fn the_invalid_error_bounds_its_message_and_field_whatever_builds_it() {
    let e = Error::invalid("f".repeat(10_000), "m".repeat(100_000));
    let Error::Invalid { field, message } = e else {
        unreachable!()
    };
    assert!(
        field.len() <= 256 && field.ends_with('…'),
        "{}",
        field.len()
    );
    assert!(message.len() <= 2048 && message.ends_with('…'));
    // A multi-byte character at the cut is not split.
    let e = Error::invalid("f", "é".repeat(5_000));
    assert!(e.to_string().len() <= 2048 + 3);
}

#[test]
fn blank_or_control_budget_scopes_are_refused() {
    let env = empty(common::NOW);
    for scope in ["\u{0}", " ", "", " planner", "planner\t", "a\u{7}b"] {
        let e = call(
            &env,
            "dashboard_set_budget",
            json!({"scope": scope, "limitUsd": 5, "period": "day"}),
        )
        .unwrap_err();
        assert!(e.starts_with("scope: "), "{scope:?}: {e}");
    }
    let ok = call(
        &env,
        "dashboard_set_budget",
        json!({"scope": "planner-2", "limitUsd": 5, "period": "day"}),
    )
    .unwrap();
    assert_eq!(ok["budget"]["scope"], "planner-2");
}

fn execution(id: &str, ts: Millis, metadata: Option<String>) -> Execution {
    Execution {
        id: id.into(),
        ts,
        agent_id: "a".into(),
        agent_name: None,
        model: "m".into(),
        prompt_tokens: 1,
        completion_tokens: 2,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        cost: 1_000,
        duration_ms: Some(5.0),
        success: true,
        error: None,
        status_code: None,
        session_id: None,
        task_type: None,
        metadata,
        revision: None,
        cost_source: Default::default(),
    }
}

#[test]
fn an_execution_larger_than_a_result_is_shipped_without_its_metadata() {
    let env = empty(common::NOW);
    let now = t(common::NOW);
    let big = format!("{{\"blob\":\"{}\"}}", "z".repeat(100_000));
    // Stored as an older version could store it: the write path below ingest's caps.
    ingest::insert_all(
        &*env.dashboard.store,
        vec![
            execution("big", now - 1_000, Some(big.clone())),
            execution("small-1", now - 2_000, Some("{\"k\":1}".into())),
            execution("small-2", now - 3_000, None),
        ],
    )
    .unwrap();
    let mut offset = 0;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let out = call(
            &env,
            "dashboard_get_executions",
            json!({"offset": offset, "limit": 50}),
        )
        .unwrap();
        let page = out["executions"].as_array().unwrap();
        assert!(!page.is_empty(), "an empty page at offset {offset}");
        for e in page {
            ids.push(e["id"].as_str().unwrap().to_owned());
            if e["id"] == "big" {
                assert!(e.get("metadata").is_none());
                assert_eq!(e["metadataOmittedBytes"], big.len());
            } else {
                assert!(e.get("metadataOmittedBytes").is_none());
            }
        }
        match out["pagination"]["nextOffset"].as_u64() {
            Some(next) => offset = next,
            None => break,
        }
    }
    assert_eq!(ids, ["big", "small-1", "small-2"]);
}

/// Offsets deep enough that whole milliseconds are only counted (`PER_MILLISECOND` rows or more
/// before the page): every page equals the same slice of the list ordered by plain sorting.
#[test]
fn deep_offsets_page_exactly_like_sorting_everything() {
    let env = empty(common::NOW);
    let now = t(common::NOW);
    // 70,000 rows over 7 milliseconds (10,000 ties each, ids shuffled) and 50 loose ones.
    let mut rows: Vec<(String, Millis)> = Vec::new();
    for ms in 0..7i64 {
        for i in 0..10_000i64 {
            rows.push((
                format!("t{ms}-{:05}", (i * 7_919) % 10_000),
                now - 60_000 + ms,
            ));
        }
    }
    for i in 0..50 {
        rows.push((format!("loose-{i:02}"), now - 120_000 + i * 13));
    }
    let executions: Vec<Execution> = rows
        .iter()
        .map(|(id, ts)| execution(id, *ts, None))
        .collect();
    ingest::insert_all(&*env.dashboard.store, executions).unwrap();
    let mut expected = rows.clone();
    expected.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    for (offset, limit) in [
        (0, 3),
        (32_767, 5),
        (32_768, 5),
        (40_000, 500),
        (69_990, 40),
        (70_000, 50),
        (70_049, 10),
        (70_050, 10),
        (1_000_000, 10),
    ] {
        let out = call(
            &env,
            "dashboard_get_executions",
            json!({"offset": offset, "limit": limit, "timeframe": "hour"}),
        )
        .unwrap();
        let got: Vec<&str> = out["executions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        let want: Vec<&str> = expected
            .iter()
            .skip(offset)
            .take(limit)
            .map(|r| r.0.as_str())
            .collect();
        // A page may be cut short by the result cap, never reordered.
        let cut = got.len() < want.len();
        assert!(!cut || !got.is_empty(), "offset {offset}: an empty page");
        assert!(got == want[..got.len()], "offset {offset} limit {limit}");
        if cut {
            assert_eq!(out["pagination"]["nextOffset"], offset + got.len());
        }
        assert_eq!(out["pagination"]["total"], 70_050);
    }
}

#[test]
fn a_cancelled_request_stops_its_work() {
    let (_dir, d, _) = demo_env();
    let (cancellable, guard) = d.cancellable();
    drop(guard);
    let args = |v: Value| match v {
        Value::Object(m) => Some(m),
        _ => None,
    };
    let e = catalog::call(
        &cancellable,
        false,
        "dashboard_get_anomalies",
        args(json!({"timeframe": "month"})),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), Error::Cancelled.to_string());
    // The memo is left consistent: the same call, not cancelled, answers what a fresh
    // dashboard answers.
    let out = catalog::call(
        &d,
        false,
        "dashboard_get_anomalies",
        args(json!({"timeframe": "month"})),
    )
    .unwrap();
    let fresh = Dashboard::new(d.store.clone(), d.clock, Zone::default());
    let again = catalog::call(
        &fresh,
        false,
        "dashboard_get_anomalies",
        args(json!({"timeframe": "month"})),
    )
    .unwrap();
    assert_eq!(out, again);
}

#[test]
fn a_field_name_that_would_blur_its_end_is_quoted() {
    assert_eq!(Error::invalid("a:b", "m").to_string(), "\"a:b\": m");
    assert_eq!(Error::invalid("a\nb", "m").to_string(), "\"a\\nb\": m");
    assert_eq!(Error::invalid("limit", "m").to_string(), "limit: m");
}

#[test]
fn numbers_out_of_every_range_are_named_shortly() {
    let env = empty(common::NOW);
    let e = call(
        &env,
        "dashboard_set_budget",
        json!({"scope": "a", "limitUsd": 5e-324, "period": "day"}),
    )
    .unwrap_err();
    assert!(e.starts_with("limitUsd: 5e-324 "), "{e}");
    let e = call(
        &env,
        "dashboard_get_agents",
        json!({"offset": "18446744073709551616"}),
    )
    .unwrap_err();
    assert_eq!(
        e,
        "offset: \"18446744073709551616\" is too large; the largest integer allowed is 9223372036854775807"
    );
}
