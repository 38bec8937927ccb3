//! The wire types: every tool's input and output, the ingest report and the ingest record. Both
//! protocols ship exactly these serde types, and `schemas/` and `tools/` are generated from them.
//! Inputs are strict about field names and forgiving about value types (see `input`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::input::{lenient_string, lenient_u64};
use crate::string_enum;

mod alerts;
pub use alerts::*;
mod anomalies;
pub use anomalies::*;

mod budget_check;
pub use budget_check::*;
mod budgets;
pub use budgets::*;

string_enum! {
    /// A rolling window ending now (or at `end`).
    pub enum Timeframe {
        Hour = "hour" | "1h" | "60m",
        Day = "day" | "24h" | "1d",
        Week = "week" | "7d" | "1w",
        Month = "month" | "30d" | "1m",
        Quarter = "quarter" | "90d" | "3m",
    }
}

impl Timeframe {
    pub fn millis(&self) -> i64 {
        use crate::time::{DAY, HOUR};
        match self {
            Timeframe::Hour => HOUR,
            Timeframe::Day => DAY,
            Timeframe::Week => 7 * DAY,
            Timeframe::Month => 30 * DAY,
            Timeframe::Quarter => 90 * DAY,
        }
    }
}

string_enum! {
    pub enum GranularityName { Minute = "minute" | "1min" | "min", Hour = "hour" | "1h" | "hourly", Day = "day" | "1d" | "daily" }
}

string_enum! {
    pub enum AgentSort { Cost = "cost", Calls = "calls", Tokens = "tokens", SuccessRate = "successRate" | "success_rate" | "success", Errors = "errors" | "errorcount" }
}

string_enum! {
    pub enum SortOrder { Desc = "desc" | "descending", Asc = "asc" | "ascending" }
}

string_enum! {
    pub enum TimelineMetric { Cost = "cost", Calls = "calls", Tokens = "tokens", Errors = "errors", Latency = "latency" | "latencyms" | "duration" }
}

string_enum! {
    pub enum BreakdownBy { Agent = "agent" | "agentid" | "agents", Model = "model" | "models" }
}

string_enum! {
    pub enum StatusFilter { Success = "success" | "ok" | "succeeded", Error = "error" | "errors" | "failed" | "failure" }
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// Window fields shared by every read tool.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowArgs {
    pub timeframe: Option<Timeframe>,
    pub start: Option<String>,
    pub end: Option<String>,
}

/// Declares a read tool's input: the window fields every read tool shares (`timeframe`, `start`,
/// `end`), then the tool's own fields; and `window_args()` to resolve the window from them.
macro_rules! windowed_input {
    (pub struct $name:ident { $($fields:tt)* }) => {
        #[derive(Debug, Clone, Default, serde::Deserialize, schemars::JsonSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            /// Default day; month 30 d, quarter 90 d.
            #[serde(default)]
            pub timeframe: Option<$crate::wire::Timeframe>,
            /// Window start, RFC 3339 (overrides timeframe).
            #[serde(default, deserialize_with = "crate::input::lenient_string")]
            #[schemars(extend("format" = "date-time"))]
            pub start: Option<String>,
            /// Window end, exclusive (default now).
            #[serde(default, deserialize_with = "crate::input::lenient_string")]
            #[schemars(extend("format" = "date-time"))]
            pub end: Option<String>,
            $($fields)*
        }

        impl $name {
            pub fn window_args(&self) -> $crate::wire::WindowArgs {
                $crate::wire::WindowArgs {
                    timeframe: self.timeframe,
                    start: self.start.clone(),
                    end: self.end.clone(),
                }
            }
        }
    };
}
pub(crate) use windowed_input;

windowed_input! {
    pub struct OverviewInput {
    /// Only this agent.
    #[serde(default, deserialize_with = "lenient_string")]
    pub agent_id: Option<String>,
    }
}

windowed_input! {
    pub struct AgentsInput {
    /// Page size, 1..1000 (default 10).
    #[serde(default, deserialize_with = "lenient_u64")]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u64>,
    /// Agents to skip (default 0).
    #[serde(default, deserialize_with = "lenient_u64")]
    #[schemars(range(max = crate::dashboard::MAX_OFFSET))]
    pub offset: Option<u64>,
    /// Sort key (default cost); ties sort by id.
    #[serde(default)]
    pub sort_by: Option<AgentSort>,
    /// desc (default) or asc.
    #[serde(default)]
    pub order: Option<SortOrder>,
    }
}

windowed_input! {
    pub struct ModelsInput {
    /// Only this agent.
    #[serde(default, deserialize_with = "lenient_string")]
    pub agent_id: Option<String>,
    /// Page size, 1..500 (default 50).
    #[serde(default, deserialize_with = "lenient_u64")]
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u64>,
    /// Models to skip (default 0).
    #[serde(default, deserialize_with = "lenient_u64")]
    #[schemars(range(max = crate::dashboard::MAX_OFFSET))]
    pub offset: Option<u64>,
    }
}

windowed_input! {
    pub struct TimelineInput {
    /// Bucket size: minute (windows up to 6 h), hour (default up to 48 h), day.
    #[serde(default)]
    pub granularity: Option<GranularityName>,
    /// Only this agent.
    #[serde(default, deserialize_with = "lenient_string")]
    pub agent_id: Option<String>,
    /// Only this model.
    #[serde(default, deserialize_with = "lenient_string")]
    pub model: Option<String>,
    /// cost (default, USD) | calls | tokens | errors | latency (mean ms).
    #[serde(default)]
    pub metric: Option<TimelineMetric>,
    /// Split each point by the window's top 10 agents or models plus "other".
    #[serde(default)]
    pub breakdown: Option<BreakdownBy>,
    }
}

windowed_input! {
    pub struct ExecutionsInput {
    /// Only this agent.
    #[serde(default, deserialize_with = "lenient_string")]
    pub agent_id: Option<String>,
    /// Only this model.
    #[serde(default, deserialize_with = "lenient_string")]
    pub model: Option<String>,
    /// success or error.
    #[serde(default)]
    pub status: Option<StatusFilter>,
    /// Page size, 1..500 (default 50).
    #[serde(default, deserialize_with = "lenient_u64")]
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u64>,
    /// Executions to skip (default 0).
    #[serde(default, deserialize_with = "lenient_u64")]
    #[schemars(range(max = crate::dashboard::MAX_OFFSET))]
    pub offset: Option<u64>,
    }
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordUsageInput {
    /// Executions to store (1..10000), each as the ingest record (see schemas/ingest-record.json).
    #[schemars(with = "Vec<IngestRecord>", length(min = 1, max = 10000))]
    pub records: Vec<serde_json::Value>,
    /// true: write nothing if any record is bad, and answer an error naming the first one
    /// (`records[i]`, 0-based). Default false: good records are stored, bad ones reported.
    #[serde(default)]
    pub strict: Option<bool>,
}

/// One execution as ingested (JSONL line, CSV row, or `records[]` item). Only the schema is
/// derived from this type: records are read field by field by `ingest` for precise errors.
/// Any other field is kept in `metadata` (under `_extra.<name>` if metadata has that key) and
/// counted per name in the report's `unknownFields`. One record takes at most 64 KiB (a JSONL line,
/// a CSV row, a JSON array item).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngestRecord {
    /// Idempotency key (≤ 128 chars); derived from the content when absent.
    #[schemars(length(max = 128))]
    pub id: Option<String>,
    /// When the execution started: RFC 3339 (any offset), or a Unix epoch time (a number or a
    /// string of digits) read by its magnitude: below 10^11 seconds, below 10^14 milliseconds,
    /// below 10^17 microseconds, else nanoseconds. Only seconds may have a fraction (rounded to
    /// the millisecond); negative numbers are refused. Years 1970..=9999.
    pub timestamp: TimestampValue,
    /// The agent that made the call (1..128 chars).
    #[schemars(length(min = 1, max = 128))]
    pub agent_id: String,
    /// Display name; the latest one wins.
    #[schemars(length(max = 256))]
    pub agent_name: Option<String>,
    /// Model name as the provider spells it (1..128 chars).
    #[schemars(length(min = 1, max = 128))]
    pub model: String,
    /// Input tokens NOT read from or written to the prompt cache (Anthropic's `input_tokens`;
    /// OpenAI's `prompt_tokens` minus the cached ones). Every token is counted in exactly one of
    /// the four token fields, so their sum is the call's total.
    #[schemars(range(min = 0))]
    pub prompt_tokens: Option<u64>,
    /// Output tokens, reasoning tokens included.
    #[schemars(range(min = 0))]
    pub completion_tokens: Option<u64>,
    /// Input tokens read from the prompt cache.
    #[schemars(range(min = 0))]
    pub cache_read_tokens: Option<u64>,
    /// Input tokens written to the prompt cache (5-minute and 1-hour writes together).
    #[schemars(range(min = 0))]
    pub cache_write_tokens: Option<u64>,
    /// The part of `cacheWriteTokens` written with a 1-hour lifetime (priced higher); kept in
    /// `metadata`. At most `cacheWriteTokens`.
    #[schemars(range(min = 0))]
    pub cache_write_1h_tokens: Option<u64>,
    /// The part of `completionTokens` spent on reasoning, for display; kept in `metadata`. At
    /// most `completionTokens`.
    #[schemars(range(min = 0))]
    pub reasoning_tokens: Option<u64>,
    /// USD, ≥ 0. When absent, ingest prices the tokens with the price table (`dashboard-mcp
    /// prices`): the execution's cost is then `estimated`, or `unpriced` (0) when the model has
    /// no price; with a cost it is `reported`.
    #[schemars(range(min = 0))]
    pub cost: Option<f64>,
    /// Replaces a stored execution of the same `id` whose revision is lower (or equal: never);
    /// for sources that write one call several times as it grows. Without a revision the first
    /// record of an id stays.
    #[schemars(range(min = 0))]
    pub revision: Option<i64>,
    /// Latency in ms, ≥ 0; absent means unknown.
    #[schemars(range(min = 0))]
    pub duration_ms: Option<f64>,
    /// Default: true unless `error` is present.
    pub success: Option<bool>,
    /// Error message or class (≤ 4096 chars).
    #[schemars(length(max = 4096))]
    pub error: Option<String>,
    /// HTTP-like status code.
    pub status_code: Option<i64>,
    #[schemars(length(max = 128))]
    pub session_id: Option<String>,
    #[schemars(length(max = 128))]
    pub task_type: Option<String>,
    /// Free-form object, returned by dashboard_get_executions: at most 16 KiB as compact JSON
    /// (unknown fields included) and 32 levels deep.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TimestampValue {
    Rfc3339(String),
    Epoch(f64),
}

impl Default for TimestampValue {
    fn default() -> Self {
        TimestampValue::Epoch(0.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Outputs

/// The window [start, end), UTC.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Period {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub total: u64,
    pub limit: u64,
    pub offset: u64,
    pub has_more: bool,
    /// Null on the last page.
    pub next_offset: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverviewOutput {
    pub period: Period,
    pub summary: OverviewSummary,
    pub trends: OverviewTrends,
    pub budget_status: OverviewBudgetStatus,
    /// Anomaly counts of the window.
    pub anomalies: AnomalySummary,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverviewSummary {
    pub total_cost: f64,
    pub total_calls: u64,
    pub total_tokens: u64,
    pub active_agents: u64,
    pub period: Period,
    /// % of calls that succeeded; null with no calls.
    pub success_rate: Option<f64>,
    pub error_count: u64,
    pub avg_latency_ms: Option<f64>,
    /// Exact (nearest rank) up to 20,000 timed calls, else from histograms, within 0.7 %.
    pub p95_latency_ms: Option<f64>,
    pub calls_per_hour: f64,
    /// Part of totalCost estimated from tokens and prices.
    pub estimated_cost: f64,
    /// Calls with no cost and no price: counted at $0.
    pub unpriced_calls: u64,
    pub unpriced_models: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverviewTrends {
    /// % change from the previous window; null when that was 0.
    pub cost_trend: Option<f64>,
    pub calls_trend: Option<f64>,
    pub tokens_trend: Option<f64>,
    pub top_agent: Option<TopAgent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct TopAgent {
    pub id: String,
    pub cost: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentsOutput {
    pub period: Period,
    pub agents: Vec<AgentEntry>,
    /// Agents active in the window, before paging.
    pub total: u64,
    pub pagination: Pagination,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentEntry {
    pub id: String,
    pub name: String,
    pub metrics: AgentMetrics,
    pub trend: AgentTrend,
    pub budget_status: AgentBudgetStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentMetrics {
    pub total_cost: f64,
    pub total_calls: u64,
    pub total_tokens: u64,
    pub average_cost: Option<f64>,
    pub success_rate: Option<f64>,
    pub error_count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentTrend {
    pub cost_change: Option<f64>,
    pub calls_change: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelsOutput {
    pub period: Period,
    pub models: Vec<ModelEntry>,
    pub pagination: Pagination,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelEntry {
    pub name: String,
    pub metrics: ModelMetrics,
    /// Percent of the window's total cost (of calls when the cost is 0).
    pub distribution: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelMetrics {
    pub total_cost: f64,
    pub total_calls: u64,
    pub total_tokens: u64,
    pub average_cost_per_call: Option<f64>,
    pub success_rate: Option<f64>,
    pub avg_latency_ms: Option<f64>,
    pub estimated_cost: f64,
    pub unpriced_calls: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimelineOutput {
    pub period: Period,
    pub granularity: GranularityName,
    pub metric: TimelineMetric,
    pub series: Vec<TimelinePoint>,
    pub aggregate: TimelineAggregate,
    /// Cut at 80 KB: continue with start = nextStart.
    pub has_more: bool,
    pub next_start: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct TimelinePoint {
    /// Bucket start (edge buckets may be partial).
    pub timestamp: String,
    /// Null only for latency in a bucket without timed calls.
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<BTreeMap<String, Option<f64>>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimelineAggregate {
    /// Sum over the window (null for latency).
    pub total: Option<f64>,
    /// total / buckets (for latency: the call-weighted mean).
    pub average: Option<f64>,
    pub peak: Option<f64>,
    pub peak_time: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionsOutput {
    pub period: Period,
    pub executions: Vec<ExecutionItem>,
    pub pagination: Pagination,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionItem {
    pub id: String,
    pub timestamp: String,
    pub agent_id: String,
    pub model: String,
    /// Latency in ms, null when unknown.
    pub duration: Option<f64>,
    pub cost: f64,
    /// unpriced: no price known, cost 0.
    #[schemars(extend("enum" = ["reported", "estimated", "unpriced"]))]
    pub cost_source: &'static str,
    pub tokens: ExecutionTokens,
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Set when `metadata` (this many bytes) was left out to fit the 80 KB cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_omitted_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionTokens {
    pub prompt: u64,
    pub completion: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub total: u64,
}

/// What an import or `dashboard_record_usage` did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub accepted: u64,
    pub duplicates: u64,
    /// Records that replaced a stored execution of the same id with a lower `revision`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replaced: u64,
    pub rejected: u64,
    /// False when `--strict` refused the import (nothing was written).
    pub committed: bool,
    pub files: Vec<FileReport>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileReport {
    pub source: String,
    pub format: String,
    pub accepted: u64,
    pub duplicates: u64,
    /// Records that replaced a stored execution of the same id with a lower `revision`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replaced: u64,
    pub rejected: u64,
    /// The first 20 rejected records.
    pub errors: Vec<RecordError>,
    /// Fields outside the record format, by name, with how many accepted records carried each;
    /// they were kept in `metadata`. Check the spelling: a misspelt `cost` is not a cost. (Past
    /// 50 names, the rest are counted under "(other fields)".)
    pub unknown_fields: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct RecordError {
    /// 1-based line (JSONL/CSV), item of a JSON array, or record index (a request's `records`).
    pub line: u64,
    pub reason: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
