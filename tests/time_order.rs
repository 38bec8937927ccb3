//! Executions are stored in time order (SQLite: rowid `pos` = ts · 2^15 + n, schema migration 5):
//! the executions list still sorts ties of one millisecond by id across pages, a time range read
//! by `pos` is exactly the range by `ts`, and a millisecond holds at most 2^15 executions on
//! SQLite (any number on PostgreSQL).

mod common;

use common::{call, empty, NOW};
use dashboard_mcp::ingest::{self, Source};
use dashboard_mcp::store::Filter;
use dashboard_mcp::time::{parse_rfc3339, Window};
use serde_json::{json, Value};

/// A small deterministic generator (the tests must not depend on a crate's random stream).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn import_lines(env: &common::Env, lines: Vec<String>) -> dashboard_mcp::wire::ImportReport {
    ingest::import(
        &*env.dashboard.store,
        vec![Source {
            name: "t.jsonl".into(),
            reader: Box::new(std::io::Cursor::new(lines.join("\n"))),
        }],
        false,
    )
    .unwrap()
}

/// (id, ts, agent, success) of the executions written by `crowded_log`.
type Row = (String, i64, String, bool);

/// 40 executions in one millisecond (ids written in shuffled order), some in the neighbouring
/// milliseconds, and some a few seconds away; written in three batches, the last one late.
fn crowded_log(env: &common::Env) -> Vec<Row> {
    let t = parse_rfc3339("t", "2026-11-23T11:30:00.500Z").unwrap();
    let mut rng = Lcg(7);
    let mut rows: Vec<Row> = Vec::new();
    for i in 0..40 {
        rows.push((
            format!("same-{:02}", (i * 17) % 40),
            t,
            format!("a{}", i % 3),
            i % 4 != 0,
        ));
    }
    for i in 0..12 {
        let ts = t + [-1, 1, -2_000, 3_000][i % 4];
        rows.push((
            format!("near-{i:02}"),
            ts,
            format!("a{}", i % 2),
            i % 3 != 0,
        ));
    }
    // Shuffle the write order.
    for i in (1..rows.len()).rev() {
        rows.swap(i, rng.next() as usize % (i + 1));
    }
    for chunk in rows.chunks(20) {
        let lines = chunk
            .iter()
            .map(|(id, ts, agent, ok)| {
                json!({"id": id, "timestamp": ts, "agentId": agent, "model": "m",
                       "promptTokens": 1, "completionTokens": 1, "cost": 0.001,
                       "success": ok})
                .to_string()
            })
            .collect();
        let r = import_lines(env, lines);
        assert_eq!(r.rejected, 0, "{r:?}");
    }
    rows
}

/// Every page of the executions list, concatenated.
fn all_pages(env: &common::Env, mut args: Value, limit: u64) -> (u64, Vec<String>) {
    let mut ids = Vec::new();
    let mut total = None;
    for page in 0.. {
        args["limit"] = json!(limit);
        args["offset"] = json!(page * limit);
        let x = call(env, "dashboard_get_executions", args.clone()).unwrap();
        total = Some(x["pagination"]["total"].as_u64().unwrap());
        let items = x["executions"].as_array().unwrap();
        if items.is_empty() {
            break;
        }
        ids.extend(items.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
    }
    (total.unwrap(), ids)
}

#[test]
fn the_executions_list_orders_a_crowded_millisecond_by_id_across_pages() {
    let env = empty(NOW);
    let rows = crowded_log(&env);
    // Expected: newest first, ties by id — computed here from what was written.
    let expect = |keep: &dyn Fn(&Row) -> bool| -> Vec<String> {
        let mut v: Vec<&Row> = rows.iter().filter(|r| keep(r)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.into_iter().map(|r| r.0.clone()).collect()
    };
    for limit in [1, 7, 40, 41, 500] {
        let (total, ids) = all_pages(&env, json!({"timeframe": "hour"}), limit);
        assert_eq!(total, 52);
        assert_eq!(ids, expect(&|_| true), "limit {limit}");
    }
    let (total, ids) = all_pages(&env, json!({"timeframe": "hour", "agentId": "a1"}), 5);
    assert_eq!(ids, expect(&|r| r.2 == "a1"));
    assert_eq!(total as usize, ids.len());
    let (total, ids) = all_pages(&env, json!({"timeframe": "hour", "status": "error"}), 3);
    assert_eq!(ids, expect(&|r| !r.3));
    assert_eq!(total as usize, ids.len());
    // A window that ends inside the crowded millisecond's neighbours.
    let (_, ids) = all_pages(
        &env,
        json!({"start": "2026-11-23T11:30:00.499Z", "end": "2026-11-23T11:30:00.501Z"}),
        6,
    );
    let t = parse_rfc3339("t", "2026-11-23T11:30:00.500Z").unwrap();
    assert_eq!(ids, expect(&|r| r.1 == t - 1 || r.1 == t));
}

#[test]
fn a_time_range_read_by_pos_is_the_range_by_ts() {
    let env = empty(NOW);
    let rows = crowded_log(&env);
    let t = rows.iter().map(|r| r.1).min().unwrap();
    let mut rng = Lcg(11);
    let store = &env.dashboard.store;
    let mut nonempty = 0;
    for _ in 0..300 {
        // Bounds on, beside and between the stored instants.
        let start = t - 10 + (rng.next() % 5_020) as i64;
        let end = start + (rng.next() % 3_000) as i64;
        let w = Window { start, end };
        // Raw rows only: the time range is read as a range of `pos`.
        store.set_rollups(false);
        let by_pos = store.read(|c| c.totals(&w, &Filter::default())).unwrap();
        store.set_rollups(true);
        let inside: Vec<&Row> = rows.iter().filter(|r| start <= r.1 && r.1 < end).collect();
        let expected = inside.len() as i64;
        let errors = inside.iter().filter(|r| !r.3).count() as i64;
        assert_eq!(
            (by_pos.calls, by_pos.errors),
            (expected, errors),
            "[{start}, {end})"
        );
        nonempty += usize::from(expected > 0);
    }
    assert!(nonempty > 50, "{nonempty}");
}

#[test]
fn a_millisecond_holds_at_most_two_to_the_fifteen_executions() {
    let env = empty(NOW);
    // The SQLite engine numbers the executions of one millisecond in 15 bits.
    let n = 1usize << 15;
    let line = |i: usize| {
        format!(
            r#"{{"id":"x{i}","timestamp":"2026-11-23T11:00:00Z","agentId":"a","model":"m","cost":0.000001,"success":true}}"#
        )
    };
    let r = import_lines(&env, (0..n + 2).map(line).collect());
    if dashboard_mcp::store::testing::on_postgres() {
        // PostgreSQL orders by (ts, id) and has no such limit: every one is stored.
        assert_eq!((r.accepted, r.rejected), (n as u64 + 2, 0));
        let x = call(&env, "dashboard_get_executions", json!({"limit": 1})).unwrap();
        assert_eq!(x["pagination"]["total"], json!(n + 2));
        return;
    }
    assert_eq!((r.accepted, r.rejected), (n as u64, 2));
    let e = &r.files[0].errors[0];
    assert_eq!(e.line, n as u64 + 1);
    assert_eq!(
        e.reason,
        "timestamp: 2026-11-23T11:00:00Z already has 32768 executions, the most one millisecond can hold; spread the timestamps"
    );
    // The next millisecond is unaffected, and the full one still reads whole.
    let r = import_lines(
        &env,
        vec![r#"{"id":"y","timestamp":"2026-11-23T11:00:00.001Z","agentId":"a","model":"m","cost":0.5,"success":true}"#.into()],
    );
    assert_eq!(r.accepted, 1);
    let x = call(
        &env,
        "dashboard_get_overview",
        json!({"start": "2026-11-23T11:00:00Z", "end": "2026-11-23T11:00:00.001Z"}),
    )
    .unwrap();
    assert_eq!(x["summary"]["totalCalls"], json!(n));
    let x = call(&env, "dashboard_get_executions", json!({"limit": 1})).unwrap();
    assert_eq!(x["executions"][0]["id"], "y");
    assert_eq!(x["pagination"]["total"], json!(n + 1));
}
