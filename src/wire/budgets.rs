//! Wire types of the budget tools (`dashboard_get_budgets`, `dashboard_set_budget`) and of the
//! budget summaries the overview and the agents list carry.

use schemars::JsonSchema;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Pagination;
use crate::input::{float_of, int_of, lenient_string, lenient_u64, shown};
use crate::string_enum;

string_enum! {
    /// A budget's period: a local calendar day, an ISO week (from Monday 00:00) or a calendar month.
    pub enum BudgetPeriod {
        Day = "day" | "daily" | "1d",
        Week = "week" | "weekly" | "1w",
        Month = "month" | "monthly" | "1m",
    }
}

string_enum! {
    /// `exceeded` at 100 % or more, `warning` once a threshold below 100 is crossed, else `ok`.
    pub enum BudgetState { Ok = "ok", Warning = "warning", Exceeded = "exceeded" }
}

string_enum! {
    /// What `dashboard_set_budget` did.
    pub enum BudgetAction { Created = "created", Replaced = "replaced", Deleted = "deleted", NotFound = "notFound" }
}

// ---------------------------------------------------------------------------------------------
// Inputs

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetsInput {
    /// Only this budget: "global" or an agent id.
    #[serde(default, deserialize_with = "lenient_string")]
    #[schemars(length(min = 1, max = 128))]
    pub scope: Option<String>,
    /// Page size, 1..500 (default 100).
    #[serde(default, deserialize_with = "lenient_u64")]
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u64>,
    /// Budgets to skip (default 0).
    #[serde(default, deserialize_with = "lenient_u64")]
    #[schemars(range(max = crate::dashboard::MAX_OFFSET))]
    pub offset: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = require_limit)]
pub struct SetBudgetInput {
    /// "global" (all agents together) or an agent id (1..128 chars).
    #[schemars(length(min = 1, max = 128))]
    pub scope: String,
    /// Limit in USD per period (> 0); null deletes the budget.
    #[serde(default, deserialize_with = "lenient_limit")]
    #[schemars(with = "Option<f64>")]
    pub limit_usd: Option<f64>,
    /// day | week (ISO, from Monday) | month. Required unless deleting.
    #[serde(default)]
    pub period: Option<BudgetPeriod>,
    /// Percents that raise a warning once crossed, increasing, each 1..1000 (default [50, 80, 100]).
    #[serde(default, deserialize_with = "lenient_thresholds")]
    #[schemars(
        with = "Option<Vec<u32>>",
        length(min = 1, max = 10),
        inner(range(min = 1, max = 1000))
    )]
    pub alert_thresholds: Option<Vec<i64>>,
}

/// `limitUsd` must be sent (null deletes), so a forgotten field never deletes a budget; and a
/// number must be greater than 0.
fn require_limit(schema: &mut schemars::Schema) {
    if let Some(Value::Array(required)) = schema.get_mut("required") {
        if !required.iter().any(|v| v == "limitUsd") {
            required.push(Value::from("limitUsd"));
        }
    }
    if let Some(Value::Object(limit)) = schema
        .get_mut("properties")
        .and_then(|p| p.get_mut("limitUsd"))
    {
        limit.remove("default");
        // The smallest limit that does not round to 0 nano-dollars.
        limit.insert("minimum".into(), Value::from(1e-9));
    }
}

/// `deserialize_with` for the limit: a number, or a string holding one (`"50"`, `"$50"`).
fn lenient_limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = Value::deserialize(d)?;
    let parsed = match &v {
        Value::String(s) => float_of(&Value::from(s.trim().trim_start_matches('$'))),
        other => float_of(other),
    };
    parsed.map(Some).ok_or_else(|| {
        de::Error::custom(format!(
            "{} is not a number; give the limit in USD (> 0), or null to delete the budget",
            shown(&v)
        ))
    })
}

/// `deserialize_with` for the thresholds: whole numbers, or strings holding them, in an array
/// or in one comma-separated string (`"50,80,100"`). Ranges are checked by the dashboard.
fn lenient_thresholds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<i64>>, D::Error> {
    let v = Value::deserialize(d)?;
    let items: Vec<Value> = match &v {
        Value::Array(items) => items.clone(),
        Value::String(s) => s.split(',').map(|p| Value::from(p.trim())).collect(),
        Value::Number(_) => vec![v.clone()],
        _ => Vec::new(),
    };
    if items.is_empty() && !matches!(&v, Value::Array(_)) {
        return Err(de::Error::custom(format!(
            "{} is not a list of percents; expected e.g. [50, 80, 100]",
            shown(&v)
        )));
    }
    items
        .iter()
        .map(|item| {
            int_of(item).ok_or_else(|| {
                de::Error::custom(format!(
                    "{} is not a whole percent; expected whole numbers 1..=1000, e.g. [50, 80, 100]",
                    shown(item)
                ))
            })
        })
        .collect::<Result<Vec<i64>, _>>()
        .map(Some)
}

// ---------------------------------------------------------------------------------------------
// Outputs

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetsOutput {
    /// When the budgets were evaluated (UTC).
    pub as_of: String,
    /// The time zone that periods follow (IANA name).
    pub time_zone: String,
    /// The global budget first, then agent budgets by scope.
    pub budgets: Vec<BudgetEntry>,
    pub pagination: Pagination,
}

/// One budget evaluated at `asOf`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetEntry {
    /// "global" or an agent id.
    pub scope: String,
    pub limit_usd: f64,
    pub period: BudgetPeriod,
    pub alert_thresholds: Vec<u32>,
    /// The current period, in the configured zone.
    pub period_start: String,
    pub period_end: String,
    /// USD spent from periodStart to now.
    pub spent: f64,
    pub percent_used: f64,
    /// USD expected by periodEnd at the current run-rate.
    pub projected: f64,
    /// projected ≤ limit, and not yet spent up.
    pub on_track: bool,
    pub status: BudgetState,
    /// The alert thresholds that percentUsed has reached.
    pub thresholds_crossed: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetBudgetOutput {
    pub action: BudgetAction,
    pub scope: String,
    /// The budget as it now stands; null after a delete.
    pub budget: Option<BudgetEntry>,
}

/// The global budget, else the agent budgets summed (with agentId: its own).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverviewBudgetStatus {
    /// Null when no budget applies.
    pub total_limit: Option<f64>,
    /// USD spent this budget period (no budget: in the window).
    pub total_spent: f64,
    pub percent_used: Option<f64>,
    pub on_track: bool,
}

/// An agent's own budget: spent in that budget's current period.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentBudgetStatus {
    /// Null when the agent has no budget of its own.
    pub limit: Option<f64>,
    /// USD spent this budget period (no budget: in the window).
    pub spent: f64,
    pub percent_used: Option<f64>,
    /// The budget's period; null with no budget.
    pub period: Option<BudgetPeriod>,
}
