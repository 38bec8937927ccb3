//! The contracts on disk — `schemas/` and `tools/` — are generated from the code. This test fails
//! when they drift; `UPDATE_CONTRACTS=1 cargo test --test contracts` rewrites them.

mod common;

use std::path::{Path, PathBuf};

use dashboard_mcp::catalog::{self, input_schema, output_schema};
use dashboard_mcp::wire::{AlertNotice, IngestRecord};
use serde_json::{json, Value};

/// One example call per tool: shown in tools/README.md and run against the fixture here.
fn example(tool: &str) -> Value {
    match tool {
        "dashboard_get_overview" => json!({"timeframe": "week"}),
        "dashboard_get_agents" => json!({"timeframe": "day", "sortBy": "cost", "limit": 5}),
        "dashboard_get_models" => json!({"timeframe": "month", "agentId": "alpha"}),
        "dashboard_get_timeline" => {
            json!({"timeframe": "day", "metric": "cost", "breakdown": "agent"})
        }
        "dashboard_get_executions" => json!({"timeframe": "day", "status": "error", "limit": 20}),
        "dashboard_get_anomalies" => json!({"timeframe": "week", "severity": "high"}),
        "dashboard_get_budgets" => json!({}),
        "dashboard_check_budget" => json!({"agentId": "alpha", "estimatedCostUsd": 3}),
        "dashboard_get_alerts" => json!({"limit": 10}),
        "dashboard_set_alert" => {
            json!({"id": "planner-oncall", "agentId": "alpha", "budgetThreshold": true, "anomalySeverity": "critical", "url": "https://hooks.example.com/alerts"})
        }
        "dashboard_set_budget" => json!({"scope": "global", "limitUsd": 500, "period": "month"}),
        "dashboard_record_usage" => {
            json!({"records": [{"timestamp": "2026-11-23T10:00:00Z", "agentId": "planner", "model": "claude-sonnet-4-5", "promptTokens": 1200, "completionTokens": 300, "cost": 0.0081, "durationMs": 2300}]})
        }
        other => panic!("add an example call for {other} to tests/contracts.rs"),
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap() + "\n"
}

/// Every generated file, by path relative to the repository root.
fn generated() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let mut table = String::from(
        "# Tools\n\nGenerated from the code by `UPDATE_CONTRACTS=1 cargo test --test contracts`; do not edit.\n\
         Each `<tool>.json` is the tool's `tools/list` entry. Write tools are listed only with `--allow-writes`.\n\n\
         | tool | title | kind | example call (`dashboard-mcp query <tool> '<json>'`) |\n|---|---|---|---|\n",
    );
    for spec in catalog::specs() {
        let tool = serde_json::to_value(spec.tool()).unwrap();
        files.push((
            Path::new("tools").join(format!("{}.json", spec.name)),
            pretty(&tool),
        ));
        files.push((
            Path::new("schemas").join(format!("{}.input.json", spec.name)),
            pretty(&Value::Object((spec.input_schema)())),
        ));
        files.push((
            Path::new("schemas").join(format!("{}.output.json", spec.name)),
            pretty(&Value::Object((spec.output_schema)())),
        ));
        let kind = if spec.write { "write" } else { "read" };
        table.push_str(&format!(
            "| `{}` | {} | {kind} | `{}` |\n",
            spec.name,
            spec.title,
            example(spec.name)
        ));
    }
    files.push((PathBuf::from("tools/README.md"), table));
    files.push((
        PathBuf::from("schemas/alert-notice.json"),
        pretty(&Value::Object(output_schema::<AlertNotice>())),
    ));
    files.push((
        PathBuf::from("schemas/ingest-record.json"),
        pretty(&Value::Object(input_schema::<IngestRecord>())),
    ));
    files
}

#[test]
fn contracts_match_the_code() {
    let update = std::env::var_os("UPDATE_CONTRACTS").is_some();
    let mut stale = Vec::new();
    for (path, text) in generated() {
        let full = root().join(&path);
        let on_disk = std::fs::read_to_string(&full).unwrap_or_default();
        if on_disk != text {
            if update {
                std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                std::fs::write(&full, text).unwrap();
            } else {
                stale.push(path.display().to_string());
            }
        }
    }
    // No leftovers from removed tools.
    for dir in ["tools", "schemas"] {
        let wanted: Vec<PathBuf> = generated().into_iter().map(|(p, _)| p).collect();
        for entry in std::fs::read_dir(root().join(dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            let rel = Path::new(dir).join(entry.file_name());
            if !wanted.contains(&rel) {
                if update {
                    std::fs::remove_file(entry.path()).unwrap();
                } else {
                    stale.push(format!("{} (no longer generated)", rel.display()));
                }
            }
        }
    }
    assert!(stale.is_empty(), "contracts differ from the code: {stale:?}; run `UPDATE_CONTRACTS=1 cargo test --test contracts`");
}

#[test]
fn examples_run_and_answers_match_their_output_schemas() {
    let (env, _) = common::fixture();
    for spec in catalog::specs() {
        let answer = common::call(&env, spec.name, example(spec.name))
            .unwrap_or_else(|e| panic!("{}: {e}", spec.name));
        let schema = Value::Object((spec.output_schema)());
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&answer)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", spec.name);
    }
}

#[test]
fn ingest_record_schema_lists_exactly_the_accepted_fields() {
    let schema = input_schema::<IngestRecord>();
    let mut props: Vec<&str> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    let mut fields = dashboard_mcp::ingest::FIELDS.to_vec();
    props.sort();
    fields.sort();
    assert_eq!(props, fields);
}

#[test]
fn every_tool_is_fully_annotated_and_the_list_stays_small() {
    let read_only = catalog::tools(false);
    for t in catalog::tools(true) {
        let a = t.annotations.as_ref().unwrap();
        assert!(t.title.is_some() && a.title.is_some(), "{}", t.name);
        for hint in [
            a.read_only_hint,
            a.destructive_hint,
            a.idempotent_hint,
            a.open_world_hint,
        ] {
            assert!(hint.is_some(), "{} lacks a hint", t.name);
        }
        assert_eq!(a.open_world_hint, Some(false));
        assert_eq!(t.input_schema.get("type"), Some(&json!("object")));
        assert_eq!(
            t.output_schema.as_ref().unwrap().get("type"),
            Some(&json!("object"))
        );
        let listed_without_writes = read_only.iter().any(|r| r.name == t.name);
        assert_eq!(
            listed_without_writes,
            a.read_only_hint == Some(true),
            "{}",
            t.name
        );
    }
    let size = serde_json::to_vec(&json!({"tools": read_only}))
        .unwrap()
        .len();
    assert!(
        size <= 24_000,
        "tools/list is {size} bytes with write tools off; keep it at or under 24,000"
    );
}
