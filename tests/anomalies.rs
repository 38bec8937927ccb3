//! Anomaly detection: exact values of the detector on tiny hand-made series, precision and recall
//! against labelled demo data (30 days × 20 agents), and the tool end to end through SQLite
//! (determinism, filters, paging, the overview's counts, bad input).

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use dashboard_mcp::anomaly::{AgentSeries, Scope};
use dashboard_mcp::demo::{self, AnomalyKind, DemoConfig, Labelled};
use dashboard_mcp::store::{AgentRun, Agents, Execution, HourStats};
use dashboard_mcp::time::{format_utc, parse_rfc3339, Clock, Millis, Window, Zone, DAY, HOUR};
use dashboard_mcp::wire::{
    AnomaliesInput, AnomaliesOutput, AnomalyMetric, OverviewInput, Severity, Timeframe,
};
use dashboard_mcp::{catalog, ingest, Dashboard};

fn t(s: &str) -> Millis {
    parse_rfc3339("t", s).unwrap()
}

/// Hourly sums of executions per agent, as `store::series` computes them in SQL (the test
/// `sql_series_equal_the_executions` holds the two to each other).
fn aggregate(executions: &[Execution], end: Millis) -> BTreeMap<String, AgentSeries> {
    let mut by_agent: BTreeMap<String, BTreeMap<Millis, HourStats>> = BTreeMap::new();
    for e in executions {
        let s = by_agent
            .entry(e.agent_id.clone())
            .or_default()
            .entry(e.ts.div_euclid(HOUR) * HOUR)
            .or_default();
        let tokens =
            e.prompt_tokens + e.completion_tokens + e.cache_read_tokens + e.cache_write_tokens;
        s.calls += 1;
        s.errors += i64::from(!e.success);
        s.tokens += tokens;
        s.cost += e.cost;
        // The store's units (store/series.rs): cost squares in whole micro-dollars (× 10⁶ to
        // read as nano-dollars²), durations in whole µs, their squares in whole ms².
        let micro = ((e.cost + 500) / 1000) as f64;
        s.cost_sq_sum += micro * micro * 1e6;
        s.tokens_sq_sum += (tokens as f64).powi(2);
        s.max_cost = s.max_cost.max(e.cost);
        s.max_tokens = s.max_tokens.max(tokens);
        if let (true, Some(d)) = (e.success, e.duration_ms) {
            s.ok_timed += 1;
            s.ok_duration_sum += (d * 1000.0).round() / 1000.0;
            s.ok_duration_sq_sum += d.round() * d.round();
            s.ok_duration_max = s.ok_duration_max.max((d * 1000.0).round() / 1000.0);
        }
    }
    by_agent
        .into_iter()
        .map(|(a, hours)| {
            let rows: Vec<(Millis, HourStats)> = hours.into_iter().collect();
            (
                a,
                AgentSeries::from_sparse(rows.iter().copied(), end).unwrap(),
            )
        })
        .collect()
}

fn dashboard(executions: Vec<Execution>, now: Millis) -> (tempfile::TempDir, Dashboard) {
    let dir = tempfile::tempdir().unwrap();
    let store = dashboard_mcp::store::testing::open(dir.path());
    ingest::insert_all(&*store, executions).unwrap();
    (
        dir,
        Dashboard::new(store, Clock::Fixed(now), Zone::default()),
    )
}

fn month(extra: impl FnOnce(&mut AnomaliesInput)) -> AnomaliesInput {
    let mut input = AnomaliesInput {
        timeframe: Some(Timeframe::Month),
        limit: Some(500),
        ..Default::default()
    };
    extra(&mut input);
    input
}

/// Exact values of the pure detector, each computed by hand in the comments.
mod detector {
    use super::*;
    use dashboard_mcp::anomaly::*;

    /// 2026-11-02 is a Monday.
    const MONDAY: &str = "2026-11-02T00:00:00Z";

    fn calls(n: i64) -> HourStats {
        HourStats {
            calls: n,
            ..Default::default()
        }
    }

    /// `days` days of identical hours from Monday 2026-11-02.
    fn flat(days: usize, s: HourStats) -> AgentSeries {
        AgentSeries {
            start: t(MONDAY),
            hours: vec![s; days * 24],
        }
    }

    fn index(s: &AgentSeries, at: &str) -> usize {
        ((t(at) - s.start) / HOUR) as usize
    }

    fn judge(s: &AgentSeries, at: &str, m: AnomalyMetric) -> Option<Finding> {
        s.judge(
            index(s, at),
            m,
            true,
            0,
            &s.context(s.weekends(&Zone::default())),
        )
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} != {b}");
    }

    #[test]
    fn median_mad_and_percentile() {
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
        // |x − 11| of 10, 12, 11, 9, 13, 10, 50 = 1, 1, 0, 2, 2, 1, 39 → sorted 0 1 1 1 2 2 39.
        let v = [10.0, 12.0, 11.0, 9.0, 13.0, 10.0, 50.0];
        assert_eq!(median(&v), 11.0);
        assert_eq!(mad(&v, 11.0), 1.0);
        // Nearest rank ⌈0.95·20⌉ = 19 of 1..=20.
        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&twenty, 0.95), 19.0);
        assert_eq!(percentile(&[7.0], 0.95), 7.0);
    }

    #[test]
    fn severity_band_edges() {
        assert_eq!(severity(2.999), None);
        assert_eq!(severity(3.0), Some(Severity::Low));
        assert_eq!(severity(4.999), Some(Severity::Low));
        assert_eq!(severity(5.0), Some(Severity::Medium));
        assert_eq!(severity(7.999), Some(Severity::Medium));
        assert_eq!(severity(8.0), Some(Severity::High));
        assert_eq!(severity(11.999), Some(Severity::High));
        assert_eq!(severity(12.0), Some(Severity::Critical));
        assert_eq!(severity(-3.0), Some(Severity::Low));
        assert_eq!(severity(-12.5), Some(Severity::Critical));
    }

    #[test]
    fn deviation_and_stable_ids() {
        assert_eq!(deviation(15.0, 10.0), Some(50.0));
        assert_eq!(deviation(0.0, 40.0), Some(-100.0));
        assert_eq!(deviation(5.0, 0.0), None);
        let h = t("2026-11-23T14:00:00Z");
        let id = anomaly_id("planner", AnomalyMetric::Cost, h);
        assert_eq!(id, anomaly_id("planner", AnomalyMetric::Cost, h));
        assert_ne!(id, anomaly_id("planner", AnomalyMetric::Calls, h));
        assert_ne!(id, anomaly_id("planner", AnomalyMetric::Cost, h + HOUR));
        assert_ne!(id, anomaly_id("planner2", AnomalyMetric::Cost, h));
        assert!(id.starts_with("an-") && id.len() == 19, "{id}");
    }

    #[test]
    fn score_is_the_smaller_of_spread_and_noise_and_a_zero_mad_has_a_floor() {
        let hour = calls(0);
        // Expected 16 calls, MAD 0: the Poisson floor decides. 2(√36 − √16) = 4; 2(√25 − √16) = 2.
        let m = Model::with_expected(AnomalyMetric::Calls, 16.0, 0.0, &[], &hour);
        assert_eq!(m.score(36.0), 4.0);
        assert_eq!(m.score(25.0), 2.0);
        // A drop to zero: 2(√0 − √16) = −8.
        assert_eq!(m.score(0.0), -8.0);
        assert_eq!(m.score(16.0), 0.0);
        // The score is the smaller z: with a spread of 2, at 36 the spread says 10 and the noise
        // 4, so 4; at 20 the spread says 2 and the noise 2(√20 − 4) ≈ 0.94, so 0.94. With a
        // spread of 10, at 36 the spread's 2 is the smaller.
        let m = Model::with_expected(AnomalyMetric::Calls, 16.0, 2.0, &[], &hour);
        assert_eq!(m.score(36.0), 4.0);
        close(m.score(20.0), 2.0 * (20f64.sqrt() - 4.0));
        let m = Model::with_expected(AnomalyMetric::Calls, 16.0, 10.0, &[], &hour);
        assert_eq!(m.score(36.0), 2.0);
        // The noise thresholds at ±3: (√16 ± 1.5)² = 30.25 and 6.25.
        let m = Model::with_expected(AnomalyMetric::Calls, 16.0, 0.0, &[], &hour);
        assert_eq!(m.noise_threshold(3.0), 30.25);
        assert_eq!(m.noise_threshold(-3.0), 6.25);
        assert_eq!(m.z_bounds(), (6.25, 30.25));
    }

    #[test]
    fn error_rate_noise_is_binomial_on_the_arcsine_scale() {
        let hour = HourStats {
            calls: 36,
            ..Default::default()
        };
        // 2√36 (asin √0.75 − asin √0.25) = 12 (π/3 − π/6) = 2π.
        let m = Model::with_expected(AnomalyMetric::ErrorRate, 25.0, 0.0, &[], &hour);
        close(m.noise_z(75.0), 2.0 * std::f64::consts::PI);
        close(m.score(75.0), 2.0 * std::f64::consts::PI);
        // Expected 0.5 % is floored at p = 1 %: 0.8 % is above expected yet below the floor,
        // so the noise says "not a rise" and the score is 0.
        let m = Model::with_expected(AnomalyMetric::ErrorRate, 0.5, 0.0, &[], &hour);
        assert_eq!(m.score(0.8), 0.0);
    }

    #[test]
    fn cost_noise_is_a_compound_poisson_count_in_units_of_one_call() {
        // The week: two calls of $0.001 and $0.003 (nano-dollars). Unit = E[x²]/E[x]
        // = (1e12 + 9e12) / 4e6 = 2.5e6.
        let week = [HourStats {
            calls: 2,
            cost: 4_000_000,
            cost_sq_sum: 1e13,
            ..Default::default()
        }];
        let m = Model::with_expected(AnomalyMetric::Cost, 1e7, 0.0, &week, &calls(4));
        assert_eq!(m.unit, 2.5e6);
        // Expected = 4 units; 9 units: 2(3 − 2) = 2; 16 units: 2(4 − 2) = 4.
        assert_eq!(m.noise_z(2.25e7), 2.0);
        assert_eq!(m.noise_z(4e7), 4.0);
        // Without any call in the week, the unit is the floor of a tenth of a cent.
        let m = Model::with_expected(AnomalyMetric::Cost, 0.0, 0.0, &[], &calls(4));
        assert_eq!(m.unit, MIN_COST_UNIT);
    }

    #[test]
    fn latency_noise_is_the_standard_error_of_the_mean() {
        // Calls of 500, 1500, 500, 1500 ms: mean 1000, E[d²] = 1.25e6, variance 250 000.
        // 25 calls this hour: standard error √(250 000 / 25) = 100.
        let week = [HourStats {
            ok_timed: 4,
            ok_duration_sum: 4000.0,
            ok_duration_sq_sum: 5e6,
            ..Default::default()
        }];
        let now = HourStats {
            ok_timed: 25,
            ..Default::default()
        };
        let m = Model::with_expected(AnomalyMetric::Latency, 1000.0, 50.0, &week, &now);
        assert_eq!(m.se, 100.0);
        // By spread (1400 − 1000) / 50 = 8, by noise 400 / 100 = 4: the score is 4.
        assert_eq!(m.score(1400.0), 4.0);
        let m = Model::with_expected(AnomalyMetric::Latency, 1000.0, 200.0, &week, &now);
        assert_eq!(m.score(1400.0), 2.0);
    }

    #[test]
    fn reference_is_the_same_hour_on_days_of_the_same_kind() {
        let s = flat(21, calls(40));
        let z = s.context(s.weekends(&Zone::default()));
        // Tue 17 Nov 10:00 ← 3–16 Nov at 10:00: weekdays 3–6, 9–13, 16 = 10.
        let r = s.reference(index(&s, "2026-11-17T10:00:00Z"), AnomalyMetric::Calls, &z);
        assert_eq!(r.map(|r| r.len()), Some(10));
        // Sat 21 Nov 10:00 ← 7–20 Nov: weekend days 7, 8, 14, 15 = 4.
        let r = s.reference(index(&s, "2026-11-21T10:00:00Z"), AnomalyMetric::Calls, &z);
        assert_eq!(r.map(|r| r.len()), Some(4));
        // Mon 9 Nov 10:00 has 5 weekdays before it (< 7) but 7 days: all days.
        let r = s.reference(index(&s, "2026-11-09T10:00:00Z"), AnomalyMetric::Calls, &z);
        assert_eq!(r.map(|r| r.len()), Some(7));
        // Wed 4 Nov 10:00: 2 same-hour days, so the trailing hours since the first: 58.
        let r = s.reference(index(&s, "2026-11-04T10:00:00Z"), AnomalyMetric::Calls, &z);
        assert_eq!(r.map(|r| r.len()), Some(58));
        // Mon 2 Nov 10:00: 10 hours of history is too little for anything.
        let r = s.reference(index(&s, "2026-11-02T10:00:00Z"), AnomalyMetric::Calls, &z);
        assert_eq!(r, None);
        // The error rate pools whole days: 1 call an hour is 24 a day (≥ 20), 14 days.
        let s = flat(15, calls(1));
        let z = s.context(s.weekends(&Zone::default()));
        let r = s
            .reference(
                index(&s, "2026-11-16T10:00:00Z"),
                AnomalyMetric::ErrorRate,
                &z,
            )
            .unwrap();
        // (A single hour of 1 call has no rate: only whole days pooled give these values.)
        assert_eq!(r, vec![0.0; 14]);
    }

    #[test]
    fn a_drop_to_zero_is_reported_with_its_range() {
        let mut s = flat(15, calls(40));
        let at = "2026-11-16T10:00:00Z";
        let i = index(&s, at);
        s.hours[i] = calls(0);
        let f = judge(&s, at, AnomalyMetric::Calls).unwrap();
        // Expected 40 (ten weekdays of 40), MAD 0; noise 2(0 − √40) = −12.65: critical.
        assert_eq!(f.expected, 40.0);
        close(f.score, -2.0 * 40f64.sqrt());
        assert_eq!(f.severity, Severity::Critical);
        // Lower end: a material drop is ≤ min(40/4, 40 − 10) = 10. Upper end: the z = 3 noise
        // threshold (√40 + 1.5)² = 42.25 + 3√40 ≈ 61.2, above 40 + 20 and the week's 40.
        assert_eq!(f.range.0, 10.0);
        close(f.range.1, 42.25 + 3.0 * 40f64.sqrt());
        // A partial hour, or the 25th hour of a silence, is not a drop.
        let z = s.context(s.weekends(&Zone::default()));
        assert!(s.judge(i, AnomalyMetric::Calls, false, 1, &z).is_none());
        assert!(s.judge(i, AnomalyMetric::Calls, true, 24, &z).is_some());
        assert!(s.judge(i, AnomalyMetric::Calls, true, 25, &z).is_none());
        // An agent making 9 calls an hour cannot drop by the material 10.
        let mut s = flat(15, calls(9));
        s.hours[i] = calls(0);
        assert!(judge(&s, at, AnomalyMetric::Calls).is_none());
        // Cost, tokens, errors and latency never fire downwards.
        let mut s = flat(15, calls(40));
        s.hours[i] = HourStats::default();
        for m in [AnomalyMetric::Cost, AnomalyMetric::Tokens] {
            assert!(judge(&s, at, m).is_none());
        }
    }

    #[test]
    fn low_volume_is_never_anomalous() {
        let at = "2026-11-16T10:00:00Z";
        // Error rate needs 20 calls and 5 failures; latency 10 timed successful calls.
        assert_eq!(
            value(
                AnomalyMetric::ErrorRate,
                &HourStats {
                    calls: 19,
                    errors: 19,
                    ..Default::default()
                }
            ),
            None
        );
        let mut s = flat(15, calls(40));
        let i = index(&s, at);
        s.hours[i] = HourStats {
            calls: 40,
            errors: 4,
            ..Default::default()
        };
        // 10 % of 40 against a usual 0 %: 4 failures are too few.
        assert!(judge(&s, at, AnomalyMetric::ErrorRate).is_none());
        s.hours[i].errors = 20;
        let f = judge(&s, at, AnomalyMetric::ErrorRate).unwrap();
        // 50 % against 0 % (floored at p = 1 %): 2√40 (asin √0.5 − asin √0.01).
        close(
            f.score,
            2.0 * 40f64.sqrt() * (0.5f64.sqrt().asin() - 0.1f64.asin()),
        );
        assert_eq!(f.current, 50.0);
        assert_eq!(
            value(
                AnomalyMetric::Latency,
                &HourStats {
                    ok_timed: 9,
                    ok_duration_sum: 9e6,
                    ..Default::default()
                }
            ),
            None
        );
        // Calls: a rise of 19 on a usual 10 is not material, 20 is: 2(√30 − √10) = 4.63.
        let mut s = flat(15, calls(10));
        s.hours[i] = calls(29);
        assert!(judge(&s, at, AnomalyMetric::Calls).is_none());
        s.hours[i] = calls(30);
        let f = judge(&s, at, AnomalyMetric::Calls).unwrap();
        close(f.score, 2.0 * (30f64.sqrt() - 10f64.sqrt()));
        assert_eq!(f.severity, Severity::Low);
    }

    /// An hour of 10 calls at $0.01 each ($0.10), cost sums exact in nano-dollars.
    fn priced(calls: i64, each: i64) -> HourStats {
        HourStats {
            calls,
            cost: calls * each,
            cost_sq_sum: (calls * each * each) as f64,
            max_cost: each,
            ..Default::default()
        }
    }

    #[test]
    fn one_big_call_is_not_an_anomaly_and_small_money_is_not_material() {
        let at = "2026-11-16T10:00:00Z";
        let mut s = flat(15, priced(10, 10_000_000));
        let i = index(&s, at);
        // Nine usual calls and one of $5: $5.09, but without its largest call only $0.09.
        s.hours[i] = HourStats {
            calls: 10,
            cost: 90_000_000 + 5_000_000_000,
            cost_sq_sum: 9e14 + 2.5e19,
            max_cost: 5_000_000_000,
            ..Default::default()
        };
        assert!(judge(&s, at, AnomalyMetric::Cost).is_none());
        // The same $5.09 over ten calls of $0.509 is reported. Unit = E[x²]/E[x] = $0.01, so
        // expected 10 units, now 509: 2(√509 − √10).
        s.hours[i] = priced(10, 509_000_000);
        let f = judge(&s, at, AnomalyMetric::Cost).unwrap();
        close(f.score, 2.0 * (509f64.sqrt() - 10f64.sqrt()));
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(nanos_to_usd(f.current), 5.09);
        assert_eq!(nanos_to_usd(f.expected), 0.1);
        // $0.59 against a usual $0.10 is only $0.49 more: not material.
        s.hours[i] = priced(10, 59_000_000);
        assert!(judge(&s, at, AnomalyMetric::Cost).is_none());
    }

    #[test]
    fn a_weekly_rhythm_is_not_an_anomaly() {
        // 40 calls every hour, and a Monday 09:00 batch of 200 on 9 and 16 Nov (and the 23rd).
        let mut s = flat(22, calls(40));
        for day in ["2026-11-09", "2026-11-16", "2026-11-23"] {
            let i = index(&s, &format!("{day}T09:00:00Z"));
            s.hours[i] = calls(200);
        }
        // 16 Nov: only the previous Monday had it. Reference: ten weekdays, one of them 200:
        // median 40, MAD 0, so 2(√200 − √40).
        let f = judge(&s, "2026-11-16T09:00:00Z", AnomalyMetric::Calls).unwrap();
        close(f.score, 2.0 * (200f64.sqrt() - 40f64.sqrt()));
        // 23 Nov: both previous Mondays had it (within noise): a weekly habit.
        assert!(judge(&s, "2026-11-23T09:00:00Z", AnomalyMetric::Calls).is_none());
    }

    #[test]
    fn detect_walks_the_scope_and_counts_silence() {
        let mut s = flat(17, calls(40));
        // Silent from Mon 16 Nov 10:00 to the end (Wed 18 Nov 23:00): 38 hours.
        let from = index(&s, "2026-11-16T10:00:00Z");
        for h in &mut s.hours[from..] {
            *h = calls(0);
        }
        let scope = Scope {
            from: t("2026-11-16T00:00:00Z"),
            to: t("2026-11-19T00:00:00Z"),
            complete_until: t("2026-11-19T00:00:00Z"),
            zone: Zone::default(),
        };
        let found = s.detect(&scope);
        // Reported: each of the first 24 silent hours, and nothing after (nor any other metric).
        assert_eq!(found.len(), 24);
        assert_eq!(found[0].hour, t("2026-11-16T10:00:00Z"));
        assert_eq!(found[23].hour, t("2026-11-17T09:00:00Z"));
        assert!(found.iter().all(|f| f.metric == AnomalyMetric::Calls));
        // With the data ending at 16 Nov 10:30, the 10:00 hour is partial: not a drop.
        let cut = Scope {
            complete_until: t("2026-11-16T10:30:00Z"),
            ..scope
        };
        assert!(s.detect(&cut).is_empty());
    }
}

#[test]
fn finds_the_injected_anomalies_with_few_false_alarms() {
    let started = Instant::now();
    let now = t("2026-11-23T14:20:00Z");
    // 14 days of history, then the 30 days judged.
    let cfg = DemoConfig {
        agents: 20,
        models: 6,
        days: 44,
        events: 120_000,
        seed: 7,
    };
    let Labelled {
        executions,
        labels,
        drifting,
    } = demo::generate_with_anomalies(&cfg, now);
    let series = aggregate(&executions, now);
    let scope = Scope {
        from: now - 30 * DAY,
        to: now,
        complete_until: now,
        zone: Zone::default(),
    };
    let mut found = Vec::new();
    for (agent, s) in &series {
        found.extend(s.detect(&scope).into_iter().map(|f| (agent.clone(), f)));
    }
    let key = |a: &str, h: Millis, m: AnomalyMetric| (a.to_owned(), h, m);
    let labelled: HashSet<_> = labels
        .iter()
        .map(|l| key(&l.agent_id, l.hour_start, l.metric))
        .collect();
    let hits: BTreeMap<_, _> = found
        .iter()
        .filter(|(a, f)| labelled.contains(&key(a, f.hour, f.metric)))
        .map(|(a, f)| (key(a, f.hour, f.metric), f))
        .collect();
    let false_alarms: Vec<_> = found
        .iter()
        .filter(|(a, f)| !labelled.contains(&key(a, f.hour, f.metric)))
        .collect();
    let precision = hits.len() as f64 / found.len() as f64;
    let recall = hits.len() as f64 / labels.len() as f64;
    eprintln!(
        "anomaly detection on labelled demo data: {} executions, 20 agents, 30 days judged \
         (+14 of history); {} labels, {} reported: {} true, {} false alarms; precision {precision:.3}, \
         recall {recall:.3} ({:.1} s)",
        executions.len(),
        labels.len(),
        found.len(),
        hits.len(),
        false_alarms.len(),
        started.elapsed().as_secs_f64()
    );
    for l in &labels {
        let f = hits.get(&key(&l.agent_id, l.hour_start, l.metric));
        eprintln!(
            "  label {} {} {:?} ({:?}): {}",
            format_utc(l.hour_start),
            l.agent_id,
            l.metric,
            l.kind,
            f.map_or("MISSED".to_owned(), |f| format!(
                "{:?}, score {:.1}",
                f.severity, f.score
            ))
        );
    }
    for (a, f) in &false_alarms {
        eprintln!(
            "  false alarm {} {a} {:?} {:?} score {:.1} ({:.0} vs expected {:.0})",
            format_utc(f.hour),
            f.metric,
            f.severity,
            f.score,
            f.current,
            f.expected
        );
    }

    // Every kind is injected and labelled, and every label is found…
    let kinds: HashSet<AnomalyKind> = labels.iter().map(|l| l.kind).collect();
    assert_eq!(kinds.len(), 5, "{kinds:?}");
    assert_eq!(recall, 1.0, "missed some labelled anomalies");
    // …with a plausible severity: an agent falling silent, a runaway, a tenfold cost, a
    // majority of failures, a tripled latency are all at least medium.
    for l in &labels {
        let f = hits[&key(&l.agent_id, l.hour_start, l.metric)];
        assert!(f.severity >= Severity::Medium, "{l:?}: {f:?}");
        assert_eq!(f.score < 0.0, l.kind == AnomalyKind::CallDrop, "{l:?}");
    }
    // A handful of false alarms at most, none of them above medium. The slowly drifting agent
    // fires no more than the noise does on any agent (one in a month): a drift that fired would
    // do so hour after hour as its baseline fell behind.
    assert!(
        false_alarms.len() <= 5,
        "{} false alarms",
        false_alarms.len()
    );
    assert!(false_alarms
        .iter()
        .all(|(_, f)| f.severity <= Severity::Medium));
    let drift_alarms = found.iter().filter(|(a, _)| drifting.contains(a)).count();
    eprintln!("  drifting agent {drifting:?}: {drift_alarms} anomalies");
    assert!(drift_alarms <= 1, "the drift fired {drift_alarms} times");
}

#[test]
fn the_tool_matches_the_detector_and_is_deterministic() {
    let now = t("2026-11-23T14:20:00Z");
    let cfg = DemoConfig {
        agents: 6,
        models: 4,
        days: 30,
        events: 30_000,
        seed: 3,
    };
    let executions = demo::generate_with_anomalies(&cfg, now).executions;
    let series = aggregate(&executions, now);
    let mut reversed = executions.clone();
    reversed.reverse();
    let (_a, d) = dashboard(executions, now);
    // The same data stored in the opposite order (other row ids, other agent keys).
    let (_b, d2) = dashboard(reversed, now);

    // The SQL series are the executions' hourly sums.
    let runs = d
        .store
        .read(|c| c.series(&Window { start: 0, end: now }, &Agents::All))
        .unwrap();
    let rows: Vec<(&String, Millis, HourStats)> = runs
        .iter()
        .flat_map(|r| r.hours.iter().map(move |&(h, s)| (&r.agent_id, h, s)))
        .collect();
    assert_eq!(
        rows.len(),
        series
            .values()
            .map(|s| s.hours.iter().filter(|h| h.calls > 0).count())
            .sum::<usize>()
    );
    for &(agent, hour, got) in &rows {
        let s = &series[agent];
        let want = s.hours[((hour - s.start) / HOUR) as usize];
        assert_eq!(
            (got.calls, got.errors, got.tokens, got.cost, got.ok_timed),
            (
                want.calls,
                want.errors,
                want.tokens,
                want.cost,
                want.ok_timed
            )
        );
        assert_eq!(
            (got.max_cost, got.max_tokens),
            (want.max_cost, want.max_tokens)
        );
        for (g, w) in [
            (got.cost_sq_sum, want.cost_sq_sum),
            (got.tokens_sq_sum, want.tokens_sq_sum),
            (got.ok_duration_sum, want.ok_duration_sum),
            (got.ok_duration_sq_sum, want.ok_duration_sq_sum),
            (got.ok_duration_max, want.ok_duration_max),
        ] {
            assert!((g - w).abs() <= 1e-9 * w.abs().max(1.0), "{g} != {w}");
        }
    }
    // The rollup (whole hours) with raw edges equals the raw rows summed alone, exactly, for a
    // range that starts and ends inside an hour; and so does the database filled in reverse.
    let range = Window {
        start: now - 20 * DAY - 17 * 60_000,
        end: now,
    };
    let hours = |d: &Dashboard, rollups: bool, agent: Option<&str>| {
        d.store.set_rollups(rollups);
        let which = agent.map_or(Agents::All, |a| Agents::One(a.to_owned()));
        let rows = d.store.read(|c| c.series(&range, &which)).unwrap();
        d.store.set_rollups(true);
        rows
    };
    let from_rollups = hours(&d, true, None);
    assert_eq!(from_rollups.len(), 6);
    assert!(from_rollups.iter().all(|r| r.hours.len() > 200));
    assert_eq!(from_rollups, hours(&d, false, None));
    // (Agent keys differ between the two databases: compare by id.)
    let by_id = |runs: &[AgentRun]| -> Vec<(String, Vec<(Millis, HourStats)>)> {
        runs.iter()
            .map(|r| (r.agent_id.clone(), r.hours.clone()))
            .collect()
    };
    assert_eq!(by_id(&from_rollups), by_id(&hours(&d2, true, None)));
    let one = &from_rollups[1].agent_id;
    let mine = vec![from_rollups[1].clone()];
    assert_eq!(hours(&d, true, Some(one)), mine);
    assert_eq!(hours(&d, false, Some(one)), mine);
    assert!(hours(&d, true, Some("no-such-agent")).is_empty());

    // The tool answers what the detector finds over the hours of the window, newest first.
    let out = d.anomalies(month(|_| {})).unwrap();
    // The hours overlapping the window: from the start of the window's first hour.
    let scope = Scope {
        from: (now - 30 * DAY).div_euclid(HOUR) * HOUR,
        to: now,
        complete_until: now,
        zone: Zone::default(),
    };
    let mut expected: Vec<(Millis, String, AnomalyMetric, Severity)> = series
        .iter()
        .flat_map(|(a, s)| {
            s.detect(&scope)
                .into_iter()
                .map(move |f| (f.hour, a.clone(), f.metric, f.severity))
        })
        .collect();
    expected.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    let got: Vec<_> = out
        .anomalies
        .iter()
        .map(|a| (t(&a.timestamp), a.agent_id.clone(), a.metric, a.severity))
        .collect();
    assert!(got.len() >= 5, "the labelled anomalies at least: {got:?}");
    assert_eq!(got, expected);

    // Same data, same clock: the same answer, ids included, whatever the ingest order.
    assert_eq!(
        serde_json::to_value(&out).unwrap(),
        serde_json::to_value(d2.anomalies(month(|_| {})).unwrap()).unwrap()
    );
    assert_eq!(out, d.anomalies(month(|_| {})).unwrap());

    check_shape(&out);
    check_filters_and_paging(&d, &out);

    // The overview counts the same anomalies over the same window, per agent too.
    let overview = d
        .overview(OverviewInput {
            timeframe: Some(Timeframe::Month),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(overview.anomalies, out.summary);
    let agent = out.anomalies[0].agent_id.clone();
    let one = d
        .overview(OverviewInput {
            timeframe: Some(Timeframe::Month),
            agent_id: Some(agent.clone()),
            ..Default::default()
        })
        .unwrap();
    let mine = out.anomalies.iter().filter(|a| a.agent_id == agent).count() as u64;
    assert_eq!(one.anomalies.total, mine);
}

fn check_shape(out: &AnomaliesOutput) {
    let s = &out.summary;
    let b = &s.by_severity;
    assert_eq!(s.total, out.anomalies.len() as u64);
    assert_eq!(b.low + b.medium + b.high + b.critical, s.total);
    assert_eq!(out.pagination.total, s.total);
    assert!(!out.pagination.has_more);
    let mut ids = HashSet::new();
    for a in &out.anomalies {
        assert!(ids.insert(a.id.clone()), "duplicate id {}", a.id);
        assert!(a.expected_range.min <= a.expected && a.expected <= a.expected_range.max);
        let outside =
            a.current_value <= a.expected_range.min || a.current_value >= a.expected_range.max;
        assert!(outside, "{a:?}");
        assert!(a.description.contains(&a.agent_id) && a.description.ends_with('.'));
        match a.deviation {
            Some(d) => assert_eq!(d.signum(), a.score.signum(), "{a:?}"),
            None => assert_eq!(a.expected, 0.0),
        }
    }
    assert!(out
        .anomalies
        .windows(2)
        .all(|w| w[0].timestamp >= w[1].timestamp));
}

fn check_filters_and_paging(d: &Dashboard, all: &AnomaliesOutput) {
    let b = &all.summary.by_severity;
    let high = d
        .anomalies(month(|i| i.severity = Some(Severity::High)))
        .unwrap();
    assert_eq!(high.summary.total, b.high + b.critical);
    assert_eq!(
        (
            high.summary.by_severity.low,
            high.summary.by_severity.medium
        ),
        (0, 0)
    );
    assert!(high.anomalies.iter().all(|a| a.severity >= Severity::High));

    let calls = d
        .anomalies(month(|i| i.metric = Some(AnomalyMetric::Calls)))
        .unwrap();
    let want: Vec<_> = all
        .anomalies
        .iter()
        .filter(|a| a.metric == AnomalyMetric::Calls)
        .collect();
    assert_eq!(calls.anomalies.iter().collect::<Vec<_>>(), want);

    let agent = all.anomalies[0].agent_id.clone();
    let mine = d
        .anomalies(month(|i| i.agent_id = Some(agent.clone())))
        .unwrap();
    let want: Vec<_> = all
        .anomalies
        .iter()
        .filter(|a| a.agent_id == agent)
        .collect();
    assert_eq!(mine.anomalies.iter().collect::<Vec<_>>(), want);
    let nobody = d
        .anomalies(month(|i| i.agent_id = Some("nobody".into())))
        .unwrap();
    assert_eq!(nobody.summary.total, 0);

    let page = d
        .anomalies(month(|i| {
            i.limit = Some(2);
            i.offset = Some(1);
        }))
        .unwrap();
    assert_eq!(page.anomalies, all.anomalies[1..3]);
    assert_eq!(page.summary, all.summary);
    assert_eq!(page.pagination.total, all.summary.total);
    assert!(page.pagination.has_more);
    assert_eq!(page.pagination.next_offset, Some(3));
    assert_eq!(page.period, all.period);
}

#[test]
fn bad_input_names_the_field_and_what_is_allowed() {
    let now = t("2026-11-23T14:20:00Z");
    let (_dir, d) = dashboard(Vec::new(), now);
    let call = |args: serde_json::Value| {
        let serde_json::Value::Object(m) = args else {
            unreachable!()
        };
        catalog::call(&d, false, "dashboard_get_anomalies", Some(m))
    };
    for (args, field, words) in [
        (
            serde_json::json!({"severity": "urgent"}),
            "severity",
            vec!["urgent", "low, medium, high, critical"],
        ),
        (
            serde_json::json!({"metric": "cpu"}),
            "metric",
            vec!["cpu", "cost, calls, tokens, errorRate, latency"],
        ),
        (
            serde_json::json!({"limit": 0}),
            "limit",
            vec!["0", "1..=500"],
        ),
        (
            serde_json::json!({"limit": 501}),
            "limit",
            vec!["501", "1..=500"],
        ),
        (
            serde_json::json!({"sortBy": "cost"}),
            "sortBy",
            vec!["sortBy"],
        ),
    ] {
        let Err(catalog::CallError::Tool(e)) = call(args.clone()) else {
            panic!("{args} was accepted")
        };
        assert_eq!(e.field(), Some(field), "{args}: {e}");
        for w in words {
            assert!(e.to_string().contains(w), "{args}: {e}");
        }
    }
    // Forgiven: aliases, case, numbers as strings. An empty store is not an error.
    let ok = call(serde_json::json!({"severity": "HIGH", "metric": "error_rate", "limit": "5"}))
        .unwrap();
    assert_eq!(ok["summary"]["total"], 0);
    assert_eq!(ok["anomalies"], serde_json::json!([]));
    assert_eq!(ok["pagination"]["limit"], 5);
}

/// The memo (verdicts of complete hours remembered, recent hours kept in memory) answers exactly
/// what judging every hour afresh over raw rows answers, while executions arrive in time order
/// and late, new agents appear and the clock moves on by uneven steps.
#[test]
fn the_memo_answers_what_judging_afresh_answers_under_ingest() {
    use rand::{Rng, SeedableRng};
    let end = t("2026-11-23T14:20:00Z");
    let cfg = DemoConfig {
        agents: 6,
        models: 3,
        days: 24,
        events: 40_000,
        seed: 11,
    };
    let mut executions = demo::generate_with_anomalies(&cfg, end).executions;
    executions.sort_by_key(|e| e.ts);
    // An agent that appears half way through the live part, a copy of another one's traffic.
    let newcomer: Vec<Execution> = executions
        .iter()
        .filter(|e| e.agent_id == executions[0].agent_id && e.ts >= end - 2 * DAY)
        .map(|e| Execution {
            id: format!("{}-new", e.id),
            agent_id: "newcomer".into(),
            ..e.clone()
        })
        .collect();
    executions.extend(newcomer);
    executions.sort_by_key(|e| e.ts);
    let live_from = end - 4 * DAY;
    let split = executions.partition_point(|e| e.ts < live_from);
    let (past, live) = executions.split_at(split);
    let (_dir, base) = dashboard(past.to_vec(), live_from);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let (mut clock, mut next) = (live_from, 0);
    let mut held: Vec<Execution> = Vec::new();
    let (mut calls, mut found) = (0, 0);
    while clock < end {
        clock =
            (clock + rng.random_range(1..8 * 60) * 60_000 + rng.random_range(0..60_000)).min(end);
        // What happened up to the clock arrives, but for a tenth held back to arrive late.
        let mut batch = Vec::new();
        while next < live.len() && live[next].ts < clock {
            if rng.random_bool(0.1) {
                held.push(live[next].clone());
            } else {
                batch.push(live[next].clone());
            }
            next += 1;
        }
        if rng.random_bool(0.3) {
            batch.append(&mut held);
        }
        ingest::insert_all(&*base.store, batch).unwrap();
        let d = Dashboard {
            clock: Clock::Fixed(clock),
            ..base.clone()
        };
        for _ in 0..3 {
            let mut args = serde_json::Map::new();
            let frames = ["hour", "day", "week", "month"];
            match rng.random_range(0..3) {
                0 => {
                    args.insert("timeframe".into(), frames[rng.random_range(0..4)].into());
                }
                1 => {
                    let back = rng.random_range(0..6 * DAY);
                    args.insert("timeframe".into(), frames[rng.random_range(0..4)].into());
                    args.insert("end".into(), format_utc(clock - back).into());
                }
                _ => {
                    let a = clock - rng.random_range(0..20 * DAY);
                    let b = a + rng.random_range(1..5 * DAY);
                    args.insert("start".into(), format_utc(a).into());
                    args.insert("end".into(), format_utc(b).into());
                }
            }
            if rng.random_bool(0.3) {
                let who = ["newcomer", "planner", "no-such-agent", &live[0].agent_id];
                args.insert("agentId".into(), who[rng.random_range(0..who.len())].into());
            }
            args.insert("limit".into(), 500.into());
            let run = |rollups: bool| {
                d.store.set_rollups(rollups);
                let out = catalog::call(&d, false, "dashboard_get_anomalies", Some(args.clone()));
                d.store.set_rollups(true);
                out.unwrap()
            };
            let (memo, afresh) = (run(true), run(false));
            assert_eq!(
                memo,
                afresh,
                "at {} with {}",
                format_utc(clock),
                serde_json::Value::Object(args)
            );
            found += memo["anomalies"].as_array().unwrap().len();
            calls += 1;
        }
    }
    assert!(calls > 30, "{calls} calls");
    // The comparison means something only if there were anomalies to find.
    assert!(found > 20, "{found} anomalies over {calls} calls");
}
