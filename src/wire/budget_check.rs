//! `dashboard_check_budget`: may an agent spend (an estimated amount) now?

use schemars::JsonSchema;
use serde::{de, Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::BudgetPeriod;
use crate::input::{float_of, shown};

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckBudgetInput {
    /// The agent about to spend.
    #[schemars(length(min = 1, max = 128))]
    pub agent_id: String,
    /// What the next step will cost, USD (default 0).
    #[serde(default, deserialize_with = "lenient_usd")]
    #[schemars(with = "Option<f64>", range(min = 0))]
    pub estimated_cost_usd: Option<f64>,
}

/// A number of USD, or a string holding one (`"3"`, `"$3"`).
fn lenient_usd<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = Value::deserialize(d)?;
    let parsed = match &v {
        Value::Null => return Ok(None),
        Value::String(s) => float_of(&Value::from(s.trim().trim_start_matches('$'))),
        other => float_of(other),
    };
    parsed
        .map(Some)
        .ok_or_else(|| de::Error::custom(format!("{} is not a number of USD (≥ 0)", shown(&v))))
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckBudgetOutput {
    pub allowed: bool,
    /// The blocking budget's scope.
    pub blocked_by: Option<String>,
    pub reason: String,
    /// Of the blocking budget, else the one with least left.
    pub remaining_usd: Option<f64>,
    pub percent_used: Option<f64>,
    pub projected_usd: Option<f64>,
    /// The agent's budget and the global one, where set.
    pub budgets: Vec<BudgetCheck>,
    pub as_of: String,
}

/// One budget with the estimate added.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetCheck {
    pub scope: String,
    pub limit_usd: f64,
    pub period: BudgetPeriod,
    pub period_end: String,
    /// Spent so far this period.
    pub spent_usd: f64,
    /// limit − spent − estimate.
    pub remaining_usd: f64,
    /// (spent + estimate) / limit.
    pub percent_used: f64,
    /// Period-end projection + estimate.
    pub projected_usd: f64,
    pub blocks: bool,
}
