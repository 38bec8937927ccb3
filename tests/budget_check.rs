//! `dashboard_check_budget`: may an agent spend an estimate now? Every figure worked out by hand
//! from the records below (clock 2026-11-23T12:00:00Z, a Monday; weeks start on Monday).
//!
//! - planner: $40 at 08:00 and $39 at 09:00 today (this week: $79), $500 on 2026-11-20 (last
//!   week, this month).
//! - writer: $405 on 2026-11-10.
//! - Budgets: planner $100 a week; global $1000 a month. This month: 79 + 500 + 405 = $984.

mod common;

use serde_json::{json, Value};

use common::{call, empty, Env};

fn env_at(now: &str) -> Env {
    let env = empty(now);
    let r = call(
        &env,
        "dashboard_record_usage",
        json!({"records": [
            {"id": "p1", "timestamp": "2026-11-23T08:00:00Z", "agentId": "planner", "model": "m", "cost": 40},
            {"id": "p2", "timestamp": "2026-11-23T09:00:00Z", "agentId": "planner", "model": "m", "cost": 39},
            {"id": "p3", "timestamp": "2026-11-20T10:00:00Z", "agentId": "planner", "model": "m", "cost": 500},
            {"id": "w1", "timestamp": "2026-11-10T10:00:00Z", "agentId": "writer", "model": "m", "cost": 405}
        ]}),
    )
    .unwrap();
    assert_eq!(r["accepted"], 4);
    for (scope, limit, period) in [("planner", 100, "week"), ("global", 1000, "month")] {
        call(
            &env,
            "dashboard_set_budget",
            json!({"scope": scope, "limitUsd": limit, "period": period}),
        )
        .unwrap();
    }
    env
}

fn check(env: &Env, args: Value) -> Value {
    call(env, "dashboard_check_budget", args).unwrap()
}

#[test]
fn an_estimate_within_both_budgets_is_allowed_and_names_the_tightest() {
    let env = env_at("2026-11-23T12:00:00Z");
    let v = check(&env, json!({"agentId": "planner", "estimatedCostUsd": 3}));
    // planner: 100 − 79 − 3 = $18 left; global: 1000 − 984 − 3 = $13 left: the tightest.
    assert_eq!(v["allowed"], true);
    assert_eq!(v["blockedBy"], Value::Null);
    assert_eq!(v["remainingUsd"], 13.0);
    // (984 + 3) / 1000.
    assert_eq!(v["percentUsed"], 98.7);
    assert_eq!(
        v["reason"],
        "allowed: after $3, $13 is left of the global monthly budget of $1000 (the tightest that applies)"
    );
    let b = &v["budgets"];
    assert_eq!(b[0]["scope"], "planner");
    assert_eq!(
        (&b[0]["spentUsd"], &b[0]["remainingUsd"]),
        (&json!(79.0), &json!(18.0))
    );
    assert_eq!(b[0]["percentUsed"], 82.0);
    assert_eq!(b[1]["scope"], "global");
    assert_eq!(b[1]["spentUsd"], 984.0);
    assert_eq!(b[1]["blocks"], false);
    // The projection is the budgets tool's, plus the estimate.
    let budgets = call(&env, "dashboard_get_budgets", json!({})).unwrap();
    let projected = |scope: &str| {
        budgets["budgets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["scope"] == scope)
            .unwrap()["projected"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(
        b[1]["projectedUsd"].as_f64().unwrap(),
        projected("global") + 3.0
    );
    assert_eq!(v["projectedUsd"], b[1]["projectedUsd"]);
}

#[test]
fn the_estimate_that_tips_a_budget_over_is_blocked_by_it() {
    let env = env_at("2026-11-23T12:00:00Z");
    // planner: 79 + 20 = 99 ≤ 100; global: 984 + 20 = 1004 > 1000, $4 over.
    let v = check(
        &env,
        json!({"agentId": "planner", "estimatedCostUsd": "$20"}),
    );
    assert_eq!(v["allowed"], false);
    assert_eq!(v["blockedBy"], "global");
    assert_eq!(v["remainingUsd"], -4.0);
    assert_eq!(v["percentUsed"], 100.4);
    assert_eq!(
        v["reason"],
        "blocked by the global monthly budget of $1000: $984 spent this period + $20 estimated = $1004, $4 over (the period ends 2026-12-01T00:00:00Z)"
    );
    assert_eq!(v["budgets"][0]["blocks"], false);
    // $25: both over (planner 104, global 1009); the agent's own budget is named first.
    let v = check(&env, json!({"agentId": "planner", "estimatedCostUsd": 25}));
    assert_eq!(
        (&v["allowed"], &v["blockedBy"]),
        (&json!(false), &json!("planner"))
    );
    assert_eq!(v["remainingUsd"], -4.0);
    assert!(v["reason"].as_str().unwrap().starts_with(
        "blocked by planner's weekly budget of $100: $79 spent this period + $25 estimated = $104"
    ));
    // Exactly at the limit is allowed: 984 + 16 = 1000.
    let v = check(&env, json!({"agentId": "planner", "estimatedCostUsd": 16}));
    assert_eq!(
        (&v["allowed"], &v["remainingUsd"]),
        (&json!(true), &json!(0.0))
    );
}

#[test]
fn a_spent_up_budget_blocks_even_without_an_estimate() {
    let env = env_at("2026-11-23T12:00:00Z");
    call(
        &env,
        "dashboard_set_budget",
        json!({"scope": "planner", "limitUsd": 79, "period": "day"}),
    )
    .unwrap();
    let v = check(&env, json!({"agentId": "planner"}));
    assert_eq!(
        (&v["allowed"], &v["blockedBy"]),
        (&json!(false), &json!("planner"))
    );
    assert_eq!(
        v["reason"],
        "blocked by planner's daily budget of $79: $79 is spent already this period (ends 2026-11-24T00:00:00Z)"
    );
}

#[test]
fn a_new_period_starts_from_nothing() {
    // Tuesday 2026-12-01, 00:00: a new month (global) and a week that began on Monday 11-30.
    let env = env_at("2026-12-01T00:00:00Z");
    let v = check(&env, json!({"agentId": "planner", "estimatedCostUsd": 20}));
    // planner: 100 − 0 − 20 = $80 left; global: 1000 − 0 − 20 = $980.
    assert_eq!(v["allowed"], true);
    assert_eq!(v["remainingUsd"], 80.0);
    assert_eq!(v["percentUsed"], 20.0);
    assert_eq!(v["budgets"][0]["spentUsd"], 0.0);
    assert_eq!(v["budgets"][1]["spentUsd"], 0.0);
}

#[test]
fn no_budget_allows_and_says_so_and_bad_input_names_the_field() {
    let env = empty("2026-11-23T12:00:00Z");
    let v = check(&env, json!({"agentId": "planner", "estimatedCostUsd": 3}));
    assert_eq!(v["allowed"], true);
    assert_eq!(v["remainingUsd"], Value::Null);
    assert_eq!(v["budgets"], json!([]));
    assert_eq!(
        v["reason"],
        "allowed: no budget applies to planner (none of its own, and no global budget)"
    );
    for (args, field) in [
        (json!({}), "agentId"),
        (json!({"agentId": "global"}), "agentId"),
        (
            json!({"agentId": "a", "estimatedCostUsd": -1}),
            "estimatedCostUsd",
        ),
        (
            json!({"agentId": "a", "estimatedCostUsd": "lots"}),
            "estimatedCostUsd",
        ),
        (
            json!({"agentId": "a", "estimatedCostUsd": 1e7}),
            "estimatedCostUsd",
        ),
    ] {
        let e = call(&env, "dashboard_check_budget", args.clone()).unwrap_err();
        assert!(e.contains(field), "{args}: {e}");
    }
}
