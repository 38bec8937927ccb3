use std::io::Write;

use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status};

use super::*;

const MAX: usize = 1 << 20;
const TRACE: [u8; 16] = [
    0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c,
];
const TRACE_HEX: &str = "5b8efff798038103d269b633813fc60c";
// 2025-12-01T10:00:00Z is 1,764,583,200 s since the epoch.
const START: u64 = 1_764_583_200_000_000_000;

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
fn span(id: u8, attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: TRACE.to_vec(),
        span_id: vec![0, 0, 0, 0, 0, 0, 0, id],
        name: "chat".into(),
        start_time_unix_nano: START,
        end_time_unix_nano: START + 1_500_000_000,
        attributes,
        ..Default::default()
    }
}
fn request(service: Option<&str>, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: service.map(|n| s("service.name", n)).into_iter().collect(),
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// A chat span with every attribute, one span of a plain HTTP call, in protobuf.
#[test]
fn protobuf_genai_spans_become_records_and_others_are_ignored() {
    let chat = span(
        1,
        vec![
            s("gen_ai.operation.name", "chat"),
            s("gen_ai.request.model", "gpt-4o"),
            s("gen_ai.response.model", "gpt-4o-2024-08-06"),
            s("gen_ai.agent.name", "planner"),
            s("gen_ai.conversation.id", "conv-7"),
            s("gen_ai.provider.name", "openai"),
            i("gen_ai.usage.input_tokens", 120),
            i("gen_ai.usage.output_tokens", 45),
            i("gen_ai.usage.reasoning.output_tokens", 10),
        ],
    );
    let http = span(2, vec![s("http.request.method", "GET")]);
    let body = request(Some("svc"), vec![chat, http]).encode_to_vec();
    let (enc, d) = decode(&body, Some("application/x-protobuf"), None, MAX).unwrap();
    assert_eq!(enc, Encoding::Protobuf);
    assert_eq!((d.spans, d.ignored, d.rejected), (2, 1, 0));
    // No cache tokens: promptTokens = input_tokens = 120. Duration 1.5 s = 1500 ms.
    // The response model wins over the request model; the agent name over service.name.
    assert_eq!(
        d.records,
        vec![json!({
            "id": format!("otel:{TRACE_HEX}:0000000000000001"),
            "timestamp": "2025-12-01T10:00:00Z",
            "durationMs": 1500.0,
            "agentId": "planner",
            "agentName": "planner",
            "model": "gpt-4o-2024-08-06",
            "promptTokens": 120,
            "completionTokens": 45,
            "sessionId": "conv-7",
            "taskType": "chat",
            "metadata": {"source": "otlp", "traceId": TRACE_HEX, "spanId": "0000000000000001",
                         "provider": "openai", "reasoningTokens": 10},
        })]
    );
    assert_eq!(
        d.record_spans,
        vec![format!("{TRACE_HEX}/0000000000000001")]
    );
}

/// input_tokens includes the cache tokens: 1000 − 600 read − 100 written = 300 prompt tokens.
#[test]
fn cache_tokens_are_taken_out_of_the_input_tokens() {
    let sp = span(
        3,
        vec![
            s("gen_ai.request.model", "claude-sonnet-4"),
            s("gen_ai.system", "anthropic"),
            i("gen_ai.usage.input_tokens", 1000),
            i("gen_ai.usage.output_tokens", 50),
            i("gen_ai.usage.cache_read.input_tokens", 600),
            i("gen_ai.usage.cache_creation.input_tokens", 100),
        ],
    );
    let r = span_record(&[], &sp).unwrap().unwrap();
    assert_eq!(r["promptTokens"], 300);
    assert_eq!(r["completionTokens"], 50);
    assert_eq!(r["cacheReadTokens"], 600);
    assert_eq!(r["cacheWriteTokens"], 100);
    // No agent name nor service.name: unknown_service; the request model; gen_ai.system.
    assert_eq!(r["agentId"], "unknown_service");
    assert_eq!(r["model"], "claude-sonnet-4");
    assert_eq!(r["metadata"]["provider"], "anthropic");
    assert!(r.get("taskType").is_none() && r.get("success").is_none());
    // Input tokens fewer than the cache tokens cannot include them: taken as given.
    let sp = span(
        4,
        vec![
            i("gen_ai.usage.input_tokens", 10),
            i("gen_ai.usage.cache_read.input_tokens", 600),
        ],
    );
    let r = span_record(&[], &sp).unwrap().unwrap();
    assert_eq!(
        (r["promptTokens"].clone(), r["model"].clone()),
        (json!(10), json!("unknown"))
    );
}

#[test]
fn an_error_span_is_a_failed_execution() {
    let mut sp = span(5, vec![s("gen_ai.operation.name", "chat")]);
    sp.status = Some(Status {
        code: status::StatusCode::Error as i32,
        message: "upstream said 429".into(),
    });
    let r = span_record(&[s("service.name", "svc")], &sp)
        .unwrap()
        .unwrap();
    assert_eq!(
        (r["success"].clone(), r["error"].clone()),
        (json!(false), json!("upstream said 429"))
    );
    assert_eq!(r["agentId"], "svc");
    // error.type wins over the status message, and marks an error even with status UNSET.
    let mut sp2 = sp.clone();
    sp2.attributes.push(s("error.type", "rate_limited"));
    let r = span_record(&[], &sp2).unwrap().unwrap();
    assert_eq!(r["error"], "rate_limited");
    sp2.status = None;
    assert_eq!(
        span_record(&[], &sp2).unwrap().unwrap()["error"],
        "rate_limited"
    );
    // ERROR without a message nor error.type: "error".
    sp.status = Some(Status {
        code: 2,
        message: String::new(),
    });
    assert_eq!(span_record(&[], &sp).unwrap().unwrap()["error"], "error");
    // OK is a success.
    sp.status = Some(Status {
        code: 1,
        message: String::new(),
    });
    assert!(span_record(&[], &sp)
        .unwrap()
        .unwrap()
        .get("success")
        .is_none());
}

#[test]
fn spans_with_bad_ids_or_no_start_are_rejected_with_a_reason() {
    let mut bad_trace = span(6, vec![s("gen_ai.operation.name", "chat")]);
    bad_trace.trace_id = vec![0; 16];
    let mut no_start = span(7, vec![s("gen_ai.operation.name", "chat")]);
    no_start.start_time_unix_nano = 0;
    let ok = span(8, vec![s("gen_ai.operation.name", "chat")]);
    let d = records_of(&request(None, vec![bad_trace, no_start, ok]));
    assert_eq!(
        (d.spans, d.ignored, d.rejected, d.records.len()),
        (3, 0, 2, 1)
    );
    assert_eq!(
        d.reasons,
        vec![
            "span 00000000000000000000000000000000/0000000000000006: traceId: 16 bytes given, not all zero are required: 16 (32 hex digits)".to_owned(),
            format!("span {TRACE_HEX}/0000000000000007: startTimeUnixNano: missing (0); a span needs its start time"),
        ]
    );
    assert_eq!(
        rejection_message(2, 3, &d.reasons),
        format!("2 of 3 GenAI spans rejected (spans without gen_ai.* attributes are ignored, not rejected): {}; {}", d.reasons[0], d.reasons[1])
    );
}

/// OTLP/JSON: upper-case hex ids, int64 as strings (times, intValue) and as numbers, enums as
/// integers, an unknown field; the same record as the protobuf of the same span.
#[test]
fn json_with_hex_ids_and_string_int64_gives_the_same_records_as_protobuf() {
    let text = r#"{"resourceSpans":[{"resource":{"attributes":[
          {"key":"service.name","value":{"stringValue":"svc"}}]},
        "scopeSpans":[{"scope":{"name":"x"},"spans":[{
          "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"00000000000000AA",
          "name":"chat gpt-4o","kind":3,
          "startTimeUnixNano":"1764583200000000000","endTimeUnixNano":1764583200250000000,
          "attributes":[
            {"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},
            {"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}},
            {"key":"gen_ai.usage.input_tokens","value":{"intValue":"70"}},
            {"key":"gen_ai.usage.output_tokens","value":{"intValue":30}},
            {"key":"gen_ai.usage.cache_read.input_tokens","value":{"intValue":"20"}}],
          "status":{"code":2,"message":"boom"},
          "someFutureField":{"x":1}}]}]}]}"#;
    let (enc, d) = decode(
        text.as_bytes(),
        Some("application/json; charset=utf-8"),
        None,
        MAX,
    )
    .unwrap();
    assert_eq!(enc, Encoding::Json);
    assert_eq!((d.spans, d.ignored, d.rejected), (1, 0, 0));
    // 70 input − 20 cache read = 50 prompt tokens; 250 ms; status 2 = ERROR.
    let expected = json!({
        "id": format!("otel:{TRACE_HEX}:00000000000000aa"),
        "timestamp": "2025-12-01T10:00:00Z",
        "durationMs": 250.0,
        "agentId": "svc", "agentName": "svc", "model": "gpt-4o",
        "promptTokens": 50, "completionTokens": 30, "cacheReadTokens": 20,
        "success": false, "error": "boom", "taskType": "chat",
        "metadata": {"source": "otlp", "traceId": TRACE_HEX, "spanId": "00000000000000aa"},
    });
    assert_eq!(d.records, vec![expected]);
    // The same span in protobuf gives the same record (so the same id: a duplicate).
    let mut sp = span(
        0xaa,
        vec![
            s("gen_ai.operation.name", "chat"),
            s("gen_ai.request.model", "gpt-4o"),
            i("gen_ai.usage.input_tokens", 70),
            i("gen_ai.usage.output_tokens", 30),
            i("gen_ai.usage.cache_read.input_tokens", 20),
        ],
    );
    sp.end_time_unix_nano = START + 250_000_000;
    sp.status = Some(Status {
        code: 2,
        message: "boom".into(),
    });
    let pb = request(Some("svc"), vec![sp]).encode_to_vec();
    let (_, from_pb) = decode(&pb, Some("application/x-protobuf"), None, MAX).unwrap();
    assert_eq!(from_pb.records, d.records);
    // proto3 JSON: null is the field's default (the crate's serde alone refuses it).
    let nulls = text
        .replace(
            r#""scope":{"name":"x"}"#,
            r#""scope":null,"schemaUrl":null"#,
        )
        .replace(
            r#""status":{"code":2,"message":"boom"}"#,
            r#""status":{"code":2,"message":"boom"},"events":null,"parentSpanId":null"#,
        )
        .replace(
            r#""name":"chat gpt-4o","#,
            r#""name":"chat gpt-4o","links":null,"#,
        );
    assert!(serde_json::from_str::<ExportTraceServiceRequest>(&nulls).is_err());
    let (_, with_nulls) = decode(nulls.as_bytes(), Some("application/json"), None, MAX).unwrap();
    assert_eq!(with_nulls.records, d.records);
    // An empty body and an empty object are empty requests.
    for empty in ["", "{}"] {
        let (_, d) = decode(empty.as_bytes(), Some("application/json"), None, MAX).unwrap();
        assert_eq!((d.spans, d.records.len()), (0, 0));
    }
}

#[test]
fn gzip_bodies_are_read_up_to_the_cap() {
    let body = request(
        Some("svc"),
        vec![span(9, vec![s("gen_ai.operation.name", "chat")])],
    )
    .encode_to_vec();
    let (_, d) = decode(
        &gzip(&body),
        Some("application/x-protobuf"),
        Some("gzip"),
        MAX,
    )
    .unwrap();
    assert_eq!((d.spans, d.records.len()), (1, 1));
    assert_eq!(
        d.records[0]["id"],
        format!("otel:{TRACE_HEX}:0000000000000009")
    );
    let json_body = br#"{"resourceSpans":[]}"#;
    let (_, d) = decode(
        &gzip(json_body),
        Some("application/json"),
        Some("GZIP"),
        MAX,
    )
    .unwrap();
    assert_eq!(d.spans, 0);
    // A bomb: 64 MiB of zeros compress to about 64 KiB; reading stops past the 1 MiB cap.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 200_000);
    let e = decode(&bomb, Some("application/x-protobuf"), Some("gzip"), MAX).unwrap_err();
    assert!(matches!(e, Problem::TooLarge(_)), "{e:?}");
    // Exactly at the cap is fine; one byte over is not (uncompressed bodies too).
    assert_eq!(
        decompress(&gzip(&[b' '; 100]), Some("gzip"), 100)
            .unwrap()
            .len(),
        100
    );
    assert!(matches!(
        decompress(&gzip(&[b' '; 101]), Some("gzip"), 100),
        Err(Problem::TooLarge(_))
    ));
    assert!(matches!(
        decompress(&[b' '; 101], None, 100),
        Err(Problem::TooLarge(_))
    ));
    // Not gzip at all, or cut short.
    let e = decode(b"plain", Some("application/json"), Some("gzip"), MAX).unwrap_err();
    assert!(
        matches!(e, Problem::Malformed(ref m) if m.contains("not valid gzip")),
        "{e:?}"
    );
    let whole = gzip(&body);
    let e = decode(
        &whole[..whole.len() - 5],
        Some("application/x-protobuf"),
        Some("gzip"),
        MAX,
    )
    .unwrap_err();
    assert!(matches!(e, Problem::Malformed(_)), "{e:?}");
}

#[test]
fn malformed_bodies_and_unsupported_types_are_problems() {
    // Field 1 (resource_spans), length-delimited, claiming 100 bytes of which 2 follow.
    let e = decode(
        &[0x0a, 100, 1, 2],
        Some("application/x-protobuf"),
        None,
        MAX,
    )
    .unwrap_err();
    assert!(
        matches!(e, Problem::Malformed(ref m) if m.contains("not a protobuf ExportTraceServiceRequest")),
        "{e:?}"
    );
    let e = decode(
        b"{\"resourceSpans\": 7}",
        Some("application/json"),
        None,
        MAX,
    )
    .unwrap_err();
    assert!(
        matches!(e, Problem::Malformed(ref m) if m.contains("not an OTLP/JSON")),
        "{e:?}"
    );
    // A trace id that is not hex.
    let bad = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#;
    assert!(matches!(
        decode(bad.as_bytes(), Some("application/json"), None, MAX),
        Err(Problem::Malformed(_))
    ));
    for ct in [None, Some("text/plain"), Some("application/x-ndjson")] {
        let e = decode(b"{}", ct, None, MAX).unwrap_err();
        assert!(matches!(e, Problem::UnsupportedMediaType(_)), "{ct:?}");
    }
    let e = decode(b"{}", Some("application/json"), Some("br"), MAX).unwrap_err();
    assert_eq!(
        e,
        Problem::UnsupportedMediaType(
            "Content-Encoding \"br\" is not supported; send gzip or an uncompressed body".into()
        )
    );
    // Deep nesting is an error, not a stack overflow.
    let deep = format!("{{\"resourceSpans\":[{{\"scopeSpans\":[{{\"spans\":[{{\"attributes\":[{{\"key\":\"k\",\"value\":{}1{}}}]}}]}}]}}]}}",
        "{\"arrayValue\":{\"values\":[".repeat(200), "]}}".repeat(200));
    assert!(matches!(
        decode(deep.as_bytes(), Some("application/json"), None, MAX),
        Err(Problem::Malformed(_))
    ));
}

#[test]
fn answers_are_in_the_requests_encoding() {
    // Full success: partial_success unset; an empty protobuf message is zero bytes.
    assert_eq!(response_body(Encoding::Protobuf, 0, ""), Vec::<u8>::new());
    assert_eq!(response_body(Encoding::Json, 0, ""), b"{}");
    let pb = response_body(Encoding::Protobuf, 2, "why");
    let back = ExportTraceServiceResponse::decode(pb.as_slice()).unwrap();
    assert_eq!(
        back.partial_success,
        Some(ExportTracePartialSuccess {
            rejected_spans: 2,
            error_message: "why".into()
        })
    );
    assert_eq!(
        String::from_utf8(response_body(Encoding::Json, 2, "why")).unwrap(),
        r#"{"partialSuccess":{"rejectedSpans":"2","errorMessage":"why"}}"#
    );
    let st = RpcStatus::decode(status_body(Encoding::Protobuf, 3, "bad").as_slice()).unwrap();
    assert_eq!((st.code, st.message.as_str()), (3, "bad"));
    assert_eq!(
        status_body(Encoding::Json, 3, "bad"),
        br#"{"code":3,"message":"bad"}"#
    );
}
