//! `dashboard_get_alerts` and `dashboard_set_alert`: the rules, what is firing, the recent
//! events with their delivery, and setting or removing a rule.

use crate::alerts::rules::{check_id, Rule};
use crate::error::{Error, Result};
use crate::store::alerts::{AlertEvent, DeliveryState, StoredRule};
use crate::time::format_utc;
use crate::wire::{
    AlertAction, AlertEventItem, AlertFiring, AlertNotice, AlertsInput, AlertsOutput, NoticeKind,
    SetAlertInput, SetAlertOutput,
};

use super::Dashboard;

/// The most alert rules one store holds.
pub const MAX_RULES: usize = 100;

/// The summary stored in a notice's JSON (empty if it cannot be read).
fn summary_of(notice: &str) -> (String, Option<NoticeKind>) {
    match serde_json::from_str::<AlertNotice>(notice) {
        Ok(n) => (n.summary, Some(n.kind)),
        Err(_) => (String::new(), None),
    }
}

fn event_item(e: AlertEvent) -> AlertEventItem {
    let (summary, kind) = summary_of(&e.notice);
    AlertEventItem {
        id: e.id,
        rule: e.rule,
        kind: kind.unwrap_or(match e.kind {
            crate::store::alerts::EventKind::Fired => NoticeKind::Fired,
            crate::store::alerts::EventKind::Resolved => NoticeKind::Resolved,
        }),
        summary,
        at: format_utc(e.at),
        delivery: e.state.as_str().to_owned(),
        attempts: e.attempts,
        last_status: e.last_status,
        last_error: e.last_error,
        next_attempt: (e.state == DeliveryState::Pending).then(|| format_utc(e.next)),
    }
}

impl Dashboard {
    pub fn alerts(&self, input: AlertsInput) -> Result<AlertsOutput> {
        let limit = input.limit.unwrap_or(20);
        if !(1..=200).contains(&limit) {
            return Err(Error::invalid(
                "limit",
                format!("{limit} is outside 1..200"),
            ));
        }
        let log = self.store.alerts();
        let rules = log
            .rules()?
            .iter()
            .map(|r| Rule::from_spec(&r.spec).map(|r| r.shown()))
            .collect::<Result<Vec<_>>>()?;
        let firing = log
            .firing()?
            .into_iter()
            .map(|f| AlertFiring {
                summary: summary_of(&f.notice).0,
                rule: f.rule,
                key: f.key,
                since: format_utc(f.since),
            })
            .collect();
        let events = log
            .events(limit as usize)?
            .into_iter()
            .map(event_item)
            .collect();
        Ok(AlertsOutput {
            rules,
            firing,
            events,
            as_of: format_utc(self.now()),
        })
    }

    pub fn set_alert(&self, input: SetAlertInput) -> Result<SetAlertOutput> {
        let log = self.store.alerts();
        if input.remove == Some(true) {
            let id = input.id.ok_or_else(|| {
                Error::invalid("id", "missing; give the id of the rule to remove")
            })?;
            check_id(&id)?;
            let removed = log.remove_rule(&id)?;
            return Ok(SetAlertOutput {
                action: if removed {
                    AlertAction::Removed
                } else {
                    AlertAction::NotFound
                },
                id,
                rule: None,
            });
        }
        let rule = Rule::from_input(input)?;
        let rules = log.rules()?;
        let before = rules.iter().find(|r| r.id == rule.id).cloned();
        // Every rule is evaluated about once a second: their number is bounded.
        if before.is_none() && rules.len() >= MAX_RULES {
            return Err(Error::invalid(
                "id",
                format!("{MAX_RULES} rules exist, the most there may be; remove one first"),
            ));
        }
        let stored = StoredRule {
            id: rule.id.clone(),
            spec: rule.spec(),
            created: self.now(),
        };
        log.put_rule(&stored)?;
        Ok(SetAlertOutput {
            action: match before {
                None => AlertAction::Created,
                Some(b) if b.spec == stored.spec => AlertAction::Unchanged,
                Some(_) => AlertAction::Replaced,
            },
            id: rule.id.clone(),
            rule: Some(rule.shown()),
        })
    }
}
