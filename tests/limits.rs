//! The 80 KB result cap: a page that would exceed it is cut short with `hasMore` and the offset
//! (or, for a timeline, the start) to continue from; continuing yields the rest, nothing lost.

mod common;

use common::{call, empty, NOW};
use dashboard_mcp::ingest;
use serde_json::json;

const CAP: usize = 80_000;

fn record(i: usize, agent: &str, ts: &str, error: Option<String>) -> serde_json::Value {
    let mut r = json!({"id": format!("r{i:04}"), "timestamp": ts, "agentId": agent, "model": "m", "cost": 0.01});
    if let Some(e) = error {
        r["error"] = json!(e);
    }
    r
}

#[test]
fn executions_pages_are_cut_under_80kb_and_continue() {
    let env = empty(NOW);
    // 60 executions with 4 KB error texts: ~250 KB in all, far over one result.
    let recs: Vec<_> = (0..60)
        .map(|i| record(i, "a", "2026-11-23T10:00:00Z", Some("e".repeat(4000))))
        .collect();
    ingest::import_values(&*env.dashboard.store, &recs, "t").unwrap();
    let mut seen = Vec::new();
    let mut offset = 0u64;
    loop {
        let page = call(
            &env,
            "dashboard_get_executions",
            json!({"limit": 500, "offset": offset}),
        )
        .unwrap();
        assert!(serde_json::to_vec(&page).unwrap().len() <= CAP);
        let items = page["executions"].as_array().unwrap();
        assert!(!items.is_empty());
        seen.extend(items.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        let p = &page["pagination"];
        assert_eq!(p["total"], 60);
        if p["hasMore"] == false {
            assert_eq!(p["nextOffset"], json!(null));
            break;
        }
        // cut short: fewer than asked, and the offset to continue from
        assert!(items.len() < 60);
        offset = p["nextOffset"].as_u64().unwrap();
        assert_eq!(offset as usize, seen.len());
    }
    let mut expected: Vec<String> = (0..60).map(|i| format!("r{i:04}")).collect();
    expected.sort();
    assert_eq!(seen, expected); // same instant: by id, every one exactly once
}

#[test]
fn timelines_are_cut_under_80kb_with_next_start() {
    let env = empty(NOW);
    // 12 agents with 128-character ids, one call each per minute over the last 6 hours.
    let agents: Vec<String> = (0..12)
        .map(|i| format!("{i:02}{}", "x".repeat(126)))
        .collect();
    let mut recs = Vec::new();
    for m in 0..360 {
        let ts = format!("2026-11-23T{:02}:{:02}:00Z", 6 + m / 60, m % 60);
        for a in &agents {
            recs.push(record(recs.len(), a, &ts, None));
        }
    }
    ingest::import_values(&*env.dashboard.store, &recs, "t").unwrap();
    let args = json!({"start": "2026-11-23T06:00:00Z", "granularity": "minute", "metric": "calls", "breakdown": "agent"});
    let t = call(&env, "dashboard_get_timeline", args).unwrap();
    assert!(serde_json::to_vec(&t).unwrap().len() <= CAP);
    assert_eq!(t["hasMore"], true);
    let n = t["series"].as_array().unwrap().len();
    assert!(n > 0 && n < 360);
    // the aggregate covers the whole window all the same
    assert_eq!(t["aggregate"]["total"], 4320.0);
    let next = t["nextStart"].as_str().unwrap();
    assert_eq!(
        next,
        format!("2026-11-23T{:02}:{:02}:00Z", 6 + n / 60, n % 60)
    );
    let rest = call(
        &env,
        "dashboard_get_timeline",
        json!({"start": next, "granularity": "minute", "metric": "calls"}),
    )
    .unwrap();
    assert_eq!(rest["series"].as_array().unwrap().len(), 360 - n);
    assert_eq!(rest["hasMore"], false);
}
