//! The HTTP layer against hostile clients, over real sockets: half-sent headers and idle
//! keep-alive connections are closed, the connection limit keeps `/healthz` answering, every
//! error (hyper's own 400 / 414 / 431 included) is the JSON error shape and quotes only a bounded
//! prefix of what was sent, query strings and path segments are percent-decoded strictly, weak
//! tokens are refused, and `/openapi.json` says what the server does.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dashboard_mcp::catalog;
use dashboard_mcp::http::{HttpConfig, HttpError, HttpServer, MAX_URI_BYTES};
use dashboard_mcp::mcp::DashboardServer;
use dashboard_mcp::Dashboard;
use reqwest::StatusCode;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::served::{client, serve, within, Served};

struct Running {
    served: Served,
    dashboard: Dashboard,
    _env: common::Env,
}

async fn start(allow_writes: bool, configure: impl FnOnce(&mut HttpConfig)) -> Running {
    let (env, _) = common::fixture();
    let served = serve(env.dashboard.clone(), allow_writes, configure).await;
    Running {
        served,
        dashboard: env.dashboard.clone(),
        _env: env,
    }
}

impl Running {
    fn url(&self, path: &str) -> String {
        self.served.url(path)
    }

    async fn shutdown(self) {
        self.served.shutdown().await
    }
}

/// Connect and send `bytes`, nothing more.
async fn send(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(bytes).await.unwrap();
    c
}

/// Does the server close `c` (end of stream or reset) within `limit`? Anything it sends is
/// read and dropped.
async fn closed_within(c: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match c.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// One answer read from `c`: status, head, body (by `content-length`).
async fn read_answer(c: &mut TcpStream) -> (u16, String, String) {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(data[..end].to_vec()).unwrap();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().unwrap())
                })
                .expect("a content-length");
            if data.len() >= end + 4 + length {
                let status = head[9..12].parse().unwrap();
                let body = String::from_utf8(data[end + 4..end + 4 + length].to_vec()).unwrap();
                return (status, head, body);
            }
        }
        let n = tokio::time::timeout_at(deadline, c.read(&mut buf))
            .await
            .expect("the answer comes within 10 s")
            .expect("read");
        assert!(
            n > 0,
            "closed before a whole answer: {:?}",
            String::from_utf8_lossy(&data)
        );
        data.extend_from_slice(&buf[..n]);
    }
}

/// Send one raw request and read its answer; its body must be JSON.
async fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, String, Value) {
    let mut c = send(addr, request).await;
    let (status, head, body) = read_answer(&mut c).await;
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let body = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, head, body)
}

fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").into_bytes()
}

fn error_of(body: &Value) -> (&str, &str, Option<&str>) {
    (
        body["error"]["code"].as_str().unwrap(),
        body["error"]["message"].as_str().unwrap(),
        body["error"]["field"].as_str(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_headers_are_closed_and_healthz_answers_at_the_connection_limit() {
    within(async {
        let s = start(false, |c| {
            c.header_read_timeout = Duration::from_secs(1);
            c.max_connections = 8;
        })
        .await;
        let opened = Instant::now();
        let mut half = Vec::new();
        for _ in 0..8 {
            half.push(
                send(
                    s.served.addr,
                    b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
                )
                .await,
            );
            // Accepted in this order: the first is the oldest.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Every place is held by a half-sent head; /healthz answers at once all the same.
        let asked = Instant::now();
        let (status, _, body) = exchange(s.served.addr, &get("/healthz")).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
        assert!(
            asked.elapsed() < Duration::from_millis(900),
            "{:?}",
            asked.elapsed()
        );
        // The oldest made room for it and is closed already; the next one is still open.
        assert!(closed_within(&mut half[0], Duration::from_millis(300)).await);
        assert!(!closed_within(&mut half[1], Duration::from_millis(100)).await);
        assert!(opened.elapsed() < Duration::from_millis(1000));
        // The header-read timeout (1 s) closes every other one.
        for c in &mut half[1..] {
            assert!(closed_within(c, Duration::from_secs(3)).await);
        }
        let took = opened.elapsed();
        assert!(
            took >= Duration::from_millis(1000) && took < Duration::from_secs(4),
            "{took:?}"
        );
        s.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    within(async {
        let s = start(false, |c| c.header_read_timeout = Duration::from_secs(1)).await;
        let mut c = send(
            s.served.addr,
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        )
        .await;
        let (status, head, _) = read_answer(&mut c).await;
        assert_eq!(status, 200);
        assert!(!head.to_ascii_lowercase().contains("connection: close"));
        let idle = Instant::now();
        // It is kept alive for another request...
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_answer(&mut c).await.0, 200);
        // ...and closed once idle for the timeout.
        let idle_again = Instant::now();
        assert!(closed_within(&mut c, Duration::from_secs(3)).await);
        assert!(
            idle_again.elapsed() >= Duration::from_millis(900),
            "{:?}",
            idle.elapsed()
        );
        s.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_connection_is_busy_a_new_one_gets_a_json_503() {
    within(async {
        let s = start(false, |c| c.max_connections = 2).await;
        let open_stream = || async {
            let mut c = send(
                s.served.addr,
                b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            )
            .await;
            let mut buf = [0u8; 1024];
            let n = c.read(&mut buf).await.unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
            c
        };
        let first = open_stream().await;
        let _second = open_stream().await;
        let (status, head, body) = exchange(s.served.addr, &get("/healthz")).await;
        assert_eq!(status, 503, "{head}");
        assert_eq!(error_of(&body).0, "busy");
        assert!(head.to_ascii_lowercase().contains("retry-after: 1"));
        // A stream that ends gives its place back.
        drop(first);
        let freed = Instant::now();
        loop {
            let (status, _, body) = exchange(s.served.addr, &get("/healthz")).await;
            if status == 200 {
                assert_eq!(body["status"], "ok");
                break;
            }
            assert!(freed.elapsed() < Duration::from_secs(5), "{body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        s.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_requests_get_json_errors() {
    within(async {
        let s = start(false, |_| {}).await;
        // Over our limit, under hyper's: the guard's 414, with the length.
        let target = format!("/api/dashboard/overview?agentId={}", "a".repeat(20_000));
        let (status, _, body) = exchange(s.served.addr, &get(&target)).await;
        assert_eq!(status, 414);
        assert_eq!(
            error_of(&body),
            (
                "uri_too_long",
                format!(
                    "query: the request target (path and query string) is {} bytes long (the query string {}); this server accepts at most {MAX_URI_BYTES}",
                    23 + 1 + 8 + 20_000,
                    8 + 20_000
                )
                .as_str(),
                Some("query")
            )
        );
        // Just at the limit it is served.
        let at_limit = format!("/api/dashboard/overview?agentId={}", "a".repeat(MAX_URI_BYTES - 32));
        assert_eq!(at_limit.len(), MAX_URI_BYTES);
        let resp = client().get(s.url(&at_limit)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        // Over hyper's own 65,534-byte request line: hyper answers, in JSON.
        let target = format!("/api/dashboard/overview?timeframe={}", "d".repeat(100_000));
        let (status, head, body) = exchange(s.served.addr, &get(&target)).await;
        assert_eq!(status, 414);
        assert!(head.to_ascii_lowercase().contains("connection: close"));
        let (code, message, field) = error_of(&body);
        assert_eq!((code, field), ("uri_too_long", Some("query")));
        assert!(message.contains("at most 8192 bytes"), "{message}");
        // Too many header fields: hyper's 431, in JSON.
        let mut request = String::from("GET /api/dashboard/overview HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for i in 0..150 {
            request.push_str(&format!("X-Field-{i}: {i}\r\n"));
        }
        request.push_str("\r\n");
        let (status, _, body) = exchange(s.served.addr, request.as_bytes()).await;
        assert_eq!(status, 431);
        assert_eq!(error_of(&body).0, "headers_too_large");
        assert_eq!(error_of(&body).2, Some("headers"));
        // Not HTTP at all: hyper's 400, in JSON.
        let (status, _, body) = exchange(s.served.addr, b"HELLO THERE\r\n\r\n").await;
        assert_eq!(status, 400);
        assert_eq!(error_of(&body).0, "bad_request");
        // The server still serves.
        let resp = client().get(s.url("/healthz")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        s.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_strings_are_decoded_strictly() {
    within(async {
        let s = start(false, |_| {}).await;
        let http = client();
        let bad = |query: &'static str| {
            let req = http.get(s.url(&format!("/api/dashboard/executions?{query}")));
            async move {
                let resp = req.send().await.unwrap();
                assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{query}");
                let body: Value = resp.json().await.unwrap();
                let (code, message, field) = error_of(&body);
                assert_eq!(code, "invalid_input");
                (message.to_owned(), field.map(str::to_owned))
            }
        };
        assert_eq!(
            bad("agentId=%zz%ff").await,
            (
                "agentId: \"%zz%ff\" is not valid percent-encoding: \"%zz\" at byte 0 is not an escape (% must be followed by two hex digits; write %25 for a % sign)".into(),
                Some("agentId".into())
            )
        );
        assert_eq!(
            bad("agentId=ab%ff").await,
            (
                "agentId: \"ab%ff\" is not valid percent-encoding: its escapes decode to bytes that are not UTF-8 text (invalid utf-8 sequence of 1 bytes from index 2)".into(),
                Some("agentId".into())
            )
        );
        assert_eq!(
            bad("agentId=%4").await.1.as_deref(),
            Some("agentId"),
            "a truncated escape"
        );
        assert_eq!(
            bad("limit=5&=x").await,
            (
                "query: parameter 2 (\"=x\") has no name; write name=value, e.g. timeframe=week"
                    .into(),
                Some("query".into())
            )
        );
        assert_eq!(
            bad("%zz=1").await,
            (
                "query: the name of parameter 1 (\"%zz\") is not valid percent-encoding: \"%zz\" at byte 0 is not an escape (% must be followed by two hex digits; write %25 for a % sign)".into(),
                Some("query".into())
            )
        );
        // Valid escapes, `+` for a space and empty segments are read as a browser writes them,
        // and an empty value is "not given".
        for (query, agent) in [
            ("agentId=a+b%2Bc&&limit=", Some("a b+c")),
            ("agentId=%E2%82%AC", Some("€")),
            ("agentId=", None),
        ] {
            let resp = http
                .get(s.url(&format!("/api/dashboard/executions?{query}")))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{query}");
            let mut args = Map::new();
            if let Some(a) = agent {
                args.insert("agentId".into(), json!(a));
            }
            let expected =
                catalog::call(&s.dashboard, false, "dashboard_get_executions", Some(args))
                    .unwrap();
            assert_eq!(
                resp.text().await.unwrap(),
                serde_json::to_string(&expected).unwrap(),
                "{query}"
            );
        }
        // The same reading on the live stream and the legacy message endpoint.
        let resp = http
            .get(s.url("/api/stream?agentId=%zz"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(error_of(&body).2, Some("agentId"));
        let resp = http
            .post(s.url("/message?sessionId=%ff"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(error_of(&body).2, Some("sessionId"));
        s.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_scopes_in_the_path_are_decoded_strictly_and_passed_on_unchanged() {
    within(async {
        let s = start(true, |_| {}).await;
        let http = client();
        let put = |scope: &str| {
            http.put(s.url(&format!("/api/budgets/{scope}")))
                .json(&json!({"limitUsd": 5, "period": "day"}))
                .send()
        };
        for (raw, why) in [
            ("%zz", "\"%zz\" at byte 0 is not an escape"),
            ("ab%e2%82", "not UTF-8 text"),
        ] {
            let resp = put(raw).await.unwrap();
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{raw}");
            let body: Value = resp.json().await.unwrap();
            let (code, message, field) = error_of(&body);
            assert_eq!((code, field), ("invalid_input", Some("scope")), "{raw}");
            assert!(
                message.starts_with(&format!(
                    "scope: the path segment \"{raw}\" is not valid percent-encoding: "
                )) && message.contains(why),
                "{message}"
            );
        }
        // `+` is not a space in a path; escapes decode; the scope goes to the tool as sent.
        let resp = put("team+a%20b%C3%A9").await.unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "{}",
            resp.text().await.unwrap()
        );
        let budgets = catalog::call(&s.dashboard, true, "dashboard_get_budgets", None).unwrap();
        let scopes: Vec<&str> = budgets["budgets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["scope"].as_str().unwrap())
            .collect();
        assert_eq!(scopes, ["team+a bé"]);
        s.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_quote_a_bounded_prefix_of_what_was_sent() {
    within(async {
        let s = start(false, |_| {}).await;
        let http = client();
        let message_of = |path: String| {
            let req = http.get(s.url(&path));
            async move {
                let resp = req.send().await.unwrap();
                let status = resp.status();
                let body: Value = resp.json().await.unwrap();
                (status, body["error"]["message"].as_str().unwrap().to_owned())
            }
        };
        let long_path = format!("/{}", "x".repeat(5000));
        assert_eq!(
            message_of(long_path).await,
            (
                StatusCode::NOT_FOUND,
                format!(
                    "no route \"/{}\"… (5001 bytes in all); see /openapi.json for the REST API, /mcp for MCP",
                    "x".repeat(199)
                )
            )
        );
        assert_eq!(
            message_of(format!("/api/stream?interval={}", "9".repeat(3000))).await,
            (
                StatusCode::BAD_REQUEST,
                format!(
                    "interval: \"{}\"… (3000 bytes in all) is not a whole number of seconds in 1..=300",
                    "9".repeat(200)
                )
            )
        );
        assert_eq!(
            message_of(format!("/api/stream?{}=1", "k".repeat(3000))).await,
            (
                StatusCode::BAD_REQUEST,
                format!(
                    "{}: unknown parameter \"{}\"… (3000 bytes in all); allowed are interval, agentId, model",
                    "k".repeat(3000),
                    "k".repeat(200)
                )
            )
        );
        assert_eq!(
            message_of(format!("/api/dashboard/executions?agentId={}%zz", "a".repeat(5000))).await,
            (
                StatusCode::BAD_REQUEST,
                format!(
                    "agentId: \"{}\"… (5003 bytes in all) is not valid percent-encoding: \"%zz\" at byte 5000 is not an escape (% must be followed by two hex digits; write %25 for a % sign)",
                    "a".repeat(200)
                )
            )
        );
        // Whatever a tool says, an answer's message is at most 4096 bytes and a cut mark.
        let (status, message) =
            message_of(format!("/api/dashboard/overview?timeframe={}", "w".repeat(8000))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(message.len() <= 4096 + 40, "{} bytes", message.len());
        s.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blank_padded_and_short_public_tokens_are_refused() {
    within(async {
        let (env, _) = common::fixture();
        let server = DashboardServer::new(env.dashboard.clone(), false);
        let bind = |addr: &str, token: &str| {
            let mut config = HttpConfig::new(addr);
            config.token = Some(token.into());
            HttpServer::bind(server.clone(), config)
        };
        for (addr, token, says) in [
            ("127.0.0.1:0", "", "it is empty or only whitespace"),
            ("127.0.0.1:0", " ", "it is empty or only whitespace"),
            ("0.0.0.0:0", "\t\n", "it is empty or only whitespace"),
            ("127.0.0.1:0", " 0123456789abcdef", "begins or ends with whitespace"),
            ("0.0.0.0:0", "0123456789abcdef\n", "begins or ends with whitespace"),
            ("0.0.0.0:0", "x", "it is 1 characters long, and a server on 0.0.0.0:0 (not a loopback address) needs at least 16"),
            ("0.0.0.0:0", "0123456789abcde", "it is 15 characters long"),
        ] {
            let err = bind(addr, token).await.err().unwrap_or_else(|| panic!("{token:?} on {addr} accepted"));
            assert!(matches!(err, HttpError::BadToken(_)), "{err}");
            let text = err.to_string();
            assert!(text.starts_with("refusing the bearer token: ") && text.contains(says), "{text}");
        }
        // Sixteen characters serve anywhere; a short one on loopback is allowed (with a warning).
        for (addr, token) in [("0.0.0.0:0", "0123456789abcdef"), ("127.0.0.1:0", "short")] {
            let bound = bind(addr, token).await.unwrap_or_else(|e| panic!("{addr} {token:?}: {e}"));
            drop(bound);
        }
        let mut zero = HttpConfig::new("127.0.0.1:0");
        zero.max_connections = 0;
        assert!(matches!(
            HttpServer::bind(server.clone(), zero).await.err(),
            Some(HttpError::Config(_))
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_says_what_the_server_does() {
    within(async {
        let s = start(true, |_| {}).await;
        let http = client();
        let doc: Value = http
            .get(s.url("/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let param = |path: &str, method: &str, name: &str| -> Value {
            doc["paths"][path][method]["parameters"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path} has no parameters"))
                .iter()
                .find(|p| p["name"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("{method} {path} has no {name}"))
        };
        let executions = "/api/dashboard/executions";
        for name in ["start", "end"] {
            assert_eq!(param(executions, "get", name)["schema"]["format"], "date-time");
        }
        for path in [executions, "/api/dashboard/agents", "/api/budgets"] {
            assert_eq!(param(path, "get", "offset")["schema"]["maximum"], 1_000_000_000, "{path}");
        }
        let scope = param("/api/budgets", "get", "scope");
        assert_eq!((scope["schema"]["minLength"].as_u64(), scope["schema"]["maxLength"].as_u64()), (Some(1), Some(128)));
        let scope = param("/api/budgets/{scope}", "put", "scope");
        assert_eq!(scope["schema"]["maxLength"], 128);
        // Every query parameter says that an empty value counts as not given.
        let mut query_params = 0;
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    if p["in"] == "query" {
                        assert_eq!(p["allowEmptyValue"], true, "{method} {path} {}", p["name"]);
                        assert!(
                            p["description"].as_str().unwrap().ends_with("An empty value (`name=`) counts as not given."),
                            "{method} {path} {}", p["name"]
                        );
                        query_params += 1;
                    }
                }
            }
        }
        assert!(query_params >= 30, "{query_params}");
        // The server agrees with the documented limit of offset and with empty values.
        let status = |path: &str| {
            let req = http.get(s.url(path));
            async move { req.send().await.unwrap().status() }
        };
        assert_eq!(status("/api/dashboard/agents?offset=1000000000").await, StatusCode::OK);
        assert_eq!(status("/api/dashboard/agents?offset=1000000001").await, StatusCode::BAD_REQUEST);
        assert_eq!(status("/api/dashboard/agents?offset=&limit=").await, StatusCode::OK);

        // /api/stream events are objects whose data is the JSON of a documented schema.
        let events = &doc["paths"]["/api/stream"]["get"]["responses"]["200"]["content"]["text/event-stream"]["schema"];
        assert_eq!(events["type"], "array");
        let kinds = events["items"]["oneOf"].as_array().unwrap();
        assert_eq!(kinds.len(), 2);
        let execution = kinds.iter().find(|k| k["properties"]["event"]["const"] == "execution").unwrap();
        let overview = kinds.iter().find(|k| k["properties"]["event"]["const"] == "overview").unwrap();
        let items_ref = doc["components"]["schemas"]["dashboard_get_executions.output"]["properties"]["executions"]["items"].clone();
        assert!(items_ref["$ref"].is_string());
        assert_eq!(execution["properties"]["data"]["contentSchema"], items_ref);
        assert_eq!(execution["properties"]["data"]["contentMediaType"], "application/json");
        assert_eq!(
            overview["properties"]["data"]["contentSchema"],
            json!({"$ref": "#/components/schemas/dashboard_get_overview.output"})
        );
        // A real overview event matches: the event object, and its data against contentSchema.
        let resp = http.get(s.url("/api/stream")).send().await.unwrap();
        let mut stream = resp.bytes_stream();
        let mut text = String::new();
        while !text.contains("\n\n") {
            let chunk = tokio::time::timeout(Duration::from_secs(10), futures::StreamExt::next(&mut stream))
                .await
                .expect("an event within 10 s")
                .unwrap()
                .unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        let block = &text[..text.find("\n\n").unwrap()];
        let event = block.lines().find_map(|l| l.strip_prefix("event:")).unwrap().trim();
        let data = block.lines().find_map(|l| l.strip_prefix("data:")).unwrap().trim();
        assert_eq!(event, "overview");
        let validate = |schema: &Value, instance: &Value| {
            let root = json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "allOf": [schema], "components": doc["components"]});
            let v = jsonschema::validator_for(&root).unwrap();
            let errors: Vec<String> = v.iter_errors(instance).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{errors:?}");
        };
        validate(events, &json!([{"event": event, "data": data}]));
        validate(&overview["properties"]["data"]["contentSchema"], &serde_json::from_str(data).unwrap());
        drop(stream);
        s.shutdown().await;
    })
    .await;
}

/// A request whose client goes away stops its work: the anomaly call below waits for the memo
/// (held by the test), its client gives up, and once the memo is free the call stops at its
/// first check instead of judging every agent (`/healthz` counts it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The memo's lock is held on purpose while the client waits: the call that blocks on it runs on
// the blocking pool, not on this runtime's threads.
#[allow(clippy::await_holding_lock)]
async fn a_request_whose_client_has_gone_stops_its_work() {
    within(async {
        let s = start(false, |_| {}).await;
        let memo = s.dashboard.memo.clone();
        let held = memo.lock().unwrap();
        let impatient = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let gone = impatient
            .get(s.url("/api/dashboard/anomalies?timeframe=month"))
            .send()
            .await;
        assert!(gone.unwrap_err().is_timeout());
        // The server notices the closed connection and drops the request's future.
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(held);
        let health = |http: reqwest::Client, url: String| async move {
            let v: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            v["requests"]["cancelled"].as_u64().unwrap()
        };
        let mut cancelled = 0;
        for _ in 0..50 {
            cancelled = health(client(), s.url("/healthz")).await;
            if cancelled > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(cancelled, 1);
        // The memo was left as it was: the same question, asked patiently, is answered in full.
        let out: Value = client()
            .get(s.url("/api/dashboard/anomalies?timeframe=month"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let args = json!({"timeframe": "month"}).as_object().cloned();
        let expected = catalog::call(&s.dashboard, false, "dashboard_get_anomalies", args).unwrap();
        assert_eq!(out, expected);
        s.shutdown().await;
    })
    .await;
}

/// The budget body says what the server enforces beyond the tool schema: null deletes, and a
/// number needs a period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_body_schema_states_the_period_rule_and_null() {
    within(async {
        let s = start(true, |_| {}).await;
        let doc: Value = client()
            .get(s.url("/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let body = &doc["paths"]["/api/budgets/{scope}"]["put"]["requestBody"]["content"]
            ["application/json"]["schema"];
        assert_eq!(
            body["properties"]["limitUsd"]["type"],
            json!(["number", "null"])
        );
        assert_eq!(body["then"]["required"], json!(["period"]));
        // And the server does what it says.
        let put = |b: Value| client().put(s.url("/api/budgets/planner")).json(&b).send();
        let no_period = put(json!({"limitUsd": 5})).await.unwrap();
        assert_eq!(no_period.status(), StatusCode::BAD_REQUEST);
        let made = put(json!({"limitUsd": 5, "period": "day"})).await.unwrap();
        assert_eq!(made.status(), StatusCode::OK);
        let deleted = put(json!({"limitUsd": null})).await.unwrap();
        assert_eq!(deleted.status(), StatusCode::OK);
        s.shutdown().await;
    })
    .await;
}
