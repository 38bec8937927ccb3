//! One ingest record: its fields, the caps on their sizes, validation with a reason naming the
//! field, the epoch-timestamp rule, unknown fields kept in `metadata`, and the derived id.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::input::{bool_of, float_of, int_of, shown};
use crate::money;
use crate::store::{CostSource, Execution};
use crate::time;

/// The fields a record may carry (camelCase, as in SPEC §2.1). Any other field is kept in
/// `metadata` and counted in the report.
pub const FIELDS: &[&str] = &[
    "id",
    "timestamp",
    "agentId",
    "agentName",
    "model",
    "promptTokens",
    "completionTokens",
    "cacheReadTokens",
    "cacheWriteTokens",
    "cacheWrite1hTokens",
    "reasoningTokens",
    "cost",
    "durationMs",
    "success",
    "error",
    "statusCode",
    "sessionId",
    "taskType",
    "metadata",
    "revision",
];

/// Largest token count accepted per field: keeps every sum far from i64 overflow.
const MAX_TOKENS: i64 = 1_000_000_000_000;
/// Largest cost accepted for one execution, USD.
const MAX_COST_USD: i64 = 1_000_000;
/// The same, nano-dollars.
pub const MAX_COST_NANOS: i64 = MAX_COST_USD * money::NANOS_PER_USD;

/// Characters allowed in each text field (SPEC §2.1).
pub const MAX_ID_CHARS: usize = 128;
pub const MAX_AGENT_ID_CHARS: usize = 128;
pub const MAX_AGENT_NAME_CHARS: usize = 256;
pub const MAX_MODEL_CHARS: usize = 128;
pub const MAX_ERROR_CHARS: usize = 4096;
pub const MAX_SESSION_ID_CHARS: usize = 128;
pub const MAX_TASK_TYPE_CHARS: usize = 128;
/// Bytes of compact JSON the `metadata` object may take (unknown fields included).
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Nesting depth of `metadata`: the object itself is level 1.
pub const MAX_METADATA_DEPTH: usize = 32;
/// Bytes one record may take in a file: a JSONL line or a CSV row (its newline not counted), or
/// one item of a JSON array. Every record within the field caps fits when written compactly.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// The most bytes one stored record takes as a `dashboard_get_executions` item: every text
/// field at its cap, of characters JSON writes as six bytes (`\u0001`), the metadata cap, and
/// 1 KiB for the keys, the numbers and the timestamp. Far below the 80 KB result cap, so the
/// newest execution always fits on a page by itself.
pub const MAX_EXECUTION_ITEM_BYTES: usize = 6
    * (MAX_ID_CHARS
        + MAX_AGENT_ID_CHARS
        + MAX_MODEL_CHARS
        + MAX_ERROR_CHARS
        + MAX_SESSION_ID_CHARS
        + MAX_TASK_TYPE_CHARS)
    + MAX_METADATA_BYTES
    + 1024;

/// Epoch integers are read by magnitude: below 10^11 seconds (until 5138), below 10^14
/// milliseconds, below 10^17 microseconds, else nanoseconds.
const EPOCH_SECONDS_BELOW: i128 = 100_000_000_000;
const EPOCH_MILLIS_BELOW: i128 = 100_000_000_000_000;
const EPOCH_MICROS_BELOW: i128 = 100_000_000_000_000_000;

/// Validate one record. `Err` is the reason, naming the field.
pub fn parse_record(obj: &Map<String, Value>) -> std::result::Result<Execution, String> {
    parse_record_noting(obj, &mut |_| {})
}

/// [`parse_record`], telling `unknown` the name of every unknown field of a record it accepts
/// (each was kept in `metadata`).
pub fn parse_record_noting(
    obj: &Map<String, Value>,
    unknown: &mut dyn FnMut(&str),
) -> std::result::Result<Execution, String> {
    let get = |k: &str| {
        obj.get(k)
            .filter(|v| !v.is_null() && *v != &Value::String(String::new()))
    };

    let ts = match get("timestamp") {
        None => {
            return Err(
                "timestamp: missing; give an RFC 3339 string or a Unix epoch time (seconds, milliseconds, microseconds or nanoseconds)".into(),
            )
        }
        Some(v) => timestamp(v)?,
    };
    let agent_id = key(
        text(get("agentId"), "agentId", 1, MAX_AGENT_ID_CHARS)?,
        "agentId",
    )?
    .ok_or("agentId: missing; every record names its agent")?;
    let model = key(text(get("model"), "model", 1, MAX_MODEL_CHARS)?, "model")?
        .ok_or("model: missing; every record names its model")?;
    let agent_name = text(get("agentName"), "agentName", 1, MAX_AGENT_NAME_CHARS)?;
    let id = text(get("id"), "id", 1, MAX_ID_CHARS)?;
    let tokens = |k: &str| -> std::result::Result<i64, String> {
        match get(k) {
            None => Ok(0),
            Some(v) => match int_of(v) {
                Some(n) if (0..=MAX_TOKENS).contains(&n) => Ok(n),
                _ => Err(format!(
                    "{k}: {} is not an integer in 0..={MAX_TOKENS}",
                    shown(v)
                )),
            },
        }
    };
    let prompt_tokens = tokens("promptTokens")?;
    let completion_tokens = tokens("completionTokens")?;
    let cache_read_tokens = tokens("cacheReadTokens")?;
    let cache_write_tokens = tokens("cacheWriteTokens")?;
    let part = |k: &str, whole_name: &str, whole: i64| -> std::result::Result<i64, String> {
        let n = tokens(k)?;
        if n > whole {
            return Err(format!(
                "{k}: {n} is more than {whole_name} ({whole}); it is the part of {whole_name} that {}",
                if k == "reasoningTokens" { "was spent on reasoning" } else { "was written with a 1-hour lifetime" }
            ));
        }
        Ok(n)
    };
    let cache_write_1h = part("cacheWrite1hTokens", "cacheWriteTokens", cache_write_tokens)?;
    let reasoning = part("reasoningTokens", "completionTokens", completion_tokens)?;
    let revision = match get("revision") {
        None => None,
        Some(v) => match int_of(v) {
            Some(n) if n >= 0 => Some(n),
            _ => return Err(format!("revision: {} is not an integer ≥ 0", shown(v))),
        },
    };
    let mut cost_source = CostSource::Reported;
    let cost = match get("cost") {
        None => {
            let priced = super::price::estimate(
                &model,
                &crate::prices::Tokens {
                    input: prompt_tokens,
                    output: completion_tokens,
                    cache_read: cache_read_tokens,
                    cache_write_5m: cache_write_tokens - cache_write_1h,
                    cache_write_1h,
                },
            );
            match priced {
                Some(n) if n <= MAX_COST_USD * money::NANOS_PER_USD => {
                    cost_source = CostSource::Estimated;
                    n
                }
                Some(n) => {
                    return Err(format!(
                        "cost: none given, and the tokens priced come to {} USD, more than {MAX_COST_USD} allowed for one execution",
                        money::to_usd(n)
                    ))
                }
                None => {
                    cost_source = CostSource::Unpriced;
                    0
                }
            }
        }
        Some(v) => {
            let parsed = match v {
                Value::Number(n) => money::parse_usd(&n.to_string()),
                Value::String(s) => money::parse_usd(s),
                _ => None,
            };
            match parsed {
                Some(n) if n <= MAX_COST_USD * money::NANOS_PER_USD => n,
                _ => {
                    return Err(format!(
                        "cost: {} is not a number of USD in 0..={MAX_COST_USD}",
                        shown(v)
                    ))
                }
            }
        }
    };
    let duration_ms = match get("durationMs") {
        None => None,
        Some(v) => match float_of(v) {
            Some(d) if (0.0..=1.0e12).contains(&d) => Some(d),
            _ => {
                return Err(format!(
                    "durationMs: {} is not a number of milliseconds ≥ 0",
                    shown(v)
                ))
            }
        },
    };
    let error = text(get("error"), "error", 1, MAX_ERROR_CHARS)?;
    let success = match get("success") {
        None => error.is_none(),
        Some(v) => {
            bool_of(v).ok_or_else(|| format!("success: {} is not true or false", shown(v)))?
        }
    };
    let status_code = match get("statusCode") {
        None => None,
        Some(v) => match int_of(v) {
            Some(n) if (0..=999).contains(&n) => Some(n),
            _ => {
                return Err(format!(
                    "statusCode: {} is not an integer in 0..=999",
                    shown(v)
                ))
            }
        },
    };
    let session_id = text(get("sessionId"), "sessionId", 1, MAX_SESSION_ID_CHARS)?;
    let task_type = text(get("taskType"), "taskType", 1, MAX_TASK_TYPE_CHARS)?;
    let given = match get("metadata") {
        None => None,
        Some(Value::Object(m)) => Some(std::borrow::Cow::Borrowed(m)),
        // CSV carries the object as JSON text.
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => Some(std::borrow::Cow::Owned(m)),
            _ => {
                return Err(format!(
                    "metadata: {} is not a JSON object",
                    shown(&Value::String(s.clone()))
                ))
            }
        },
        Some(v) => return Err(format!("metadata: {} is not a JSON object", shown(v))),
    };
    // Unknown fields are rare: records without any take no extra step.
    let extras: Vec<(&String, &Value)> = obj
        .iter()
        .filter(|(k, v)| {
            !FIELDS.contains(&k.as_str()) && !v.is_null() && *v != &Value::String(String::new())
        })
        .collect();
    // The token splits ride in `metadata` (what `dashboard_get_executions` shows).
    let splits: Vec<(&str, i64)> = [
        ("cacheWrite1hTokens", cache_write_1h),
        ("reasoningTokens", reasoning),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .collect();
    let metadata = if extras.is_empty() && splits.is_empty() {
        given.map(|m| metadata_text(&m)).transpose()?
    } else {
        let mut m = given.map(|m| m.into_owned()).unwrap_or_default();
        for (k, n) in &splits {
            match m.get(*k) {
                Some(v) if v.as_i64() != Some(*n) => {
                    return Err(format!(
                        "{k}: {n} given, and metadata.{k} says {}; give one",
                        shown(v)
                    ))
                }
                _ => {
                    m.insert((*k).into(), Value::from(*n));
                }
            }
        }
        for (k, v) in &extras {
            let key = if m.contains_key(k.as_str()) {
                format!("_extra.{k}")
            } else {
                (*k).clone()
            };
            if m.contains_key(&key) {
                return Err(format!(
                    "{}: an unknown field is kept in metadata, but metadata already has both {} and {}; rename one",
                    shown(&Value::String((*k).clone())),
                    shown(&Value::String((*k).clone())),
                    shown(&Value::String(key))
                ));
            }
            m.insert(key, (*v).clone());
        }
        Some(metadata_text(&m)?)
    };
    let mut e = Execution {
        id: String::new(),
        ts,
        agent_id,
        agent_name,
        model,
        prompt_tokens,
        completion_tokens,
        cache_read_tokens,
        cache_write_tokens,
        cost,
        duration_ms,
        success,
        error,
        status_code,
        session_id,
        task_type,
        metadata,
        revision,
        cost_source,
    };
    e.id = match id {
        Some(id) => id,
        // The id derives from what the record said: an estimated cost is not part of it, so a
        // new price table leaves ids as they were.
        None if cost_source == CostSource::Reported => derived_id(&e),
        None => derived_id_costing(&e, 0),
    };
    for (k, _) in extras {
        unknown(k);
    }
    Ok(e)
}

/// The compact JSON text of a metadata object, within the size and depth caps.
fn metadata_text(m: &Map<String, Value>) -> std::result::Result<String, String> {
    if m.values().any(|v| deeper_than(v, MAX_METADATA_DEPTH - 1)) {
        return Err(format!(
            "metadata: nested more than {MAX_METADATA_DEPTH} levels deep; allowed are at most {MAX_METADATA_DEPTH}"
        ));
    }
    let text = serde_json::to_string(m).map_err(|e| format!("metadata: {e}"))?;
    if text.len() > MAX_METADATA_BYTES {
        return Err(format!(
            "metadata: {} bytes of JSON given (unknown fields included); allowed are at most {MAX_METADATA_BYTES} (16 KiB): keep large payloads elsewhere and store a reference",
            text.len()
        ));
    }
    Ok(text)
}

/// Does `v` nest objects or arrays more than `levels` deep?
fn deeper_than(v: &Value, levels: usize) -> bool {
    match v {
        Value::Object(m) => levels == 0 || m.values().any(|c| deeper_than(c, levels - 1)),
        Value::Array(a) => levels == 0 || a.iter().any(|c| deeper_than(c, levels - 1)),
        _ => false,
    }
}

/// A number the timestamp may be: an integer, or a number with a fraction.
enum Epoch {
    Int(i128),
    Frac(f64),
}

/// The timestamp of a record, UTC milliseconds: an RFC 3339 string, or a Unix epoch time read by
/// its magnitude (see the `EPOCH_*` constants); only seconds may have a fraction (rounded to the
/// millisecond).
fn timestamp(v: &Value) -> std::result::Result<i64, String> {
    let from_float = |f: f64| -> Option<Epoch> {
        if !f.is_finite() {
            None
        } else if f.fract() == 0.0 && f.abs() < 1e30 {
            Some(Epoch::Int(f as i128))
        } else {
            Some(Epoch::Frac(f))
        }
    };
    let epoch = match v {
        Value::Number(n) => n
            .as_i64()
            .map(|i| Epoch::Int(i.into()))
            .or_else(|| n.as_u64().map(|u| Epoch::Int(u.into())))
            .or_else(|| n.as_f64().and_then(from_float)),
        Value::String(s) => {
            let t = s.trim();
            match t.parse::<i128>() {
                Ok(i) => Some(Epoch::Int(i)),
                Err(_) => t.parse::<f64>().ok().and_then(from_float),
            }
        }
        _ => None,
    };
    let ms: i128 = match epoch {
        None if v.is_string() => {
            let s = v.as_str().unwrap_or_default();
            return time::parse_rfc3339("timestamp", s).map_err(|e| e.to_string());
        }
        None => {
            return Err(format!(
                "timestamp: {} is neither an RFC 3339 string nor a Unix epoch time",
                shown(v)
            ))
        }
        Some(Epoch::Int(n)) if n < 0 => return Err(negative(v)),
        Some(Epoch::Frac(f)) if f < 0.0 => return Err(negative(v)),
        Some(Epoch::Int(n)) if n < EPOCH_SECONDS_BELOW => n * 1000,
        Some(Epoch::Int(n)) if n < EPOCH_MILLIS_BELOW => n,
        Some(Epoch::Int(n)) if n < EPOCH_MICROS_BELOW => n / 1000,
        Some(Epoch::Int(n)) => n / 1_000_000,
        Some(Epoch::Frac(f)) if f < EPOCH_SECONDS_BELOW as f64 => (f * 1000.0).round() as i128,
        Some(Epoch::Frac(_)) => {
            return Err(format!(
                "timestamp: {} has a fraction; only epoch seconds (below 10^11) may have one, milliseconds, microseconds and nanoseconds are integers",
                shown(v)
            ))
        }
    };
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    time::check_range("timestamp", ms, &shown(v)).map_err(|e| e.to_string())?;
    Ok(ms)
}

fn negative(v: &Value) -> String {
    format!(
        "timestamp: {} is negative; give an RFC 3339 string or a Unix epoch time since 1970 (seconds, milliseconds, microseconds or nanoseconds)",
        shown(v)
    )
}

/// A string field of `min..=max` characters, numbers taken as their text.
fn text(
    v: Option<&Value>,
    field: &str,
    min: usize,
    max: usize,
) -> std::result::Result<Option<String>, String> {
    let s = match v {
        None => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => return Err(format!("{field}: {} is not a string", shown(other))),
    };
    let n = s.chars().count();
    if n < min || n > max {
        return Err(format!(
            "{field}: {n} characters given; allowed are {min}..={max}"
        ));
    }
    Ok(Some(s))
}

/// A name that is a key (`agentId`, `model`): the rule of every key (`input::key_problem`),
/// the same as a budget's scope.
fn key(s: Option<String>, field: &str) -> std::result::Result<Option<String>, String> {
    let Some(s) = s else { return Ok(None) };
    match crate::input::key_problem(&s) {
        Some(why) => Err(format!("{field}: {} {why}", crate::input::quoted(&s))),
        None => Ok(Some(s)),
    }
}

/// The id of a record that has none: a hash of everything it says, so re-importing the same
/// line is idempotent and two different executions never share an id.
pub fn derived_id(e: &Execution) -> String {
    derived_id_costing(e, e.cost)
}

fn derived_id_costing(e: &Execution, cost: crate::money::Nanos) -> String {
    let canonical = serde_json::json!([
        e.ts,
        e.agent_id,
        e.model,
        e.prompt_tokens,
        e.completion_tokens,
        e.cache_read_tokens,
        e.cache_write_tokens,
        cost,
        e.duration_ms,
        e.success,
        e.error,
        e.status_code,
        e.session_id,
        e.task_type,
        e.metadata,
        e.agent_name,
    ]);
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("x{hex}")
}

#[cfg(test)]
mod tests;
