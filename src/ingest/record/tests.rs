use serde_json::json;

use super::*;
use crate::dashboard::{execution_item, MAX_RESULT_BYTES};
use crate::store::ExecutionRow;
use crate::wire::{ExecutionsOutput, Pagination, Period};

fn rec(v: Value) -> std::result::Result<Execution, String> {
    match v {
        Value::Object(o) => parse_record(&o),
        _ => unreachable!(),
    }
}

#[test]
fn agent_ids_and_models_are_keys_without_blanks_padding_or_control_characters() {
    for bad in [" ", "\u{0}", " a", "a ", "a\u{7}b", "\t"] {
        for field in ["agentId", "model"] {
            let mut o = json!({"timestamp": 0, "agentId": "a", "model": "m"});
            o[field] = json!(bad);
            let e = rec(o).unwrap_err();
            assert!(e.starts_with(&format!("{field}: ")), "{bad:?}: {e}");
        }
    }
    let ok = rec(json!({"timestamp": 0, "agentId": "a b", "model": "m-1"})).unwrap();
    assert_eq!((ok.agent_id.as_str(), ok.model.as_str()), ("a b", "m-1"));
}

fn ts(v: Value) -> std::result::Result<String, String> {
    rec(json!({"timestamp": v, "agentId": "a", "model": "m"})).map(|e| time::format_utc(e.ts))
}

#[test]
fn epoch_timestamps_are_read_by_magnitude() {
    let at = "2025-12-01T10:00:00Z";
    for v in [
        json!(1_764_583_200u64),
        json!(1_764_583_200_000u64),
        json!(1_764_583_200_000_000u64),
        json!(1_764_583_200_000_000_000u64),
        json!("1764583200"),
        json!(" 1764583200000 "),
        json!(1.7645832e9),
    ] {
        assert_eq!(ts(v.clone()).as_deref(), Ok(at), "{v}");
    }
    // The edges of each unit.
    assert_eq!(
        ts(json!(99_999_999_999u64)).unwrap(),
        "5138-11-16T09:46:39Z"
    );
    assert_eq!(
        ts(json!(100_000_000_000u64)).unwrap(),
        "1973-03-03T09:46:40Z"
    );
    assert_eq!(ts(json!(0)).unwrap(), "1970-01-01T00:00:00Z");
    // Only seconds take a fraction, rounded to the millisecond.
    assert_eq!(
        ts(json!(1_764_583_200.5)).unwrap(),
        "2025-12-01T10:00:00.500Z"
    );
    assert_eq!(
        ts(json!("1764583200.25")).unwrap(),
        "2025-12-01T10:00:00.250Z"
    );
    assert_eq!(
        ts(json!(1_764_583_200_123.5)).unwrap_err(),
        "timestamp: 1764583200123.5 has a fraction; only epoch seconds (below 10^11) may have one, milliseconds, microseconds and nanoseconds are integers"
    );
    assert_eq!(
        ts(json!(-1)).unwrap_err(),
        "timestamp: -1 is negative; give an RFC 3339 string or a Unix epoch time since 1970 (seconds, milliseconds, microseconds or nanoseconds)"
    );
    assert!(ts(json!("-5")).unwrap_err().contains("is negative"));
    // Past year 9999 even as nanoseconds.
    assert_eq!(
        ts(json!("300000000000000000000000")).unwrap_err(),
        "timestamp: \"300000000000000000000000\" is out of range; allowed are instants from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z"
    );
    assert_eq!(
        ts(json!("2026-11-23T10:00:00+01:00")).unwrap(),
        "2026-11-23T09:00:00Z"
    );
    assert!(ts(json!("yesterday"))
        .unwrap_err()
        .starts_with("timestamp: \"yesterday\" is not an RFC 3339"));
    assert!(ts(json!(true))
        .unwrap_err()
        .starts_with("timestamp: true is neither"));
}

#[test]
fn unknown_fields_are_kept_in_metadata() {
    let mut seen = Vec::new();
    let o = json!({"timestamp": 0, "agentId": "a", "model": "m", "cost_usd": 0.5,
                   "team": "x", "metadata": {"team": "y"}, "blank": null});
    let e = parse_record_noting(o.as_object().unwrap(), &mut |k| seen.push(k.to_owned())).unwrap();
    assert_eq!(
        e.metadata.as_deref(),
        Some(r#"{"team":"y","cost_usd":0.5,"_extra.team":"x"}"#)
    );
    assert_eq!(e.cost, 0);
    assert_eq!(seen, ["cost_usd", "team"]);
    // Nothing is noted for a record that is rejected.
    let mut seen = Vec::new();
    let o = json!({"timestamp": -1, "agentId": "a", "model": "m", "cost_usd": 0.5});
    assert!(parse_record_noting(o.as_object().unwrap(), &mut |k| seen.push(k.to_owned())).is_err());
    assert!(seen.is_empty());
}

#[test]
fn derived_ids_of_records_valid_before_are_unchanged() {
    // Computed before unknown fields were kept and epochs read by magnitude.
    let e = rec(
        json!({"timestamp": 1_795_428_000_000u64, "agentId": "a", "model": "m",
                       "cost": 0.3, "durationMs": 2300, "metadata": {"k": [1, {"z": "ü"}]}}),
    )
    .unwrap();
    assert_eq!(e.id, "xf158a49c5180ea3c65a3fc4d0d118b2f");
}

#[test]
fn metadata_is_capped_in_size_and_depth() {
    let blob = "x".repeat(100_000);
    let e = rec(json!({"timestamp": 0, "agentId": "a", "model": "m", "metadata": {"blob": blob}}))
        .unwrap_err();
    // {"blob":"…"}: 100,000 + 11 bytes.
    assert_eq!(e, "metadata: 100011 bytes of JSON given (unknown fields included); allowed are at most 16384 (16 KiB): keep large payloads elsewhere and store a reference");
    // An unknown field counts towards the cap.
    let e = rec(json!({"timestamp": 0, "agentId": "a", "model": "m", "notes": "y".repeat(16_380)}))
        .unwrap_err();
    assert!(e.starts_with("metadata: 16392 bytes"), "{e}");
    let nested = |levels: usize| {
        let mut v = json!(1);
        for _ in 0..levels {
            v = json!({ "k": v });
        }
        v
    };
    assert!(
        rec(json!({"timestamp": 0, "agentId": "a", "model": "m", "metadata": nested(32)})).is_ok()
    );
    assert_eq!(
        rec(json!({"timestamp": 0, "agentId": "a", "model": "m", "metadata": nested(33)}))
            .unwrap_err(),
        "metadata: nested more than 32 levels deep; allowed are at most 32"
    );
}

/// The largest record accepted, as an executions item, within the bound computed from the
/// caps, and the bound far below the result cap: the newest execution always fits a page.
#[test]
fn the_largest_record_fits_an_executions_page() {
    let six = |n: usize| "\u{1}".repeat(n); // JSON writes each as \u0001
                                            // Keys may hold no control character: the widest they can be is 4 bytes a character.
    let four = |n: usize| "\u{1F600}".repeat(n);
    let key = "k";
    // {"k":"…"} is 8 bytes besides the value.
    let meta = json!({ key: "m".repeat(MAX_METADATA_BYTES - 8) });
    assert_eq!(meta.to_string().len(), MAX_METADATA_BYTES);
    let e = rec(json!({
        "id": six(MAX_ID_CHARS), "timestamp": "9999-12-31T23:59:59.999Z",
        "agentId": four(MAX_AGENT_ID_CHARS), "agentName": six(MAX_AGENT_NAME_CHARS),
        "model": four(MAX_MODEL_CHARS), "promptTokens": MAX_TOKENS, "completionTokens": MAX_TOKENS,
        "cacheReadTokens": MAX_TOKENS, "cacheWriteTokens": MAX_TOKENS,
        "cost": "999999.123456789", "durationMs": 123_456_789.123_456_78, "success": false,
        "error": six(MAX_ERROR_CHARS), "statusCode": 999, "sessionId": six(MAX_SESSION_ID_CHARS),
        "taskType": six(MAX_TASK_TYPE_CHARS), "metadata": meta,
    }))
    .unwrap();
    let item = execution_item(ExecutionRow {
        id: e.id,
        ts: e.ts,
        agent_id: e.agent_id,
        model: e.model,
        prompt_tokens: e.prompt_tokens,
        completion_tokens: e.completion_tokens,
        cache_read_tokens: e.cache_read_tokens,
        cache_write_tokens: e.cache_write_tokens,
        cost: e.cost,
        duration_ms: e.duration_ms,
        success: e.success,
        error: e.error,
        status_code: e.status_code,
        session_id: e.session_id,
        task_type: e.task_type,
        metadata: e.metadata,
        cost_source: e.cost_source,
    });
    let item_bytes = serde_json::to_vec(&item).unwrap().len();
    assert!(item_bytes <= MAX_EXECUTION_ITEM_BYTES, "{item_bytes}");
    // The caps' worst case: 6 · 4736 + 16384 + 1024.
    assert_eq!(MAX_EXECUTION_ITEM_BYTES, 45_824);
    let page = ExecutionsOutput {
        period: Period {
            start: "9999-12-30T23:59:59.999Z".into(),
            end: "9999-12-31T23:59:59.999Z".into(),
        },
        executions: vec![item],
        pagination: Pagination {
            total: u64::MAX,
            limit: 500,
            offset: 1_000_000_000,
            has_more: true,
            next_offset: Some(1_000_000_001),
        },
    };
    let page_bytes = serde_json::to_vec(&page).unwrap().len();
    assert!(page_bytes <= MAX_EXECUTION_ITEM_BYTES + 512, "{page_bytes}");
    const { assert!(MAX_EXECUTION_ITEM_BYTES + 512 < MAX_RESULT_BYTES * 3 / 5) };
}
