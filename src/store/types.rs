//! The store's vocabulary, shared by every engine: what goes in (`Execution`), the questions'
//! filters and the answers' shapes. Nothing here knows SQL.

use crate::money::Nanos;
use crate::time::Millis;
use crate::wire::BudgetPeriod;

/// Optional filters shared by the queries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Filter {
    pub agent: Option<String>,
    pub model: Option<String>,
}

/// Sums over a set of executions.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub calls: i64,
    pub errors: i64,
    pub tokens: i64,
    pub cost: Nanos,
    /// Executions with a known duration, and the sum of their durations.
    pub timed: i64,
    pub duration_sum: f64,
}

impl Totals {
    pub fn add(&mut self, o: &Totals) {
        self.calls += o.calls;
        self.errors += o.errors;
        self.tokens += o.tokens;
        self.cost += o.cost;
        self.timed += o.timed;
        self.duration_sum += o.duration_sum;
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentTotals {
    pub id: String,
    pub name: String,
    pub totals: Totals,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelTotals {
    pub name: String,
    pub totals: Totals,
}

/// What `grouped` splits each time unit by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKey {
    None,
    Agent,
    Model,
}

/// Executions listing filters.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    pub filter: Filter,
    /// `Some(true)`: successes only; `Some(false)`: errors only.
    pub success: Option<bool>,
}

/// One stored execution as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionRow {
    pub id: String,
    pub ts: Millis,
    pub agent_id: String,
    pub model: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub cost: Nanos,
    pub duration_ms: Option<f64>,
    pub success: bool,
    pub error: Option<String>,
    pub status_code: Option<i64>,
    pub session_id: Option<String>,
    pub task_type: Option<String>,
    pub metadata: Option<String>,
    pub cost_source: CostSource,
}

/// A validated execution, ready to store (see `ingest` for where it comes from).
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    pub id: String,
    pub ts: Millis,
    pub agent_id: String,
    pub agent_name: Option<String>,
    pub model: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub cost: Nanos,
    pub duration_ms: Option<f64>,
    pub success: bool,
    pub error: Option<String>,
    pub status_code: Option<i64>,
    pub session_id: Option<String>,
    pub task_type: Option<String>,
    /// Compact JSON text of the `metadata` object.
    pub metadata: Option<String>,
    /// A record with a revision replaces a stored execution of the same id whose revision is
    /// lower (a log line written again with more tokens); without one, the first stored wins.
    pub revision: Option<i64>,
    /// Where `cost` came from.
    pub cost_source: CostSource,
}

/// Where an execution's cost came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CostSource {
    /// The record gave it.
    #[default]
    Reported,
    /// Ingest computed it from the tokens and the price table.
    Estimated,
    /// The record gave none and the price table has no price for its model: cost 0.
    Unpriced,
}

impl CostSource {
    /// The stored code (both engines).
    pub fn code(self) -> i16 {
        match self {
            CostSource::Reported => 0,
            CostSource::Estimated => 1,
            CostSource::Unpriced => 2,
        }
    }

    pub fn from_code(c: i64) -> CostSource {
        match c {
            1 => CostSource::Estimated,
            2 => CostSource::Unpriced,
            _ => CostSource::Reported,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CostSource::Reported => "reported",
            CostSource::Estimated => "estimated",
            CostSource::Unpriced => "unpriced",
        }
    }
}

/// How a model's cost in a window was priced (`Snapshot::pricing`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pricing {
    pub model: String,
    /// The part of the model's cost estimated from its tokens and the price table.
    pub estimated_cost: Nanos,
    pub estimated_calls: i64,
    /// Calls with no cost given and no price for the model: counted at $0.
    pub unpriced_calls: i64,
}

/// The tokens of one estimated or unpriced execution, as `Store::reprice` asks for its price.
#[derive(Debug, Clone, Copy)]
pub struct Priceable<'a> {
    pub model: &'a str,
    pub prompt: i64,
    pub completion: i64,
    pub cache_read: i64,
    /// Cache writes, the 1-hour ones included.
    pub cache_write: i64,
    pub cache_write_1h: i64,
}

/// The price of a call (`None`: no price for its model).
pub type Pricer<'a> = &'a (dyn Fn(&Priceable<'_>) -> Option<Nanos> + Sync);

/// What `Store::reprice` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Repriced {
    /// Estimated and unpriced executions priced again.
    pub looked_at: u64,
    /// Those whose cost or source changed.
    pub changed: u64,
    /// Their cost before and after.
    pub cost_before: Nanos,
    pub cost_after: Nanos,
}

impl<'a> Priceable<'a> {
    /// A stored execution's tokens (prompt, completion, cache read, cache write), the 1-hour
    /// part of the cache writes read from its metadata.
    pub fn of(model: &'a str, tokens: [i64; 4], metadata: Option<&str>) -> Priceable<'a> {
        Priceable {
            model,
            prompt: tokens[0],
            completion: tokens[1],
            cache_read: tokens[2],
            cache_write: tokens[3],
            cache_write_1h: Priceable::one_hour_writes(metadata),
        }
    }

    /// The 1-hour part of the cache writes, from an execution's metadata.
    pub fn one_hour_writes(metadata: Option<&str>) -> i64 {
        metadata
            .filter(|m| m.contains("cacheWrite1hTokens"))
            .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
            .and_then(|v| v.get("cacheWrite1hTokens").and_then(|n| n.as_i64()))
            .unwrap_or(0)
    }
}

/// Where a log import stopped in one file (`sources::logs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Bytes read: the end of the last complete line.
    pub offset: u64,
    /// Lines before `offset`.
    pub line: u64,
    /// SHA-256 (hex) of the file's first `min(offset, 4096)` bytes: another file at the same
    /// path is read from the start.
    pub head: String,
    /// The format's parse state at `offset` (JSON), if it has one.
    pub state: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    /// An execution with this id is already stored; nothing changed.
    Duplicate,
    /// An execution with this id and a lower revision was stored; this record replaced it.
    Replaced,
}

/// Sums over one agent's executions in one hour, as the detector reads them (nano-dollars,
/// tokens, milliseconds). Built from the exact integer `HourSums`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HourStats {
    pub calls: i64,
    pub errors: i64,
    pub tokens: i64,
    pub cost: Nanos,
    /// Per-execution sums of squares and maxima of cost and tokens: the spread of one call, and
    /// whether an hour's excess is down to a single execution.
    pub cost_sq_sum: f64,
    pub tokens_sq_sum: f64,
    pub max_cost: Nanos,
    pub max_tokens: i64,
    /// Successful executions with a known duration, the sum of their durations and of their
    /// squares. Latency is judged on successful calls only: a fast 429 or a 30 s timeout moves
    /// the mean for reasons the error rate already reports.
    pub ok_timed: i64,
    pub ok_duration_sum: f64,
    pub ok_duration_sq_sum: f64,
    /// The slowest successful call (0 without any).
    pub ok_duration_max: f64,
}

/// One `agent_hour` row: the agent's totals of the hour, as every tool sums them, and the exact
/// integer sums the detector adds (see the module docs for the units).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HourSums {
    pub totals: Totals,
    /// Σ (cost in micro-dollars, rounded)².
    pub cost_sq: i128,
    /// Σ tokens².
    pub tokens_sq: i128,
    pub max_cost: Nanos,
    pub max_tokens: i64,
    pub ok_timed: i64,
    /// Σ duration in microseconds (rounded), successful timed calls.
    pub ok_us: i128,
    /// Σ (duration in whole milliseconds, rounded)², successful timed calls.
    pub ok_ms_sq: i128,
    /// The slowest successful call, microseconds.
    pub ok_max_us: i64,
}

/// Nano-dollars to the micro-dollars cost squares are taken in (cost ≥ 0).
fn micro(cost: Nanos) -> i128 {
    (i128::from(cost) + 500) / 1000
}

impl HourSums {
    /// Count one execution.
    pub fn add(&mut self, success: bool, tokens: i64, cost: Nanos, duration_ms: Option<f64>) {
        self.totals.add(&Totals {
            calls: 1,
            errors: i64::from(!success),
            tokens,
            cost,
            timed: i64::from(duration_ms.is_some()),
            duration_sum: duration_ms.unwrap_or(0.0),
        });
        self.cost_sq += micro(cost) * micro(cost);
        self.tokens_sq += i128::from(tokens) * i128::from(tokens);
        self.max_cost = self.max_cost.max(cost);
        self.max_tokens = self.max_tokens.max(tokens);
        if let (true, Some(d)) = (success, duration_ms) {
            // Ingest accepts 0 ≤ d ≤ 1e12 ms: both fit an i64 (and the square an i128) exactly.
            let us = (d * 1000.0).round() as i64;
            let ms = i128::from(d.round() as i64);
            self.ok_timed += 1;
            self.ok_us += i128::from(us);
            self.ok_ms_sq += ms * ms;
            self.ok_max_us = self.ok_max_us.max(us);
        }
    }

    /// Take one execution out again (`add` with the signs turned). The maxima cannot be taken
    /// back: whoever removes recomputes them from the rows left (`HourSums::max_*` are then
    /// only an upper bound until it does).
    pub fn remove(&mut self, success: bool, tokens: i64, cost: Nanos, duration_ms: Option<f64>) {
        let mut one = HourSums::default();
        one.add(success, tokens, cost, duration_ms);
        self.totals.calls -= one.totals.calls;
        self.totals.errors -= one.totals.errors;
        self.totals.tokens -= one.totals.tokens;
        self.totals.cost -= one.totals.cost;
        self.totals.timed -= one.totals.timed;
        self.totals.duration_sum -= one.totals.duration_sum;
        self.cost_sq -= one.cost_sq;
        self.tokens_sq -= one.tokens_sq;
        self.ok_timed -= one.ok_timed;
        self.ok_us -= one.ok_us;
        self.ok_ms_sq -= one.ok_ms_sq;
    }

    /// Add another group's sums.
    pub fn merge(&mut self, o: &HourSums) {
        self.totals.add(&o.totals);
        self.cost_sq += o.cost_sq;
        self.tokens_sq += o.tokens_sq;
        self.max_cost = self.max_cost.max(o.max_cost);
        self.max_tokens = self.max_tokens.max(o.max_tokens);
        self.ok_timed += o.ok_timed;
        self.ok_us += o.ok_us;
        self.ok_ms_sq += o.ok_ms_sq;
        self.ok_max_us = self.ok_max_us.max(o.ok_max_us);
    }

    /// The detector's view, in nano-dollars, tokens and milliseconds.
    pub fn stats(&self) -> HourStats {
        HourStats {
            calls: self.totals.calls,
            errors: self.totals.errors,
            tokens: self.totals.tokens,
            cost: self.totals.cost,
            cost_sq_sum: self.cost_sq as f64 * 1e6,
            tokens_sq_sum: self.tokens_sq as f64,
            max_cost: self.max_cost,
            max_tokens: self.max_tokens,
            ok_timed: self.ok_timed,
            ok_duration_sum: self.ok_us as f64 / 1000.0,
            ok_duration_sq_sum: self.ok_ms_sq as f64,
            ok_duration_max: self.ok_max_us as f64 / 1000.0,
        }
    }
}

/// One agent's non-empty hours, ascending: (start of the UTC hour in milliseconds, sums).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRun {
    pub agent_id: String,
    pub hours: Vec<(Millis, HourStats)>,
}

/// Which agents a series question reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agents {
    All,
    /// One agent, by id.
    One(String),
    /// Share `.0` of `.1` disjoint shares that together hold every agent (one per core).
    Part(i64, i64),
}

/// What was written since a generation (`Snapshot::changes_since`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    /// The (agent id, UTC hour start) pairs written to after the point, up to generation `gen`.
    Touched {
        gen: i64,
        pairs: Vec<(String, Millis)>,
    },
    /// More than the limit of pairs: start afresh from `gen`.
    TooMany { gen: i64 },
}

/// The scope of the budget that covers every agent together.
pub const GLOBAL: &str = "global";

/// A stored budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// `GLOBAL` or an agent id.
    pub scope: String,
    pub limit: Nanos,
    pub period: BudgetPeriod,
    /// Whole percents, strictly increasing.
    pub thresholds: Vec<u32>,
}

impl Budget {
    /// A budget from its stored columns (the period's name, the thresholds as JSON text), as
    /// every engine keeps them.
    pub fn from_stored(
        scope: String,
        limit: Nanos,
        period: &str,
        thresholds: &str,
    ) -> crate::error::Result<Budget> {
        use crate::error::Error;
        let period = BudgetPeriod::parse(period).ok_or_else(|| {
            Error::Internal(format!("budget {scope:?} has an unknown period {period:?}"))
        })?;
        let thresholds = serde_json::from_str(thresholds).map_err(|e| {
            Error::Internal(format!(
                "budget {scope:?} has unreadable thresholds {thresholds:?}: {e}"
            ))
        })?;
        Ok(Budget {
            scope,
            limit,
            period,
            thresholds,
        })
    }
}
