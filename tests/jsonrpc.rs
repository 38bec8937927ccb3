//! JSON-RPC edge cases over both transports: the `serve` binary as a child process on stdio, and
//! `/mcp` of an in-process HTTP server on a real socket. Every bad message gets the error JSON-RPC
//! 2.0 prescribes, with an `id` member (`null` when the id cannot be read): -32700 for bytes that
//! are not JSON, -32600 for JSON that is not a request (batches included: MCP dropped them),
//! -32602 for a `tools/call` whose params are malformed; the server then goes on serving. Over
//! HTTP those answers are 400 `application/json`, an oversized body 413, and `DELETE` of a session
//! that is not open 404.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use dashboard_mcp::time::{parse_rfc3339, Clock, Zone};
use dashboard_mcp::Dashboard;
use reqwest::StatusCode;
use serde_json::{json, Value};

const NOW: &str = "2026-03-01T12:00:00Z";
/// How long a test waits for one answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(20);
/// The message size limit (`jsonrpc::MAX_MESSAGE_BYTES`, the default HTTP body limit): 16 MiB.
const LIMIT: usize = 16 * 1024 * 1024;

/// The bad messages of the issue and what each must get: (name, bytes, code, id).
fn bad_messages() -> Vec<(&'static str, Vec<u8>, i64, Value)> {
    let call = |params: Value| {
        json!({"jsonrpc": "2.0", "id": 41, "method": "tools/call", "params": params}).to_string()
    };
    vec![
        ("garbage", b"garbage".to_vec(), -32700, Value::Null),
        (
            "truncated JSON",
            br#"{"jsonrpc":"2.0","id":1,"method":"pi"#.to_vec(),
            -32700,
            Value::Null,
        ),
        (
            "a NUL byte",
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\x00\"}".to_vec(),
            -32700,
            Value::Null,
        ),
        (
            "invalid UTF-8",
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\xfe\"}".to_vec(),
            -32700,
            Value::Null,
        ),
        (
            "a float id",
            br#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#.to_vec(),
            -32600,
            Value::Null,
        ),
        (
            "jsonrpc 1.0",
            br#"{"jsonrpc":"1.0","id":7,"method":"ping"}"#.to_vec(),
            -32600,
            json!(7),
        ),
        (
            "a batch",
            br#"[{"jsonrpc":"2.0","id":8,"method":"ping"},{"jsonrpc":"2.0","id":9,"method":"ping"}]"#
                .to_vec(),
            -32600,
            Value::Null,
        ),
        (
            "tools/call arguments as an array",
            call(json!({"name": "dashboard_get_overview", "arguments": [1, 2]})).into_bytes(),
            -32602,
            json!(41),
        ),
        (
            "tools/call arguments as a string",
            call(json!({"name": "dashboard_get_overview", "arguments": "week"})).into_bytes(),
            -32602,
            json!(41),
        ),
        (
            "tools/call without params",
            br#"{"jsonrpc":"2.0","id":"no-params","method":"tools/call"}"#.to_vec(),
            -32602,
            json!("no-params"),
        ),
    ]
}

/// What each message must be told, besides its code: the field at fault and what is allowed.
fn expected_words(name: &str) -> &'static [&'static str] {
    match name {
        "garbage" | "truncated JSON" | "a NUL byte" => &["parse error", "not JSON"],
        "invalid UTF-8" => &["parse error", "not UTF-8", "0xff"],
        "a float id" => &["id: 1.5", "a string or an integer"],
        "jsonrpc 1.0" => &["jsonrpc: \"1.0\"", "\"2.0\""],
        "a batch" => &["batches are not supported"],
        "tools/call arguments as an array" => &["params.arguments: [1,2]", "must be an object"],
        "tools/call arguments as a string" => &["params.arguments: \"week\"", "must be an object"],
        "tools/call without params" => &["params: missing", "name", "arguments"],
        other => panic!("no expectation for {other}"),
    }
}

/// Assert that `answer` is exactly one JSON-RPC error response with this code and id (the `id`
/// member present even when null) whose message holds `words`.
fn assert_error(what: &str, answer: &Value, code: i64, id: &Value, words: &[&str]) {
    let object = answer
        .as_object()
        .unwrap_or_else(|| panic!("{what}: one response object, got {answer}"));
    assert_eq!(
        object.get("jsonrpc"),
        Some(&json!("2.0")),
        "{what}: {answer}"
    );
    assert_eq!(
        object.get("id"),
        Some(id),
        "{what}: the id member: {answer}"
    );
    assert_eq!(answer["error"]["code"], json!(code), "{what}: {answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    for word in words {
        assert!(message.contains(word), "{what}: {word:?} in {message:?}");
    }
    assert!(message.len() < 400, "{what}: a bounded message: {message}");
}

// ---------------------------------------------------------------------------------------------
// stdio

/// `dashboard-mcp serve` as a child, its stdout read line by line on a thread.
struct StdioServer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    _dir: tempfile::TempDir,
}

impl StdioServer {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_dashboard-mcp"))
            .arg("--db")
            .arg(dir.path().join("usage.db"))
            .args(["--now", NOW, "serve"])
            .env("DASHBOARD_MCP_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dashboard-mcp serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut server = StdioServer {
            stdin: child.stdin.take(),
            child,
            lines,
            _dir: dir,
        };
        server.send_line(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "jsonrpc-test", "version": "1"}}})
            .to_string()
            .as_bytes(),
        );
        let init = server.answer();
        assert_eq!(init["id"], 0, "{init}");
        assert_eq!(init["result"]["serverInfo"]["name"], "dashboard-mcp");
        server.send_line(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        server
    }

    fn send_line(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// The next line on stdout, which must be JSON.
    fn answer(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(ANSWER_WITHIN)
            .expect("an answer on stdout in time");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout is JSON ({e}): {line}"))
    }

    /// A `ping` is still answered, and it is the next thing on stdout (nothing else came first).
    fn assert_still_serving(&mut self, id: i64) {
        self.send_line(
            json!({"jsonrpc": "2.0", "id": id, "method": "ping"})
                .to_string()
                .as_bytes(),
        );
        let pong = self.answer();
        assert_eq!(pong, json!({"jsonrpc": "2.0", "id": id, "result": {}}));
    }

    /// Peak resident memory of the server, in bytes.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .expect("VmHWM in /proc/PID/status");
        kb * 1024
    }
}

impl Drop for StdioServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

#[test]
fn stdio_answers_every_bad_message_with_its_error_and_an_id_member() {
    let mut server = StdioServer::start();
    for (n, (name, bytes, code, id)) in bad_messages().into_iter().enumerate() {
        server.send_line(&bytes);
        let answer = server.answer();
        assert_error(name, &answer, code, &id, expected_words(name));
        // The batch's requests were not run one by one either: the ping's answer comes next.
        server.assert_still_serving(100 + n as i64);
    }
}

#[test]
fn stdio_still_calls_a_well_formed_tool_call_and_answers_an_unknown_method_with_32601() {
    let mut server = StdioServer::start();
    server.send_line(
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
            "params": {"name": "dashboard_get_overview", "arguments": null}})
        .to_string()
        .as_bytes(),
    );
    let answer = server.answer();
    assert_eq!(answer["id"], 5, "{answer}");
    assert_eq!(
        answer["result"]["structuredContent"]["summary"]["totalCalls"],
        0
    );
    server.send_line(br#"{"jsonrpc":"2.0","id":6,"method":"no/such/method"}"#);
    let answer = server.answer();
    assert_eq!(answer["id"], 6);
    assert_eq!(answer["error"]["code"], -32601);
}

#[test]
fn stdio_answers_a_line_over_the_limit_without_holding_it_and_goes_on() {
    let mut server = StdioServer::start();
    // 100 MB without a newline, in 1 MB writes; the answer comes once the limit is passed.
    let chunk = vec![b'x'; 1024 * 1024];
    let stdin = server.stdin.as_mut().unwrap();
    stdin
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"pad\":\"")
        .unwrap();
    for _ in 0..100 {
        stdin.write_all(&chunk).unwrap();
    }
    stdin.flush().unwrap();
    let answer = server.answer();
    assert_error(
        "a 100 MB line",
        &answer,
        -32600,
        &Value::Null,
        &["message too large", &LIMIT.to_string()],
    );
    // The rest of the line is skipped; the next line is served.
    server.send_line(b"\"}}");
    server.assert_still_serving(2);
    let peak = server.peak_rss();
    assert!(
        peak < 100 * 1024 * 1024,
        "the server never held the line: peak RSS {peak} bytes"
    );
    // A line just under the limit is still read whole (and is a parse error, not "too large").
    let mut line = b"\"".to_vec();
    line.resize(LIMIT - 1, b'y');
    server.send_line(&line);
    let answer = server.answer();
    assert_error(
        "a line under the limit",
        &answer,
        -32700,
        &Value::Null,
        &["parse error"],
    );
    server.assert_still_serving(3);
}

#[test]
fn stdio_answers_a_truncated_last_line_at_end_of_input() {
    let mut server = StdioServer::start();
    let stdin = server.stdin.as_mut().unwrap();
    stdin
        .write_all(br#"{"jsonrpc":"2.0","id":3,"meth"#)
        .unwrap();
    drop(server.stdin.take());
    let answer = server.answer();
    assert_error(
        "a truncated last line",
        &answer,
        -32700,
        &Value::Null,
        &["EOF"],
    );
}

// ---------------------------------------------------------------------------------------------
// HTTP /mcp

struct HttpRunning {
    mcp: String,
    served: common::served::Served,
    _dir: tempfile::TempDir,
}

async fn start_http(max_body_bytes: Option<usize>) -> HttpRunning {
    let dir = tempfile::tempdir().unwrap();
    let store = dashboard_mcp::store::testing::open(dir.path());
    let dashboard = Dashboard::new(
        store,
        Clock::Fixed(parse_rfc3339("now", NOW).unwrap()),
        Zone::default(),
    );
    let served = common::served::serve(dashboard, false, |config| {
        if let Some(max) = max_body_bytes {
            config.max_body_bytes = max;
        }
    })
    .await;
    HttpRunning {
        mcp: served.url("/mcp"),
        served,
        _dir: dir,
    }
}

impl HttpRunning {
    async fn shutdown(self) {
        self.served.shutdown().await;
    }

    fn post(&self, http: &reqwest::Client, body: Vec<u8>) -> reqwest::RequestBuilder {
        http.post(&self.mcp)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body)
    }

    /// A 2025-06-18 session's id.
    async fn open_session(&self, http: &reqwest::Client) -> String {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "jsonrpc-test", "version": "1"}}});
        let resp = self
            .post(http, init.to_string().into_bytes())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let session = resp.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let resp = self
            .post(
                http,
                br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_vec(),
            )
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-06-18")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        session
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(ANSWER_WITHIN)
        .build()
        .unwrap()
}

/// Status, content type and JSON body of a response.
async fn json_answer(resp: reqwest::Response) -> (StatusCode, String, Value) {
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp.text().await.unwrap();
    let value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{status} {content_type}: a JSON body ({e}): {body}"));
    (status, content_type, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_post_answers_every_bad_message_with_400_and_its_json_rpc_error() {
    let s = start_http(None).await;
    let http = client();
    let session = s.open_session(&http).await;
    for (name, bytes, code, id) in bad_messages() {
        // Stateless (no session) and inside a 2025-06-18 session alike.
        for in_session in [false, true] {
            let mut request = s.post(&http, bytes.clone());
            if in_session {
                request = request
                    .header("mcp-session-id", &session)
                    .header("mcp-protocol-version", "2025-06-18");
            }
            let what = format!("{name} (in a session: {in_session})");
            let (status, content_type, answer) = json_answer(request.send().await.unwrap()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {answer}");
            assert_eq!(content_type, "application/json", "{what}");
            assert_error(&what, &answer, code, &id, expected_words(name));
        }
    }
    // The session still serves.
    let resp = s
        .post(
            &http,
            br#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#.to_vec(),
        )
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.text().await.unwrap();
    assert!(
        body.contains(r#"{"jsonrpc":"2.0","id":2,"result":{}}"#),
        "{body}"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_post_over_the_body_limit_is_413_with_a_json_rpc_error() {
    let s = start_http(Some(2048)).await;
    let http = client();
    let mut body = br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":""#.to_vec();
    body.resize(4096, b'x');
    let (status, content_type, answer) =
        json_answer(s.post(&http, body).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(content_type, "application/json");
    assert_error(
        "a body over 2048 bytes",
        &answer,
        -32600,
        &Value::Null,
        &["message too large", "2048"],
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_delete_of_a_session_that_is_not_open_is_404() {
    let s = start_http(None).await;
    let http = client();
    let delete = |session: &str| {
        http.delete(&s.mcp)
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-06-18")
            .send()
    };
    let (status, content_type, answer) =
        json_answer(delete("no-such-session").await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(content_type, "application/json");
    assert_error(
        "an unknown session",
        &answer,
        -32001,
        &Value::Null,
        &["Mcp-Session-Id: \"no-such-session\"", "initialize"],
    );
    // An open session is closed (202) once; after that it is unknown.
    let session = s.open_session(&http).await;
    assert_eq!(
        delete(&session).await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        delete(&session).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    s.shutdown().await;
}
