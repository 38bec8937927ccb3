//! Wire types of `dashboard_get_anomalies` and the overview's anomaly counts.

use schemars::JsonSchema;
use serde::Serialize;

use crate::input::{lenient_string, lenient_u64};
use crate::string_enum;

use super::{windowed_input, Pagination, Period};

string_enum! {
    /// How far from usual an anomaly is: low (score ≥ 3), medium (≥ 5), high (≥ 8), critical (≥ 12).
    pub enum Severity { Low = "low", Medium = "medium" | "med", High = "high", Critical = "critical" | "crit" }
}

string_enum! {
    /// The hourly per-agent series an anomaly was found in.
    pub enum AnomalyMetric {
        Cost = "cost",
        Calls = "calls",
        Tokens = "tokens",
        ErrorRate = "errorRate" | "error_rate" | "errors",
        Latency = "latency" | "latencyms" | "duration",
    }
}

windowed_input! {
    pub struct AnomaliesInput {
    /// Minimum severity (default low: all).
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Only this agent.
    #[serde(default, deserialize_with = "lenient_string")]
    pub agent_id: Option<String>,
    /// Only this metric.
    #[serde(default)]
    pub metric: Option<AnomalyMetric>,
    /// Page size, 1..500 (default 50).
    #[serde(default, deserialize_with = "lenient_u64")]
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u64>,
    /// Anomalies to skip (default 0).
    #[serde(default, deserialize_with = "lenient_u64")]
    #[schemars(range(max = crate::dashboard::MAX_OFFSET))]
    pub offset: Option<u64>,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnomaliesOutput {
    pub period: Period,
    /// Newest first.
    pub anomalies: Vec<AnomalyItem>,
    /// Over all matches, not just this page.
    pub summary: AnomalySummary,
    pub pagination: Pagination,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnomalyItem {
    /// Same agent, metric and hour: same id.
    pub id: String,
    /// Start of the hour.
    pub timestamp: String,
    pub agent_id: String,
    pub metric: AnomalyMetric,
    pub severity: Severity,
    /// Robust z-score; negative for a drop.
    pub score: f64,
    /// USD, calls, tokens, % of calls failed, or mean ms of successful calls.
    pub current_value: f64,
    /// Median of the agent's history at this hour.
    pub expected: f64,
    /// Values inside would not have been reported.
    pub expected_range: ExpectedRange,
    /// (current − expected) / expected × 100; null when expected is 0.
    pub deviation: Option<f64>,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ExpectedRange {
    pub min: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnomalySummary {
    pub total: u64,
    pub by_severity: BySeverity,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
pub struct BySeverity {
    pub low: u64,
    pub medium: u64,
    pub high: u64,
    pub critical: u64,
}

impl AnomalySummary {
    pub fn add(&mut self, s: Severity) {
        self.total += 1;
        let b = &mut self.by_severity;
        match s {
            Severity::Low => b.low += 1,
            Severity::Medium => b.medium += 1,
            Severity::High => b.high += 1,
            Severity::Critical => b.critical += 1,
        }
    }
}
