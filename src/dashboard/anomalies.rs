//! `dashboard_get_anomalies` and the overview's anomaly counts: fetch the per-agent hourly series
//! of a window plus its history in one query, run the detector, and describe what it found.

use crate::anomaly::{self, AgentSeries, Calendar, Finding, Scope, HISTORY};
use crate::error::Result;
use crate::store::Store;
use crate::store::{AgentRun, Agents};
use crate::time::{Window, Zone, HOUR};
use crate::wire::{
    AnomaliesInput, AnomaliesOutput, AnomalyItem, AnomalyMetric, AnomalySummary, ExpectedRange,
    Severity,
};

use super::memo::{Ask, Memo};
use super::{
    fit_items, joined, json_len, page_args, pagination, period, resolve_window, Dashboard,
};

/// A finding with the agent it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentFinding {
    pub agent_id: String,
    pub finding: Finding,
}

impl Dashboard {
    pub fn anomalies(&self, input: AnomaliesInput) -> Result<AnomaliesOutput> {
        let w = resolve_window(&input.window_args(), self.now())?;
        let (limit, offset) = page_args(input.limit, input.offset, 50, 500)?;
        let min_severity = input.severity.unwrap_or(Severity::Low);
        let mut found = self.detect_anomalies(&w, input.agent_id.as_deref())?;
        found.retain(|f| {
            f.finding.severity >= min_severity && input.metric.is_none_or(|m| m == f.finding.metric)
        });
        let mut summary = AnomalySummary::default();
        for f in &found {
            summary.add(f.finding.severity);
        }
        let total = found.len() as u64;
        let mut items: Vec<AnomalyItem> = found
            .iter()
            .skip(offset as usize)
            .take(limit as usize)
            .map(|f| item(f, &self.zone))
            .collect();
        let mut out = AnomaliesOutput {
            period: period(&w),
            anomalies: Vec::new(),
            summary,
            pagination: pagination(total, limit, offset, 0),
        };
        fit_items(&mut items, json_len(&out));
        out.pagination = pagination(total, limit, offset, items.len());
        out.anomalies = items;
        Ok(out)
    }

    /// Every anomaly of the hours overlapping `w`, for one agent or all, newest first (ties by
    /// agent id, then metric): from the memo (`dashboard::memo`), or with the store's rollups
    /// off, by judging every hour afresh over raw rows (the reference the memo is tested
    /// against).
    ///
    /// Only hours that have begun are judged: the part of `w` after now holds no complete
    /// data, so it is cut off (a window wholly in the future has no anomalies). This also bounds
    /// the work of any window to its length before now (`MAX_WINDOW` at most).
    pub fn detect_anomalies(&self, w: &Window, agent: Option<&str>) -> Result<Vec<AgentFinding>> {
        let now = self.now();
        let w = &Window {
            start: w.start,
            end: w.end.min(now),
        };
        if w.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = if self.store.rollups() {
            let mut memo = match self.memo.lock() {
                Ok(memo) => memo,
                // A panic while it was held (a bug) may have left it half updated: start afresh.
                Err(poisoned) => {
                    let mut memo = poisoned.into_inner();
                    *memo = Memo::default();
                    self.memo.clear_poison();
                    memo
                }
            };
            // The wait for the memo may have been long: is the answer still wanted?
            self.cancel.check()?;
            let ask = Ask {
                window: w,
                agent,
                now,
                zone: self.zone,
                cancel: &self.cancel,
            };
            memo.detect(&*self.store, &ask)?
        } else {
            self.detect_direct(w, agent)?
        };
        out.sort_by(|a, b| {
            b.finding
                .hour
                .cmp(&a.finding.hour)
                .then_with(|| a.agent_id.cmp(&b.agent_id))
                .then_with(|| a.finding.metric.cmp(&b.finding.metric))
        });
        Ok(out)
    }

    /// Judge every hour of `w` from the store's series, unsorted.
    fn detect_direct(&self, w: &Window, agent: Option<&str>) -> Result<Vec<AgentFinding>> {
        let first_hour = w.start.div_euclid(HOUR) * HOUR;
        let fetch = Window {
            start: (first_hour - HISTORY).max(0),
            end: w.end,
        };
        let scope = Scope {
            from: first_hour,
            to: w.end,
            // Complete up to the window's end: `detect_anomalies` cut it at now.
            complete_until: w.end,
            zone: self.zone,
        };
        let calendar = Calendar::new(self.zone, fetch.start, fetch.end);
        let judge = |runs: Vec<AgentRun>| -> Result<Vec<AgentFinding>> {
            let mut out = Vec::new();
            for run in runs {
                self.cancel.check()?;
                let Some(series) = AgentSeries::from_sparse(run.hours.iter().copied(), w.end)
                else {
                    continue;
                };
                let ctx = series.context(calendar.flags(series.start, series.hours.len()));
                out.extend(series.detect_in(&scope, &ctx).into_iter().map(|finding| {
                    AgentFinding {
                        agent_id: run.agent_id.clone(),
                        finding,
                    }
                }));
            }
            Ok(out)
        };
        match agent {
            Some(id) => judge(
                self.store
                    .read(|c| c.series(&fetch, &Agents::One(id.to_owned())))?,
            ),
            None => in_shares(&*self.store, &fetch, judge),
        }
    }

    /// The anomaly counts of the overview: every severity, same window and agent filter.
    pub fn anomaly_summary(&self, w: &Window, agent: Option<&str>) -> Result<AnomalySummary> {
        let mut s = AnomalySummary::default();
        for f in self.detect_anomalies(w, agent)? {
            s.add(f.finding.severity);
        }
        Ok(s)
    }
}

/// Every agent's series of `range`, judged by `judge`: the agents split by key into one share per
/// core, each share read and judged on its own thread with its own read connection (agents are
/// independent of each other).
pub(super) fn in_shares<T: Send>(
    store: &dyn Store,
    range: &Window,
    judge: impl Fn(Vec<AgentRun>) -> Result<Vec<T>> + Sync,
) -> Result<Vec<T>> {
    let parts = std::thread::available_parallelism().map_or(1, |n| n.get().min(4)) as i64;
    let shares: Vec<Result<Vec<T>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..parts)
            .map(|part| {
                let judge = &judge;
                s.spawn(move || {
                    let which = Agents::Part(part, parts);
                    judge(store.read(|c| c.series(range, &which))?)
                })
            })
            .collect();
        handles.into_iter().map(joined).collect()
    });
    let mut all = Vec::new();
    for share in shares {
        all.extend(share?);
    }
    Ok(all)
}

/// Round to `dp` decimals for display (the detector keeps full precision).
fn round(x: f64, dp: i32) -> f64 {
    let k = 10f64.powi(dp);
    (x * k).round() / k
}

/// A value of `metric` as shipped: USD for cost (from nano-dollars), rounded to what a person reads.
fn shown(metric: AnomalyMetric, x: f64) -> f64 {
    match metric {
        AnomalyMetric::Cost => round(anomaly::nanos_to_usd(x), 6),
        AnomalyMetric::Calls | AnomalyMetric::Tokens => round(x, 1),
        AnomalyMetric::ErrorRate => round(x, 2),
        AnomalyMetric::Latency => round(x, 1),
    }
}

pub(crate) fn item(f: &AgentFinding, zone: &Zone) -> AnomalyItem {
    let g = &f.finding;
    let m = g.metric;
    AnomalyItem {
        id: anomaly::anomaly_id(&f.agent_id, m, g.hour),
        timestamp: zone.format(g.hour),
        agent_id: f.agent_id.clone(),
        metric: m,
        severity: g.severity,
        score: round(g.score, 2),
        current_value: shown(m, g.current),
        expected: shown(m, g.expected),
        expected_range: ExpectedRange {
            min: shown(m, g.range.0),
            max: shown(m, g.range.1),
        },
        deviation: anomaly::deviation(g.current, g.expected).map(|d| round(d, 1)),
        description: describe(f, zone),
    }
}

/// The value in a person's units: "$12.40", "62 calls", "48.0%", "3,100 ms".
fn text(metric: AnomalyMetric, x: f64) -> String {
    match metric {
        AnomalyMetric::Cost => {
            let usd = anomaly::nanos_to_usd(x);
            if usd.abs() >= 1.0 || usd == 0.0 {
                format!("${usd:.2}")
            } else {
                format!("${usd:.4}")
            }
        }
        AnomalyMetric::Calls => format!("{} calls", grouped(x)),
        AnomalyMetric::Tokens => format!("{} tokens", grouped(x)),
        AnomalyMetric::ErrorRate => format!("{x:.1}%"),
        AnomalyMetric::Latency => format!("{} ms", grouped(x)),
    }
}

/// Rounded to a whole number with thousands separators.
fn grouped(x: f64) -> String {
    let n = x.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// One sentence a person can act on, e.g. "Cost of agent planner at 2026-11-23 14:00 UTC was
/// $12.40, 5.2× the usual $2.38 (expected $1.10–$3.60); check its recent executions for a loop or
/// a pricier model."
pub fn describe(f: &AgentFinding, zone: &Zone) -> String {
    let g = &f.finding;
    let m = g.metric;
    let when = zone
        .format(g.hour)
        .get(..16)
        .unwrap_or_default()
        .replace('T', " ");
    let what = match m {
        AnomalyMetric::Cost => "Cost",
        AnomalyMetric::Calls => "Calls",
        AnomalyMetric::Tokens => "Tokens",
        AnomalyMetric::ErrorRate => "Error rate",
        AnomalyMetric::Latency => "Mean latency of successful calls",
    };
    let now = match m {
        AnomalyMetric::ErrorRate => format!(
            "{} ({} of {} calls failed)",
            text(m, g.current),
            g.stats.errors,
            g.stats.calls
        ),
        _ => text(m, g.current),
    };
    let verb = if g.current < g.expected {
        "fell to"
    } else {
        "was"
    };
    let usual = if g.expected > 0.0 && g.current >= g.expected {
        format!(
            "{:.1}× the usual {}",
            g.current / g.expected,
            text(m, g.expected)
        )
    } else {
        format!("usually {}", text(m, g.expected))
    };
    let range = format!("{}–{}", text(m, g.range.0), text(m, g.range.1));
    let range = match m {
        // "10 calls–80 calls" reads badly: name the unit once.
        AnomalyMetric::Calls | AnomalyMetric::Tokens | AnomalyMetric::Latency => {
            let unit = text(m, 0.0).trim_start_matches('0').to_owned();
            format!("{}–{}{unit}", grouped(g.range.0), grouped(g.range.1))
        }
        _ => range,
    };
    let advice = match (m, g.current < g.expected) {
        (AnomalyMetric::Calls, true) => "check whether the agent is still running",
        (AnomalyMetric::Calls, false) => "check for a retry loop or a surge of requests",
        (AnomalyMetric::Cost, _) => "check its recent executions for a loop or a pricier model",
        (AnomalyMetric::Tokens, _) => "check for runaway prompts or a growing context",
        (AnomalyMetric::ErrorRate, _) => "check its failed executions for the error",
        (AnomalyMetric::Latency, _) => "check the model provider's status and the prompt sizes",
    };
    format!(
        "{what} of agent {} at {when} {} {verb} {now}, {usual} (expected {range}); {advice}.",
        f.agent_id,
        zone_label(zone)
    )
}

fn zone_label(zone: &Zone) -> &'static str {
    if zone.is_utc() {
        "UTC"
    } else {
        zone.name()
    }
}
