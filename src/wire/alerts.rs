//! Wire types of the alert tools (`dashboard_get_alerts`, `dashboard_set_alert`) and of the
//! webhook notice (`schemas/alert-notice.json`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Severity;
use crate::input::{lenient_string, lenient_u64};
use crate::string_enum;

string_enum! {
    /// How a webhook is posted: the generic JSON notice, or Slack's `{"text": …}`.
    pub enum AlertFormat { Generic = "generic" | "json", Slack = "slack" }
}

string_enum! {
    /// What an alert watches.
    pub enum AlertCondition {
        BudgetThreshold = "budgetThreshold",
        BudgetProjection = "budgetProjection",
        Anomaly = "anomaly",
        ErrorRate = "errorRate",
        Cost = "cost",
    }
}

string_enum! {
    /// A notice reports a crossing (`fired`), its clearing (`resolved`) or a `test`.
    pub enum NoticeKind { Fired = "fired", Resolved = "resolved", Test = "test" }
}

string_enum! {
    /// What `dashboard_set_alert` did.
    pub enum AlertAction { Created = "created", Replaced = "replaced", Unchanged = "unchanged", Removed = "removed", NotFound = "notFound" }
}

/// `dashboard_set_alert`: create or replace a rule, or remove one.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetAlertInput {
    /// Rule id: 1..64 of a-z A-Z 0-9 . _ - (default: derived from the rule, so the same rule
    /// twice is one rule). Required with remove.
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: Option<String>,
    /// true: remove rule `id`.
    #[serde(default)]
    pub remove: Option<bool>,
    /// Only this agent (default: every agent).
    #[serde(default, deserialize_with = "lenient_string")]
    pub agent_id: Option<String>,
    /// Only this model (error rate and cost rules).
    #[serde(default, deserialize_with = "lenient_string")]
    pub model: Option<String>,
    /// Fire when a budget crosses one of its alertThresholds.
    #[serde(default)]
    pub budget_threshold: Option<bool>,
    /// Fire when a budget's projection goes over its limit.
    #[serde(default)]
    pub budget_projection: Option<bool>,
    /// Fire on a new anomaly at or above this severity.
    #[serde(default)]
    pub anomaly_severity: Option<Severity>,
    /// Fire when the error rate over `window` is at or above this percent (0 < x ≤ 100).
    #[serde(default)]
    pub error_rate_percent: Option<f64>,
    /// Calls the window needs before its error rate counts (default 10).
    #[serde(default, deserialize_with = "lenient_u64")]
    pub min_calls: Option<u64>,
    /// Fire when the cost over `window` is at or above this many USD (> 0).
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// Trailing window of the error-rate and cost rules: 5m..30d, e.g. "15m", "1h", "24h", "7d"
    /// (default "1h").
    #[serde(default, deserialize_with = "lenient_string")]
    pub window: Option<String>,
    /// Webhook URL (http or https).
    #[serde(default, deserialize_with = "lenient_string")]
    pub url: Option<String>,
    /// generic (default) or slack.
    #[serde(default)]
    pub format: Option<AlertFormat>,
    /// Signs each body: header X-Dashboard-Signature: sha256=HMAC-SHA256(secret, body) in hex.
    #[serde(default, deserialize_with = "lenient_string")]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetAlertOutput {
    pub action: AlertAction,
    pub id: String,
    /// The rule as stored (none after a removal).
    pub rule: Option<AlertRule>,
}

/// A rule as the tools show it: the secret never, the URL without its path and query.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertRule {
    pub id: String,
    pub agent_id: Option<String>,
    pub model: Option<String>,
    /// What it watches, e.g. "budgetThreshold", "anomaly ≥ high", "errorRate ≥ 5% (≥ 10 calls) in 1h".
    pub conditions: Vec<String>,
    pub url: String,
    pub format: AlertFormat,
    pub signed: bool,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertsInput {
    /// Recent events to show, 1..200 (default 20).
    #[serde(default, deserialize_with = "lenient_u64")]
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertsOutput {
    pub rules: Vec<AlertRule>,
    /// Conditions firing now.
    pub firing: Vec<AlertFiring>,
    /// Newest first, with delivery state.
    pub events: Vec<AlertEventItem>,
    pub as_of: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertFiring {
    pub rule: String,
    pub key: String,
    pub since: String,
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertEventItem {
    pub id: i64,
    pub rule: String,
    #[serde(rename = "type")]
    pub kind: NoticeKind,
    pub summary: String,
    pub at: String,
    /// pending, delivered, failed or cancelled.
    pub delivery: String,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    /// Of a pending delivery.
    pub next_attempt: Option<String>,
}

/// The generic webhook body (`format: generic`); `schemas/alert-notice.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertNotice {
    /// The event's id: the same on every retry of one delivery (0 for a test).
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: NoticeKind,
    /// The rule's id.
    pub rule: String,
    pub condition: AlertCondition,
    /// The crossing, stable while it lasts: e.g. "budget:planner:80", "projection:global",
    /// "anomaly:planner:cost", "errorRate", "cost".
    pub key: String,
    /// The agent concerned (a budget's or anomaly's agent, or the rule's scope).
    pub agent_id: Option<String>,
    /// The rule's model scope.
    pub model: Option<String>,
    /// One sentence for a person.
    pub summary: String,
    /// The measured value: percent used, projected USD, the anomalous hour's value (USD, calls,
    /// tokens, error rate % or mean ms), error rate %, or USD.
    pub value: f64,
    /// What it was compared with, in the same unit: the threshold or limit, or for an anomaly the
    /// usual value of that hour.
    pub threshold: f64,
    /// Anomalies only.
    pub severity: Option<Severity>,
    /// When this was noticed (ISO 8601, UTC).
    pub at: String,
    /// For a resolved notice: when it fired.
    pub since: Option<String>,
}
