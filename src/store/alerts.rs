//! Alerts at rest: the rules, the conditions firing now and the event log with each event's
//! webhook delivery. Every engine implements `AlertLog`; `alerts` (the evaluator and the
//! deliverer) and the dashboard's alert tools use nothing else.
//!
//! Alert writes do not bump the data generation: they change no answer of the dashboard's
//! questions (the alert tool itself is not cached).

use crate::error::Result;
use crate::time::Millis;

/// A rule as stored: its id and its JSON spec (`alerts::Rule`).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRule {
    pub id: String,
    pub spec: String,
    pub created: Millis,
}

/// A condition firing now: which rule, which crossing (`key`), since when, and the notice it
/// fired with (JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    pub rule: String,
    pub key: String,
    pub since: Millis,
    pub notice: String,
}

/// Whether an event reports a crossing or its clearing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Fired,
    Resolved,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Fired => "fired",
            EventKind::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> EventKind {
        if s == "resolved" {
            EventKind::Resolved
        } else {
            EventKind::Fired
        }
    }
}

/// A condition that starts or stops firing, with the notice to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub kind: EventKind,
    pub rule: String,
    pub key: String,
    /// When it happened (the dashboard's clock).
    pub at: Millis,
    /// When its delivery is first due (the wall clock).
    pub due: Millis,
    pub notice: String,
    /// Recorded as firing or cleared without an event (a lesser threshold crossed at the same
    /// time as a higher one).
    pub quiet: bool,
}

/// Where an event's webhook delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not delivered yet; tried again at `next`.
    Pending,
    Delivered,
    /// Every attempt failed.
    Failed,
    /// Its rule was changed or removed before it was delivered.
    Cancelled,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> DeliveryState {
        match s {
            "delivered" => DeliveryState::Delivered,
            "failed" => DeliveryState::Failed,
            "cancelled" => DeliveryState::Cancelled,
            _ => DeliveryState::Pending,
        }
    }
}

/// One event of the log with its delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEvent {
    pub id: i64,
    pub rule: String,
    pub key: String,
    pub kind: EventKind,
    pub at: Millis,
    pub notice: String,
    pub state: DeliveryState,
    pub attempts: u32,
    /// When a pending delivery is tried next.
    pub next: Millis,
    /// The receiver's HTTP status of the last attempt, if it answered.
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
}

/// How one delivery attempt went.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// The receiver answered 2xx.
    Delivered { status: u16 },
    /// It failed; try again at `next`.
    Retry {
        status: Option<u16>,
        error: String,
        next: Millis,
    },
    /// It failed and was the last try.
    Failed { status: Option<u16>, error: String },
}

/// The finished events kept in the log (older ones are dropped as new ones arrive).
pub const KEPT_EVENTS: i64 = 10_000;

/// Alert rules, firing conditions and the event log, on one engine.
pub trait AlertLog: Send + Sync {
    /// Every rule, by id.
    fn rules(&self) -> Result<Vec<StoredRule>>;
    /// Create or replace rule `rule.id`; `true` when one was replaced. A changed rule starts
    /// afresh: its firing conditions are forgotten and its pending deliveries cancelled (an
    /// unchanged spec changes nothing).
    fn put_rule(&self, rule: &StoredRule) -> Result<bool>;
    /// Remove a rule, its firing conditions and its pending deliveries; `true` when it existed.
    fn remove_rule(&self, id: &str) -> Result<bool>;
    /// The conditions firing now.
    fn firing(&self) -> Result<Vec<Firing>>;
    /// Apply `changes` in one transaction: a `Fired` one only when its condition is not firing
    /// yet (and its rule exists), a `Resolved` one only when it is firing, each writing an event
    /// with a pending delivery. So two evaluators (two replicas) never send one crossing twice.
    /// Returns the events written.
    fn record(&self, changes: &[Transition]) -> Result<usize>;
    /// Claim up to `limit` deliveries due at `now` (the oldest pending event of each rule, so a
    /// rule's events go out in order), hiding them from other claims until `lease`.
    fn claim(&self, now: Millis, lease: Millis, limit: usize) -> Result<Vec<AlertEvent>>;
    /// Record an attempt of event `id`'s delivery (nothing if it is no longer pending).
    fn attempted(&self, id: i64, attempt: &Attempt) -> Result<()>;
    /// The newest `limit` events, newest first.
    fn events(&self, limit: usize) -> Result<Vec<AlertEvent>>;
}

/// The columns `AlertEvent` is read from, in order.
pub(crate) const EVENT_COLUMNS: &str =
    "id, rule_id, key, kind, at_ms, notice, state, attempts, next_ms, last_status, last_error";

/// The columns an attempt sets: (state, last_status, last_error, next_ms if it changes).
pub(crate) fn attempt_columns(
    a: &Attempt,
) -> (&'static str, Option<i64>, Option<&str>, Option<Millis>) {
    match a {
        Attempt::Delivered { status } => ("delivered", Some(*status as i64), None, None),
        Attempt::Retry {
            status,
            error,
            next,
        } => ("pending", status.map(i64::from), Some(error), Some(*next)),
        Attempt::Failed { status, error } => ("failed", status.map(i64::from), Some(error), None),
    }
}
