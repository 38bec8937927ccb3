//! Budgets (SPEC §2.2, §3.1, §3.2, §3.7) through the library: a store in a temporary directory,
//! executions at known instants and costs, a pinned clock, and expected figures worked out by
//! hand in the comments.

use std::sync::Arc;

use dashboard_mcp::catalog::{self, CallError};
use dashboard_mcp::ingest::insert_all;
use dashboard_mcp::store::{Execution, Store};
use dashboard_mcp::time::{parse_rfc3339, Clock, Zone};
use dashboard_mcp::wire::{
    AgentsInput, BudgetEntry, BudgetPeriod, BudgetState, BudgetsInput, OverviewInput,
    SetBudgetInput, Timeframe,
};
use dashboard_mcp::Dashboard;
use serde_json::{json, Map, Value};
use tempfile::TempDir;

fn t(s: &str) -> i64 {
    parse_rfc3339("t", s).unwrap()
}

/// An execution of `agent` at `ts` costing `usd` (a decimal string, converted exactly).
fn exec(ts: &str, agent: &str, usd: &str) -> Execution {
    Execution {
        id: format!("{agent}@{ts}/{usd}"),
        ts: t(ts),
        agent_id: agent.to_owned(),
        agent_name: None,
        model: "m".to_owned(),
        prompt_tokens: 10,
        completion_tokens: 5,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        cost: dashboard_mcp::money::parse_usd(usd).unwrap(),
        duration_ms: Some(100.0),
        success: true,
        error: None,
        status_code: None,
        session_id: None,
        task_type: None,
        metadata: None,
        revision: None,
        cost_source: Default::default(),
    }
}

struct Fixture {
    _dir: TempDir,
    store: Arc<dyn Store>,
}

impl Fixture {
    fn new(executions: Vec<Execution>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = dashboard_mcp::store::testing::open(dir.path());
        insert_all(&*store, executions).unwrap();
        Fixture { _dir: dir, store }
    }

    /// The dashboard at `now` in UTC.
    fn at(&self, now: &str) -> Dashboard {
        self.in_zone(now, "UTC")
    }

    fn in_zone(&self, now: &str, zone: &str) -> Dashboard {
        Dashboard::new(
            self.store.clone(),
            Clock::Fixed(t(now)),
            Zone::parse(zone).unwrap(),
        )
    }
}

fn set(d: &Dashboard, scope: &str, limit: f64, period: BudgetPeriod) {
    d.set_budget(SetBudgetInput {
        scope: scope.to_owned(),
        limit_usd: Some(limit),
        period: Some(period),
        alert_thresholds: None,
    })
    .unwrap();
}

fn budget(d: &Dashboard, scope: &str) -> BudgetEntry {
    let out = d
        .budgets(BudgetsInput {
            scope: Some(scope.to_owned()),
            ..BudgetsInput::default()
        })
        .unwrap();
    assert_eq!(out.budgets.len(), 1, "one budget for {scope}");
    out.budgets.into_iter().next().unwrap()
}

fn call(d: &Dashboard, writes: bool, name: &str, args: Value) -> Result<Value, CallError> {
    let Value::Object(args) = args else { panic!() };
    catalog::call(d, writes, name, Some(args))
}

// ---------------------------------------------------------------------------------------------
// Day

fn day_fixture() -> Fixture {
    Fixture::new(vec![
        exec("2026-11-17T20:00:00Z", "a", "2"),
        exec("2026-11-18T00:00:00Z", "a", "1"),
        exec("2026-11-18T03:00:00Z", "a", "0.5"),
        exec("2026-11-18T11:00:00Z", "a", "2"),
        exec("2026-11-18T23:10:00Z", "a", "1"),
    ])
}

#[test]
fn day_at_its_first_instant_spends_nothing_and_projects_the_trailing_day() {
    let f = day_fixture();
    let d = f.at("2026-11-18T00:00:00Z");
    set(&d, "global", 10.0, BudgetPeriod::Day);
    let b = budget(&d, "global");
    assert_eq!(b.period_start, "2026-11-18T00:00:00Z");
    assert_eq!(b.period_end, "2026-11-19T00:00:00Z");
    // [p0, now) is empty: the 00:00 execution is at now, not before it.
    assert_eq!(b.spent, 0.0);
    assert_eq!(b.percent_used, 0.0);
    // Early (0 h < min(24 h, 6 h)): trailing [11-17 00:00, 11-18 00:00) holds the 2 USD at 20:00;
    // projected = 0 + 2 / 24 h × 24 h = 2.
    assert_eq!(b.projected, 2.0);
    assert!(b.on_track);
    assert_eq!(b.status, BudgetState::Ok);
}

#[test]
fn day_first_hour_uses_the_trailing_24h_run_rate() {
    let f = day_fixture();
    let d = f.at("2026-11-18T01:00:00Z");
    set(&d, "global", 10.0, BudgetPeriod::Day);
    let b = budget(&d, "global");
    // spent = the 00:00 execution = 1.
    assert_eq!(b.spent, 1.0);
    // Early (1 h < 6 h): trailing [11-17 01:00, 11-18 01:00) = 2 + 1 = 3 USD;
    // projected = 1 + 3 / 24 h × (24 h − 1 h) = 1 + 3 × 23 / 24 = 1 + 2.875 = 3.875.
    assert_eq!(b.projected, 3.875);
    assert_eq!(b.percent_used, 10.0);
    assert!(b.on_track);
}

#[test]
fn day_middle_uses_the_linear_run_rate() {
    let f = day_fixture();
    let d = f.at("2026-11-18T12:00:00Z");
    set(&d, "global", 10.0, BudgetPeriod::Day);
    let b = budget(&d, "global");
    // spent = 1 + 0.5 + 2 = 3.5; f = 12 h / 24 h = 0.5; projected = 3.5 / 0.5 = 7.
    assert_eq!(b.spent, 3.5);
    assert_eq!(b.percent_used, 35.0);
    assert_eq!(b.projected, 7.0);
    assert!(b.on_track);
    assert_eq!(b.status, BudgetState::Ok);
    assert!(b.thresholds_crossed.is_empty());
}

#[test]
fn day_last_hour() {
    let f = day_fixture();
    let d = f.at("2026-11-18T23:30:00Z");
    set(&d, "global", 5.0, BudgetPeriod::Day);
    let b = budget(&d, "global");
    // spent = 3.5 + 1 (23:10) = 4.5 of 5 = 90 %: thresholds 50 and 80 crossed, warning.
    assert_eq!(b.spent, 4.5);
    assert_eq!(b.percent_used, 90.0);
    assert_eq!(b.thresholds_crossed, vec![50, 80]);
    assert_eq!(b.status, BudgetState::Warning);
    // projected = 4.5 × 24 / 23.5 = 4.5 × 48 / 47 = 216 / 47 = 4.595744680851… → 4.595744681
    // (rounded to the nano-dollar); ≤ 5, on track.
    assert_eq!(b.projected, 4.595744681);
    assert!(b.on_track);
}

// ---------------------------------------------------------------------------------------------
// Week

fn week_fixture() -> Fixture {
    Fixture::new(vec![
        exec("2026-11-18T12:00:00Z", "a", "10"), // Wednesday
        exec("2026-11-22T23:00:00Z", "a", "5"),  // Sunday, last hour of the week
        exec("2026-11-23T00:30:00Z", "a", "1"),  // Monday, first hour of the next
        exec("2026-11-24T09:00:00Z", "a", "7"),  // Tuesday
    ])
}

#[test]
fn week_last_hour_on_sunday() {
    let f = week_fixture();
    let d = f.at("2026-11-22T23:30:00Z");
    set(&d, "a", 70.0, BudgetPeriod::Week);
    let b = budget(&d, "a");
    // 2026-11-22 is a Sunday: the ISO week began Monday 2026-11-16.
    assert_eq!(b.period_start, "2026-11-16T00:00:00Z");
    assert_eq!(b.period_end, "2026-11-23T00:00:00Z");
    // spent = 10 + 5 = 15; elapsed 167.5 h of 168 h;
    // projected = 15 × 168 / 167.5 = 15 × 336 / 335 = 15.044776119402… → 15.044776119.
    assert_eq!(b.spent, 15.0);
    assert_eq!(b.projected, 15.044776119);
    assert!(b.on_track);
}

#[test]
fn week_boundary_on_monday_starts_a_new_week() {
    let f = week_fixture();
    let d = f.at("2026-11-23T01:00:00Z");
    set(&d, "a", 70.0, BudgetPeriod::Week);
    let b = budget(&d, "a");
    assert_eq!(b.period_start, "2026-11-23T00:00:00Z");
    assert_eq!(b.period_end, "2026-11-30T00:00:00Z");
    // Only Monday's 1 USD is in this week; Sunday's 5 belong to the last one.
    assert_eq!(b.spent, 1.0);
    // Early (1 h < min(24 h, 42 h)): trailing [11-22 01:00, 11-23 01:00) = 5 + 1 = 6;
    // projected = 1 + 6 / 24 h × (168 h − 1 h) = 1 + 6 × 167 / 24 = 1 + 41.75 = 42.75.
    assert_eq!(b.projected, 42.75);
    assert!(b.on_track);
}

#[test]
fn week_middle() {
    let f = week_fixture();
    let d = f.at("2026-11-26T12:00:00Z");
    set(&d, "a", 10.0, BudgetPeriod::Week);
    let b = budget(&d, "a");
    // spent = 1 + 7 = 8 of 10 = 80 %; f = 3.5 d / 7 d = 0.5; projected = 16 > 10.
    assert_eq!(b.spent, 8.0);
    assert_eq!(b.percent_used, 80.0);
    assert_eq!(b.thresholds_crossed, vec![50, 80]);
    assert_eq!(b.status, BudgetState::Warning);
    assert_eq!(b.projected, 16.0);
    assert!(!b.on_track);
}

// ---------------------------------------------------------------------------------------------
// Month

#[test]
fn month_of_28_days() {
    let f = Fixture::new(vec![
        exec("2026-01-31T23:00:00Z", "a", "50"),
        exec("2026-02-03T00:00:00Z", "a", "30"),
    ]);
    let d = f.at("2026-02-15T00:00:00Z");
    set(&d, "global", 100.0, BudgetPeriod::Month);
    let b = budget(&d, "global");
    assert_eq!(b.period_start, "2026-02-01T00:00:00Z");
    assert_eq!(b.period_end, "2026-03-01T00:00:00Z");
    // January's 50 is not this month's; spent = 30; f = 14 d / 28 d = 0.5; projected = 60.
    assert_eq!(b.spent, 30.0);
    assert_eq!(b.projected, 60.0);
}

#[test]
fn month_of_30_days() {
    let f = Fixture::new(vec![exec("2026-11-03T00:00:00Z", "a", "30")]);
    let d = f.at("2026-11-11T00:00:00Z");
    set(&d, "global", 100.0, BudgetPeriod::Month);
    let b = budget(&d, "global");
    assert_eq!(b.period_end, "2026-12-01T00:00:00Z");
    // f = 10 d / 30 d; projected = 30 × 3 = 90.
    assert_eq!(b.projected, 90.0);
    assert!(b.on_track);
}

fn december() -> Fixture {
    Fixture::new(vec![
        exec("2026-11-30T12:00:00Z", "a", "24"),
        exec("2026-12-01T01:00:00Z", "a", "1"),
        exec("2026-12-05T00:00:00Z", "a", "30"),
        exec("2026-12-31T23:00:00Z", "a", "70"),
    ])
}

#[test]
fn month_of_31_days_start_is_early() {
    let f = december();
    let d = f.at("2026-12-01T06:00:00Z");
    set(&d, "global", 100.0, BudgetPeriod::Month);
    let b = budget(&d, "global");
    assert_eq!(b.period_start, "2026-12-01T00:00:00Z");
    assert_eq!(b.period_end, "2027-01-01T00:00:00Z");
    // spent = 1 (1 %, ok); early (6 h < 24 h): trailing [11-30 06:00, 12-01 06:00) = 24 + 1 = 25;
    // projected = 1 + 25 / 24 h × (744 h − 6 h) = 1 + 25 × 738 / 24 = 1 + 768.75 = 769.75.
    assert_eq!(b.spent, 1.0);
    assert_eq!(b.projected, 769.75);
    assert_eq!(b.status, BudgetState::Ok);
    assert!(!b.on_track);
}

#[test]
fn month_of_31_days_middle() {
    let f = december();
    let d = f.at("2026-12-11T00:00:00Z");
    set(&d, "global", 100.0, BudgetPeriod::Month);
    let b = budget(&d, "global");
    // spent = 1 + 30 = 31; f = 10 d / 31 d; projected = 31 × 31 / 10 = 96.1.
    assert_eq!(b.spent, 31.0);
    assert_eq!(b.projected, 96.1);
    assert!(b.on_track);
}

#[test]
fn month_of_31_days_last_hour_exceeded() {
    let f = december();
    let d = f.at("2026-12-31T23:30:00Z");
    set(&d, "global", 100.0, BudgetPeriod::Month);
    let b = budget(&d, "global");
    // spent = 1 + 30 + 70 = 101 of 100: every threshold crossed, exceeded, not on track.
    assert_eq!(b.spent, 101.0);
    assert_eq!(b.percent_used, 101.0);
    assert_eq!(b.thresholds_crossed, vec![50, 80, 100]);
    assert_eq!(b.status, BudgetState::Exceeded);
    assert!(!b.on_track);
    // projected = 101 × 744 h / 743.5 h = 101 + 50.5 / 743.5 = 101.067921990585… → 101.067921991.
    assert_eq!(b.projected, 101.067921991);
}

// ---------------------------------------------------------------------------------------------
// Time zones and DST

#[test]
fn berlin_spring_forward_day_is_23_hours() {
    let f = Fixture::new(vec![
        exec("2026-03-28T22:30:00Z", "a", "5"), // 23:30 CET on the 28th: the day before
        exec("2026-03-28T23:00:00Z", "a", "2"), // 00:00 CET on the 29th
        exec("2026-03-29T09:00:00Z", "a", "9"), // 11:00 CEST
    ]);
    // 12:00 CEST.
    let d = f.in_zone("2026-03-29T10:00:00Z", "Europe/Berlin");
    set(&d, "global", 20.0, BudgetPeriod::Day);
    let b = budget(&d, "global");
    // Clocks jump 02:00 → 03:00, so the day runs 2026-03-28T23:00Z .. 2026-03-29T22:00Z: 23 h.
    assert_eq!(b.period_start, "2026-03-29T00:00:00+01:00");
    assert_eq!(b.period_end, "2026-03-30T00:00:00+02:00");
    // spent = 2 + 9 = 11 (55 %: warning); elapsed 11 h ≥ min(24 h, 5.75 h): linear;
    // projected = 11 × 23 h / 11 h = 23 > 20.
    assert_eq!(b.spent, 11.0);
    assert_eq!(b.percent_used, 55.0);
    assert_eq!(b.status, BudgetState::Warning);
    assert_eq!(b.projected, 23.0);
    assert!(!b.on_track);

    // The week holding the change is 167 h: Monday 00:00 CET to Monday 00:00 CEST.
    set(&d, "a", 100.0, BudgetPeriod::Week);
    let w = budget(&d, "a");
    assert_eq!(w.period_start, "2026-03-23T00:00:00+01:00");
    assert_eq!(w.period_end, "2026-03-30T00:00:00+02:00");
    // spent = 5 + 2 + 9 = 16; elapsed = 03-22T23:00Z .. 03-29T10:00Z = 155 h;
    // projected = 16 × 167 / 155 = 2672 / 155 = 17.238709677419… → 17.238709677.
    assert_eq!(w.spent, 16.0);
    assert_eq!(w.projected, 17.238709677);

    // The same instant in UTC: the day began at 2026-03-29T00:00Z, after the 2 USD.
    let utc = f.at("2026-03-29T10:00:00Z");
    assert_eq!(budget(&utc, "global").spent, 9.0);
}

#[test]
fn new_york_fall_back_day_is_25_hours_and_early_for_a_quarter_of_it() {
    let f = Fixture::new(vec![
        exec("2026-10-31T20:00:00Z", "a", "3"),
        exec("2026-11-01T05:00:00Z", "a", "3"),
    ]);
    // 05:00 EST, 6 h after midnight EDT (2026-11-01T04:00Z).
    let d = f.in_zone("2026-11-01T10:00:00Z", "America/New_York");
    set(&d, "global", 10.0, BudgetPeriod::Day);
    let b = budget(&d, "global");
    assert_eq!(b.period_start, "2026-11-01T00:00:00-04:00");
    assert_eq!(b.period_end, "2026-11-02T00:00:00-05:00");
    // The day is 25 h; 6 h < min(24 h, 6.25 h) is still early (it would not be in a 24 h day).
    // spent = 3; trailing [10-31 10:00Z, 11-01 10:00Z) = 3 + 3 = 6;
    // projected = 3 + 6 / 24 h × (25 h − 6 h) = 3 + 6 × 19 / 24 = 3 + 4.75 = 7.75.
    assert_eq!(b.spent, 3.0);
    assert_eq!(b.projected, 7.75);
    assert!(b.on_track);
}

// ---------------------------------------------------------------------------------------------
// Aggregation into the overview and the agents list

#[test]
fn no_budget_at_all() {
    let f = Fixture::new(vec![exec("2026-11-18T10:00:00Z", "a", "1.25")]);
    let d = f.at("2026-11-18T12:00:00Z");
    let list = d.budgets(BudgetsInput::default()).unwrap();
    assert!(list.budgets.is_empty());
    assert_eq!(list.pagination.total, 0);
    assert_eq!(list.as_of, "2026-11-18T12:00:00Z");
    assert_eq!(list.time_zone, "UTC");

    let o = d.overview(OverviewInput::default()).unwrap().budget_status;
    // No limit; spent is the window's cost; on track.
    assert_eq!(o.total_limit, None);
    assert_eq!(o.total_spent, 1.25);
    assert_eq!(o.percent_used, None);
    assert!(o.on_track);

    let a = &d.agents(AgentsInput::default()).unwrap().agents[0];
    assert_eq!(a.budget_status.limit, None);
    assert_eq!(a.budget_status.spent, 1.25);
    assert_eq!(a.budget_status.percent_used, None);
    assert_eq!(a.budget_status.period, None);
}

fn three_agents() -> Fixture {
    Fixture::new(vec![
        exec("2026-11-16T10:00:00Z", "a", "4"), // Monday: a's week, not a's day
        exec("2026-11-18T02:00:00Z", "a", "3"),
        exec("2026-11-18T06:00:00Z", "b", "12"),
        exec("2026-11-17T06:00:00Z", "b", "8"),
        exec("2026-11-02T06:00:00Z", "c", "40"), // this month, not this week
        exec("2026-11-18T07:00:00Z", "c", "1"),
    ])
}

#[test]
fn global_budget_beside_agent_budgets() {
    let f = three_agents();
    let d = f.at("2026-11-18T12:00:00Z");
    set(&d, "b", 50.0, BudgetPeriod::Week);
    set(&d, "a", 10.0, BudgetPeriod::Day);
    set(&d, "global", 100.0, BudgetPeriod::Month);

    let list = d.budgets(BudgetsInput::default()).unwrap();
    let scopes: Vec<&str> = list.budgets.iter().map(|b| b.scope.as_str()).collect();
    assert_eq!(scopes, ["global", "a", "b"]);

    // The overview follows the global budget: 4 + 3 + 12 + 8 + 40 + 1 = 68 of 100 this month.
    let o = d.overview(OverviewInput::default()).unwrap().budget_status;
    assert_eq!(o.total_limit, Some(100.0));
    assert_eq!(o.total_spent, 68.0);
    assert_eq!(o.percent_used, Some(68.0));
    // f = 17.5 d / 30 d; projected = 68 × 30 / 17.5 = 116.571… > 100.
    assert!(!o.on_track);

    // Each agent's status is in its own budget's period; c has none (spent: the window's cost).
    let agents = d
        .agents(AgentsInput {
            timeframe: Some(Timeframe::Month),
            ..AgentsInput::default()
        })
        .unwrap()
        .agents;
    let status = |id: &str| {
        agents
            .iter()
            .find(|a| a.id == id)
            .map(|a| a.budget_status.clone())
            .unwrap()
    };
    // a: today only the 3 (30 % of 10).
    assert_eq!(status("a").limit, Some(10.0));
    assert_eq!(status("a").spent, 3.0);
    assert_eq!(status("a").percent_used, Some(30.0));
    assert_eq!(status("a").period, Some(BudgetPeriod::Day));
    // b: this week (from Monday 11-16) 8 + 12 = 20 of 50 = 40 %.
    assert_eq!(status("b").spent, 20.0);
    assert_eq!(status("b").percent_used, Some(40.0));
    // c: no budget; the month window (30 d back from 11-18 12:00) holds 40 + 1.
    assert_eq!(status("c").limit, None);
    assert_eq!(status("c").spent, 41.0);

    // With agentId, the overview reports that agent's own budget.
    let oa = d
        .overview(OverviewInput {
            agent_id: Some("a".into()),
            ..OverviewInput::default()
        })
        .unwrap()
        .budget_status;
    assert_eq!(oa.total_limit, Some(10.0));
    assert_eq!(oa.total_spent, 3.0);
    // f = 12 h / 24 h; projected = 6 ≤ 10.
    assert!(oa.on_track);
    // c has none: no limit, the day window's cost (the 1 at 07:00), on track.
    let oc = d
        .overview(OverviewInput {
            agent_id: Some("c".into()),
            ..OverviewInput::default()
        })
        .unwrap()
        .budget_status;
    assert_eq!(oc.total_limit, None);
    assert_eq!(oc.total_spent, 1.0);
    assert!(oc.on_track);
}

#[test]
fn without_a_global_budget_the_overview_sums_the_agent_budgets() {
    let f = three_agents();
    let d = f.at("2026-11-18T12:00:00Z");
    set(&d, "a", 10.0, BudgetPeriod::Day);
    set(&d, "b", 50.0, BudgetPeriod::Week);
    let o = d.overview(OverviewInput::default()).unwrap().budget_status;
    // limits 10 + 50 = 60; spent 3 (a today) + 20 (b this week) = 23; 23 / 60 = 38.33… %.
    assert_eq!(o.total_limit, Some(60.0));
    assert_eq!(o.total_spent, 23.0);
    assert_eq!(o.percent_used, Some(2300.0 / 60.0));
    // a: projected 3 × 2 = 6 ≤ 10. b: f = 2.5 d / 7 d, projected 20 × 7 / 2.5 = 56 > 50.
    assert!(!o.on_track);
    assert!(budget(&d, "a").on_track);
    assert!(!budget(&d, "b").on_track);

    // Raise b's limit to 56: exactly the projection, which is on track (projected ≤ limit).
    set(&d, "b", 56.0, BudgetPeriod::Week);
    assert_eq!(budget(&d, "b").projected, 56.0);
    assert!(
        d.overview(OverviewInput::default())
            .unwrap()
            .budget_status
            .on_track
    );
}

#[test]
fn spent_exactly_at_the_limit_is_exceeded() {
    // 100 executions of 0.1 USD sum to exactly 10 in integer nano-dollars.
    let f = Fixture::new(
        (0..100)
            .map(|i| {
                exec(
                    &format!("2026-11-18T10:{:02}:{:02}Z", i / 60, i % 60),
                    "a",
                    "0.1",
                )
            })
            .collect(),
    );
    let d = f.at("2026-11-18T12:00:00Z");
    set(&d, "a", 10.0, BudgetPeriod::Day);
    let b = budget(&d, "a");
    assert_eq!(b.spent, 10.0);
    assert_eq!(b.percent_used, 100.0);
    assert_eq!(b.thresholds_crossed, vec![50, 80, 100]);
    assert_eq!(b.status, BudgetState::Exceeded);
    assert!(!b.on_track);

    // One nano-dollar more of limit: 99.99999999 %, a warning, not exceeded.
    d.set_budget(SetBudgetInput {
        scope: "a".into(),
        limit_usd: Some(10.000000001),
        period: Some(BudgetPeriod::Day),
        alert_thresholds: Some(vec![90, 100]),
    })
    .unwrap();
    let b = budget(&d, "a");
    assert_eq!(b.limit_usd, 10.000000001);
    assert_eq!(b.thresholds_crossed, vec![90]);
    assert_eq!(b.status, BudgetState::Warning);
}

// ---------------------------------------------------------------------------------------------
// The tools

#[test]
fn set_budget_creates_replaces_and_deletes() {
    let f = Fixture::new(vec![exec("2026-11-18T10:00:00Z", "a", "6")]);
    let d = f.at("2026-11-18T12:00:00Z");
    let args =
        json!({"scope": "a", "limitUsd": "20", "period": "Daily", "alertThresholds": "25, 50"});
    let created = call(&d, true, "dashboard_set_budget", args.clone()).unwrap();
    assert_eq!(created["action"], "created");
    assert_eq!(created["budget"]["limitUsd"], 20.0);
    assert_eq!(created["budget"]["period"], "day");
    assert_eq!(created["budget"]["alertThresholds"], json!([25, 50]));
    // 6 of 20 = 30 %: 25 crossed, a warning.
    assert_eq!(created["budget"]["thresholdsCrossed"], json!([25]));
    assert_eq!(created["budget"]["status"], "warning");
    let replaced = call(&d, true, "dashboard_set_budget", args).unwrap();
    assert_eq!(replaced["action"], "replaced");

    let listed = call(&d, false, "dashboard_get_budgets", json!({})).unwrap();
    assert_eq!(listed["budgets"][0], replaced["budget"]);

    let deleted = call(
        &d,
        true,
        "dashboard_set_budget",
        json!({"scope": "a", "limitUsd": null}),
    )
    .unwrap();
    assert_eq!(
        deleted,
        json!({"action": "deleted", "scope": "a", "budget": null})
    );
    let again = call(
        &d,
        true,
        "dashboard_set_budget",
        json!({"scope": "a", "limitUsd": null}),
    )
    .unwrap();
    assert_eq!(again["action"], "notFound");
    assert!(d
        .budgets(BudgetsInput::default())
        .unwrap()
        .budgets
        .is_empty());
}

#[test]
fn set_budget_is_a_write_tool() {
    let f = Fixture::new(Vec::new());
    let d = f.at("2026-11-18T12:00:00Z");
    let args = json!({"scope": "global", "limitUsd": 5, "period": "day"});
    assert!(matches!(
        call(&d, false, "dashboard_set_budget", args),
        Err(CallError::WritesDisabled(_))
    ));
    let listed = |writes| {
        catalog::tools(writes)
            .iter()
            .any(|t| t.name == "dashboard_set_budget")
    };
    assert!(!listed(false));
    assert!(listed(true));
    assert!(catalog::tools(false)
        .iter()
        .any(|t| t.name == "dashboard_get_budgets"));
}

#[test]
fn set_budget_rejects_bad_input_naming_the_field() {
    let f = Fixture::new(Vec::new());
    let d = f.at("2026-11-18T12:00:00Z");
    let cases = [
        (json!({"scope": "a"}), "limitUsd", "missing"),
        (
            json!({"scope": "a", "limitUsd": 0, "period": "day"}),
            "limitUsd",
            "greater than 0",
        ),
        (
            json!({"scope": "a", "limitUsd": -3, "period": "day"}),
            "limitUsd",
            "-3",
        ),
        (
            json!({"scope": "a", "limitUsd": "lots", "period": "day"}),
            "limitUsd",
            "\"lots\"",
        ),
        (
            json!({"scope": "a", "limitUsd": 5}),
            "period",
            "day, week, month",
        ),
        (
            json!({"scope": "a", "limitUsd": 5, "period": "year"}),
            "period",
            "\"year\"",
        ),
        (
            json!({"scope": "", "limitUsd": 5, "period": "day"}),
            "scope",
            "1..=128",
        ),
        (
            json!({"scope": "x".repeat(129), "limitUsd": 5, "period": "day"}),
            "scope",
            "1..=128",
        ),
        (
            json!({"scope": "a", "limitUsd": 5, "period": "day", "alertThresholds": [80, 50]}),
            "alertThresholds",
            "increasing",
        ),
        (
            json!({"scope": "a", "limitUsd": 5, "period": "day", "alertThresholds": [50, 50]}),
            "alertThresholds",
            "increasing",
        ),
        (
            json!({"scope": "a", "limitUsd": 5, "period": "day", "alertThresholds": [0]}),
            "alertThresholds",
            "1..=1000",
        ),
        (
            json!({"scope": "a", "limitUsd": 5, "period": "day", "alertThresholds": [1001]}),
            "alertThresholds",
            "1..=1000",
        ),
        (
            json!({"scope": "a", "limitUsd": 5, "period": "day", "alertThresholds": [50.5]}),
            "alertThresholds",
            "50.5",
        ),
        (
            json!({"scope": "a", "limitUsd": 5, "period": "day", "alertThresholds": []}),
            "alertThresholds",
            "1..=10",
        ),
        (
            json!({"scope": "a", "limitUsd": 5, "period": "day", "limit": 3}),
            "limit",
            "unknown field",
        ),
    ];
    for (args, field, needle) in cases {
        let e = match call(&d, true, "dashboard_set_budget", args.clone()) {
            Err(CallError::Tool(e)) => e,
            other => panic!("{args}: expected a tool error, got {other:?}"),
        };
        assert!(e.is_invalid_input(), "{args}: {e}");
        assert!(
            e.to_string().starts_with(&format!("{field}: ")),
            "{args}: {e}"
        );
        assert!(e.to_string().contains(needle), "{args}: {e}");
    }
    assert!(d
        .budgets(BudgetsInput::default())
        .unwrap()
        .budgets
        .is_empty());
}

#[test]
fn global_scope_is_case_insensitive() {
    let f = Fixture::new(Vec::new());
    let d = f.at("2026-11-18T12:00:00Z");
    let out = call(
        &d,
        true,
        "dashboard_set_budget",
        json!({"scope": "Global", "limitUsd": 5, "period": "week"}),
    )
    .unwrap();
    assert_eq!(out["scope"], "global");
    assert_eq!(budget(&d, "global").limit_usd, 5.0);
}

#[test]
fn budgets_page() {
    let f = Fixture::new(Vec::new());
    let d = f.at("2026-11-18T12:00:00Z");
    for i in 0..5 {
        set(&d, &format!("agent-{i}"), 1.0, BudgetPeriod::Day);
    }
    let mut args = Map::new();
    args.insert("limit".into(), json!("2"));
    args.insert("offset".into(), json!(3));
    let page = catalog::call(&d, false, "dashboard_get_budgets", Some(args)).unwrap();
    let scopes: Vec<&str> = page["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["scope"].as_str().unwrap())
        .collect();
    assert_eq!(scopes, ["agent-3", "agent-4"]);
    assert_eq!(page["pagination"]["total"], 5);
    assert_eq!(page["pagination"]["hasMore"], false);
}

#[test]
fn cli_budget_commands_need_no_allow_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("usage.db");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dashboard-mcp"))
            .args(args)
            .args([
                "--db",
                db.to_str().unwrap(),
                "--now",
                "2026-11-18T12:00:00Z",
            ])
            .env_remove("DASHBOARD_MCP_TZ")
            .output()
            .unwrap()
    };
    let set = run(&[
        "budget",
        "set",
        "global",
        "12.5",
        "--period",
        "week",
        "--thresholds",
        "50,90",
    ]);
    assert!(set.status.success(), "{set:?}");
    assert!(String::from_utf8_lossy(&set.stdout)
        .starts_with("created budget global: 12.5 USD per week"));
    let list = run(&["budget", "list", "--json"]);
    let v: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v["budgets"][0]["limitUsd"], 12.5);
    assert_eq!(v["budgets"][0]["alertThresholds"], json!([50, 90]));
    assert_eq!(v["budgets"][0]["periodStart"], "2026-11-16T00:00:00Z");
    let bad = run(&["budget", "set", "global", "12.5", "--period", "fortnight"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr)
        .contains("\"fortnight\" is not one of day, week, month"));
    let rm = run(&["budget", "rm", "global"]);
    assert!(rm.status.success());
    let list = run(&["budget", "list", "--json"]);
    let v: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v["budgets"], json!([]));
}
