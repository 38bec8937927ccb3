//! Ingest: CSV beside JSONL, strict mode, derived ids, exact money at a million records.

mod common;

use common::{call, empty, NOW};
use dashboard_mcp::ingest::{self, Source};
use serde_json::json;

fn import(
    env: &common::Env,
    name: &str,
    text: &'static str,
    strict: bool,
) -> dashboard_mcp::wire::ImportReport {
    ingest::import(
        &env.dashboard.store,
        vec![Source {
            name: name.into(),
            reader: Box::new(text.as_bytes()),
        }],
        strict,
    )
    .unwrap()
}

const CSV: &str = "id,timestamp,agentId,agentName,model,promptTokens,completionTokens,cost,durationMs,success,error,statusCode,metadata
c1,2026-11-23T10:00:00Z,alpha,Alpha,m-big,10,5,0.125,250.5,true,,,
c2,1795428000000,alpha,,m-big,1,1,0.375,,false,boom,500,\"{\"\"k\"\":1}\"
c3,2026-11-23T10:00:00Z,alpha,,m-big,ten,1,0.1,,,,,
c4,2026-11-23T10:00:00Z,alpha,,m-big,1,1,0.1,,maybe,,,
";

#[test]
fn csv_imports_like_jsonl() {
    let env = empty(NOW);
    let r = import(&env, "usage.csv", CSV, false);
    assert_eq!(r.files[0].format, "csv");
    assert_eq!((r.accepted, r.duplicates, r.rejected), (2, 0, 2));
    assert_eq!(r.files[0].errors[0].line, 4);
    assert_eq!(
        r.files[0].errors[0].reason,
        "promptTokens: \"ten\" is not an integer in 0..=1000000000000"
    );
    assert_eq!(
        r.files[0].errors[1].reason,
        "success: \"maybe\" is not true or false"
    );
    let x = call(&env, "dashboard_get_executions", json!({})).unwrap();
    // c2: 1795428000000 = 2026-11-23T10:00:00Z too; same instant → by id
    assert_eq!(x["executions"][0]["id"], "c1");
    assert_eq!(x["executions"][0]["duration"], 250.5);
    assert_eq!(x["executions"][1]["metadata"], json!({"k": 1}));
    assert_eq!(x["executions"][1]["success"], false);
    assert_eq!(x["executions"][1]["statusCode"], 500);
    let o = call(&env, "dashboard_get_overview", json!({})).unwrap();
    assert_eq!(o["summary"]["totalCost"], 0.5);
}

#[test]
fn strict_writes_nothing_when_any_record_is_bad() {
    let env = empty(NOW);
    let r = import(&env, "usage.csv", CSV, true);
    assert!(!r.committed);
    assert_eq!(r.rejected, 2);
    assert_eq!(r.accepted, 0);
    assert!(env.dashboard.store.is_empty().unwrap());
    let good =
        "{\"timestamp\":\"2026-11-23T10:00:00Z\",\"agentId\":\"a\",\"model\":\"m\",\"cost\":0.3}\n";
    let r = import(&env, "good.jsonl", good, true);
    assert!(r.committed);
    assert_eq!(r.accepted, 1);
}

#[test]
fn json_array_files_and_derived_ids() {
    let env = empty(NOW);
    let text = r#"[{"timestamp":"2026-11-23T10:00:00Z","agentId":"a","model":"m","cost":0.3},
                   {"timestamp":"2026-11-23T10:00:00Z","agentId":"a","model":"m","cost":0.3},
                   {"timestamp":"2026-11-23T10:00:00Z","agentId":"a","model":"m","cost":0.4}]"#;
    let r = import(&env, "a.json", text, false);
    assert_eq!(r.files[0].format, "json");
    // the first two say the same thing: one id; the third differs in cost
    assert_eq!((r.accepted, r.duplicates), (2, 1));
}

#[test]
fn a_million_dimes_total_exactly_100000() {
    let env = empty(NOW);
    // Each record goes through the ingest parser's money path: "0.1" → 100,000,000 nano-dollars.
    let rec = ingest::parse_record(&common::obj(
        json!({"timestamp": "2026-11-23T10:00:00Z", "agentId": "a", "model": "m", "cost": 0.1}),
    ))
    .unwrap();
    assert_eq!(rec.cost, 100_000_000);
    let records = (0..1_000_000).map(|i| dashboard_mcp::store::Execution {
        id: format!("d{i}"),
        ts: rec.ts + (i % 3_600_000),
        ..rec.clone()
    });
    assert_eq!(
        ingest::insert_all(&env.dashboard.store, records).unwrap(),
        1_000_000
    );
    let o = call(&env, "dashboard_get_overview", json!({})).unwrap();
    assert_eq!(o["summary"]["totalCalls"], 1_000_000);
    assert_eq!(o["summary"]["totalCost"], 100000.0);
    let m = call(&env, "dashboard_get_models", json!({})).unwrap();
    assert_eq!(m["models"][0]["metrics"]["totalCost"], 100000.0);
    let t = call(&env, "dashboard_get_timeline", json!({})).unwrap();
    assert_eq!(t["aggregate"]["total"], 100000.0);
    let a = call(&env, "dashboard_get_agents", json!({})).unwrap();
    assert_eq!(a["agents"][0]["metrics"]["totalCost"], 100000.0);
}
