//! Alerts end to end: rules set through the tool, evaluated against records whose figures are
//! worked out by hand, delivered by the alert thread to a real HTTP receiver on 127.0.0.1
//! (a plain `std::net` server written here, not ours), on the engine under test.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashboard_mcp::alerts::{self, AlertConfig, Alerts};
use dashboard_mcp::time::{parse_rfc3339, Clock};
use dashboard_mcp::Dashboard;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use common::{call, empty, Env};

/// One request the receiver got: its headers (lower-case names) and body.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// How the receiver answers its n-th request: a status, or never (holds the connection).
#[derive(Clone, Copy)]
enum Answer {
    Status(u16),
    Never,
}

struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Answers request n with `script[n]` (the last entry for every later one).
    fn start(script: Vec<Answer>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = got.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { continue };
                let answer = script[n.min(script.len() - 1)];
                if let Some(r) = read_request(&stream) {
                    seen.lock().unwrap().push(r);
                }
                match answer {
                    Answer::Status(s) => {
                        let mut w = &stream;
                        let _ = write!(
                            w,
                            "HTTP/1.1 {s} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                    }
                    Answer::Never => held.push(stream),
                }
            }
        });
        Receiver { url, got }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Wait until it has `n` requests (or fail after `limit`).
    fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        let t = Instant::now();
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                t.elapsed() < limit,
                "the receiver got {} of {n} requests in {limit:?}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn read_request(stream: &TcpStream) -> Option<Received> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Received { headers, body })
}

fn fast() -> AlertConfig {
    AlertConfig {
        tick: Duration::from_millis(50),
        min_gap: Duration::from_millis(100),
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(5),
        first_retry: Duration::from_millis(200),
        attempts: 4,
        in_flight: 8,
    }
}

fn record(env: &Env, records: Value) {
    let r = call(env, "dashboard_record_usage", json!({ "records": records })).unwrap();
    assert_eq!(r["rejected"], 0, "{r}");
}

fn at(env: &Env, now: &str) -> Dashboard {
    Dashboard {
        clock: Clock::Fixed(parse_rfc3339("now", now).unwrap()),
        ..env.dashboard.clone()
    }
}

fn events(env: &Env) -> Vec<Value> {
    call(env, "dashboard_get_alerts", json!({"limit": 200})).unwrap()["events"]
        .as_array()
        .unwrap()
        .clone()
}

/// planner's weekly budget is $10 with thresholds 50/80/100; the clock is Wednesday
/// 2026-11-25 12:00 UTC (the week began Monday 2026-11-23).
#[test]
fn a_budget_threshold_fires_once_per_crossing_and_resolves_in_the_next_period() {
    let env = empty("2026-11-25T12:00:00Z");
    let hook = Receiver::start(vec![Answer::Status(200)]);
    call(
        &env,
        "dashboard_set_budget",
        json!({"scope": "planner", "limitUsd": 10, "period": "week"}),
    )
    .unwrap();
    let set = call(
        &env,
        "dashboard_set_alert",
        json!({"id": "planner-budget", "agentId": "planner", "budgetThreshold": true, "url": hook.url}),
    )
    .unwrap();
    assert_eq!(set["action"], "created");
    assert_eq!(set["rule"]["conditions"], json!(["budgetThreshold"]));

    // $4 of $10: 40 %, under every threshold.
    record(
        &env,
        json!([{"id": "a", "timestamp": "2026-11-24T10:00:00Z", "agentId": "planner", "model": "m", "cost": 4}]),
    );
    assert_eq!(alerts::evaluate(&env.dashboard).unwrap(), 0);
    // + $4.50: $8.50 of $10 = 85 %: 50 and 80 crossed at once, one alert (the 80).
    record(
        &env,
        json!([{"id": "b", "timestamp": "2026-11-25T09:00:00Z", "agentId": "planner", "model": "m", "cost": 4.5}]),
    );
    assert_eq!(alerts::evaluate(&env.dashboard).unwrap(), 1);
    // Evaluated again: still 85 %, nothing new.
    assert_eq!(alerts::evaluate(&env.dashboard).unwrap(), 0);
    let firing = call(&env, "dashboard_get_alerts", json!({})).unwrap()["firing"].clone();
    let keys: Vec<&str> = firing
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["budget:planner:50", "budget:planner:80"]);

    let running = Alerts::start(env.dashboard.clone(), fast());
    let got = hook.wait_for(1, Duration::from_secs(10));
    let n = got[0].json();
    assert_eq!(n["type"], "fired");
    assert_eq!(n["rule"], "planner-budget");
    assert_eq!(n["condition"], "budgetThreshold");
    assert_eq!(n["key"], "budget:planner:80");
    assert_eq!(n["agentId"], "planner");
    assert_eq!(n["value"], 85.0);
    assert_eq!(n["threshold"], 80.0);
    assert_eq!(n["at"], "2026-11-25T12:00:00Z");
    assert!(
        n["summary"]
            .as_str()
            .unwrap()
            .starts_with("planner's weekly budget passed 80%: $8.50 of $10.00 spent (85.0%)"),
        "{n}"
    );
    assert_eq!(
        got[0].header("x-dashboard-event"),
        Some(n["id"].to_string().as_str())
    );
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    validate_notice(&n);

    running.stop();
    // Monday 2026-11-30 01:00: a new week, $0 spent: the crossing clears, one resolved notice
    // (the lowest threshold's: "under 50 % again").
    let next_week = at(&env, "2026-11-30T01:00:00Z");
    assert_eq!(alerts::evaluate(&next_week).unwrap(), 1);
    let running = Alerts::start(next_week, fast());
    let got = hook.wait_for(2, Duration::from_secs(10));
    let r = got[1].json();
    assert_eq!(r["type"], "resolved");
    assert_eq!(r["key"], "budget:planner:50");
    assert_eq!(r["since"], "2026-11-25T12:00:00Z");
    assert!(
        r["summary"].as_str().unwrap().starts_with(
            "planner's weekly budget is under 50% again: $0.00 of $10.00 spent (0.0%)"
        ),
        "{r}"
    );
    running.stop();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(hook.received().len(), 2, "exactly one notice per change");
    let log = events(&env);
    assert_eq!(log.len(), 2);
    assert!(log
        .iter()
        .all(|e| e["delivery"] == "delivered" && e["attempts"] == 1));
}

fn validate_notice(n: &Value) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/alert-notice.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    assert!(
        v.is_valid(n),
        "{n} does not match schemas/alert-notice.json"
    );
}

/// The error rate over the last hour: 3 failures in 20 calls is 15 % (≥ 10 %: fires); 3 in
/// 30 is 10 % (stays); 3 in 31 is 9.68 %, under 10 % but above the clearing level 9 %
/// (stays); 3 in 44 is 6.8 % (clears).
#[test]
fn an_error_rate_fires_at_its_level_and_clears_under_ninety_percent_of_it() {
    let env = empty("2026-11-25T12:00:00Z");
    call(
        &env,
        "dashboard_set_alert",
        json!({"id": "errors", "errorRatePercent": 10, "minCalls": 20, "window": "1h", "url": "http://127.0.0.1:9/none"}),
    )
    .unwrap();
    let calls = |from: usize, n: usize, failed: usize| -> Value {
        (from..from + n)
            .map(|i| {
                json!({"id": format!("c{i}"), "timestamp": "2026-11-25T11:30:00Z", "agentId": "x",
                       "model": "m", "cost": 0.01, "success": i >= from + failed})
            })
            .collect()
    };
    // 19 calls with 3 failures: fewer than minCalls, nothing (and, once firing, too few calls
    // would neither fire nor clear).
    record(&env, calls(0, 19, 3));
    assert_eq!(alerts::evaluate(&env.dashboard).unwrap(), 0);
    record(&env, calls(19, 1, 0));
    assert_eq!(alerts::evaluate(&env.dashboard).unwrap(), 1);
    let fired: Value = serde_json::from_str(&events(&env)[0]["summary"].to_string()).unwrap();
    assert_eq!(
        fired,
        "Error rate of all agents over the last 1h is 15.0% (3 of 20 calls failed), at or above 10%."
    );
    record(&env, calls(20, 10, 0));
    assert_eq!(alerts::evaluate(&env.dashboard).unwrap(), 0);
    record(&env, calls(30, 1, 0));
    assert_eq!(alerts::evaluate(&env.dashboard).unwrap(), 0);
    record(&env, calls(31, 13, 0));
    assert_eq!(alerts::evaluate(&env.dashboard).unwrap(), 1);
    let e = &events(&env)[0];
    assert_eq!(e["type"], "resolved");
    assert_eq!(
        e["summary"],
        "Error rate of all agents over the last 1h is down to 6.8% (3 of 44 calls), under 10%."
    );
}

/// A Slack rule with a secret: the body is `{"text": …}` and the signature header is the
/// HMAC-SHA256 of exactly those bytes, computed here with the `hmac` crate.
#[test]
fn a_slack_rule_posts_text_signed_with_its_secret() {
    let env = empty("2026-11-25T12:00:00Z");
    let hook = Receiver::start(vec![Answer::Status(204)]);
    call(
        &env,
        "dashboard_set_alert",
        json!({"id": "spend", "costUsd": 1, "window": "1h", "format": "slack", "secret": "s3cret", "url": hook.url}),
    )
    .unwrap();
    let running = Alerts::start(env.dashboard.clone(), fast());
    let ingested = Instant::now();
    // $0.75 + $0.50 = $1.25 in the last hour (the 10:59 call is outside it).
    record(
        &env,
        json!([
            {"id": "1", "timestamp": "2026-11-25T11:10:00Z", "agentId": "a", "model": "m", "cost": 0.75},
            {"id": "2", "timestamp": "2026-11-25T11:50:00Z", "agentId": "b", "model": "m", "cost": 0.5},
            {"id": "3", "timestamp": "2026-11-25T10:59:00Z", "agentId": "b", "model": "m", "cost": 9}
        ]),
    );
    let got = hook.wait_for(1, Duration::from_secs(10));
    let latency = ingested.elapsed();
    running.stop();
    eprintln!("the alert reached the receiver {latency:?} after the ingest call began");
    assert!(
        latency < Duration::from_secs(5),
        "delivered {latency:?} after the ingest"
    );
    assert_eq!(
        got[0].json(),
        json!({"text": ":rotating_light: [dashboard-mcp] Cost of all agents over the last 1h is $1.25 (2 calls), at or above $1.00."})
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(&got[0].body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        got[0].header("x-dashboard-signature"),
        Some(format!("sha256={expected}").as_str())
    );
    let shown = call(&env, "dashboard_get_alerts", json!({})).unwrap();
    assert_eq!(shown["rules"][0]["signed"], true);
    assert!(!shown.to_string().contains("s3cret"));
    assert_eq!(
        shown["rules"][0]["url"],
        format!("{}/…", hook.url.trim_end_matches("/hook"))
    );
}

/// A receiver that answers 500 twice and then 200 gets the alert on the third attempt, the
/// same body each time.
#[test]
fn a_receiver_that_fails_and_recovers_gets_the_alert() {
    let env = empty("2026-11-25T12:00:00Z");
    let hook = Receiver::start(vec![
        Answer::Status(500),
        Answer::Status(500),
        Answer::Status(200),
    ]);
    call(
        &env,
        "dashboard_set_alert",
        json!({"id": "spend", "costUsd": 1, "url": hook.url}),
    )
    .unwrap();
    record(
        &env,
        json!([{"id": "1", "timestamp": "2026-11-25T11:30:00Z", "agentId": "a", "model": "m", "cost": 2}]),
    );
    let running = Alerts::start(env.dashboard.clone(), fast());
    let got = hook.wait_for(3, Duration::from_secs(15));
    let t = Instant::now();
    while events(&env)[0]["delivery"] != "delivered" {
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", events(&env));
        std::thread::sleep(Duration::from_millis(20));
    }
    running.stop();
    assert_eq!(got[0].body, got[1].body);
    assert_eq!(got[1].body, got[2].body);
    let e = &events(&env)[0];
    assert_eq!(e["attempts"], 3);
    assert_eq!(e["lastStatus"], 200);
    assert_eq!(hook.received().len(), 3);
}

/// A receiver that never answers holds one delivery thread until its timeout (5 s here);
/// ingest goes on meanwhile at its usual pace.
#[test]
fn a_receiver_that_never_answers_does_not_slow_ingest() {
    let batches = |env: &Env, tag: &str| -> Duration {
        let t = Instant::now();
        for b in 0..20 {
            let records: Vec<Value> = (0..500)
                .map(|i| {
                    json!({"id": format!("{tag}-{b}-{i}"), "timestamp": "2026-11-25T11:30:00Z",
                           "agentId": format!("agent{}", i % 7), "model": "m", "cost": 0.01})
                })
                .collect();
            record(env, Value::Array(records));
        }
        t.elapsed()
    };
    // Without any rule.
    let quiet = empty("2026-11-25T12:00:00Z");
    let baseline = batches(&quiet, "q");

    let env = empty("2026-11-25T12:00:00Z");
    let hook = Receiver::start(vec![Answer::Never]);
    call(
        &env,
        "dashboard_set_alert",
        json!({"id": "spend", "costUsd": 0.01, "url": hook.url}),
    )
    .unwrap();
    let running = Alerts::start(env.dashboard.clone(), fast());
    record(
        &env,
        json!([{"id": "first", "timestamp": "2026-11-25T11:30:00Z", "agentId": "a", "model": "m", "cost": 1}]),
    );
    hook.wait_for(1, Duration::from_secs(10));
    // The delivery now waits on a receiver that never answers.
    let stuck = batches(&env, "s");
    eprintln!(
        "10,000 records in 20 batches: {baseline:?} without a rule, {stuck:?} with a delivery stuck"
    );
    assert!(
        stuck < Duration::from_secs(4),
        "ingest took {stuck:?} while a delivery was stuck (baseline {baseline:?})"
    );
    assert_eq!(events(&env)[0]["delivery"], "pending");
    running.stop();
}

#[test]
fn rules_are_strict_and_name_the_field() {
    let env = empty("2026-11-25T12:00:00Z");
    let err = |args: Value| call(&env, "dashboard_set_alert", args).unwrap_err();
    let url = "https://hooks.example.com/x";
    assert!(err(json!({"url": url})).contains("budgetThreshold: no condition given"));
    assert!(err(json!({"costUsd": 1})).contains("url: missing"));
    assert!(err(json!({"costUsd": 1, "url": "ftp://x/y"}))
        .contains("url: \"ftp://x/y\" is not an http:// or https:// URL"));
    assert!(err(json!({"costUsd": 0, "url": url}))
        .contains("costUsd: 0 is not an amount of USD above 0"));
    assert!(err(json!({"errorRatePercent": 120, "url": url}))
        .contains("errorRatePercent: 120 is outside 0 < percent ≤ 100"));
    assert!(err(json!({"costUsd": 1, "window": "2s", "url": url}))
        .contains("window: \"2s\" is not a window"));
    assert!(err(json!({"costUsd": 1, "window": "31d", "url": url}))
        .contains("window: \"31d\" is not a window"));
    assert!(
        err(json!({"budgetThreshold": true, "model": "gpt", "url": url}))
            .contains("model: budgets and anomalies are per agent")
    );
    assert!(err(json!({"id": "no spaces", "costUsd": 1, "url": url}))
        .contains("id: \"no spaces\" is not a rule id"));
    assert!(err(json!({"anomalySeverity": "huge", "url": url})).contains("anomalySeverity"));
    assert!(err(json!({"costUsd": 1, "url": url, "colour": "red"})).contains("colour"));
    assert!(err(json!({"remove": true})).contains("id: missing"));
    // The same rule twice is one rule (derived id), a changed one replaces it, remove removes.
    let a = call(
        &env,
        "dashboard_set_alert",
        json!({"costUsd": 5, "url": url}),
    )
    .unwrap();
    let b = call(
        &env,
        "dashboard_set_alert",
        json!({"costUsd": 5, "url": url}),
    )
    .unwrap();
    assert_eq!(a["action"], "created");
    assert_eq!(b["action"], "unchanged");
    assert_eq!(a["id"], b["id"]);
    assert_eq!(a["rule"]["conditions"], json!(["cost ≥ $5 in 1h"]));
    let id = a["id"].as_str().unwrap();
    for (args, action) in [
        (json!({"id": id, "costUsd": 6, "url": url}), "replaced"),
        (json!({"id": id, "remove": true}), "removed"),
        (json!({"id": id, "remove": true}), "notFound"),
    ] {
        let r = call(&env, "dashboard_set_alert", args).unwrap();
        assert_eq!(r["action"], action);
    }
}

/// A request's status and JSON body.
async fn answer(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// REST over a real socket: POST /api/alerts sets a rule from the body, GET /api/alerts is
/// dashboard_get_alerts, DELETE /api/alerts/{id} removes; bad input is a 400 naming the field.
#[tokio::test(flavor = "multi_thread")]
async fn rest_sets_lists_and_removes_rules() {
    common::served::within(async {
        let env = empty("2026-11-25T12:00:00Z");
        let served = common::served::serve(env.dashboard.clone(), true, |_| {}).await;
        let http = common::served::client();
        let alerts = served.url("/api/alerts");
        let (status, v) = answer(http.post(&alerts).json(
            &json!({"id": "ops", "agentId": "planner",
            "budgetProjection": true, "anomalySeverity": "high",
            "url": "https://hooks.example.com/a/b?token=x"}),
        ))
        .await;
        assert_eq!((status, &v["action"]), (200, &json!("created")));
        assert_eq!(v["rule"]["url"], "https://hooks.example.com/…");
        let (_, v) = answer(http.get(&alerts)).await;
        assert_eq!(
            v["rules"][0]["conditions"],
            json!(["budgetProjection", "anomaly ≥ high"])
        );
        let (status, v) = answer(
            http.post(&alerts)
                .json(&json!({"costUsd": "a lot", "url": "https://x.example"})),
        )
        .await;
        assert_eq!(
            (status, &v["error"]["field"]),
            (400, &json!("costUsd")),
            "{v}"
        );
        let (status, v) = answer(http.post(&alerts).body("[1]")).await;
        assert_eq!((status, &v["error"]["field"]), (400, &json!("body")), "{v}");
        let (_, v) = answer(http.delete(served.url("/api/alerts/ops"))).await;
        assert_eq!(v["action"], "removed");
        let (_, doc) = answer(http.get(served.url("/openapi.json"))).await;
        for (path, method) in [
            ("/api/alerts", "get"),
            ("/api/alerts", "post"),
            ("/api/alerts/{id}", "delete"),
        ] {
            assert!(doc["paths"][path][method].is_object(), "{path} {method}");
        }
        served.shutdown().await;
    })
    .await;
}

/// An agent that made 10 calls every hour for 15 days and 200 in the current half hour: the
/// calls anomaly fires once (evaluated again, nothing new), and the rule's scope keeps other
/// agents out.
#[test]
fn a_new_anomaly_fires_once() {
    let env = empty("2026-11-25T12:30:00Z");
    let now = parse_rfc3339("now", "2026-11-25T12:30:00Z").unwrap();
    let hour = 3_600_000;
    let mut records = Vec::new();
    for h in 1..=(15 * 24) {
        for i in 0..10 {
            let t = now - 30 * 60_000 - h * hour + i * 60_000;
            records.push(
                json!({"id": format!("h{h}-{i}"), "timestamp": dashboard_mcp::time::format_utc(t),
                                "agentId": "loop", "model": "m", "cost": 0.01, "durationMs": 1000}),
            );
        }
    }
    for i in 0..200 {
        let t = now - 30 * 60_000 + i * 5_000;
        records.push(
            json!({"id": format!("now-{i}"), "timestamp": dashboard_mcp::time::format_utc(t),
                            "agentId": "loop", "model": "m", "cost": 0.01, "durationMs": 1000}),
        );
    }
    record(&env, Value::Array(records));
    call(
        &env,
        "dashboard_set_alert",
        json!({"id": "loops", "agentId": "loop", "anomalySeverity": "high", "url": "http://127.0.0.1:9/x"}),
    )
    .unwrap();
    call(
        &env,
        "dashboard_set_alert",
        json!({"id": "others", "agentId": "someone-else", "anomalySeverity": "low", "url": "http://127.0.0.1:9/x"}),
    )
    .unwrap();
    let written = alerts::evaluate(&env.dashboard).unwrap();
    assert!(written >= 1);
    assert_eq!(alerts::evaluate(&env.dashboard).unwrap(), 0);
    let shown = call(&env, "dashboard_get_alerts", json!({})).unwrap();
    let keys: Vec<&str> = shown["firing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(f["rule"], "loops");
            f["key"].as_str().unwrap()
        })
        .collect();
    assert!(keys.contains(&"anomaly:loop:calls"), "{keys:?}");
    let calls = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["summary"].as_str().unwrap().contains("loop calls"))
        .unwrap();
    let summary = calls["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("High anomaly, loop calls: ")
            || summary.starts_with("Critical anomaly, loop calls: "),
        "{summary}"
    );
}
