//! `POST /v1/traces` over a real socket: the server runs in-process on 127.0.0.1:0 (as in
//! tests/http.rs) and a real HTTP client sends OTLP/HTTP exports, protobuf (gzip) and JSON. The
//! OTLP answers, the stored executions and the overview's totals are checked against values worked
//! out by hand; bad requests get 415, 413 and 400 with a google.rpc.Status; without
//! --allow-writes nothing is accepted.

mod common;

use std::io::Write;

use dashboard_mcp::http::HttpConfig;
use dashboard_mcp::sources::otlp::RpcStatus;
use dashboard_mcp::time::{parse_rfc3339, Clock, Zone};
use dashboard_mcp::Dashboard;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use reqwest::StatusCode;
use serde_json::{json, Value};

use common::served::{client, serve, within, Served};

const NOW: &str = "2026-03-01T12:00:00Z";
/// 2026-03-01T10:00:00Z in nanoseconds (1,772,359,200 s).
const TEN: u64 = 1_772_359_200_000_000_000;
const SECOND: u64 = 1_000_000_000;

struct Running {
    served: Served,
    _dir: tempfile::TempDir,
}

async fn start(allow_writes: bool, config: impl FnOnce(&mut HttpConfig)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let dashboard = Dashboard::new(
        dashboard_mcp::store::testing::open(dir.path()),
        Clock::Fixed(parse_rfc3339("now", NOW).unwrap()),
        Zone::default(),
    );
    Running {
        served: serve(dashboard, allow_writes, config).await,
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

    async fn get(&self, path: &str) -> Value {
        let resp = client().get(self.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        resp.json().await.unwrap()
    }

    async fn post(
        &self,
        body: Vec<u8>,
        content_type: &str,
        encoding: Option<&str>,
    ) -> reqwest::Response {
        let mut req = client()
            .post(self.url("/v1/traces"))
            .header("content-type", content_type)
            .body(body);
        if let Some(e) = encoding {
            req = req.header("content-encoding", e);
        }
        req.send().await.unwrap()
    }
}

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}
fn s(key: &str, v: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}
fn i(key: &str, v: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(v))
}

fn span(trace: u8, id: u8, start: u64, secs: u64, attributes: Vec<KeyValue>) -> Span {
    let mut trace_id = vec![0xab; 16];
    trace_id[15] = trace;
    Span {
        trace_id,
        span_id: vec![0x11, 0, 0, 0, 0, 0, 0, id],
        name: "span".into(),
        start_time_unix_nano: start,
        end_time_unix_nano: start + secs * SECOND,
        attributes,
        ..Default::default()
    }
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// The protobuf export: resource service.name "svc-a", five spans.
fn protobuf_export() -> ExportTraceServiceRequest {
    let mut failed = span(
        1,
        2,
        TEN + 60 * SECOND,
        1,
        vec![
            s("gen_ai.operation.name", "chat"),
            s("gen_ai.request.model", "gpt-4o-mini"),
            i("gen_ai.usage.input_tokens", 50),
            i("gen_ai.usage.output_tokens", 0),
        ],
    );
    failed.status = Some(Status {
        code: 2,
        message: "timeout".into(),
    });
    let mut no_start = span(1, 4, TEN, 1, vec![s("gen_ai.operation.name", "chat")]);
    no_start.start_time_unix_nano = 0;
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![s("service.name", "svc-a")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![
                    // input 1000 includes 300 cache read + 100 cache written: prompt 600.
                    span(
                        1,
                        1,
                        TEN,
                        2,
                        vec![
                            s("gen_ai.operation.name", "chat"),
                            s("gen_ai.agent.name", "planner"),
                            s("gen_ai.request.model", "gpt-4o"),
                            s("gen_ai.conversation.id", "conv-1"),
                            i("gen_ai.usage.input_tokens", 1000),
                            i("gen_ai.usage.output_tokens", 200),
                            i("gen_ai.usage.cache_read.input_tokens", 300),
                            i("gen_ai.usage.cache_creation.input_tokens", 100),
                        ],
                    ),
                    failed,
                    // Not a GenAI span: ignored, not rejected.
                    span(1, 3, TEN, 1, vec![s("http.request.method", "POST")]),
                    // Rejected by the mapping: no start time.
                    no_start,
                    // Rejected by the ingest: a negative token count.
                    span(
                        1,
                        5,
                        TEN,
                        1,
                        vec![
                            s("gen_ai.request.model", "gpt-4o"),
                            i("gen_ai.usage.input_tokens", -5),
                        ],
                    ),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// OTLP/JSON: upper-case hex ids, int64 as strings and as a number, an unknown field.
const JSON_EXPORT: &str = r#"{"resourceSpans":[{
  "resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc-b"}}]},
  "scopeSpans":[{"scope":{"name":"test"},"spans":[{
    "traceId":"ABABABABABABABABABABABABABABAB02","spanId":"1100000000000001",
    "name":"chat claude","kind":3,
    "startTimeUnixNano":"1772362800000000000","endTimeUnixNano":1772362800500000000,
    "attributes":[
      {"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},
      {"key":"gen_ai.request.model","value":{"stringValue":"claude-a"}},
      {"key":"gen_ai.response.model","value":{"stringValue":"claude-a-1"}},
      {"key":"gen_ai.usage.input_tokens","value":{"intValue":"40"}},
      {"key":"gen_ai.usage.output_tokens","value":{"intValue":10}}],
    "status":{},
    "notAnOtlpField":true}]}]}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_gzip_and_json_exports_become_executions_counted_once() {
    within(async {
        let srv = start(true, |_| {}).await;
        let pb = protobuf_export().encode_to_vec();

        let resp = srv.post(gzip(&pb), "application/x-protobuf", Some("gzip")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
        let answer = ExportTraceServiceResponse::decode(resp.bytes().await.unwrap()).unwrap();
        // 5 spans: 1 ignored, 4 GenAI, of which 2 stored and 2 rejected.
        let partial = answer.partial_success.expect("partial success");
        assert_eq!(partial.rejected_spans, 2);
        let m = &partial.error_message;
        assert!(m.starts_with("2 of 4 GenAI spans rejected"), "{m}");
        assert!(m.contains("span ababababababababababababababab01/1100000000000004: startTimeUnixNano: missing"), "{m}");
        assert!(m.contains("span ababababababababababababababab01/1100000000000005: promptTokens: -5 is not an integer"), "{m}");

        let resp = srv.post(JSON_EXPORT.as_bytes().to_vec(), "application/json", None).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/json");
        // Full success: partial_success is absent.
        assert_eq!(resp.text().await.unwrap(), "{}");

        // A retried export (protobuf, then the JSON one gzip-compressed) counts nothing twice.
        let resp = srv.post(pb.clone(), "application/x-protobuf", None).await;
        let again = ExportTraceServiceResponse::decode(resp.bytes().await.unwrap()).unwrap();
        assert_eq!(again.partial_success.map(|p| p.rejected_spans), Some(2));
        let resp = srv.post(gzip(JSON_EXPORT.as_bytes()), "application/json", Some("gzip")).await;
        assert_eq!(resp.text().await.unwrap(), "{}");

        // Stored: planner (600 + 200 + 300 + 100 = 1200 tokens), svc-a's failed call (50 + 0),
        // svc-b's call (40 + 10 = 50): 3 calls, 1300 tokens, 1 error, 3 agents.
        let o = srv.get("/api/dashboard/overview?timeframe=day").await;
        let sum = &o["summary"];
        assert_eq!(sum["totalCalls"], 3, "{o}");
        assert_eq!(sum["totalTokens"], 1300, "{o}");
        assert_eq!(sum["errorCount"], 1, "{o}");
        assert_eq!(sum["activeAgents"], 3, "{o}");
        // Durations 2000, 1000 and 500 ms: mean 3500 / 3.
        assert_eq!(sum["avgLatencyMs"].as_f64().unwrap(), 3500.0 / 3.0, "{o}");

        let ex = srv.get("/api/dashboard/executions?timeframe=day&limit=10").await;
        let items = ex["executions"].as_array().unwrap();
        assert_eq!(items.len(), 3, "{ex}");
        let by_id = |id: &str| items.iter().find(|e| e["id"] == id).unwrap_or_else(|| panic!("{id} in {ex}"));
        let planner = by_id("otel:ababababababababababababababab01:1100000000000001");
        assert_eq!(planner["agentId"], "planner");
        assert_eq!(planner["model"], "gpt-4o");
        assert_eq!(planner["timestamp"], "2026-03-01T10:00:00Z");
        assert_eq!(planner["tokens"], json!({"prompt": 600, "completion": 200, "cacheRead": 300, "cacheWrite": 100, "total": 1200}));
        assert_eq!(planner["sessionId"], "conv-1");
        assert_eq!(planner["taskType"], "chat");
        assert_eq!(planner["metadata"], json!({"source": "otlp", "traceId": "ababababababababababababababab01", "spanId": "1100000000000001"}));
        let failed = by_id("otel:ababababababababababababababab01:1100000000000002");
        assert_eq!((failed["agentId"].clone(), failed["success"].clone(), failed["error"].clone()), (json!("svc-a"), json!(false), json!("timeout")));
        let json_span = by_id("otel:ababababababababababababababab02:1100000000000001");
        // 1772362800 s is 11:00; the response model wins.
        assert_eq!(json_span["timestamp"], "2026-03-01T11:00:00Z");
        assert_eq!((json_span["agentId"].clone(), json_span["model"].clone()), (json!("svc-b"), json!("claude-a-1")));
        assert_eq!(json_span["tokens"]["total"], 50);
        assert_eq!(json_span["success"], true);
        srv.shutdown().await;
    })
    .await;
}

fn status_of_json(body: &str) -> (i64, String) {
    let v: Value = serde_json::from_str(body).unwrap();
    (
        v["code"].as_i64().unwrap(),
        v["message"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_415_413_and_400_with_a_status() {
    within(async {
        let srv = start(true, |c| c.max_body_bytes = 4096).await;
        // 415: a content type OTLP does not define; a content encoding we do not speak.
        let resp = srv.post(b"{}".to_vec(), "text/plain", None).await;
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(resp.headers()["content-type"], "application/json");
        let (code, msg) = status_of_json(&resp.text().await.unwrap());
        assert_eq!(code, 3);
        assert!(msg.contains("\"text/plain\" is not supported"), "{msg}");
        let resp = srv
            .post(b"{}".to_vec(), "application/json", Some("br"))
            .await;
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(status_of_json(&resp.text().await.unwrap())
            .1
            .contains("Content-Encoding \"br\""));

        // 400: not protobuf; the Status answers in protobuf, as the request was.
        let resp = srv
            .post(vec![0x0a, 0x64, 1, 2], "application/x-protobuf", None)
            .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
        let st = RpcStatus::decode(resp.bytes().await.unwrap()).unwrap();
        assert_eq!(st.code, 3);
        assert!(
            st.message
                .contains("not a protobuf ExportTraceServiceRequest"),
            "{}",
            st.message
        );
        // 400: not JSON; a trace id that is not hex; not gzip.
        for (body, encoding, needle) in [
            (b"{oops".to_vec(), None, "not an OTLP/JSON"),
            (
                br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#.to_vec(),
                None,
                "not an OTLP/JSON",
            ),
            (b"not gzip".to_vec(), Some("gzip"), "not valid gzip"),
        ] {
            let resp = srv.post(body, "application/json", encoding).await;
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{needle}");
            assert!(
                status_of_json(&resp.text().await.unwrap())
                    .1
                    .contains(needle),
                "{needle}"
            );
        }

        // 413: a body over the 4096-byte cap; a small gzip body decompressing past it (a bomb).
        let big = vec![b' '; 5000];
        let resp = srv.post(big.clone(), "application/json", None).await;
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(status_of_json(&resp.text().await.unwrap())
            .1
            .contains("larger than this server accepts"));
        let bomb = gzip(&vec![b' '; 2 << 20]);
        assert!(bomb.len() < 4096, "{}", bomb.len());
        let resp = srv.post(bomb, "application/x-protobuf", Some("gzip")).await;
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let st = RpcStatus::decode(resp.bytes().await.unwrap()).unwrap();
        assert_eq!(st.code, 8);
        assert!(
            st.message.contains("decompresses to more than 4096 bytes"),
            "{}",
            st.message
        );
        // Under the cap once decompressed (4096 bytes of spaces is an empty JSON request).
        let resp = srv
            .post(gzip(&[b' '; 4096]), "application/json", Some("gzip"))
            .await;
        assert_eq!(resp.status(), StatusCode::OK);

        // Nothing was stored, and the server is well.
        let o = srv.get("/api/dashboard/overview?timeframe=day").await;
        assert_eq!(o["summary"]["totalCalls"], 0);
        assert_eq!(srv.get("/healthz").await["status"], "ok");
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_allow_writes_traces_are_refused_like_usage() {
    within(async {
        let srv = start(false, |_| {}).await;
        let pb = protobuf_export().encode_to_vec();
        let resp = srv.post(pb.clone(), "application/x-protobuf", None).await;
        // The same status as POST /api/usage without --allow-writes.
        let usage = client()
            .post(srv.url("/api/usage"))
            .json(&json!([]))
            .send()
            .await
            .unwrap();
        assert_eq!(usage.status(), StatusCode::FORBIDDEN);
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let st = RpcStatus::decode(resp.bytes().await.unwrap()).unwrap();
        assert_eq!(st.code, 7);
        assert!(st.message.contains("--allow-writes"), "{}", st.message);
        let resp = srv
            .post(JSON_EXPORT.as_bytes().to_vec(), "application/json", None)
            .await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let o = srv.get("/api/dashboard/overview?timeframe=day").await;
        assert_eq!(o["summary"]["totalCalls"], 0);
        let doc = srv.get("/openapi.json").await;
        assert!(doc["paths"]["/v1/traces"].is_null());
        srv.shutdown().await;

        // With writes and a token: documented, and the guard holds as on every route.
        let srv = start(true, |c| c.token = Some("s3cret-token".into())).await;
        let resp = srv.post(pb.clone(), "application/x-protobuf", None).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let resp = client()
            .post(srv.url("/v1/traces"))
            .bearer_auth("s3cret-token")
            .header("content-type", "application/x-protobuf")
            .body(pb)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let answer = ExportTraceServiceResponse::decode(resp.bytes().await.unwrap()).unwrap();
        assert_eq!(
            answer
                .partial_success
                .map(|p: ExportTracePartialSuccess| p.rejected_spans),
            Some(2)
        );
        let doc: Value = client()
            .get(srv.url("/openapi.json"))
            .bearer_auth("s3cret-token")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            doc["paths"]["/v1/traces"]["post"]["operationId"],
            "otlp_export_traces"
        );
        srv.shutdown().await;
    })
    .await;
}
