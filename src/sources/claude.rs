//! Claude Code's session logs (`<root>/projects/<project>/**/*.jsonl`): one execution per
//! assistant message that carries `message.usage`, in the ingest record format.
//!
//! Names (README "Your real usage"): the project folder is the agent, `claude-code:<project>`,
//! for the main conversation; its subagents' lines (`isSidechain`, or a file under
//! `subagents/`) go to `claude-code:<project>:subagents`, so `dashboard_get_agents` answers
//! "what did each project, and its subagents, cost". `taskType` is `main` or `subagent`;
//! `metadata.subagentId` names the subagent run.
//!
//! Streaming writes one message several times (one line per content block, the usage growing):
//! the id is (`message.id`, `requestId`) and the record's `revision` is its token total, doubled,
//! plus one for a main-chain line, so the store keeps the line with the largest total and a
//! main-chain line wins a tie, whichever import saw it first.

use serde_json::{json, Map, Value};

use super::{id_within_cap, text_within, Line};

/// The model Claude Code writes for messages it made itself (no API call).
const SYNTHETIC_MODEL: &str = "<synthetic>";

/// Where a file sits: its project folder, and whether it is a subagent's file.
#[derive(Debug, Clone)]
pub struct FileContext {
    pub project: String,
    pub subagent_file: bool,
}

/// The record of one parsed log line.
pub fn line(v: &Value, ctx: &FileContext) -> Line {
    let Some(obj) = v.as_object() else {
        return Line::Bad("not a JSON object".into());
    };
    if obj.get("type").and_then(Value::as_str) != Some("assistant") {
        return Line::Skip;
    }
    let Some(message) = obj.get("message").and_then(Value::as_object) else {
        return Line::Skip;
    };
    let Some(usage) = message.get("usage").and_then(Value::as_object) else {
        return Line::Skip;
    };
    let model = match message.get("model").and_then(Value::as_str) {
        Some(SYNTHETIC_MODEL) => return Line::Skip,
        Some(m) if !m.is_empty() => m,
        _ => return Line::Bad("message.model: missing on an assistant line with usage".into()),
    };
    let Some(timestamp) = obj.get("timestamp").filter(|t| t.is_string()) else {
        return Line::Bad("timestamp: missing on an assistant line with usage".into());
    };
    let mut tokens = [0i64; 4];
    for (slot, field) in tokens.iter_mut().zip([
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    ]) {
        match usage.get(field) {
            None | Some(Value::Null) => {}
            Some(n) => match n.as_i64() {
                Some(n) if n >= 0 => *slot = n,
                _ => {
                    return Line::Bad(format!(
                        "message.usage.{field}: {n} is not a whole number of tokens ≥ 0"
                    ))
                }
            },
        }
    }
    let [input, output, cache_read, cache_write] = tokens;
    let sidechain =
        ctx.subagent_file || obj.get("isSidechain").and_then(Value::as_bool) == Some(true);
    let message_id = message
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let request_id = obj
        .get("requestId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let id = match (message_id, request_id) {
        (Some(m), Some(r)) => format!("claude-code:{m}:{r}"),
        (Some(m), None) => format!("claude-code:{m}"),
        // Without a message id nothing marks the repeats: the line's own uuid keeps re-imports
        // idempotent.
        _ => match obj.get("uuid").and_then(Value::as_str) {
            Some(u) => format!("claude-code:line:{u}"),
            None => return Line::Bad("message.id: missing, and no uuid to name the line".into()),
        },
    };
    let mut metadata = Map::new();
    metadata.insert("source".into(), json!("claude-code"));
    // The 5-minute / 1-hour split of the cache writes, for pricing (schemas/ingest-record.json).
    let one_hour = usage
        .get("cache_creation")
        .and_then(|c| c.get("ephemeral_1h_input_tokens"))
        .and_then(Value::as_i64)
        .filter(|n| (1..=cache_write).contains(n));
    for key in ["version", "gitBranch"] {
        if let Some(s) = obj.get(key).and_then(Value::as_str) {
            metadata.insert(key.into(), json!(text_within(s, 128)));
        }
    }
    if sidechain {
        if let Some(s) = obj.get("agentId").and_then(Value::as_str) {
            metadata.insert("subagentId".into(), json!(text_within(s, 128)));
        }
    }
    let agent = if sidechain {
        format!("claude-code:{}:subagents", ctx.project)
    } else {
        format!("claude-code:{}", ctx.project)
    };
    let name = obj
        .get("cwd")
        .and_then(Value::as_str)
        .unwrap_or(&ctx.project);
    let name = if sidechain {
        format!("{name} (subagents)")
    } else {
        name.to_owned()
    };
    let failed = obj.get("isApiErrorMessage").and_then(Value::as_bool) == Some(true);
    let mut r = Map::new();
    r.insert("id".into(), json!(id_within_cap(&id)));
    r.insert("timestamp".into(), timestamp.clone());
    r.insert("agentId".into(), json!(id_within_cap(&agent)));
    r.insert("agentName".into(), json!(text_within(&name, 256)));
    r.insert("model".into(), json!(model));
    r.insert("promptTokens".into(), json!(input));
    r.insert("completionTokens".into(), json!(output));
    r.insert("cacheReadTokens".into(), json!(cache_read));
    r.insert("cacheWriteTokens".into(), json!(cache_write));
    if let Some(h) = one_hour {
        r.insert("cacheWrite1hTokens".into(), json!(h));
    }
    if let Some(cost) = obj.get("costUSD").filter(|c| c.is_number()) {
        r.insert("cost".into(), cost.clone());
    }
    if failed {
        r.insert("success".into(), json!(false));
        r.insert(
            "error".into(),
            json!(text_within(&error_text(message), 4096)),
        );
    }
    if let Some(s) = obj.get("sessionId").and_then(Value::as_str) {
        r.insert("sessionId".into(), json!(id_within_cap(s)));
    }
    r.insert(
        "taskType".into(),
        json!(if sidechain { "subagent" } else { "main" }),
    );
    let total = input + output + cache_read + cache_write;
    r.insert(
        "revision".into(),
        json!(total.saturating_mul(2) + i64::from(!sidechain)),
    );
    r.insert("metadata".into(), Value::Object(metadata));
    Line::Record(r)
}

/// The text of an API error message (its first text block), else a generic reason.
fn error_text(message: &Map<String, Value>) -> String {
    let from_blocks = message
        .get("content")
        .and_then(Value::as_array)
        .and_then(|blocks| {
            blocks
                .iter()
                .find_map(|b| b.get("text").and_then(Value::as_str))
        });
    let text = from_blocks.or_else(|| message.get("content").and_then(Value::as_str));
    match text {
        Some(t) if !t.trim().is_empty() => t.trim().to_owned(),
        _ => "API error".to_owned(),
    }
}
