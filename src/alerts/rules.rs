//! An alert rule: what it watches, in which scope, and where it posts. Built from
//! `dashboard_set_alert`'s input with every field checked, stored as JSON (`spec`).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::input::quoted;
use crate::money::{self, Nanos};
use crate::time::{Millis, DAY, HOUR};
use crate::wire::{AlertFormat, AlertRule, SetAlertInput, Severity};

/// A rule's calls needed before its error rate counts, when not given.
pub const DEFAULT_MIN_CALLS: u64 = 10;
/// The trailing window of error-rate and cost rules, when not given.
pub const DEFAULT_WINDOW: Millis = HOUR;
const MINUTE: Millis = 60_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default)]
    pub budget_threshold: bool,
    #[serde(default)]
    pub budget_projection: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly_severity: Option<Severity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate_percent: Option<f64>,
    pub min_calls: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_nanos: Option<Nanos>,
    pub window_ms: Millis,
    pub url: String,
    pub format: AlertFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// Check a rule id: 1..64 of a-z A-Z 0-9 . _ -.
pub fn check_id(id: &str) -> Result<()> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "id",
            format!(
                "{} is not a rule id; use 1..64 of a-z A-Z 0-9 . _ -",
                quoted(id)
            ),
        ))
    }
}

/// A window such as "15m", "1h", "24h" or "7d": 5 minutes to 30 days.
pub fn parse_window(s: &str) -> Result<Millis> {
    let t = s.trim();
    let bad = || {
        Error::invalid(
            "window",
            format!(
                "{} is not a window; give a number and m, h or d between 5m and 30d, e.g. \"15m\", \"1h\", \"7d\"",
                quoted(s)
            ),
        )
    };
    let (n, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let per = match unit.trim() {
        "m" | "min" => MINUTE,
        "h" => HOUR,
        "d" => DAY,
        _ => return Err(bad()),
    };
    let ms = n.checked_mul(per).ok_or_else(bad)?;
    if !(5 * MINUTE..=30 * DAY).contains(&ms) {
        return Err(bad());
    }
    Ok(ms)
}

/// A window as a person says it: "90m", "1h", "24h", "7d".
pub fn show_window(ms: Millis) -> String {
    if ms % DAY == 0 && ms >= 2 * DAY {
        format!("{}d", ms / DAY)
    } else if ms % HOUR == 0 {
        format!("{}h", ms / HOUR)
    } else {
        format!("{}m", ms / MINUTE)
    }
}

/// A webhook URL: http or https, with a host, at most 2,000 characters.
fn check_url(url: &str) -> Result<()> {
    let bad = |why: &str| Error::invalid("url", format!("{} {why}", quoted(url)));
    if url.len() > 2000 {
        return Err(bad("is longer than 2,000 characters"));
    }
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|_| bad("is not a URL; give an http:// or https:// webhook URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(bad("is not an http:// or https:// URL")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    Ok(())
}

fn scope_name(field: &str, v: Option<String>) -> Result<Option<String>> {
    match v.map(|s| s.trim().to_owned()) {
        Some(s) if s.is_empty() || s.len() > 128 || s.contains('\0') => Err(Error::invalid(
            field,
            format!("{} must be 1..128 characters without NUL", quoted(&s)),
        )),
        other => Ok(other),
    }
}

impl Rule {
    /// The rule `input` describes, every field checked; the id derived when not given.
    pub fn from_input(input: SetAlertInput) -> Result<Rule> {
        let url = input.url.ok_or_else(|| {
            Error::invalid("url", "missing; give the webhook URL (http:// or https://)")
        })?;
        check_url(&url)?;
        let error_rate_percent = match input.error_rate_percent {
            Some(p) if !(p > 0.0 && p <= 100.0) => {
                return Err(Error::invalid(
                    "errorRatePercent",
                    format!("{p} is outside 0 < percent ≤ 100"),
                ))
            }
            p => p,
        };
        let cost_nanos = match input.cost_usd {
            Some(usd) => match money::from_f64(usd) {
                Some(n) if n > 0 && usd <= 1e9 => Some(n),
                _ => {
                    return Err(Error::invalid(
                        "costUsd",
                        format!("{usd} is not an amount of USD above 0 and at most 1e9"),
                    ))
                }
            },
            None => None,
        };
        let min_calls = input.min_calls.unwrap_or(DEFAULT_MIN_CALLS);
        if !(1..=1_000_000_000).contains(&min_calls) {
            return Err(Error::invalid(
                "minCalls",
                format!("{min_calls} is outside 1..1000000000"),
            ));
        }
        let window_ms = match &input.window {
            Some(w) => parse_window(w)?,
            None => DEFAULT_WINDOW,
        };
        let secret = match input.secret {
            Some(s) if s.is_empty() || s.len() > 256 => {
                return Err(Error::invalid(
                    "secret",
                    format!("is {} bytes; give 1..256", s.len()),
                ))
            }
            s => s,
        };
        let mut rule = Rule {
            id: String::new(),
            agent_id: scope_name("agentId", input.agent_id)?,
            model: scope_name("model", input.model)?,
            budget_threshold: input.budget_threshold.unwrap_or(false),
            budget_projection: input.budget_projection.unwrap_or(false),
            anomaly_severity: input.anomaly_severity,
            error_rate_percent,
            min_calls,
            cost_nanos,
            window_ms,
            url,
            format: input.format.unwrap_or(AlertFormat::Generic),
            secret,
        };
        if !(rule.budget_threshold
            || rule.budget_projection
            || rule.anomaly_severity.is_some()
            || rule.error_rate_percent.is_some()
            || rule.cost_nanos.is_some())
        {
            return Err(Error::invalid(
                "budgetThreshold",
                "no condition given; set at least one of budgetThreshold, budgetProjection, \
                 anomalySeverity, errorRatePercent, costUsd",
            ));
        }
        if rule.model.is_some()
            && (rule.budget_threshold || rule.budget_projection || rule.anomaly_severity.is_some())
        {
            return Err(Error::invalid(
                "model",
                "budgets and anomalies are per agent, not per model; a model scope takes only \
                 errorRatePercent and costUsd",
            ));
        }
        rule.id = match input.id {
            Some(id) => {
                check_id(&id)?;
                id
            }
            None => rule.derived_id(),
        };
        Ok(rule)
    }

    /// "a" and 11 hex digits of the rule's hash without its id: the same rule twice is one.
    fn derived_id(&self) -> String {
        let spec = serde_json::to_string(self).unwrap_or_default();
        let hash = Sha256::digest(spec.as_bytes());
        let hex: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
        format!("a{}", &hex[..11])
    }

    pub fn spec(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_spec(spec: &str) -> Result<Rule> {
        serde_json::from_str(spec)
            .map_err(|e| Error::Internal(format!("a stored alert rule cannot be read: {e}")))
    }

    /// "agent planner", "model gpt-4o", "agent planner, model gpt-4o" or "all agents".
    pub fn scope(&self) -> String {
        scope_text(self.agent_id.as_deref(), self.model.as_deref())
    }

    /// The rule as the tools show it: no secret, the URL up to its host.
    pub fn shown(&self) -> AlertRule {
        let w = show_window(self.window_ms);
        let mut conditions = Vec::new();
        if self.budget_threshold {
            conditions.push("budgetThreshold".to_owned());
        }
        if self.budget_projection {
            conditions.push("budgetProjection".to_owned());
        }
        if let Some(s) = self.anomaly_severity {
            conditions.push(format!("anomaly ≥ {}", s.as_str()));
        }
        if let Some(p) = self.error_rate_percent {
            conditions.push(format!(
                "errorRate ≥ {p}% (≥ {} calls) in {w}",
                self.min_calls
            ));
        }
        if let Some(c) = self.cost_nanos {
            conditions.push(format!("cost ≥ ${} in {w}", money::to_usd(c)));
        }
        AlertRule {
            id: self.id.clone(),
            agent_id: self.agent_id.clone(),
            model: self.model.clone(),
            conditions,
            url: redact_url(&self.url),
            format: self.format,
            signed: self.secret.is_some(),
        }
    }
}

/// "agent planner", "model gpt-4o", "agent planner, model gpt-4o" or "all agents".
pub fn scope_text(agent: Option<&str>, model: Option<&str>) -> String {
    match (agent, model) {
        (Some(a), Some(m)) => format!("agent {a}, model {m}"),
        (Some(a), None) => format!("agent {a}"),
        (None, Some(m)) => format!("model {m}"),
        (None, None) => "all agents".into(),
    }
}

/// A webhook URL up to its host: the path of a Slack webhook is its secret.
pub fn redact_url(url: &str) -> String {
    match url.parse::<axum::http::Uri>() {
        Ok(u) => format!(
            "{}://{}{}/…",
            u.scheme_str().unwrap_or("http"),
            u.host().unwrap_or(""),
            u.port_u16().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "…".into(),
    }
}
