//! Evaluating rules: what each condition looks like now (`observe`), and the crossings and
//! clearings that makes against what is firing (`transitions`).
//!
//! - Budget thresholds: one key per budget and threshold, on while `spent / limit` is at or above
//!   it. When several cross (or clear) at once, only the highest one is announced; the others
//!   are recorded quietly, so a jump from 40 % to 120 % is one alert, not three.
//! - Budget projection: on while the budget is not on track (projected over its limit, or spent).
//! - Anomalies: one key per agent and metric, on while the current or the previous hour holds an
//!   anomaly at or above the severity; it clears after a whole hour without one.
//! - Error rate and cost over a trailing window: on at or above the threshold (with at least
//!   `minCalls` calls for the rate); off below 90 % of it (or under `minCalls`); in between the
//!   state stays, so a value hovering at the threshold does not flap.

use std::collections::HashMap;

use crate::dashboard::anomalies::item;
use crate::dashboard::{Dashboard, Evaluated};
use crate::error::Result;
use crate::money::to_usd;
use crate::store::alerts::{EventKind, Firing, Transition};
use crate::store::{Filter, GLOBAL};
use crate::time::{format_utc, Millis, Window, HOUR};
use crate::wire::{AlertCondition, AlertNotice, NoticeKind, Severity};

use super::rules::{show_window, Rule};

/// Below this share of the threshold an error-rate or cost condition clears.
const CLEAR_AT: f64 = 0.9;

/// One condition of one rule as it is now.
#[derive(Debug, Clone)]
pub struct Observation {
    pub key: String,
    /// `Some(true)` on, `Some(false)` off, `None` unchanged (between the clear and fire levels).
    pub on: Option<bool>,
    /// Transitions of one group at one evaluation are announced once (the highest `rank`).
    pub group: String,
    pub rank: f64,
    /// The notice if it fires now (its summary), and the summary if it clears now.
    pub notice: AlertNotice,
    pub cleared: String,
}

fn notice(rule: &Rule, condition: AlertCondition, key: String, now: Millis) -> AlertNotice {
    AlertNotice {
        id: 0,
        kind: NoticeKind::Fired,
        rule: rule.id.clone(),
        condition,
        key,
        agent_id: rule.agent_id.clone(),
        model: rule.model.clone(),
        summary: String::new(),
        value: 0.0,
        threshold: 0.0,
        severity: None,
        at: format_utc(now),
        since: None,
    }
}

fn budget_name(scope: &str, period: &str) -> String {
    let period = match period {
        "day" => "daily",
        "week" => "weekly",
        "month" => "monthly",
        other => other,
    };
    if scope == GLOBAL {
        format!("The global {period} budget")
    } else {
        format!("{scope}'s {period} budget")
    }
}

fn usd(n: i64) -> String {
    format!("${:.2}", to_usd(n))
}

/// Every condition of `rule` at `now`.
pub fn observe(d: &Dashboard, rule: &Rule, now: Millis) -> Result<Vec<Observation>> {
    let mut out = Vec::new();
    if rule.budget_threshold || rule.budget_projection {
        let evaluated = d.store.read(|s| {
            let budgets = s.budgets(rule.agent_id.as_deref())?;
            budgets
                .into_iter()
                .map(|b| Evaluated::at(s, &d.zone, b, now))
                .collect::<Result<Vec<_>>>()
        })?;
        for e in &evaluated {
            budget_observations(rule, e, now, &mut out);
        }
    }
    if let Some(min) = rule.anomaly_severity {
        anomaly_observations(d, rule, min, now, &mut out)?;
    }
    if rule.error_rate_percent.is_some() || rule.cost_nanos.is_some() {
        let w = Window {
            start: now - rule.window_ms,
            end: now,
        };
        let f = Filter {
            agent: rule.agent_id.clone(),
            model: rule.model.clone(),
        };
        let t = d.store.read(|s| s.totals(&w, &f))?;
        let span = format!("the last {}", show_window(rule.window_ms));
        let scope = rule.scope();
        if let Some(pct) = rule.error_rate_percent {
            let rate = if t.calls > 0 {
                t.errors as f64 * 100.0 / t.calls as f64
            } else {
                0.0
            };
            let enough = t.calls >= rule.min_calls as i64;
            // Too few calls neither fires nor clears (a quiet window near minCalls must not
            // flap); an empty window has rate 0 and clears.
            let on = if enough && rate >= pct {
                Some(true)
            } else if rate < pct * CLEAR_AT {
                Some(false)
            } else {
                None
            };
            let mut n = notice(rule, AlertCondition::ErrorRate, "errorRate".into(), now);
            n.value = round2(rate);
            n.threshold = pct;
            n.summary = format!(
                "Error rate of {scope} over {span} is {:.1}% ({} of {} calls failed), at or above {pct}%.",
                rate, t.errors, t.calls
            );
            let cleared = format!(
                "Error rate of {scope} over {span} is down to {rate:.1}% ({} of {} calls), under {pct}%.",
                t.errors, t.calls
            );
            out.push(Observation {
                group: n.key.clone(),
                key: n.key.clone(),
                on,
                rank: 0.0,
                notice: n,
                cleared,
            });
        }
        if let Some(limit) = rule.cost_nanos {
            let on = if t.cost >= limit {
                Some(true)
            } else if (t.cost as f64) < limit as f64 * CLEAR_AT {
                Some(false)
            } else {
                None
            };
            let mut n = notice(rule, AlertCondition::Cost, "cost".into(), now);
            n.value = to_usd(t.cost);
            n.threshold = to_usd(limit);
            n.summary = format!(
                "Cost of {scope} over {span} is {} ({} calls), at or above {}.",
                usd(t.cost),
                t.calls,
                usd(limit)
            );
            out.push(Observation {
                group: n.key.clone(),
                key: n.key.clone(),
                on,
                rank: 0.0,
                cleared: format!(
                    "Cost of {scope} over {span} is down to {}, under {}.",
                    usd(t.cost),
                    usd(limit)
                ),
                notice: n,
            });
        }
    }
    Ok(out)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn budget_observations(rule: &Rule, e: &Evaluated, now: Millis, out: &mut Vec<Observation>) {
    let b = &e.budget;
    let name = budget_name(&b.scope, b.period.as_str());
    let agent = (b.scope != GLOBAL).then(|| b.scope.clone());
    let pct = e.percent_used();
    let figures = format!(
        "{} of {} spent ({pct:.1}%), {} projected by the period's end",
        usd(e.spent),
        usd(b.limit),
        usd(e.projected)
    );
    if rule.budget_threshold {
        let crossed = e.thresholds_crossed();
        for &t in &b.thresholds {
            let key = format!("budget:{}:{t}", b.scope);
            let mut n = notice(rule, AlertCondition::BudgetThreshold, key.clone(), now);
            n.agent_id = agent.clone();
            n.value = round2(pct);
            n.threshold = f64::from(t);
            n.summary = format!("{name} passed {t}%: {figures}.");
            out.push(Observation {
                group: format!("budget:{}", b.scope),
                key,
                on: Some(crossed.contains(&t)),
                rank: f64::from(t),
                cleared: format!("{name} is under {t}% again: {figures}."),
                notice: n,
            });
        }
    }
    if rule.budget_projection {
        let key = format!("projection:{}", b.scope);
        let mut n = notice(rule, AlertCondition::BudgetProjection, key.clone(), now);
        n.agent_id = agent;
        n.value = to_usd(e.projected);
        n.threshold = to_usd(b.limit);
        n.summary = format!("{name} is projected over its limit: {figures}.");
        out.push(Observation {
            group: key.clone(),
            key,
            // Fires when no longer on track; clears only once the projection is back under
            // 90 % of the limit, so spending at about the limit's pace does not flap.
            on: if !e.on_track() {
                Some(true)
            } else if (e.projected as f64) <= b.limit as f64 * CLEAR_AT {
                Some(false)
            } else {
                None
            },
            rank: 0.0,
            cleared: format!("{name} is on track again: {figures}."),
            notice: n,
        });
    }
}

fn anomaly_observations(
    d: &Dashboard,
    rule: &Rule,
    min: Severity,
    now: Millis,
    out: &mut Vec<Observation>,
) -> Result<()> {
    let hour = now.div_euclid(HOUR) * HOUR;
    let w = Window {
        start: hour - HOUR,
        end: now,
    };
    let mut found = d.detect_anomalies(&w, rule.agent_id.as_deref())?;
    found.retain(|f| f.finding.severity >= min);
    // Newest first, so the notice describes the latest hour of each agent and metric.
    found.sort_by_key(|f| std::cmp::Reverse(f.finding.hour));
    let mut seen = HashMap::new();
    for f in &found {
        let a = item(f, &d.zone);
        let key = format!("anomaly:{}:{}", a.agent_id, a.metric.as_str());
        if seen.insert(key.clone(), ()).is_some() {
            continue;
        }
        let mut n = notice(rule, AlertCondition::Anomaly, key.clone(), now);
        n.agent_id = Some(a.agent_id.clone());
        n.value = a.current_value;
        n.threshold = a.expected;
        n.severity = Some(a.severity);
        n.summary = format!(
            "{} anomaly, {} {}: {}",
            capitalised(a.severity.as_str()),
            a.agent_id,
            a.metric.as_str(),
            a.description
        );
        out.push(Observation {
            group: key.clone(),
            key,
            on: Some(true),
            rank: 0.0,
            // Never used: an anomaly is observed only while present; its clearing is
            // written by `transitions` (an hour after it fired, when none is left).
            cleared: String::new(),
            notice: n,
        });
    }
    Ok(())
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// The crossings and clearings of `rule` given what it observes and what is firing.
/// Conditions that are firing but no longer observed at all (a budget removed, an anomaly
/// gone from the last two hours) clear.
pub fn transitions(
    rule: &Rule,
    observed: Vec<Observation>,
    firing: &[&Firing],
    now: Millis,
    due: Millis,
) -> Vec<Transition> {
    let firing_now: HashMap<&str, &Firing> = firing.iter().map(|f| (f.key.as_str(), *f)).collect();
    let mut out: Vec<(String, f64, Transition)> = Vec::new();
    let mut keys = std::collections::HashSet::new();
    for o in observed {
        keys.insert(o.key.clone());
        let was = firing_now.get(o.key.as_str());
        let (kind, mut n) = match (o.on, was) {
            (Some(true), None) => (EventKind::Fired, o.notice),
            (Some(false), Some(f)) => {
                let mut n = o.notice;
                n.kind = NoticeKind::Resolved;
                n.summary = o.cleared;
                n.since = Some(format_utc(f.since));
                (EventKind::Resolved, n)
            }
            _ => continue,
        };
        n.at = format_utc(now);
        out.push((
            o.group,
            o.rank,
            Transition {
                kind,
                rule: rule.id.clone(),
                key: o.key,
                at: now,
                due,
                notice: serde_json::to_string(&n).unwrap_or_default(),
                quiet: false,
            },
        ));
    }
    for f in firing {
        if keys.contains(&f.key) {
            continue;
        }
        let mut n: AlertNotice = match serde_json::from_str(&f.notice) {
            Ok(n) => n,
            Err(_) => notice(rule, AlertCondition::Cost, f.key.clone(), now),
        };
        n.kind = NoticeKind::Resolved;
        n.summary = if let Some(what) = f.key.strip_prefix("anomaly:") {
            // A finding of the current hour may vanish as the hour fills up: an anomaly
            // clears only when an hour has passed since it fired and none is left.
            if now - f.since < HOUR {
                continue;
            }
            let (agent, metric) = what.rsplit_once(':').unwrap_or((what, "series"));
            format!(
                "{agent}'s {metric} is back within its usual range: no anomaly at or above {} in the current or the previous hour.",
                rule.anomaly_severity.unwrap_or(Severity::Low).as_str()
            )
        } else {
            format!("No longer applies: {}", n.summary)
        };
        n.since = Some(format_utc(f.since));
        n.at = format_utc(now);
        out.push((
            f.key.clone(),
            0.0,
            Transition {
                kind: EventKind::Resolved,
                rule: rule.id.clone(),
                key: f.key.clone(),
                at: now,
                due,
                notice: serde_json::to_string(&n).unwrap_or_default(),
                quiet: false,
            },
        ));
    }
    // Within a group, only the highest-ranked crossing (and clearing) is announced.
    // A crossing announces the highest (80 % rather than 50 %), a clearing the lowest ("under
    // 50 % again" says it is under 80 % too).
    let mut loudest: HashMap<(String, EventKind), f64> = HashMap::new();
    for (g, rank, t) in &out {
        let e = loudest.entry((g.clone(), t.kind)).or_insert(*rank);
        *e = match t.kind {
            EventKind::Fired => e.max(*rank),
            EventKind::Resolved => e.min(*rank),
        };
    }
    out.into_iter()
        .map(|(g, rank, mut t)| {
            t.quiet = loudest.get(&(g, t.kind)).is_some_and(|&top| rank != top);
            t
        })
        .collect()
}
