//! Codex CLI's session logs (`$CODEX_HOME/sessions/**/rollout-*.jsonl`): one execution per
//! `event_msg` / `token_count` event that adds usage, in the ingest record format.
//!
//! The model is the latest `turn_context`'s; usage is the event's `last_token_usage`, or else
//! the difference of `total_token_usage` from the previous event's. An event whose total equals
//! the previous total adds nothing (Codex repeats the event when only its rate limits change) and
//! is skipped. Codex's `input_tokens` include the cached ones and its `output_tokens` include
//! reasoning, so `promptTokens` = input − cached, `cacheReadTokens` = cached, `completionTokens`
//! = output (reasoning included, and also kept as `metadata.reasoningTokens`): `totalTokens`
//! counts every token once and equals Codex's own `total_tokens`.
//!
//! The parse state (session, project, model, previous total) outlives one import: a file that
//! grows is read on from where the last import stopped, with the state it had there.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{id_within_cap, project_of_path, text_within, Line};

/// What a Codex file's earlier lines said, as the next line needs it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub session: Option<String>,
    pub cwd: Option<String>,
    pub model: Option<String>,
    /// The last `total_token_usage` seen: input, cached input, output, reasoning.
    pub total: Option<[i64; 4]>,
}

/// Start a file's state: the session id from the file name (`rollout-<time>-<uuid>.jsonl`)
/// until a `session_meta` line names it.
pub fn start(file_stem: &str) -> State {
    // The uuid is the last five dash-separated groups.
    let parts: Vec<&str> = file_stem.rsplitn(6, '-').collect();
    let session = (parts.len() == 6).then(|| {
        let mut p = parts[..5].to_vec();
        p.reverse();
        p.join("-")
    });
    State {
        session: session.or_else(|| Some(file_stem.to_owned())),
        ..State::default()
    }
}

fn usage_of(v: Option<&Value>) -> Result<Option<[i64; 4]>, String> {
    let Some(u) = v.and_then(Value::as_object) else {
        return Ok(None);
    };
    let mut out = [0i64; 4];
    for (slot, field) in out.iter_mut().zip([
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "reasoning_output_tokens",
    ]) {
        match u.get(field) {
            None | Some(Value::Null) => {}
            Some(n) => match n.as_i64() {
                Some(n) if n >= 0 => *slot = n,
                _ => return Err(format!("{field}: {n} is not a whole number of tokens ≥ 0")),
            },
        }
    }
    Ok(Some(out))
}

/// The record of one parsed log line (`offset`: where the line starts in its file, which names
/// the execution), updating `state`.
pub fn line(v: &Value, offset: u64, state: &mut State) -> Line {
    let Some(obj) = v.as_object() else {
        return Line::Bad("not a JSON object".into());
    };
    let payload = obj.get("payload");
    match obj.get("type").and_then(Value::as_str) {
        Some("session_meta") => {
            if let Some(p) = payload {
                if let Some(id) = p.get("id").and_then(Value::as_str) {
                    state.session = Some(id.to_owned());
                }
                if let Some(cwd) = p.get("cwd").and_then(Value::as_str) {
                    state.cwd = Some(cwd.to_owned());
                }
            }
            Line::Skip
        }
        Some("turn_context") => {
            if let Some(p) = payload {
                if let Some(m) = p
                    .get("model")
                    .and_then(Value::as_str)
                    .filter(|m| !m.is_empty())
                {
                    state.model = Some(m.to_owned());
                }
                if let Some(cwd) = p.get("cwd").and_then(Value::as_str) {
                    state.cwd = Some(cwd.to_owned());
                }
            }
            Line::Skip
        }
        Some("event_msg") => {
            let Some(p) =
                payload.filter(|p| p.get("type").and_then(Value::as_str) == Some("token_count"))
            else {
                return Line::Skip;
            };
            token_count(obj, p, offset, state)
        }
        _ => Line::Skip,
    }
}

fn token_count(obj: &Map<String, Value>, p: &Value, offset: u64, state: &mut State) -> Line {
    let info = p.get("info");
    let (total, last) = match (
        usage_of(info.and_then(|i| i.get("total_token_usage"))),
        usage_of(info.and_then(|i| i.get("last_token_usage"))),
    ) {
        (Ok(t), Ok(l)) => (t, l),
        (Err(e), _) => return Line::Bad(format!("payload.info.total_token_usage.{e}")),
        (_, Err(e)) => return Line::Bad(format!("payload.info.last_token_usage.{e}")),
    };
    let previous = state.total;
    if total.is_some() {
        state.total = total;
    }
    if total.is_some() && total == previous {
        return Line::Skip;
    }
    let used = match (last, total) {
        (Some(l), _) => l,
        (None, Some(t)) => {
            let p = previous.unwrap_or_default();
            std::array::from_fn(|i| (t[i] - p[i]).max(0))
        }
        (None, None) => return Line::Skip,
    };
    let [input, cached, output, reasoning] = used;
    if input == 0 && cached == 0 && output == 0 {
        return Line::Skip;
    }
    let Some(timestamp) = obj.get("timestamp").filter(|t| t.is_string()) else {
        return Line::Bad("timestamp: missing on a token_count event".into());
    };
    let cached = cached.min(input);
    let session = state.session.clone().unwrap_or_default();
    let project = state
        .cwd
        .as_deref()
        .map(project_of_path)
        .unwrap_or_else(|| "unknown".to_owned());
    let mut metadata = Map::new();
    metadata.insert("source".into(), json!("codex"));
    let mut r = Map::new();
    r.insert(
        "id".into(),
        json!(id_within_cap(&format!("codex:{session}:{offset}"))),
    );
    r.insert("timestamp".into(), timestamp.clone());
    r.insert(
        "agentId".into(),
        json!(id_within_cap(&format!("codex:{project}"))),
    );
    if let Some(cwd) = &state.cwd {
        r.insert("agentName".into(), json!(text_within(cwd, 256)));
    }
    r.insert(
        "model".into(),
        json!(state.model.as_deref().unwrap_or("unknown")),
    );
    r.insert("promptTokens".into(), json!(input - cached));
    r.insert("completionTokens".into(), json!(output));
    r.insert("cacheReadTokens".into(), json!(cached));
    if reasoning > 0 {
        r.insert("reasoningTokens".into(), json!(reasoning.min(output)));
    }
    if !session.is_empty() {
        r.insert("sessionId".into(), json!(id_within_cap(&session)));
    }
    r.insert("metadata".into(), Value::Object(metadata));
    Line::Record(r)
}
