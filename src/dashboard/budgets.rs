//! Budgets (SPEC §2.2): each budget's current period in the configured zone, what was spent in
//! it, the projection to its end, status and alerts; `dashboard_get_budgets`,
//! `dashboard_set_budget`, and the budget summaries of the overview and the agents list.
//!
//! Every amount stays in integer nano-dollars until the answer is built, so "spent exactly at the
//! limit" is exactly 100 % and the threshold comparisons are exact.

use std::collections::{HashMap, HashSet};

use chrono::{Datelike, Days, Months, NaiveDate};

use crate::error::{Error, Result};
use crate::input::{key_problem, quoted};
use crate::money::{self, to_usd, Nanos, NANOS_PER_USD};
use crate::store::{Budget, Snapshot, GLOBAL};
use crate::time::{format_utc, Millis, Zone, DAY};
use crate::wire::{
    AgentBudgetStatus, BudgetAction, BudgetEntry, BudgetPeriod, BudgetState, BudgetsInput,
    BudgetsOutput, OverviewBudgetStatus, SetBudgetInput, SetBudgetOutput,
};

use super::{fit_items, json_len, page_args, pagination, Dashboard};

/// Thresholds of a budget set without any.
pub const DEFAULT_THRESHOLDS: [u32; 3] = [50, 80, 100];
/// The largest limit accepted, in USD (keeps sums of limits far from overflow).
const MAX_LIMIT_USD: i64 = 1_000_000_000;
const MAX_THRESHOLD: i64 = 1000;
const MAX_THRESHOLDS: usize = 10;
const MAX_SCOPE_CHARS: usize = 128;

/// The current period `[start, end)` of a `period` budget at `now`: local midnight of the day,
/// of the ISO week's Monday or of the month's first day, to the next such midnight. DST makes a
/// day 23 or 25 hours long, and the weeks and months holding one an hour shorter or longer.
pub fn period_bounds(zone: &Zone, period: BudgetPeriod, now: Millis) -> (Millis, Millis) {
    let today = zone.date_of(now);
    let (first, next) = match period {
        BudgetPeriod::Day => (today, today.succ_opt()),
        BudgetPeriod::Week => {
            let monday = today - Days::new(u64::from(today.weekday().num_days_from_monday()));
            (monday, monday.checked_add_days(Days::new(7)))
        }
        BudgetPeriod::Month => {
            let first = today.with_day(1).unwrap_or(today);
            (first, first.checked_add_months(Months::new(1)))
        }
    };
    (
        zone.start_of_date(first),
        zone.start_of_date(next.unwrap_or(NaiveDate::MAX)),
    )
}

/// Is `now` early in `[p0, p1)`: less than min(24 h, 25 % of the period) elapsed?
pub fn is_early(p0: Millis, p1: Millis, now: Millis) -> bool {
    let elapsed = now - p0;
    elapsed < DAY && 4 * elapsed < p1 - p0
}

/// Spend expected by `p1`. Early in the period (see `is_early`), `spent` plus the trailing
/// 24 h run-rate over the rest of the period; later, `spent` scaled up linearly to the whole
/// period. Rounded to the nearest nano-dollar.
pub fn project(spent: Nanos, trailing_24h: Nanos, p0: Millis, p1: Millis, now: Millis) -> Nanos {
    let projected = if is_early(p0, p1, now) {
        i128::from(spent) + div_round(i128::from(trailing_24h) * i128::from(p1 - now), DAY.into())
    } else {
        div_round(i128::from(spent) * i128::from(p1 - p0), (now - p0).into())
    };
    projected.clamp(0, i64::MAX.into()) as Nanos
}

/// `n / d` rounded half up, for `n >= 0`, `d > 0`.
fn div_round(n: i128, d: i128) -> i128 {
    (n + d / 2) / d
}

/// `spent / limit × 100` as the double nearest the exact quotient (multiplying first keeps
/// 11 of 20 at 55, not 55.00000000000001).
pub(super) fn percent_of(spent: i128, limit: i128) -> f64 {
    (spent * 100) as f64 / limit as f64
}

/// Dollars of a sum that may exceed an `i64` of nano-dollars.
fn usd_wide(n: i128) -> f64 {
    i64::try_from(n)
        .map(to_usd)
        .unwrap_or(n as f64 / NANOS_PER_USD as f64)
}

/// A budget evaluated at one instant.
#[derive(Debug, Clone)]
pub struct Evaluated {
    pub budget: Budget,
    pub start: Millis,
    pub end: Millis,
    pub spent: Nanos,
    pub projected: Nanos,
}

impl Evaluated {
    /// Evaluate `budget` at `now`, its periods following `zone`.
    pub fn at(c: &dyn Snapshot, zone: &Zone, budget: Budget, now: Millis) -> Result<Evaluated> {
        let (start, end) = period_bounds(zone, budget.period, now);
        let spent = c.cost_between(&budget.scope, start, now)?;
        let trailing = if is_early(start, end, now) {
            c.cost_between(&budget.scope, now - DAY, now)?
        } else {
            0
        };
        Ok(Evaluated {
            projected: project(spent, trailing, start, end, now),
            budget,
            start,
            end,
            spent,
        })
    }

    pub fn percent_used(&self) -> f64 {
        percent_of(self.spent.into(), self.budget.limit.into())
    }

    /// Projected to stay within the limit, and not spent up already.
    pub fn on_track(&self) -> bool {
        self.spent < self.budget.limit && self.projected <= self.budget.limit
    }

    /// The thresholds reached: `spent / limit * 100 >= t`, compared exactly.
    pub fn thresholds_crossed(&self) -> Vec<u32> {
        let spent = i128::from(self.spent) * 100;
        self.budget
            .thresholds
            .iter()
            .copied()
            .filter(|&t| spent >= i128::from(t) * i128::from(self.budget.limit))
            .collect()
    }

    pub fn state(&self) -> BudgetState {
        if self.spent >= self.budget.limit {
            BudgetState::Exceeded
        } else if self.thresholds_crossed().iter().any(|&t| t < 100) {
            BudgetState::Warning
        } else {
            BudgetState::Ok
        }
    }

    pub fn entry(&self, zone: &Zone) -> BudgetEntry {
        BudgetEntry {
            scope: self.budget.scope.clone(),
            limit_usd: to_usd(self.budget.limit),
            period: self.budget.period,
            alert_thresholds: self.budget.thresholds.clone(),
            period_start: zone.format(self.start),
            period_end: zone.format(self.end),
            spent: to_usd(self.spent),
            percent_used: self.percent_used(),
            projected: to_usd(self.projected),
            on_track: self.on_track(),
            status: self.state(),
            thresholds_crossed: self.thresholds_crossed(),
        }
    }
}

/// Is `scope` the global scope? Any case, surrounding space ignored: an agent id that reads
/// "global" cannot have a budget of its own.
fn is_global(scope: &str) -> bool {
    scope.trim().eq_ignore_ascii_case(GLOBAL)
}

/// The stored form of a scope given by a caller.
fn scope_of(given: &str) -> Result<String> {
    if is_global(given) {
        return Ok(GLOBAL.to_owned());
    }
    let n = given.chars().count();
    if n == 0 || n > MAX_SCOPE_CHARS {
        return Err(Error::invalid(
            "scope",
            format!("{} is {n} characters long; a scope is \"global\" or an agent id of 1..={MAX_SCOPE_CHARS} characters", quoted(given)),
        ));
    }
    if let Some(why) = key_problem(given) {
        return Err(Error::invalid(
            "scope",
            format!(
                "{} {why}; a scope is \"global\" or an agent id",
                quoted(given)
            ),
        ));
    }
    Ok(given.to_owned())
}

/// A float for an error message: plain decimals for ordinary magnitudes, else scientific.
struct ShortFloat(f64);

impl std::fmt::Display for ShortFloat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = self.0.abs();
        if a != 0.0 && !(1e-9..1e15).contains(&a) {
            write!(f, "{:e}", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

fn limit_of(limit: f64) -> Result<Nanos> {
    // Shown short: `5e-324` rather than its 300 decimal digits.
    let given = ShortFloat(limit);
    let too_small = || {
        Error::invalid(
            "limitUsd",
            format!("{given} is not allowed; the limit must be a number of USD greater than 0 (at most {MAX_LIMIT_USD}), or null to delete the budget"),
        )
    };
    if !limit.is_finite() || limit <= 0.0 {
        return Err(too_small());
    }
    match money::from_f64(limit) {
        Some(n) if n > 0 && n <= MAX_LIMIT_USD * NANOS_PER_USD => Ok(n),
        Some(0) => Err(Error::invalid(
            "limitUsd",
            format!("{given} rounds to 0 nano-dollars; the limit must be greater than 0"),
        )),
        _ => Err(Error::invalid(
            "limitUsd",
            format!("{given} is too large; the limit may be at most {MAX_LIMIT_USD} USD"),
        )),
    }
}

fn thresholds_of(given: Option<Vec<i64>>) -> Result<Vec<u32>> {
    let Some(given) = given else {
        return Ok(DEFAULT_THRESHOLDS.to_vec());
    };
    let shown = format!("{given:?}");
    if given.is_empty() || given.len() > MAX_THRESHOLDS {
        return Err(Error::invalid(
            "alertThresholds",
            format!(
                "{shown} has {} thresholds; give 1..={MAX_THRESHOLDS} percents, e.g. [50, 80, 100]",
                given.len()
            ),
        ));
    }
    if let Some(t) = given.iter().find(|t| !(1..=MAX_THRESHOLD).contains(*t)) {
        return Err(Error::invalid(
            "alertThresholds",
            format!("{t} in {shown} is out of range; each threshold is a whole percent 1..={MAX_THRESHOLD}"),
        ));
    }
    if given.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::invalid(
            "alertThresholds",
            format!("{shown} is not strictly increasing; give distinct percents in increasing order, e.g. [50, 80, 100]"),
        ));
    }
    Ok(given.into_iter().map(|t| t as u32).collect())
}

impl Dashboard {
    /// `dashboard_get_budgets`: every budget (or one scope's) evaluated now, paged.
    pub fn budgets(&self, input: BudgetsInput) -> Result<BudgetsOutput> {
        let now = self.now();
        let (limit, offset) = page_args(input.limit, input.offset, 100, 500)?;
        let scope = input.scope.as_deref().map(scope_of).transpose()?;
        let (total, evaluated) = self.store.read(|c| {
            let all = match &scope {
                Some(s) => c.budgets(Some(s))?,
                None => c.budgets(None)?,
            };
            let page = all
                .iter()
                .skip(offset as usize)
                .take(limit as usize)
                .map(|budget| Evaluated::at(c, &self.zone, budget.clone(), now))
                .collect::<Result<Vec<_>>>()?;
            Ok((all.len() as u64, page))
        })?;
        let mut budgets: Vec<BudgetEntry> = evaluated.iter().map(|e| e.entry(&self.zone)).collect();
        let mut out = BudgetsOutput {
            as_of: format_utc(now),
            time_zone: self.zone.name().to_owned(),
            budgets: Vec::new(),
            pagination: pagination(total, limit, offset, 0),
        };
        fit_items(&mut budgets, json_len(&out));
        out.pagination = pagination(total, limit, offset, budgets.len());
        out.budgets = budgets;
        Ok(out)
    }

    /// `dashboard_set_budget`: create or replace a budget, or delete it when `limitUsd` is null.
    pub fn set_budget(&self, input: SetBudgetInput) -> Result<SetBudgetOutput> {
        let scope = scope_of(&input.scope)?;
        let Some(limit_usd) = input.limit_usd else {
            let existed = self.store.delete_budget(&scope)?;
            return Ok(SetBudgetOutput {
                action: if existed {
                    BudgetAction::Deleted
                } else {
                    BudgetAction::NotFound
                },
                scope,
                budget: None,
            });
        };
        let limit = limit_of(limit_usd)?;
        let period = input.period.ok_or_else(|| {
            Error::invalid(
                "period",
                format!(
                    "missing; give one of {} (required unless limitUsd is null)",
                    BudgetPeriod::NAMES.join(", ")
                ),
            )
        })?;
        let budget = Budget {
            scope: scope.clone(),
            limit,
            period,
            thresholds: thresholds_of(input.alert_thresholds)?,
        };
        let replaced = self.store.put_budget(&budget)?;
        let now = self.now();
        let evaluated = self
            .store
            .read(|c| Evaluated::at(c, &self.zone, budget, now))?;
        Ok(SetBudgetOutput {
            action: if replaced {
                BudgetAction::Replaced
            } else {
                BudgetAction::Created
            },
            scope,
            budget: Some(evaluated.entry(&self.zone)),
        })
    }

    /// The overview's budget summary. With an agent filter, that agent's own budget; otherwise
    /// the global budget, else the agent budgets summed (on track only if all are). With no
    /// budget, `total_spent` is `window_cost`, the limit and percentage null, and on track.
    pub(super) fn overview_budget_status(
        &self,
        c: &dyn Snapshot,
        now: Millis,
        agent: Option<&str>,
        window_cost: Nanos,
    ) -> Result<OverviewBudgetStatus> {
        let budgets = match agent {
            Some(a) if is_global(a) => Vec::new(),
            Some(a) => c.budgets(Some(a))?,
            None => match c.budgets(Some(GLOBAL))? {
                global if !global.is_empty() => global,
                _ => c.budgets(None)?,
            },
        };
        if budgets.is_empty() {
            return Ok(OverviewBudgetStatus {
                total_limit: None,
                total_spent: to_usd(window_cost),
                percent_used: None,
                on_track: true,
            });
        }
        let (mut limit, mut spent, mut on_track) = (0i128, 0i128, true);
        for budget in budgets {
            let e = Evaluated::at(c, &self.zone, budget, now)?;
            limit += i128::from(e.budget.limit);
            spent += i128::from(e.spent);
            on_track &= e.on_track();
        }
        Ok(OverviewBudgetStatus {
            total_limit: Some(usd_wide(limit)),
            total_spent: usd_wide(spent),
            percent_used: Some(percent_of(spent, limit)),
            on_track,
        })
    }

    /// The own budgets of the agents `ids`, evaluated at `now`, by agent id.
    pub(super) fn agent_budgets(
        &self,
        c: &dyn Snapshot,
        now: Millis,
        ids: &[&str],
    ) -> Result<HashMap<String, Evaluated>> {
        let wanted: HashSet<&str> = ids.iter().copied().collect();
        c.budgets(None)?
            .into_iter()
            .filter(|budget| budget.scope != GLOBAL && wanted.contains(budget.scope.as_str()))
            .map(|budget| {
                let e = Evaluated::at(c, &self.zone, budget, now)?;
                Ok((e.budget.scope.clone(), e))
            })
            .collect()
    }
}

/// An agent's budget status: its own budget, or with none, `window_cost` and null limit.
pub fn agent_budget_status(own: Option<&Evaluated>, window_cost: Nanos) -> AgentBudgetStatus {
    match own {
        Some(e) => AgentBudgetStatus {
            limit: Some(to_usd(e.budget.limit)),
            spent: to_usd(e.spent),
            percent_used: Some(e.percent_used()),
            period: Some(e.budget.period),
        },
        None => AgentBudgetStatus {
            limit: None,
            spent: to_usd(window_cost),
            percent_used: None,
            period: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{parse_rfc3339, HOUR};

    fn t(s: &str) -> Millis {
        parse_rfc3339("t", s).unwrap()
    }

    #[test]
    fn thresholds_are_validated() {
        assert_eq!(thresholds_of(None).unwrap(), vec![50, 80, 100]);
        assert_eq!(thresholds_of(Some(vec![1, 1000])).unwrap(), vec![1, 1000]);
        for bad in [vec![], vec![0], vec![1001], vec![80, 50], vec![50, 50]] {
            let e = thresholds_of(Some(bad.clone())).unwrap_err();
            assert_eq!(e.field(), Some("alertThresholds"), "{bad:?}");
        }
    }

    #[test]
    fn limits_are_validated() {
        assert_eq!(limit_of(0.1).unwrap(), 100_000_000);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-12, 2e9] {
            assert_eq!(
                limit_of(bad).unwrap_err().field(),
                Some("limitUsd"),
                "{bad}"
            );
        }
    }

    #[test]
    fn scopes_are_normalised() {
        assert_eq!(scope_of(" Global ").unwrap(), "global");
        assert_eq!(scope_of("agent-1").unwrap(), "agent-1");
        assert!(scope_of("").is_err());
        assert!(scope_of(&"x".repeat(129)).is_err());
    }

    #[test]
    fn early_means_less_than_a_day_and_a_quarter() {
        let p0 = t("2026-11-01T00:00:00Z");
        // A day: a quarter is 6 h.
        assert!(is_early(p0, p0 + DAY, p0 + 6 * HOUR - 1));
        assert!(!is_early(p0, p0 + DAY, p0 + 6 * HOUR));
        // A month: 24 h is the smaller bound.
        assert!(is_early(p0, p0 + 30 * DAY, p0 + DAY - 1));
        assert!(!is_early(p0, p0 + 30 * DAY, p0 + DAY));
    }

    #[test]
    fn iso_week_starts_on_monday() {
        let z = Zone::default();
        // 2026-11-22 is a Sunday: its week began on Monday 2026-11-16.
        assert_eq!(
            period_bounds(&z, BudgetPeriod::Week, t("2026-11-22T23:59:59Z")),
            (t("2026-11-16T00:00:00Z"), t("2026-11-23T00:00:00Z"))
        );
        assert_eq!(
            period_bounds(&z, BudgetPeriod::Week, t("2026-11-23T00:00:00Z")),
            (t("2026-11-23T00:00:00Z"), t("2026-11-30T00:00:00Z"))
        );
    }

    #[test]
    fn december_rolls_into_the_next_year() {
        let z = Zone::default();
        assert_eq!(
            period_bounds(&z, BudgetPeriod::Month, t("2026-12-31T23:00:00Z")),
            (t("2026-12-01T00:00:00Z"), t("2027-01-01T00:00:00Z"))
        );
    }
}
