//! `dashboard-mcp alert add | list | rm | test`: the alert tools from a shell.

use std::io::Write;
use std::process::ExitCode;

use crate::alerts::rules::scope_text;
use crate::dashboard::Dashboard;
use crate::error::Error;
use crate::wire::{AlertAction, AlertFormat, AlertRule, AlertsInput, SetAlertInput, Severity};

use super::{to_json, AlertCommand};

pub(super) fn alert(d: &Dashboard, command: AlertCommand) -> crate::Result<ExitCode> {
    match command {
        AlertCommand::Add {
            url,
            id,
            agent,
            model,
            budget,
            projection,
            anomaly,
            error_rate,
            min_calls,
            cost,
            window,
            slack,
            secret,
            json,
        } => {
            let anomaly_severity = anomaly
                .map(|s| {
                    Severity::parse(&s)
                        .ok_or_else(|| Error::invalid("--anomaly", Severity::not_one_of(&s)))
                })
                .transpose()?;
            let out = d.set_alert(SetAlertInput {
                id,
                remove: None,
                agent_id: agent,
                model,
                budget_threshold: budget.then_some(true),
                budget_projection: projection.then_some(true),
                anomaly_severity,
                error_rate_percent: error_rate,
                min_calls,
                cost_usd: cost,
                window,
                url: Some(url),
                format: Some(if slack {
                    AlertFormat::Slack
                } else {
                    AlertFormat::Generic
                }),
                secret,
            })?;
            if json {
                outln!("{}", to_json(&out)?);
            } else if let Some(r) = &out.rule {
                outln!("{} alert {}: {}", out.action.as_str(), r.id, described(r));
            }
        }
        AlertCommand::List { json } => {
            let out = d.alerts(AlertsInput { limit: Some(20) })?;
            if json {
                outln!("{}", to_json(&out)?);
                return Ok(ExitCode::SUCCESS);
            }
            if out.rules.is_empty() {
                outln!("no alert rules; add one with `dashboard-mcp alert add URL --budget`");
            }
            for r in &out.rules {
                outln!("{:<14} {}", r.id, described(r));
            }
            if !out.firing.is_empty() {
                outln!("\nfiring now:");
                for f in &out.firing {
                    outln!("  {} since {}: {}", f.rule, f.since, f.summary);
                }
            }
            if !out.events.is_empty() {
                outln!("\nrecent alerts (newest first):");
                for e in &out.events {
                    let status = e
                        .last_status
                        .map(|s| format!(" HTTP {s}"))
                        .unwrap_or_default();
                    outln!(
                        "  #{} {} {} {} [{} after {} attempt(s){}]: {}",
                        e.id,
                        e.at,
                        e.rule,
                        e.kind.as_str(),
                        e.delivery,
                        e.attempts,
                        status,
                        e.summary
                    );
                }
            }
        }
        AlertCommand::Rm { id } => {
            let out = d.set_alert(SetAlertInput {
                id: Some(id),
                remove: Some(true),
                ..SetAlertInput::default()
            })?;
            match out.action {
                AlertAction::Removed => outln!("removed alert {}", out.id),
                _ => outln!("there is no alert {}; nothing to remove", out.id),
            }
        }
        AlertCommand::Test { id } => {
            match crate::alerts::test(d, &id, std::time::Duration::from_secs(10))? {
                Ok(status) => outln!("delivered: the receiver answered HTTP {status}"),
                Err((_, why)) => {
                    eprintln!("error: not delivered: {why}");
                    return Ok(ExitCode::from(1));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// "budgetThreshold for agent planner → https://hooks.slack.com/… (slack, signed)".
fn described(r: &AlertRule) -> String {
    format!(
        "{} for {} → {} ({}{})",
        r.conditions.join(", "),
        scope_text(r.agent_id.as_deref(), r.model.as_deref()),
        r.url,
        r.format.as_str(),
        if r.signed { ", signed" } else { "" }
    )
}
