//! Real usage in: Claude Code's and Codex's session logs (tests/fixtures/claude-code, codex),
//! priced with the built-in table, read incrementally. Expected figures are worked out by hand
//! from the fixture lines (prices: `dashboard-mcp prices MODEL`, LiteLLM 1.110.2):
//!
//! Claude Code, project `-home-alice-shop` (sess-1.jsonl and its subagent file):
//! - msg_A (written 3 times: two streaming lines, and a sidechain copy in the subagent file):
//!   the main-chain line with 50 output tokens counts: 10 in, 50 out, 100 cache read = 160
//!   tokens; sonnet-4.5 at $3 / $15 / $0.30 per M: 30 + 750 + 30 µ$ = $0.00081.
//! - msg_B: 20 in, 30 out, 200 cache read, 1000 cache write of which 600 for 1 hour = 1250
//!   tokens; 60 + 450 + 60 + 400·3.75 + 600·6 = 5670 µ$ = $0.00567.
//! - msg_C: an API error (isApiErrorMessage), no tokens: a failed call costing $0.
//! - msg_E: opus-4.1 with costUSD 0.5: reported, $0.5; 2 tokens.
//! - `<synthetic>` is skipped; line 7 is not JSON and is reported.
//! - Main agent: 4 calls, 1 error, 160 + 1250 + 0 + 2 = 1412 tokens, $0.50648 ($0.00648
//!   estimated).
//! - Subagents (msg_D 7 + 3 tokens, msg_F 4 + 6, haiku-4.5 at $1 / $5 per M): 2 calls, 20
//!   tokens, 7 + 15 + 4 + 30 = 56 µ$ = $0.000056.
//!
//! Codex (one session in /home/alice/shop): a token_count of 1000 in (200 cached), 300 out
//! (100 reasoning) on gpt-5-codex; a repeat of it (skipped); then, on gpt-5, totals that grew
//! to 2500 / 1200 / 500 / 150 with no last_token_usage: the difference, 1500 in (1000 cached),
//! 200 out. 2 calls, 1300 + 1700 = 3000 tokens (= Codex's own final total, 2500 + 500); both
//! models at $1.25 / $10 / $0.125 per M: (800·1.25 + 300·10 + 200·0.125) + (500·1.25 + 200·10
//! + 1000·0.125) = 4025 + 2750 µ$ = $0.006775.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use dashboard_mcp::sources::logs::{self, Quiet};
use dashboard_mcp::sources::Kind;
use dashboard_mcp::wire::ImportReport;
use serde_json::{json, Value};

use common::{call, empty, Env};

const NOW: &str = "2025-10-02T00:00:00Z";

fn fixtures(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind)
}

fn import(env: &Env, kind: Kind, dirs: &[PathBuf]) -> ImportReport {
    let files = logs::discover(kind, dirs, true).unwrap();
    logs::import(&*env.dashboard.store, kind, &files, &mut Quiet).unwrap()
}

/// (calls, errors, tokens, cost) of each agent over the fixtures' month.
fn agents(env: &Env) -> Vec<(String, u64, u64, u64, f64)> {
    let v = call(env, "dashboard_get_agents", json!({"timeframe": "month"})).unwrap();
    let mut out: Vec<_> = v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let m = &a["metrics"];
            (
                a["id"].as_str().unwrap().to_owned(),
                m["totalCalls"].as_u64().unwrap(),
                m["errorCount"].as_u64().unwrap(),
                m["totalTokens"].as_u64().unwrap(),
                m["totalCost"].as_f64().unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn claude_expected() -> Vec<(String, u64, u64, u64, f64)> {
    vec![
        ("claude-code:-home-alice-shop".into(), 4, 1, 1412, 0.50648),
        (
            "claude-code:-home-alice-shop:subagents".into(),
            2,
            0,
            20,
            0.000056,
        ),
    ]
}

#[test]
fn claude_code_logs_give_the_hand_worked_totals() {
    let env = empty(NOW);
    let r = import(&env, Kind::ClaudeCode, &[fixtures("claude-code")]);
    assert_eq!(agents(&env), claude_expected());
    // 6 executions: msg_A's streaming repeat and its sidechain copy (in the other file) merged
    // into its main-chain line before they reached the store; line 7 reported.
    assert_eq!(
        (r.accepted, r.duplicates, r.replaced, r.rejected),
        (6, 2, 0, 1)
    );
    let bad = r.files.iter().flat_map(|f| &f.errors).collect::<Vec<_>>();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].line, 7);
    assert!(bad[0].reason.starts_with("not JSON"), "{}", bad[0].reason);

    // Every execution says where its cost came from; the 1-hour cache writes are kept.
    let v = call(
        &env,
        "dashboard_get_executions",
        json!({"timeframe": "month", "limit": 10}),
    )
    .unwrap();
    let by_id = |id: &str| -> Value {
        v["executions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing"))
            .clone()
    };
    let b = by_id("claude-code:msg_B:req_2");
    assert_eq!(b["costSource"], "estimated");
    assert_eq!(b["cost"], 0.00567);
    assert_eq!(b["metadata"]["cacheWrite1hTokens"], 600);
    assert_eq!(b["taskType"], "main");
    let e = by_id("claude-code:msg_E:req_5");
    assert_eq!(
        (e["costSource"].as_str(), e["cost"].as_f64()),
        (Some("reported"), Some(0.5))
    );
    let c = by_id("claude-code:msg_C:req_3");
    assert_eq!(c["success"], false);
    assert_eq!(c["error"], "API Error: 529 Overloaded");
    let d = by_id("claude-code:msg_D:req_4");
    assert_eq!(d["taskType"], "subagent");
    assert_eq!(d["metadata"]["subagentId"], "sub-1");
}

#[test]
fn every_form_of_folder_finds_the_same_files() {
    let root = fixtures("claude-code");
    let project = root.join("projects/-home-alice-shop");
    let names = |dirs: &[PathBuf]| -> Vec<(String, String, bool)> {
        logs::discover(Kind::ClaudeCode, dirs, true)
            .unwrap()
            .into_iter()
            .map(|f| {
                let rel = f.path.strip_prefix(&project).unwrap().display().to_string();
                (rel, f.project, f.subagent)
            })
            .collect()
    };
    // In path order (by component: `sess-1` before `sess-1.jsonl`).
    let all = vec![
        (
            "sess-1/subagents/agent-sub-2.jsonl".to_owned(),
            "-home-alice-shop".to_owned(),
            true,
        ),
        (
            "sess-1.jsonl".to_owned(),
            "-home-alice-shop".to_owned(),
            false,
        ),
    ];
    assert_eq!(names(std::slice::from_ref(&root)), all);
    assert_eq!(names(&[root.join("projects")]), all);
    assert_eq!(names(std::slice::from_ref(&project)), all);
    assert_eq!(names(&[project.join("sess-1.jsonl")]), all[1..].to_vec());
    // A folder that is not there, given by the user, is an error naming it.
    let e = logs::discover(Kind::ClaudeCode, &[root.join("nope")], true).unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
}

/// Copy `lines` of `from` (1-based, inclusive) to `to`, appending; the last one without its
/// newline when `cut` (a line still being written).
fn append(from: &Path, to: &Path, lines: std::ops::RangeInclusive<usize>, cut: bool) {
    let text = std::fs::read_to_string(from).unwrap();
    let all: Vec<&str> = text.lines().collect();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(to)
        .unwrap();
    let (first, last) = (*lines.start(), *lines.end());
    for (i, l) in all[first - 1..last].iter().enumerate() {
        if cut && first + i == last {
            // Half of the line now; the test writes the rest later.
            f.write_all(&l.as_bytes()[..l.len() / 2]).unwrap();
        } else {
            writeln!(f, "{l}").unwrap();
        }
    }
}

fn rest_of_line(from: &Path, to: &Path, line: usize) {
    let text = std::fs::read_to_string(from).unwrap();
    let l = text.lines().nth(line - 1).unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(to).unwrap();
    writeln!(f, "{}", &l[l.len() / 2..]).unwrap();
}

#[test]
fn a_grown_claude_code_file_imported_again_counts_everything_once() {
    let src = fixtures("claude-code/projects/-home-alice-shop");
    let env = empty(NOW);
    let project = env.dir.path().join("logs/projects/-home-alice-shop");
    std::fs::create_dir_all(project.join("sess-1/subagents")).unwrap();
    let (main, sub) = (
        project.join("sess-1.jsonl"),
        project.join("sess-1/subagents/agent-sub-2.jsonl"),
    );
    let root = env.dir.path().join("logs");
    // First: msg_A's first streaming line (5 output tokens) and half of its second one.
    append(&src.join("sess-1.jsonl"), &main, 1..=3, true);
    let r1 = import(&env, Kind::ClaudeCode, std::slice::from_ref(&root));
    assert_eq!(r1.accepted, 1);
    let a = agents(&env);
    // 10 in + 5 out + 100 cache read.
    assert_eq!((a[0].1, a[0].3), (1, 115));
    // Then the rest of that line and everything else, and the subagent file.
    rest_of_line(&src.join("sess-1.jsonl"), &main, 3);
    append(&src.join("sess-1.jsonl"), &main, 4..=9, false);
    append(
        &src.join("sess-1/subagents/agent-sub-2.jsonl"),
        &sub,
        1..=2,
        false,
    );
    let r2 = import(&env, Kind::ClaudeCode, std::slice::from_ref(&root));
    // msg_A's main-chain line of 160 tokens (a tie with its sidechain copy in the subagent
    // file goes to the main chain) replaces the stored 115-token line; the copy is a duplicate.
    assert_eq!(
        (r2.accepted, r2.replaced, r2.duplicates, r2.rejected),
        (5, 1, 1, 1)
    );
    assert_eq!(agents(&env), claude_expected());
    // Nothing new: nothing read, nothing written.
    let r3 = import(&env, Kind::ClaudeCode, std::slice::from_ref(&root));
    assert_eq!((r3.accepted, r3.duplicates, r3.files.len()), (0, 0, 0));
    assert_eq!(agents(&env), claude_expected());
}

#[test]
fn a_file_replaced_at_the_same_path_is_read_from_the_start() {
    let src = fixtures("claude-code/projects/-home-alice-shop/sess-1.jsonl");
    let env = empty(NOW);
    let project = env.dir.path().join("p/projects/-home-alice-shop");
    std::fs::create_dir_all(&project).unwrap();
    let file = project.join("sess-1.jsonl");
    append(&src, &file, 8..=9, false);
    import(&env, Kind::ClaudeCode, std::slice::from_ref(&file));
    // Another file now, longer than the first: its head differs, so it is read whole.
    std::fs::remove_file(&file).unwrap();
    append(&src, &file, 1..=9, false);
    import(&env, Kind::ClaudeCode, &[file]);
    let a = agents(&env);
    assert_eq!(
        a[0],
        ("claude-code:-home-alice-shop".into(), 4, 1, 1412, 0.50648)
    );
}

fn codex_expected() -> Vec<(String, u64, u64, u64, f64)> {
    vec![("codex:-home-alice-shop".into(), 2, 0, 3000, 0.006775)]
}

#[test]
fn codex_logs_give_the_hand_worked_totals() {
    let env = empty(NOW);
    let r = import(&env, Kind::Codex, &[fixtures("codex")]);
    assert_eq!((r.accepted, r.rejected), (2, 0));
    assert_eq!(agents(&env), codex_expected());
    let v = call(
        &env,
        "dashboard_get_executions",
        json!({"timeframe": "month", "limit": 10}),
    )
    .unwrap();
    let first = &v["executions"][1];
    assert_eq!(first["model"], "gpt-5-codex");
    assert_eq!(
        first["tokens"],
        json!({"prompt": 800, "completion": 300, "cacheRead": 200, "cacheWrite": 0, "total": 1300})
    );
    assert_eq!(first["metadata"]["reasoningTokens"], 100);
    assert_eq!(first["sessionId"], "0199a1b2-c3d4-e5f6-a7b8-c9d0e1f2a3b4");
    let second = &v["executions"][0];
    assert_eq!(second["model"], "gpt-5");
    assert_eq!(second["tokens"]["total"], 1700);
}

#[test]
fn a_grown_codex_file_keeps_its_running_totals_between_imports() {
    let src = std::fs::read_dir(fixtures("codex/sessions/2025/09/30"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let env = empty(NOW);
    let dir = env.dir.path().join("codex/sessions");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(src.file_name().unwrap());
    // Up to the repeated event; the model change and the totals-only event come later.
    append(&src, &file, 1..=5, false);
    assert_eq!(
        import(&env, Kind::Codex, &[env.dir.path().join("codex")]).accepted,
        1
    );
    append(&src, &file, 6..=7, false);
    assert_eq!(
        import(&env, Kind::Codex, &[env.dir.path().join("codex")]).accepted,
        1
    );
    assert_eq!(agents(&env), codex_expected());
}

/// Two records of agent `bench` without a cost: 500 + 20 tokens of `my-local-llama` (no price
/// in the table) and 1000 + 100 of gpt-5 ($1.25 / $10 per M: 2250 µ$).
fn record_local_calls(env: &Env) -> Value {
    call(
        env,
        "dashboard_record_usage",
        json!({"records": [
            {"id": "local-1", "timestamp": "2025-10-01T11:00:00Z", "agentId": "bench",
             "model": "my-local-llama", "promptTokens": 500, "completionTokens": 20},
            {"id": "local-2", "timestamp": "2025-10-01T11:00:00Z", "agentId": "bench",
             "model": "gpt-5", "promptTokens": 1000, "completionTokens": 100}
        ]}),
    )
    .unwrap()
}

#[test]
fn answers_say_how_much_is_estimated_and_which_models_have_no_price() {
    let env = empty(NOW);
    import(&env, Kind::ClaudeCode, &[fixtures("claude-code")]);
    // Two records without a cost: one of a model the table has no price for.
    assert_eq!(record_local_calls(&env)["accepted"], 2);
    let o = call(
        &env,
        "dashboard_get_overview",
        json!({"timeframe": "month"}),
    )
    .unwrap();
    let s = &o["summary"];
    // Estimated: Claude Code's 810 + 5670 + 0 (msg_C) + 22 + 34 µ$, and gpt-5's 1000 · 1.25 +
    // 100 · 10 = 2250 µ$: 8786 µ$. msg_E's $0.5 was reported.
    assert_eq!(s["estimatedCost"], 0.008786);
    assert_eq!(s["totalCost"], 0.508786);
    assert_eq!(s["unpricedCalls"], 1);
    assert_eq!(s["unpricedModels"], json!(["my-local-llama"]));
    let m = call(&env, "dashboard_get_models", json!({"timeframe": "month"})).unwrap();
    let llama = m["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "my-local-llama")
        .unwrap();
    assert_eq!(llama["metrics"]["unpricedCalls"], 1);
    assert_eq!(llama["metrics"]["totalCost"], 0.0);
    // A one-hour window inside the day (raw rows only) says the same for its part.
    let o = call(
        &env,
        "dashboard_get_overview",
        json!({"start": "2025-10-01T10:04:00Z", "end": "2025-10-01T11:30:00Z"}),
    )
    .unwrap();
    // msg_B 5670, msg_D 22 (10:08), msg_E reported, gpt-5 2250 µ$.
    assert_eq!(o["summary"]["estimatedCost"], 0.007942);
    assert_eq!(o["summary"]["unpricedCalls"], 1);
}

/// `serve --watch claude-code`, the real binary with real file notifications: lines appended to
/// a session file are stored within 2 s.
#[test]
fn serve_watch_ingests_new_lines_within_two_seconds() {
    use dashboard_mcp::store::Filter;
    use dashboard_mcp::time::{parse_rfc3339, Window};
    use std::time::{Duration, Instant};

    let src = fixtures("claude-code/projects/-home-alice-shop/sess-1.jsonl");
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_store(dir.path());
    let root = dir.path().join("claude");
    let project = root.join("projects/-home-alice-shop");
    std::fs::create_dir_all(&project).unwrap();
    let file = project.join("sess-1.jsonl");
    append(&src, &file, 1..=3, true);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dashboard-mcp"))
        .args(["--db", &store.location(), "serve", "--watch", "claude-code"])
        .env("CLAUDE_CONFIG_DIR", &root)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let day = Window {
        start: parse_rfc3339("t", "2025-10-01T00:00:00Z").unwrap(),
        end: parse_rfc3339("t", "2025-10-02T00:00:00Z").unwrap(),
    };
    let totals = || store.read(|c| c.totals(&day, &Filter::default())).unwrap();
    let wait = |calls: i64, within: Duration| -> Duration {
        let t0 = Instant::now();
        while totals().calls != calls {
            assert!(
                t0.elapsed() < within,
                "{calls} calls not stored within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        t0.elapsed()
    };
    // The first scan: msg_A's first line (the second is half written).
    wait(1, Duration::from_secs(10));
    assert_eq!(totals().tokens, 115);
    rest_of_line(&src, &file, 3);
    append(&src, &file, 4..=9, false);
    // msg_A (now 160 tokens), msg_B, msg_C, msg_D (a sidechain line of this file), msg_E.
    let took = wait(5, Duration::from_secs(2));
    assert_eq!(totals().tokens, 1412 + 10);
    eprintln!("new lines stored {took:?} after they were written");
    drop(child.stdin.take());
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if child.try_wait().unwrap().is_none() {
        child.kill().unwrap();
        panic!("serve did not stop within 10 s of its stdin closing");
    }
}

/// A newer or amended price table re-prices the estimated (and unpriced) costs it changes,
/// exactly, with every total; reported costs stay.
#[test]
fn a_newer_price_table_reprices_exactly_what_it_changes() {
    use dashboard_mcp::ingest::price::tokens_of;
    use dashboard_mcp::prices::PriceTable;
    use dashboard_mcp::store::Priceable;

    let env = empty(NOW);
    import(&env, Kind::ClaudeCode, &[fixtures("claude-code")]);
    record_local_calls(&env);
    // Sonnet 4.5 at twice its prices, and a price for the local model.
    let newer = PriceTable::builtin().merged(
        &PriceTable::from_litellm_json(
            r#"{"claude-sonnet-4-5-20250929": {"litellm_provider": "anthropic", "mode": "chat",
                  "input_cost_per_token": 6e-6, "output_cost_per_token": 3e-5,
                  "cache_read_input_token_cost": 6e-7, "cache_creation_input_token_cost": 7.5e-6,
                  "cache_creation_input_token_cost_above_1hr": 1.2e-5},
                "my-local-llama": {"mode": "chat", "input_cost_per_token": 1e-6,
                  "output_cost_per_token": 2e-6}}"#,
        )
        .unwrap(),
    );
    let pricer = |p: &Priceable<'_>| newer.cost_nanos(p.model, &tokens_of(p));
    let r = env.dashboard.store.reprice(&pricer).unwrap();
    // Estimated: msg_A, msg_B, msg_C (0 tokens), msg_D, msg_F, gpt-5; unpriced: the llama.
    // Changed: msg_A 810 → 1620 µ$, msg_B 5670 → 11340 µ$, the llama 0 → 500 + 40 = 540 µ$.
    assert_eq!(r.looked_at, 7);
    assert_eq!(r.changed, 3);
    assert_eq!((r.cost_before, r.cost_after), (6_480_000, 13_500_000));
    let a = agents(&env);
    // bench: gpt-5 2250 + llama 540 µ$; main: 1620 + 11340 + 0 + $0.5 reported.
    assert_eq!(a[0], ("bench".into(), 2, 0, 500 + 20 + 1000 + 100, 0.00279));
    assert_eq!(
        a[1],
        ("claude-code:-home-alice-shop".into(), 4, 1, 1412, 0.51296)
    );
    let o = call(
        &env,
        "dashboard_get_overview",
        json!({"timeframe": "month"}),
    )
    .unwrap();
    // 1620 + 11340 + 22 + 34 + 2250 + 540 µ$.
    assert_eq!(o["summary"]["estimatedCost"], 0.015806);
    assert_eq!(o["summary"]["unpricedCalls"], 0);
    // The rollups agree with the raw rows.
    let by_rollups = call(&env, "dashboard_get_models", json!({"timeframe": "month"})).unwrap();
    env.dashboard.store.set_rollups(false);
    let by_rows = call(&env, "dashboard_get_models", json!({"timeframe": "month"})).unwrap();
    env.dashboard.store.set_rollups(true);
    assert_eq!(by_rollups["models"], by_rows["models"]);
    // Once more: nothing left to change.
    let again = env.dashboard.store.reprice(&pricer).unwrap();
    assert_eq!((again.looked_at, again.changed), (7, 0));
}

/// A record of higher revision replaces the stored one even when it moves to another agent,
/// model and hour: every rollup answer equals the answer from the raw rows.
#[test]
fn a_replacement_moves_every_sum_with_it() {
    let env = empty(NOW);
    let rec = |rev: i64, agent: &str, model: &str, ts: &str, out: i64, ms: f64| {
        json!({"id": "m-1", "revision": rev, "timestamp": ts, "agentId": agent, "model": model,
               "promptTokens": 10, "completionTokens": out, "cost": 0.01 * out as f64,
               "durationMs": ms})
    };
    let other = json!({"id": "m-2", "timestamp": "2025-10-01T09:10:00Z", "agentId": "sub",
                       "model": "small", "promptTokens": 1, "cost": 0.001, "durationMs": 50.0});
    let r = call(
        &env,
        "dashboard_record_usage",
        json!({"records": [rec(320, "sub", "small", "2025-10-01T09:00:00Z", 5, 100.0), other]}),
    )
    .unwrap();
    assert_eq!(r["accepted"], 2);
    // Lower or equal revisions change nothing; a higher one replaces it.
    let r = call(
        &env,
        "dashboard_record_usage",
        json!({"records": [rec(320, "main", "big", "2025-10-01T15:30:00Z", 9, 900.0)]}),
    )
    .unwrap();
    assert_eq!((&r["duplicates"], r.get("replaced")), (&json!(1), None));
    let r = call(
        &env,
        "dashboard_record_usage",
        json!({"records": [rec(321, "main", "big", "2025-10-01T15:30:00Z", 50, 900.0)]}),
    )
    .unwrap();
    assert_eq!(r["replaced"], 1);
    // m-1 is now main's: 60 tokens, $0.50, 900 ms, at 15:30; sub keeps m-2 alone.
    assert_eq!(
        agents(&env),
        vec![
            ("main".into(), 1, 0, 60, 0.5),
            ("sub".into(), 1, 0, 1, 0.001)
        ]
    );
    let questions = [
        ("dashboard_get_overview", json!({"timeframe": "month"})),
        ("dashboard_get_agents", json!({"timeframe": "month"})),
        ("dashboard_get_models", json!({"timeframe": "month"})),
        (
            "dashboard_get_timeline",
            json!({"start": "2025-10-01T00:00:00Z", "end": "2025-10-02T00:00:00Z",
                   "granularity": "hour", "metric": "cost", "breakdown": "agent"}),
        ),
        (
            "dashboard_get_timeline",
            json!({"start": "2025-10-01T00:00:00Z", "end": "2025-10-02T00:00:00Z",
                   "granularity": "hour", "metric": "latency"}),
        ),
    ];
    let answers = |env: &Env| -> Vec<Value> {
        questions
            .iter()
            .map(|(tool, args)| call(env, tool, args.clone()).unwrap())
            .collect()
    };
    let by_rollups = answers(&env);
    env.dashboard.store.set_rollups(false);
    let by_rows = answers(&env);
    env.dashboard.store.set_rollups(true);
    assert_eq!(by_rollups, by_rows);
    let o = &by_rollups[0]["summary"];
    assert_eq!(
        (&o["totalCalls"], &o["totalTokens"]),
        (&json!(2), &json!(61))
    );
    assert_eq!(o["p95LatencyMs"], 900.0);
}
