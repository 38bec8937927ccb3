//! HTTP mode over a real socket: the server runs in-process on 127.0.0.1:0 with a shutdown
//! future, and a real HTTP client talks to it. REST answers must equal `catalog::call` and the
//! `query` CLI byte for byte, validate against `/openapi.json`, and the guard, limits, live
//! stream and graceful shutdown must hold.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use dashboard_mcp::catalog::{self, CallError};
use dashboard_mcp::demo::{self, DemoConfig};
use dashboard_mcp::http::{HttpConfig, HttpError, HttpServer};
use dashboard_mcp::mcp::DashboardServer;
use dashboard_mcp::time::{parse_rfc3339, Clock, Zone};
use dashboard_mcp::{ingest, Dashboard};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Map, Value};

use common::served::{client, serve, within, Served};

const NOW: &str = "2026-03-01T12:00:00Z";
const TOKEN: &str = "s3cret-token";

/// A server running in-process on its own database.
struct Running {
    served: Served,
    db: String,
    dashboard: Dashboard,
    allow_writes: bool,
    _dir: tempfile::TempDir,
}

struct Options {
    allow_writes: bool,
    demo: bool,
    config: Box<dyn FnOnce(&mut HttpConfig)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            allow_writes: false,
            demo: true,
            config: Box::new(|_| {}),
        }
    }
}

fn dashboard_on(dir: &std::path::Path) -> Dashboard {
    Dashboard::new(
        dashboard_mcp::store::testing::open(dir),
        Clock::Fixed(parse_rfc3339("now", NOW).unwrap()),
        Zone::default(),
    )
}

async fn start(opts: Options) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let dashboard = dashboard_on(dir.path());
    let db = dashboard.store.location();
    if opts.demo {
        let cfg = DemoConfig {
            agents: 6,
            models: 4,
            days: 12,
            events: 4000,
            seed: 7,
        };
        ingest::insert_all(&*dashboard.store, demo::generate(&cfg, dashboard.now())).unwrap();
    }
    let served = serve(dashboard.clone(), opts.allow_writes, opts.config).await;
    Running {
        served,
        db,
        dashboard,
        allow_writes: opts.allow_writes,
        _dir: dir,
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

/// The REST path of each read tool of the catalog (whatever it holds).
fn read_tools() -> Vec<(&'static str, String)> {
    catalog::specs()
        .into_iter()
        .filter(|s| !s.write)
        .map(|s| {
            let short = s
                .name
                .strip_prefix("dashboard_get_")
                .or_else(|| s.name.strip_prefix("dashboard_"))
                .unwrap_or(s.name);
            (s.name, format!("/api/dashboard/{short}"))
        })
        .collect()
}

/// Parameter sets for a tool, built from its input schema's property names: the defaults, each
/// known parameter alone with a window, and a bad timeframe.
fn parameter_sets(tool: &str, agent: &str, model: &str) -> Vec<Vec<(&'static str, String)>> {
    let spec = catalog::specs()
        .into_iter()
        .find(|s| s.name == tool)
        .unwrap();
    let input = (spec.input_schema)();
    let props: Vec<String> = input
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    let candidates: Vec<(&'static str, String)> = vec![
        ("limit", "3".into()),
        ("offset", "1".into()),
        ("agentId", agent.into()),
        ("model", model.into()),
        ("sortBy", "calls".into()),
        ("order", "asc".into()),
        ("granularity", "day".into()),
        ("metric", "tokens".into()),
        ("breakdown", "model".into()),
        ("status", "error".into()),
        ("severity", "low".into()),
    ];
    let mut sets = vec![vec![]];
    if props.iter().any(|p| p == "timeframe") {
        for tf in ["hour", "week", "7d", "month"] {
            sets.push(vec![("timeframe", tf.into())]);
        }
        sets.push(vec![("timeframe", "fortnight".into())]);
    }
    if props.iter().any(|p| p == "start") && props.iter().any(|p| p == "end") {
        sets.push(vec![
            ("start", "2026-02-25T00:00:00Z".into()),
            ("end", "2026-02-27T06:00:00Z".into()),
        ]);
    }
    if props.iter().any(|p| p == "estimatedCostUsd") {
        sets.push(vec![
            ("agentId", agent.into()),
            ("estimatedCostUsd", "2.5".into()),
        ]);
        sets.push(vec![
            ("agentId", agent.into()),
            ("estimatedCostUsd", "-1".into()),
        ]);
    }
    for (name, value) in candidates {
        if props.iter().any(|p| p == name) {
            sets.push(vec![("timeframe", "week".into()), (name, value)]);
        }
    }
    sets.push(vec![("noSuchParameter", "1".into())]);
    sets
}

/// What `dashboard-mcp query` prints for the same call: `Ok(stdout line)` or `Err(stderr)`.
fn query_cli(db: &str, tool: &str, args: &Map<String, Value>) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_dashboard-mcp"))
        .arg("--db")
        .arg(db)
        .args(["--now", NOW, "query", tool])
        .arg(Value::Object(args.clone()).to_string())
        .arg("--compact")
        .output()
        .expect("run the query command");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap().trim_end().to_owned())
    } else {
        Err(String::from_utf8(out.stderr).unwrap().trim_end().to_owned())
    }
}

/// The JSON Schema of the response `status` of `method path` in the OpenAPI document.
fn response_schema(doc: &Value, path: &str, method: &str, status: u16) -> Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not in /openapi.json");
    let mut resp = op["responses"][status.to_string()].clone();
    if let Some(r) = resp["$ref"].as_str() {
        let name = r.strip_prefix("#/components/responses/").unwrap();
        resp = doc["components"]["responses"][name].clone();
    }
    let schema = resp["content"]["application/json"]["schema"].clone();
    assert!(
        schema.is_object(),
        "{method} {path} documents no JSON schema for {status}"
    );
    schema
}

/// Validate `body` against the documented schema; panics with every violation.
fn assert_documented(doc: &Value, path: &str, method: &str, status: u16, body: &Value) {
    let schema = response_schema(doc, path, method, status);
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [schema],
        "components": doc["components"],
    });
    let validator = jsonschema::validator_for(&root).expect("the documented schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status} does not match /openapi.json: {errors:#?}\nbody: {body}"
    );
}

fn as_args(params: &[(&str, String)]) -> Map<String, Value> {
    params
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_answers_equal_the_catalog_and_the_cli_and_match_openapi() {
    within(async {
        let s = start(Options::default()).await;
        let http = client();
        let doc: Value = http
            .get(s.url("/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["openapi"], "3.1.0");

        let first = catalog::call(&s.dashboard, false, "dashboard_get_executions", None).unwrap();
        let agent = first["executions"][0]["agentId"]
            .as_str()
            .unwrap()
            .to_owned();
        let model = first["executions"][0]["model"].as_str().unwrap().to_owned();

        let mut checked = 0;
        for (tool, path) in read_tools() {
            for params in parameter_sets(tool, &agent, &model) {
                let args = as_args(&params);
                let resp = http.get(s.url(&path)).query(&params).send().await.unwrap();
                let status = resp.status();
                let ctype = resp.headers()["content-type"].to_str().unwrap().to_owned();
                let body = resp.text().await.unwrap();
                assert!(ctype.starts_with("application/json"), "{path}: {ctype}");
                let parsed: Value = serde_json::from_str(&body).unwrap();
                assert_documented(&doc, &path, "get", status.as_u16(), &parsed);

                let direct = catalog::call(&s.dashboard, false, tool, Some(args.clone()));
                let cli = query_cli(&s.db, tool, &args);
                match direct {
                    Ok(v) => {
                        assert_eq!(status, StatusCode::OK, "{path} {params:?}: {body}");
                        let expected = serde_json::to_string(&v).unwrap();
                        assert_eq!(body, expected, "{path} {params:?}: REST != catalog::call");
                        assert_eq!(
                            cli.as_deref(),
                            Ok(expected.as_str()),
                            "{path} {params:?}: REST != query CLI"
                        );
                    }
                    Err(CallError::Tool(e)) => {
                        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {params:?}: {body}");
                        assert_eq!(parsed["error"]["code"], "invalid_input");
                        assert_eq!(parsed["error"]["message"], e.to_string());
                        assert_eq!(
                            parsed["error"]["field"].as_str(),
                            e.field(),
                            "{path} {params:?}"
                        );
                        assert_eq!(cli, Err(format!("error: {e}")), "{path} {params:?}");
                    }
                    Err(e) => panic!("{path} {params:?}: {e}"),
                }
                checked += 1;
            }
        }
        assert!(checked >= 30, "only {checked} parameter sets checked");
        // The budget check also answers at /api/budgets/check.
        let params = [
            ("agentId", agent.clone()),
            ("estimatedCostUsd", "2.5".to_owned()),
        ];
        let body = http
            .get(s.url("/api/budgets/check"))
            .query(&params)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let direct = catalog::call(
            &s.dashboard,
            false,
            "dashboard_check_budget",
            Some(as_args(&params)),
        )
        .unwrap();
        assert_eq!(body, serde_json::to_string(&direct).unwrap());
        s.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_covers_every_route_and_write_routes_only_with_writes() {
    within(async {
        let http = client();
        let ro = start(Options::default()).await;
        let doc: Value = http
            .get(ro.url("/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for (tool, path) in read_tools() {
            assert_eq!(doc["paths"][&path]["get"]["operationId"], tool, "{path}");
            let schema = response_schema(&doc, &path, "get", 200);
            assert!(schema["$ref"]
                .as_str()
                .unwrap()
                .ends_with(&format!("{tool}.output")));
        }
        assert!(
            doc["paths"]["/api/usage"].is_null(),
            "write routes listed without --allow-writes"
        );
        let health: Value = http
            .get(ro.url("/healthz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_documented(&doc, "/healthz", "get", 200, &health);
        assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(health["database"], "ok");
        ro.shutdown().await;

        let rw = start(Options {
            allow_writes: true,
            ..Default::default()
        })
        .await;
        let doc: Value = http
            .get(rw.url("/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let usage = &doc["paths"]["/api/usage"]["post"];
        assert_eq!(usage["operationId"], "dashboard_record_usage");
        assert!(usage["requestBody"]["content"]["application/x-ndjson"].is_object());
        let record =
            json!({"timestamp": "2026-03-01T11:00:00Z", "agentId": "doc-agent", "model": "m"});
        let resp = http
            .post(rw.url("/api/usage"))
            .json(&json!([record, {"agentId": "x"}]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let report: Value = resp.json().await.unwrap();
        assert_documented(&doc, "/api/usage", "post", 200, &report);
        assert_eq!(
            (report["accepted"].as_u64(), report["rejected"].as_u64()),
            (Some(1), Some(1))
        );
        rw.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_400_naming_the_field_and_unknown_routes_404() {
    within(async {
        let s = start(Options::default()).await;
        let http = client();
        let cases = [
            ("/api/dashboard/overview?timeframe=fortnight", "timeframe"),
            ("/api/dashboard/agents?limit=0", "limit"),
            ("/api/dashboard/agents?limit=ten", "limit"),
            ("/api/dashboard/executions?limit=1&limit=2", "limit"),
            ("/api/dashboard/overview?colour=blue", "colour"),
            ("/api/dashboard/overview?start=yesterday", "start"),
            ("/api/stream?interval=0", "interval"),
            ("/api/stream?interval=301", "interval"),
            ("/api/stream?agent=x", "agent"),
        ];
        for (path, field) in cases {
            let resp = http.get(s.url(path)).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["field"], field, "{path}: {body}");
            assert_eq!(body["error"]["code"], "invalid_input", "{path}");
            assert!(
                body["error"]["message"].as_str().unwrap().contains(field),
                "{path}: {body}"
            );
        }
        let resp = http
            .get(s.url("/api/dashboard/nothing-here"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found");
        let resp = http
            .delete(s.url("/api/dashboard/overview"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "method_not_allowed");
        // Write routes answer, but refuse without --allow-writes.
        let resp = http
            .post(s.url("/api/usage"))
            .body("[]")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "writes_disabled");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--allow-writes"));
        s.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_bodies_are_validated_and_reported() {
    within(async {
        let s = start(Options { allow_writes: true, demo: false, ..Default::default() }).await;
        let http = client();
        let ndjson = "{\"timestamp\":\"2026-03-01T10:00:00Z\",\"agentId\":\"a\",\"model\":\"m\",\"cost\":0.25}\n\n{\"timestamp\":\"2026-03-01T10:01:00Z\",\"agentId\":\"a\",\"model\":\"m\",\"cost\":\"oops\"}\n";
        let report: Value = http.post(s.url("/api/usage")).header("content-type", "application/x-ndjson").body(ndjson).send().await.unwrap().json().await.unwrap();
        assert_eq!(report["accepted"], 1);
        assert_eq!(report["rejected"], 1);
        assert!(report["files"][0]["errors"][0]["reason"].as_str().unwrap().starts_with("cost:"));
        // Re-sending the same record never double counts.
        let again: Value = http.post(s.url("/api/usage")).body(ndjson.lines().next().unwrap().to_owned()).send().await.unwrap().json().await.unwrap();
        assert_eq!(again["duplicates"], 1);
        let overview: Value = http.get(s.url("/api/dashboard/overview")).send().await.unwrap().json().await.unwrap();
        assert_eq!(overview["summary"]["totalCost"], 0.25);

        for (body, needle) in [("{oops", "line 1"), ("", "empty"), ("42", "neither"), ("\n{oops\n[1", "line 2")] {
            let resp = http.post(s.url("/api/usage")).body(body).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body:?}");
            let err: Value = resp.json().await.unwrap();
            assert_eq!(err["error"]["field"], "body");
            assert!(err["error"]["message"].as_str().unwrap().contains(needle), "{err}");
        }
        let too_many: Vec<Value> = (0..10_001).map(|i| json!({"timestamp": i, "agentId": "a", "model": "m"})).collect();
        let resp = http.post(s.url("/api/usage")).json(&too_many).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["field"], "records");
        s.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_guards_every_route_but_healthz() {
    within(async {
        let s = start(Options {
            config: Box::new(|c| c.token = Some(TOKEN.into())),
            ..Default::default()
        })
        .await;
        let http = client();
        for path in [
            "/api/dashboard/overview",
            "/openapi.json",
            "/api/stream",
            "/sse",
            "/mcp",
            "/nowhere",
        ] {
            let resp = http.get(s.url(path)).send().await.unwrap();
            assert_eq!(
                resp.status(),
                StatusCode::UNAUTHORIZED,
                "{path} without a token"
            );
            assert!(resp.headers().contains_key("www-authenticate"));
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthorized");
            let resp = http
                .get(s.url(path))
                .bearer_auth("s3cret-tokem")
                .send()
                .await
                .unwrap();
            assert_eq!(
                resp.status(),
                StatusCode::UNAUTHORIZED,
                "{path} with a wrong token"
            );
        }
        let resp = http
            .post(s.url("/mcp"))
            .bearer_auth("wrong")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let resp = http
            .get(s.url("/api/dashboard/overview"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let resp = http
            .get(s.url("/api/dashboard/overview"))
            .header("authorization", format!("bearer {TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "the scheme is case-insensitive"
        );
        let resp = http.get(s.url("/healthz")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "/healthz needs no token");
        let doc: Value = http
            .get(s.url("/openapi.json"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["security"], json!([{ "bearer": [] }]));
        // A CORS preflight of an allowed origin needs no token (browsers send none); the request
        // that follows does, and carries the CORS headers.
        let preflight = |origin: &str| {
            http.request(reqwest::Method::OPTIONS, s.url("/api/dashboard/overview"))
                .header("origin", origin)
                .header("access-control-request-method", "GET")
                .header("access-control-request-headers", "authorization")
                .send()
        };
        let resp = preflight("http://localhost:5173").await.unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            resp.headers()["access-control-allow-origin"],
            "http://localhost:5173"
        );
        assert!(resp.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("Authorization"));
        assert_eq!(
            preflight("https://evil.example").await.unwrap().status(),
            StatusCode::FORBIDDEN
        );
        let resp = http
            .get(s.url("/api/dashboard/overview"))
            .header("origin", "http://localhost:5173")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let resp = http
            .get(s.url("/api/dashboard/overview"))
            .header("origin", "http://localhost:5173")
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()["access-control-allow-origin"],
            "http://localhost:5173"
        );
        s.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_origins_and_hosts_are_forbidden() {
    within(async {
        let s = start(Options {
            config: Box::new(|c| c.allowed_origins = vec!["https://app.example".into()]),
            ..Default::default()
        })
        .await;
        let http = client();
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
        let mcp_post = |origin: &str| {
            http.post(s.url("/mcp"))
                .header("origin", origin)
                .header("accept", "application/json, text/event-stream")
                .json(&init)
                .send()
        };
        for origin in ["https://evil.example", "http://localhost.evil.example", "null", "https://app.example:444"] {
            let resp = mcp_post(origin).await.unwrap();
            assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{origin}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], "forbidden_origin");
            for path in ["/sse", "/message?sessionId=x", "/api/dashboard/overview"] {
                let resp = http.get(s.url(path)).header("origin", origin).send().await.unwrap();
                assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path} {origin}");
            }
        }
        for origin in ["http://localhost:5173", "http://127.0.0.1:1", "https://app.example"] {
            let resp = mcp_post(origin).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{origin}");
        }
        let resp = http.get(s.url("/api/dashboard/overview")).header("host", "evil.example").send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "forbidden_host");
        s.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_bind_without_a_token_refuses_to_start() {
    within(async {
        let dir = tempfile::tempdir().unwrap();
        let server = DashboardServer::new(dashboard_on(dir.path()), false);
        let err = HttpServer::bind(server.clone(), HttpConfig::new("0.0.0.0:0"))
            .await
            .err()
            .expect("a public bind without a token is refused");
        assert!(matches!(err, HttpError::TokenRequired { .. }));
        assert!(err.to_string().contains("--token"), "{err}");
        let mut empty = HttpConfig::new("0.0.0.0:0");
        empty.token = Some(String::new());
        assert!(matches!(
            HttpServer::bind(server, empty).await.err(),
            Some(HttpError::BadToken(_))
        ));

        let out = Command::new(env!("CARGO_BIN_EXE_dashboard-mcp"))
            .arg("--db")
            .arg(dir.path().join("u.db"))
            .args(["serve", "--http", "0.0.0.0:0"])
            .env_remove("DASHBOARD_MCP_TOKEN")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("refusing to serve on 0.0.0.0:0")
                && stderr.contains("DASHBOARD_MCP_TOKEN"),
            "{stderr}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_413() {
    within(async {
        let s = start(Options {
            allow_writes: true,
            config: Box::new(|c| c.max_body_bytes = 2048),
            ..Default::default()
        })
        .await;
        let http = client();
        let big: Vec<Value> = (0..100)
            .map(|i| json!({"timestamp": i, "agentId": "a", "model": "m"}))
            .collect();
        let body = serde_json::to_vec(&big).unwrap();
        assert!(body.len() > 2048);
        let resp = http
            .post(s.url("/api/usage"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["code"], "payload_too_large");
        // Without a Content-Length (chunked), the limit holds while reading.
        let chunks = futures::stream::iter(
            body.chunks(512)
                .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
                .collect::<Vec<_>>(),
        );
        let resp = http
            .post(s.url("/api/usage"))
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let resp = http
            .post(s.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(vec![b' '; 4096])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        s.shutdown().await;
    })
    .await;
}

/// Read SSE events from `resp` until `pick` returns something, or `limit` passes.
async fn next_event<T, B: AsRef<[u8]>>(
    events: &mut (impl futures::Stream<Item = reqwest::Result<B>> + Unpin),
    buffer: &mut String,
    limit: Duration,
    mut pick: impl FnMut(&str, &str) -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut event = "message";
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = e.trim();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            if let Some(t) = pick(event, &data) {
                return Some(t);
            }
        }
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(Ok(chunk))) => buffer.push_str(&String::from_utf8_lossy(chunk.as_ref())),
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posted_record_arrives_on_the_live_stream_within_a_second() {
    within(async {
        let s = start(Options { allow_writes: true, ..Default::default() }).await;
        let http = client();
        let open = |query: &str| {
            let req = http.get(s.url(&format!("/api/stream{query}")));
            async move {
                let resp = req.send().await.unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
                assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
                resp.bytes_stream()
            }
        };
        let mut all = open("?interval=1").await;
        let mut mine = open("?agentId=live-agent&model=live-model").await;
        let mut others = open("?agentId=someone-else").await;
        let (mut b_all, mut b_mine, mut b_others) = (String::new(), String::new(), String::new());
        // The first overview comes at once: the stream is live.
        let first = next_event(&mut all, &mut b_all, Duration::from_secs(5), |e, d| (e == "overview").then(|| d.to_owned())).await;
        let first: Value = serde_json::from_str(&first.expect("an overview at once")).unwrap();
        let calls_before = first["summary"]["totalCalls"].as_u64().unwrap();

        let record = json!({"id": "live-1", "timestamp": "2026-03-01T11:59:00Z", "agentId": "live-agent",
            "model": "live-model", "promptTokens": 10, "completionTokens": 5, "cost": 0.125, "durationMs": 420});
        let resp = http.post(s.url("/api/usage")).json(&json!([record])).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let posted = Instant::now();
        let is_live = |e: &str, d: &str| -> Option<Value> {
            let v: Value = serde_json::from_str(d).ok()?;
            (e == "execution" && v["id"] == "live-1").then_some(v)
        };
        let item = next_event(&mut mine, &mut b_mine, Duration::from_secs(1), is_live).await.expect("the execution arrives within a second");
        assert!(posted.elapsed() < Duration::from_secs(1));
        // The executions item shape, as dashboard_get_executions answers it.
        let listed = catalog::call(&s.dashboard, false, "dashboard_get_executions", Some(as_args(&[("agentId", "live-agent".into())]))).unwrap();
        assert_eq!(item, listed["executions"][0]);
        assert!(next_event(&mut all, &mut b_all, Duration::from_secs(1), is_live).await.is_some());
        // The overview follows within the interval, counting the new record.
        let updated = next_event(&mut all, &mut b_all, Duration::from_secs(3), |e, d| (e == "overview").then(|| d.to_owned())).await.expect("an updated overview");
        let updated: Value = serde_json::from_str(&updated).unwrap();
        assert_eq!(updated["summary"]["totalCalls"].as_u64().unwrap(), calls_before + 1);
        // A filtered stream does not see other agents' executions.
        assert!(next_event(&mut others, &mut b_others, Duration::from_millis(300), |e, _| (e == "execution").then_some(())).await.is_none());
        s.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_streams_and_finishes_in_flight_writes() {
    within(async {
        let s = start(Options { allow_writes: true, demo: false, ..Default::default() }).await;
        let http = client();
        let stream = http.get(s.url("/api/stream")).send().await.unwrap();
        assert_eq!(stream.status(), StatusCode::OK);
        let sse = http.get(s.url("/sse")).send().await.unwrap();
        assert_eq!(sse.status(), StatusCode::OK);
        let records: Vec<Value> = (0..10_000)
            .map(|i| json!({"timestamp": 1_772_000_000_000i64 + i, "agentId": format!("a{}", i % 7), "model": "m", "cost": 0.001}))
            .collect();
        let write = tokio::spawn({
            let req = http.post(s.url("/api/usage")).json(&records);
            async move { req.send().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let dashboard = s.dashboard.clone();
        s.shutdown().await;
        assert!(started.elapsed() < Duration::from_secs(5), "shutdown waited on open streams");
        let resp = write.await.unwrap().expect("the in-flight write is answered");
        assert_eq!(resp.status(), StatusCode::OK);
        let report: Value = resp.json().await.unwrap();
        assert_eq!(report["accepted"], 10_000);
        let all = catalog::call(&dashboard, false, "dashboard_get_executions", Some(as_args(&[("start", "2026-02-01T00:00:00Z".into()), ("end", "2026-03-01T00:00:00Z".into())]))).unwrap();
        assert_eq!(all["pagination"]["total"], 10_000);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_sse_transport_answers_json_rpc_on_its_stream() {
    within(async {
        let s = start(Options::default()).await;
        let http = client();
        let resp = http.get(s.url("/sse")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let mut events = resp.bytes_stream();
        let mut buf = String::new();
        let endpoint = next_event(&mut events, &mut buf, Duration::from_secs(5), |e, d| (e == "endpoint").then(|| d.to_owned())).await.expect("an endpoint event");
        assert!(endpoint.starts_with("/message?sessionId="), "{endpoint}");
        let post = |body: String| http.post(s.url(&endpoint)).header("content-type", "application/json").body(body).send();
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "old", "version": "1"}}});
        assert_eq!(post(init.to_string()).await.unwrap().status(), StatusCode::ACCEPTED);
        let answer = next_event(&mut events, &mut buf, Duration::from_secs(5), |e, d| (e == "message").then(|| d.to_owned())).await.expect("the initialize answer");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["result"]["protocolVersion"], "2024-11-05");
        assert_eq!(answer["result"]["serverInfo"]["name"], "dashboard-mcp");
        post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string()).await.unwrap();
        post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "dashboard_get_overview", "arguments": {"timeframe": "week"}}}).to_string()).await.unwrap();
        let call = next_event(&mut events, &mut buf, Duration::from_secs(5), |e, d| (e == "message").then(|| d.to_owned())).await.expect("the tools/call answer");
        let call: Value = serde_json::from_str(&call).unwrap();
        let expected = catalog::call(&s.dashboard, false, "dashboard_get_overview", Some(as_args(&[("timeframe", "week".into())]))).unwrap();
        assert_eq!(call["result"]["structuredContent"], expected);
        // Malformed JSON-RPC gets the protocol's own error; an unknown session a 404.
        let resp = post("{not json".into()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["code"], -32700);
        // The same rules as stdio and /mcp: a tools/call whose arguments are not an object is
        // -32602 with its id, a float id -32600 with id null.
        for (body, code, id) in [
            (json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "dashboard_get_overview", "arguments": [1]}}), -32602, json!(7)),
            (json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call"}), -32602, json!(8)),
            (json!({"jsonrpc": "2.0", "id": 1.5, "method": "ping"}), -32600, Value::Null),
        ] {
            let resp = post(body.to_string()).await.unwrap();
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
            let err: Value = resp.json().await.unwrap();
            assert_eq!((&err["error"]["code"], &err["id"]), (&json!(code), &id), "{body}: {err}");
        }
        let resp = http.post(s.url("/message?sessionId=nope")).body("{}").send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        drop(events);
        s.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_routes_follow_the_catalog() {
    within(async {
        let s = start(Options {
            allow_writes: true,
            ..Default::default()
        })
        .await;
        let http = client();
        let has = |name: &str| catalog::specs().iter().any(|t| t.name == name);
        let resp = http.get(s.url("/api/budgets")).send().await.unwrap();
        if has("dashboard_get_budgets") {
            assert_eq!(resp.status(), StatusCode::OK);
            let body = resp.text().await.unwrap();
            let expected =
                catalog::call(&s.dashboard, true, "dashboard_get_budgets", None).unwrap();
            assert_eq!(body, serde_json::to_string(&expected).unwrap());
        } else {
            assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        }
        let resp = http
            .put(s.url("/api/budgets/global"))
            .json(&json!({"limitUsd": 100, "period": "month"}))
            .send()
            .await
            .unwrap();
        if has("dashboard_set_budget") {
            assert_eq!(
                resp.status(),
                StatusCode::OK,
                "{}",
                resp.text().await.unwrap()
            );
            let resp = http
                .put(s.url("/api/budgets/global"))
                .json(&json!({"scope": "other", "limitUsd": 1, "period": "day"}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
            let err: Value = resp.json().await.unwrap();
            assert_eq!(err["error"]["field"], "scope");
        } else {
            assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        }
        assert!(s.allow_writes);
        s.shutdown().await;
    })
    .await;
}
