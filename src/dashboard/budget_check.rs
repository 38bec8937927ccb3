//! `dashboard_check_budget`: may an agent spend an estimated amount now? The agent's own budget
//! and the global one are evaluated now (as `dashboard_get_budgets` does) with the estimate
//! added. A budget blocks when spent + estimate would exceed its limit, or when it is spent up
//! already. Advisory: the product is not in the call path and enforces nothing.

use crate::error::{Error, Result};
use crate::input::{key_problem, quoted};
use crate::money::{self, to_usd, Nanos};
use crate::store::GLOBAL;
use crate::time::format_utc;
use crate::wire::{BudgetCheck, BudgetPeriod, CheckBudgetInput, CheckBudgetOutput};

use super::{budgets::percent_of, Dashboard, Evaluated};

/// The largest estimate taken, USD (a record's cost cap).
const MAX_ESTIMATE_USD: f64 = 1_000_000.0;

fn agent_of(given: &str) -> Result<String> {
    let n = given.chars().count();
    if n == 0 || n > 128 {
        return Err(Error::invalid(
            "agentId",
            format!(
                "{} is {n} characters long; an agent id has 1..=128",
                quoted(given)
            ),
        ));
    }
    if given.trim().eq_ignore_ascii_case(GLOBAL) {
        return Err(Error::invalid(
            "agentId",
            "\"global\" is the scope of all agents together, not an agent; give the agent's id",
        ));
    }
    if let Some(why) = key_problem(given) {
        return Err(Error::invalid(
            "agentId",
            format!("{} {why}", quoted(given)),
        ));
    }
    Ok(given.to_owned())
}

fn estimate_of(given: Option<f64>) -> Result<Nanos> {
    match given {
        None => Ok(0),
        Some(x) if x.is_finite() && (0.0..=MAX_ESTIMATE_USD).contains(&x) => money::from_f64(x)
            .ok_or_else(|| {
                Error::invalid("estimatedCostUsd", format!("{x} is not a number of USD"))
            }),
        Some(x) => Err(Error::invalid(
            "estimatedCostUsd",
            format!("{x} is not a number of USD in 0..={MAX_ESTIMATE_USD}"),
        )),
    }
}

fn adjective(p: BudgetPeriod) -> &'static str {
    match p {
        BudgetPeriod::Day => "daily",
        BudgetPeriod::Week => "weekly",
        BudgetPeriod::Month => "monthly",
    }
}

/// "the global monthly budget of $1000" / "planner's weekly budget of $100".
fn named(e: &Evaluated) -> String {
    let whose = if e.budget.scope == GLOBAL {
        "the global".to_owned()
    } else {
        format!("{}'s", e.budget.scope)
    };
    format!(
        "{whose} {} budget of ${}",
        adjective(e.budget.period),
        to_usd(e.budget.limit)
    )
}

fn blocks(e: &Evaluated, estimate: Nanos) -> bool {
    e.spent >= e.budget.limit || e.spent + estimate > e.budget.limit
}

impl Dashboard {
    /// `dashboard_check_budget`.
    pub fn check_budget(&self, input: CheckBudgetInput) -> Result<CheckBudgetOutput> {
        let agent = agent_of(&input.agent_id)?;
        let estimate = estimate_of(input.estimated_cost_usd)?;
        let now = self.now();
        let evaluated: Vec<Evaluated> = self.store.read(|c| {
            let mut v = Vec::new();
            for scope in [agent.as_str(), GLOBAL] {
                if let Some(b) = c.budgets(Some(scope))?.into_iter().next() {
                    v.push(Evaluated::at(c, &self.zone, b, now)?);
                }
            }
            Ok(v)
        })?;
        let left = |e: &Evaluated| e.budget.limit - e.spent - estimate;
        // The first that blocks (the agent's before the global), else the one with least left.
        let deciding = evaluated
            .iter()
            .find(|e| blocks(e, estimate))
            .or_else(|| evaluated.iter().min_by_key(|e| left(e)));
        let budgets: Vec<BudgetCheck> = evaluated
            .iter()
            .map(|e| BudgetCheck {
                scope: e.budget.scope.clone(),
                limit_usd: to_usd(e.budget.limit),
                period: e.budget.period,
                period_end: self.zone.format(e.end),
                spent_usd: to_usd(e.spent),
                remaining_usd: to_usd(left(e)),
                percent_used: percent_of(
                    i128::from(e.spent) + i128::from(estimate),
                    e.budget.limit.into(),
                ),
                projected_usd: to_usd(e.projected + estimate),
                blocks: blocks(e, estimate),
            })
            .collect();
        let allowed = !budgets.iter().any(|b| b.blocks);
        let usd = to_usd(estimate);
        let reason = match deciding {
            None => format!(
                "allowed: no budget applies to {agent} (none of its own, and no global budget)"
            ),
            Some(e) if !allowed && e.spent >= e.budget.limit => format!(
                "blocked by {}: ${} is spent already this period (ends {})",
                named(e),
                to_usd(e.spent),
                self.zone.format(e.end)
            ),
            Some(e) if !allowed => format!(
                "blocked by {}: ${} spent this period + ${usd} estimated = ${}, ${} over (the period ends {})",
                named(e),
                to_usd(e.spent),
                to_usd(e.spent + estimate),
                to_usd(-left(e)),
                self.zone.format(e.end)
            ),
            Some(e) => format!(
                "allowed: after ${usd}, ${} is left of {} (the tightest that applies)",
                to_usd(left(e)),
                named(e)
            ),
        };
        let of_deciding = |f: fn(&BudgetCheck) -> f64| {
            deciding.and_then(|d| budgets.iter().find(|b| b.scope == d.budget.scope).map(f))
        };
        Ok(CheckBudgetOutput {
            allowed,
            blocked_by: deciding
                .filter(|_| !allowed)
                .map(|d| d.budget.scope.clone()),
            reason,
            remaining_usd: of_deciding(|b| b.remaining_usd),
            percent_used: of_deciding(|b| b.percent_used),
            projected_usd: of_deciding(|b| b.projected_usd),
            budgets,
            as_of: format_utc(now),
        })
    }
}
