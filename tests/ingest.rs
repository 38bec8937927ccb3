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
        &*env.dashboard.store,
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
        ingest::insert_all(&*env.dashboard.store, records).unwrap(),
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

// ---------------------------------------------------------------------------------------------
// Hardening: bad bytes, record caps, epoch magnitudes, unknown fields, strict everywhere.

const GOOD: &str = r#"{"timestamp":"2026-11-23T10:00:00Z","agentId":"a","model":"m","cost":0.25}"#;

fn line(id: &str, cost: &str) -> String {
    format!(
        r#"{{"id":"{id}","timestamp":"2026-11-23T10:00:00Z","agentId":"a","model":"m","cost":{cost}}}"#
    )
}

/// `dashboard-mcp --db <db> import <args>`: exit code, stdout.
fn cli_import(db: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dashboard-mcp"))
        .arg("--db")
        .arg(db)
        .arg("import")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn a_non_utf8_line_is_one_bad_record_and_the_next_file_still_imports() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("usage.db");
    let a = dir.path().join("a.jsonl");
    let b = dir.path().join("b.jsonl");
    let mut text = format!("{}\n", line("a1", "0.5")).into_bytes();
    text.extend(br#"{"id":"a2","timestamp":"2026-11-23T10:00:00Z","agentId":"caf"#);
    text.push(0xE9); // Latin-1 é: not UTF-8
    text.extend(b"\",\"model\":\"m\"}\n");
    text.extend(format!("{}\n", line("a3", "0.25")).as_bytes());
    std::fs::write(&a, &text).unwrap();
    std::fs::write(&b, format!("{}\n", line("b1", "1"))).unwrap();
    let (code, out) = cli_import(&db, &["--json", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (r["accepted"].clone(), r["rejected"].clone()),
        (json!(3), json!(1))
    );
    assert_eq!(r["files"][0]["source"], a.to_str().unwrap());
    assert_eq!(
        (
            r["files"][0]["accepted"].clone(),
            r["files"][1]["accepted"].clone()
        ),
        (json!(2), json!(1))
    );
    // {"id":"a2",…,"agentId":"caf is 60 bytes, so the bad byte is the 61st.
    assert_eq!(
        r["files"][0]["errors"],
        json!([{"line": 2, "reason": "the line is not UTF-8 text: byte 0xE9 at byte 61 of it is invalid; save the file as UTF-8"}])
    );
    // The human report names the file and the line.
    let (code, out) = cli_import(&db, &[a.to_str().unwrap()]);
    assert_eq!(
        code, 0,
        "re-importing is success: every good record is already there"
    );
    assert!(
        out.contains(&format!(
            "{}: 0 accepted, 2 duplicates skipped, 1 rejected (jsonl)",
            a.display()
        )),
        "{out}"
    );
    assert!(
        out.contains("  line 2: the line is not UTF-8 text"),
        "{out}"
    );
}

#[test]
fn import_fails_when_nothing_was_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("usage.db");
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"agentId\":\"a\"}\nnot json\n").unwrap();
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    assert_eq!(cli_import(&db, &[bad.to_str().unwrap()]).0, 1);
    assert_eq!(cli_import(&db, &[empty.to_str().unwrap()]).0, 0);
    // One good record among the bad: success, the rejections are reported.
    let mixed = dir.path().join("mixed.jsonl");
    std::fs::write(&mixed, format!("{GOOD}\nnot json\n")).unwrap();
    assert_eq!(cli_import(&db, &[mixed.to_str().unwrap()]).0, 0);
    assert_eq!(cli_import(&db, &["--strict", mixed.to_str().unwrap()]).0, 1);
}

#[test]
fn a_line_over_the_cap_is_skipped_and_named() {
    let env = empty(NOW);
    let long = format!(
        r#"{{"timestamp":0,"agentId":"a","model":"m","metadata":{{"blob":"{}"}}}}"#,
        "x".repeat(100_000)
    );
    let text = format!("{}\n{long}\n{}", line("l1", "0.5"), line("l3", "0.25"));
    let r = ingest::import(
        &*env.dashboard.store,
        vec![Source {
            name: "long.jsonl".into(),
            reader: Box::new(std::io::Cursor::new(text)),
        }],
        false,
    )
    .unwrap();
    assert_eq!((r.accepted, r.rejected), (2, 1));
    assert_eq!(r.files[0].errors[0].line, 2);
    assert_eq!(
        r.files[0].errors[0].reason,
        format!("record: the line is {} bytes long; allowed are at most 65536 bytes (64 KiB) per record; it was skipped", long.len())
    );
}

/// Issue #8: a record with 100 KB of metadata made the executions log blank and page forever.
/// It is now refused at ingest, naming the field, its size and the cap; the largest record
/// accepted comes back on a page of its own.
#[test]
fn oversized_metadata_is_refused_and_the_largest_record_pages() {
    let env = empty(NOW);
    let big = json!({"id": "big", "timestamp": "2026-11-23T11:00:00Z", "agentId": "a", "model": "m",
                     "metadata": {"blob": "x".repeat(100_000)}});
    let r = call(&env, "dashboard_record_usage", json!({"records": [big]})).unwrap();
    assert_eq!(r["rejected"], 1);
    assert_eq!(
        r["files"][0]["errors"][0]["reason"],
        "metadata: 100011 bytes of JSON given (unknown fields included); allowed are at most 16384 (16 KiB): keep large payloads elsewhere and store a reference"
    );
    // At the caps: 4096 characters of error, 16 KiB of metadata ({"blob":"…"} is 11 bytes besides).
    let records: Vec<_> = (0..3)
        .map(|i| {
            json!({"id": format!("max{i}"), "timestamp": "2026-11-23T11:00:00Z", "agentId": "a",
                         "model": "m", "error": "\u{1}".repeat(4096),
                         "metadata": {"blob": "x".repeat(16_384 - 11)}})
        })
        .collect();
    let r = call(&env, "dashboard_record_usage", json!({"records": records})).unwrap();
    assert_eq!(r["accepted"], 3);
    let mut offset = 0;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let page = call(&env, "dashboard_get_executions", json!({"offset": offset})).unwrap();
        assert!(serde_json::to_vec(&page).unwrap().len() <= 80_000);
        let items = page["executions"].as_array().unwrap();
        assert!(!items.is_empty(), "an empty page at offset {offset}");
        seen.extend(items.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        offset = page["pagination"]["nextOffset"].as_u64().unwrap_or(3);
    }
    assert_eq!(seen, ["max0", "max1", "max2"]);
}

#[test]
fn csv_and_json_files_with_bad_bytes_or_syntax_keep_their_good_records() {
    let env = empty(NOW);
    let csv = b"id,timestamp,agentId,model\nc1,1795428000,a,m\nc2,1795428000,\xFF,m\nc3,1795428000000,a,m\n";
    let json = format!(
        "[{},{},{{oops}},{}]",
        line("j1", "1"),
        line("j2", "1"),
        line("j4", "1")
    );
    let r = ingest::import(
        &*env.dashboard.store,
        vec![
            Source {
                name: "u.csv".into(),
                reader: Box::new(&csv[..]),
            },
            Source {
                name: "u.json".into(),
                reader: Box::new(std::io::Cursor::new(json)),
            },
        ],
        false,
    )
    .unwrap();
    // c1 in seconds and c3 in milliseconds are the same instant, with different ids.
    assert_eq!((r.files[0].accepted, r.files[0].rejected), (2, 1));
    assert_eq!(r.files[0].errors[0].line, 3);
    assert_eq!(r.files[0].duplicates, 0);
    assert_eq!((r.files[1].accepted, r.files[1].rejected), (2, 1));
    assert_eq!(r.files[1].errors[0].line, 3);
}

#[test]
fn epoch_seconds_are_not_read_as_milliseconds() {
    let env = empty(NOW);
    let text = "{\"id\":\"s\",\"timestamp\":1795428000,\"agentId\":\"a\",\"model\":\"m\"}\n\
                {\"id\":\"f\",\"timestamp\":1795428000.5,\"agentId\":\"a\",\"model\":\"m\"}\n\
                {\"id\":\"n\",\"timestamp\":\"1795428000000000000\",\"agentId\":\"a\",\"model\":\"m\"}\n\
                {\"id\":\"neg\",\"timestamp\":-1795428000,\"agentId\":\"a\",\"model\":\"m\"}\n";
    let r = import(&env, "epochs.jsonl", text, false);
    assert_eq!((r.accepted, r.rejected), (3, 1));
    assert_eq!(r.files[0].errors[0].line, 4);
    let x = call(&env, "dashboard_get_executions", json!({})).unwrap();
    let got: Vec<(String, String)> = x["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().into(),
                e["timestamp"].as_str().unwrap().into(),
            )
        })
        .collect();
    // 1795428000 s = 2026-11-23T10:00:00Z
    assert_eq!(
        got,
        [
            ("f".to_owned(), "2026-11-23T10:00:00.500Z".to_owned()),
            ("n".into(), "2026-11-23T10:00:00Z".into()),
            ("s".into(), "2026-11-23T10:00:00Z".into()),
        ]
    );
}

#[test]
fn unknown_fields_go_to_metadata_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("usage.db");
    let f = dir.path().join("extra.csv");
    std::fs::write(
        &f,
        "id,timestamp,agentId,model,cost_usd,metadata\nu1,2026-11-23T10:00:00Z,a,m,0.5,\nu2,2026-11-23T10:00:00Z,a,m,0.75,\"{\"\"cost_usd\"\":1}\"\nu3,2026-11-23T10:00:00Z,a,m,,\n",
    )
    .unwrap();
    let (code, out) = cli_import(&db, &["--json", f.to_str().unwrap()]);
    assert_eq!(code, 0);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["accepted"], 3);
    assert_eq!(r["files"][0]["unknownFields"], json!({"cost_usd": 2}));
    let (code, out) = cli_import(&db, &[f.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        out.contains(
            "  warning: unknown fields kept in metadata: \"cost_usd\" (2); check their spelling"
        ),
        "{out}"
    );
    let env = empty(NOW);
    let r = call(
        &env,
        "dashboard_record_usage",
        json!({"records": [
            {"id": "u1", "timestamp": "2026-11-23T10:00:00Z", "agentId": "a", "model": "m", "cost_usd": 0.5},
            {"id": "u2", "timestamp": "2026-11-23T10:00:00Z", "agentId": "a", "model": "m", "cost_usd": 0.75, "metadata": {"cost_usd": 1}},
        ]}),
    )
    .unwrap();
    assert_eq!(r["files"][0]["unknownFields"], json!({"cost_usd": 2}));
    let x = call(&env, "dashboard_get_executions", json!({})).unwrap();
    assert_eq!(x["executions"][0]["metadata"], json!({"cost_usd": 0.5}));
    assert_eq!(
        x["executions"][1]["metadata"],
        json!({"cost_usd": 1, "_extra.cost_usd": 0.75})
    );
    assert_eq!(x["executions"][0]["cost"], 0.0);
}

#[test]
fn the_tool_is_strict_on_request() {
    let env = empty(NOW);
    let records = json!([line("t1", "0.5").parse::<serde_json::Value>().unwrap(),
                         {"id": "t2", "timestamp": "2026-11-23T10:00:00Z", "agentId": "a", "model": "m", "cost": "x"}]);
    let e = call(
        &env,
        "dashboard_record_usage",
        json!({"records": records, "strict": true}),
    )
    .unwrap_err();
    assert_eq!(
        e,
        "records[1]: cost: \"x\" is not a number of USD in 0..=1000000; strict: nothing was written (1 of 2 records are bad)"
    );
    assert!(env.dashboard.store.is_empty().unwrap());
    let r = call(&env, "dashboard_record_usage", json!({"records": records})).unwrap();
    assert_eq!(
        (r["accepted"].clone(), r["rejected"].clone()),
        (json!(1), json!(1))
    );
}

mod rest {
    use super::*;
    use dashboard_mcp::http::{HttpConfig, HttpServer};
    use dashboard_mcp::mcp::DashboardServer;

    async fn post(path_and_query: &str, body: &str) -> (u16, serde_json::Value, common::Env) {
        let env = empty(NOW);
        let server = DashboardServer::new(env.dashboard.clone(), true);
        let http = HttpServer::bind(server, HttpConfig::new("127.0.0.1:0"))
            .await
            .unwrap();
        let url = format!("http://{}{path_and_query}", http.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(http.run(async move {
            let _ = stopped.await;
        }));
        let resp = reqwest::Client::new()
            .post(url)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let v = resp.json().await.unwrap();
        let _ = stop.send(());
        done.await.unwrap().unwrap();
        (status, v, env)
    }

    fn ndjson() -> String {
        format!("{}\n\n{{oops\n{}\n", line("r1", "0.5"), line("r4", "0.25"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bad_ndjson_line_is_one_rejected_record() {
        let (status, r, env) = post("/api/usage", &ndjson()).await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(
            (r["accepted"].clone(), r["rejected"].clone()),
            (json!(2), json!(1))
        );
        assert_eq!(r["files"][0]["errors"][0]["line"], 3);
        assert!(
            r["files"][0]["errors"][0]["reason"]
                .as_str()
                .unwrap()
                .starts_with("invalid JSON (key must be a string at line 1 column 2): \"{oops\""),
            "{r}"
        );
        assert!(!env.dashboard.store.is_empty().unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn strict_refuses_the_whole_body() {
        let (status, e, env) = post("/api/usage?strict=true", &ndjson()).await;
        assert_eq!(status, 400, "{e}");
        assert_eq!(e["error"]["field"], "body");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("line 3: invalid JSON (key must be a string"),
            "{e}"
        );
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .ends_with("strict: nothing was written (1 of 3 records are bad)"),
            "{e}"
        );
        assert!(env.dashboard.store.is_empty().unwrap());
        let body = format!(
            "[{},{{\"timestamp\":-1,\"agentId\":\"a\",\"model\":\"m\"}}]",
            line("r1", "0.5")
        );
        let (status, e, env) = post("/api/usage?strict=1", &body).await;
        assert_eq!(status, 400, "{e}");
        assert_eq!(e["error"]["field"], "records[1]");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("records[1]: timestamp: -1 is negative"),
            "{e}"
        );
        assert!(env.dashboard.store.is_empty().unwrap());
        let (status, e, _) = post("/api/usage?strict=maybe", &body).await;
        assert_eq!(
            (status, e["error"]["field"].clone()),
            (400, json!("strict"))
        );
        let (status, e, _) = post("/api/usage?dryRun=true", &body).await;
        assert_eq!(
            (status, e["error"]["field"].clone()),
            (400, json!("dryRun"))
        );
        let (status, e, _) = post("/api/usage", "a,b\n1,2\n").await;
        assert_eq!((status, e["error"]["field"].clone()), (400, json!("body")));
    }
}
