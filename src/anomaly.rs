//! Statistical anomaly detection over per-agent hourly series: pure functions over numbers, no
//! I/O. The method, and the reason for every constant, is written up in `docs/anomalies.md`.
//!
//! In short: each hour of each metric is compared with the agent's own history at the same hour
//! of day (weekdays with weekdays) over the previous 14 days, or with the trailing week while
//! there is less history. The expected value is the median, the scale the larger of 1.4826 × MAD
//! and the noise the hour's volume alone would give, and the score the robust z-score
//! `(current − expected) / scale`. An hour is reported only when the score reaches 3 in a
//! direction that matters for the metric *and* the change is material.

use sha2::{Digest, Sha256};

use crate::store::HourStats;
use crate::time::{Millis, Zone, DAY, HOUR};
use crate::wire::{AnomalyMetric as Metric, Severity};

/// Days of history before an hour that its baseline may use (the caller fetches this much).
pub const HISTORY_DAYS: i64 = 14;
pub const HISTORY: Millis = HISTORY_DAYS * DAY;
/// The hours before an hour that its judgment reads (the same hour `HISTORY_DAYS` ago is the
/// farthest): an hour's findings depend on the agent's hours `[h − LOOKBACK_HOURS, h]` only.
pub const LOOKBACK_HOURS: usize = (HISTORY / HOUR) as usize;
/// Same-hour samples the seasonal baseline needs: a week's worth of days, or of weekdays for a
/// weekday hour…
pub const MIN_SEASONAL: usize = 7;
/// …and for a weekend hour, two weekends' worth (all that 14 days hold).
pub const MIN_SEASONAL_WEEKEND: usize = 4;
/// The trailing window: the baseline while there are fewer seasonal samples, the per-call
/// moments of the noise floors, and the weekly ceiling.
pub const TRAILING_HOURS: usize = 7 * 24;
/// Hours the trailing baseline needs: a full day, so it has seen the daily cycle once.
pub const MIN_TRAILING: usize = 24;
/// 1.4826 × MAD estimates the standard deviation of normally distributed data.
pub const MAD_TO_SIGMA: f64 = 1.4826;
/// The smallest |score| reported, and the band edges.
pub const Z_LOW: f64 = 3.0;
pub const Z_MEDIUM: f64 = 5.0;
pub const Z_HIGH: f64 = 8.0;
pub const Z_CRITICAL: f64 = 12.0;

/// Material change: calls must rise by at least this many…
pub const MIN_CALLS_RISE: f64 = 20.0;
/// …or fall by at least this many, to at most a quarter of usual (an agent stopping, not a lull).
pub const MIN_CALLS_DROP: f64 = 10.0;
pub const DROP_MAX_RATIO: f64 = 0.25;
/// Cost must rise by at least $0.50 (in nano-dollars) in the hour.
pub const MIN_COST_CHANGE: f64 = 500_000_000.0;
/// Tokens must rise by at least this many in the hour.
pub const MIN_TOKENS_CHANGE: f64 = 50_000.0;
/// An error rate means something from this many calls in the hour…
pub const MIN_RATE_CALLS: i64 = 20;
/// …with at least this many failures and a rise of at least this many percentage points.
pub const MIN_ERRORS: i64 = 5;
pub const MIN_ERROR_RATE_CHANGE: f64 = 10.0;
/// The least error probability the binomial noise assumes (the usual rate of a healthy agent
/// is often estimated as 0 from a few dozen calls).
pub const MIN_ERROR_P: f64 = 0.01;
/// A mean latency means something from this many successful timed calls in the hour…
pub const MIN_LATENCY_CALLS: i64 = 10;
/// …and must rise by at least 25 % and 100 ms.
pub const MIN_LATENCY_RISE: f64 = 0.25;
pub const MIN_LATENCY_CHANGE_MS: f64 = 100.0;
/// The noise units are never below a tenth of a cent, 100 tokens or 1 ms: the last guard
/// against a zero scale when an agent has no calls in its trailing week at all.
pub const MIN_COST_UNIT: f64 = 1_000_000.0;
pub const MIN_TOKENS_UNIT: f64 = 100.0;
pub const MIN_LATENCY_SE: f64 = 1.0;
/// The percentile of the trailing week's hours a rise must exceed (else it is a habit).
pub const CEILING_PERCENTILE: f64 = 0.95;
/// Zero-call hours are reported as drops during the first day of a silence only.
pub const MAX_SILENT_HOURS: usize = 24;

/// Every metric, in the order findings of the same hour are listed.
pub const METRICS: [Metric; 5] = [
    Metric::Cost,
    Metric::Calls,
    Metric::Tokens,
    Metric::ErrorRate,
    Metric::Latency,
];

/// Does a drop of `metric` matter? (A rise always does.) Only calls: an agent that stops calling
/// has died; cheaper, fewer tokens, fewer errors and faster are good news.
pub fn both_directions(metric: Metric) -> bool {
    metric == Metric::Calls
}

/// The metric's value for one hour, `None` when the hour has too little volume for it to mean
/// anything. Cost is in nano-dollars, error rate in percent, latency in ms.
pub fn value(metric: Metric, s: &HourStats) -> Option<f64> {
    match metric {
        Metric::Cost => Some(s.cost as f64),
        Metric::Calls => Some(s.calls as f64),
        Metric::Tokens => Some(s.tokens as f64),
        Metric::ErrorRate => {
            (s.calls >= MIN_RATE_CALLS).then(|| 100.0 * s.errors as f64 / s.calls as f64)
        }
        Metric::Latency => {
            (s.ok_timed >= MIN_LATENCY_CALLS).then(|| s.ok_duration_sum / s.ok_timed as f64)
        }
    }
}

/// The median (the mean of the two middle values for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The median absolute deviation from `center`.
pub fn mad(values: &[f64], center: f64) -> f64 {
    let dev: Vec<f64> = values.iter().map(|v| (v - center).abs()).collect();
    median(&dev)
}

/// The nearest-rank percentile `p` (0 < p ≤ 1): the value at rank ⌈p·n⌉; NaN when empty.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1));
    v.get(rank - 1).copied().unwrap_or(f64::NAN)
}

/// The severity band of a score (by its absolute value); `None` below `Z_LOW`.
pub fn severity(score: f64) -> Option<Severity> {
    let z = score.abs();
    if z >= Z_CRITICAL {
        Some(Severity::Critical)
    } else if z >= Z_HIGH {
        Some(Severity::High)
    } else if z >= Z_MEDIUM {
        Some(Severity::Medium)
    } else if z >= Z_LOW {
        Some(Severity::Low)
    } else {
        None
    }
}

/// `(current − expected) / expected × 100`; `None` when expected is 0 (a rise from nothing has
/// no finite percentage).
pub fn deviation(current: f64, expected: f64) -> Option<f64> {
    (expected != 0.0).then(|| (current - expected) / expected * 100.0)
}

/// A stable id: the same agent, metric and hour always give the same id.
pub fn anomaly_id(agent_id: &str, metric: Metric, hour: Millis) -> String {
    let mut h = Sha256::new();
    h.update(agent_id.as_bytes());
    h.update([0]);
    h.update(metric.as_str().as_bytes());
    h.update([0]);
    h.update(hour.to_string().as_bytes());
    let hex: String = h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("an-{hex}")
}

/// Is `t` on a Saturday or Sunday in `zone`?
pub fn is_weekend(zone: &Zone, t: Millis) -> bool {
    use chrono::Datelike;
    zone.date_of(t).weekday().number_from_monday() >= 6
}

/// What one hour of one metric is judged against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    pub metric: Metric,
    /// The usual value.
    pub expected: f64,
    /// 1.4826 × MAD of the reference values: their observed spread.
    pub spread: f64,
    /// Cost, tokens: the amount one "effective call" stands for, E[x²] / E[x] over the calls of
    /// the trailing week, so that a sum counted in these units has the variance of a Poisson
    /// count (a compound Poisson sum has variance λ·E[x²] = mean × E[x²]/E[x]).
    pub unit: f64,
    /// Latency: the standard error of the hour's mean, from the week's per-call variance.
    pub se: f64,
    /// Error rate: the error probability and the hour's calls of the binomial noise.
    pub p: f64,
    pub n: f64,
}

impl Model {
    /// The model of `metric` for `current` from its reference values and the trailing `week`
    /// (every hour of it: the size of one call does not follow the hour of day, so its moments
    /// are pooled over all of them). `reference` must hold at least one value.
    pub fn new(
        metric: Metric,
        reference: &[f64],
        week: &[HourStats],
        current: &HourStats,
    ) -> Model {
        let expected = median(reference);
        let spread = MAD_TO_SIGMA * mad(reference, expected);
        Model::with_expected(metric, expected, spread, week, current)
    }

    /// A model with a given expected value and spread (the weekly comparison uses one hour).
    pub fn with_expected(
        metric: Metric,
        expected: f64,
        spread: f64,
        week: &[HourStats],
        current: &HourStats,
    ) -> Model {
        let sum = |f: fn(&HourStats) -> f64| week.iter().map(f).sum::<f64>();
        let (sq, total, least) = match metric {
            Metric::Cost => (
                sum(|s| s.cost_sq_sum),
                sum(|s| s.cost as f64),
                MIN_COST_UNIT,
            ),
            _ => (
                sum(|s| s.tokens_sq_sum),
                sum(|s| s.tokens as f64),
                MIN_TOKENS_UNIT,
            ),
        };
        let unit = if total > 0.0 { sq / total } else { 0.0 };
        let timed = sum(|s| s.ok_timed as f64);
        let var = if timed > 0.0 {
            let mean = sum(|s| s.ok_duration_sum) / timed;
            (sum(|s| s.ok_duration_sq_sum) / timed - mean * mean).max(0.0)
        } else {
            0.0
        };
        Model {
            metric,
            expected,
            spread,
            unit: unit.max(least),
            se: (var / current.ok_timed.max(1) as f64)
                .sqrt()
                .max(MIN_LATENCY_SE),
            p: (expected / 100.0).clamp(MIN_ERROR_P, 1.0),
            n: current.calls.max(1) as f64,
        }
    }

    /// How many standard deviations of pure volume noise `x` is from expected. Counts and sums
    /// of calls are skewed, so they are measured on variance-stabilising scales: 2(√x − √λ) for
    /// a Poisson count (calls; cost and tokens counted in `unit`s), 2√n (asin √p̂ − asin √p) for
    /// a binomial share (error rate). These are close to standard normal even for small counts,
    /// where the plain (x − λ)/√λ overstates rises (and understates drops) many times over.
    pub fn noise_z(&self, x: f64) -> f64 {
        let root = |v: f64| v.max(0.0).sqrt();
        match self.metric {
            Metric::Calls => 2.0 * (root(x) - root(self.expected)),
            Metric::Cost | Metric::Tokens => {
                2.0 * (root(x / self.unit) - root(self.expected / self.unit))
            }
            Metric::ErrorRate => {
                let a = |p: f64| p.clamp(0.0, 1.0).sqrt().asin();
                2.0 * self.n.sqrt() * (a(x / 100.0) - a(self.p))
            }
            Metric::Latency => (x - self.expected) / self.se,
        }
    }

    /// The value where the noise alone reaches `z` standard deviations (the inverse of
    /// `noise_z`); ±∞ where it cannot.
    pub fn noise_threshold(&self, z: f64) -> f64 {
        // The inverse of 2(√(x/u) − √(λ/u)).
        let square = |lambda: f64, u: f64| {
            let r = (lambda.max(0.0) / u).sqrt() + z / 2.0;
            if r < 0.0 {
                f64::NEG_INFINITY
            } else {
                u * r * r
            }
        };
        match self.metric {
            Metric::Calls => square(self.expected, 1.0),
            Metric::Cost | Metric::Tokens => square(self.expected, self.unit),
            Metric::ErrorRate => {
                let angle = self.p.sqrt().asin() + z / (2.0 * self.n.sqrt());
                if angle < 0.0 {
                    f64::NEG_INFINITY
                } else if angle > std::f64::consts::FRAC_PI_2 {
                    f64::INFINITY
                } else {
                    100.0 * angle.sin().powi(2)
                }
            }
            Metric::Latency => self.expected + z * self.se,
        }
    }

    /// The robust z-score `(x − expected) / scale`, the scale being the larger of the observed
    /// spread and the volume noise (so the score is the smaller of the two z's); 0 when the
    /// two disagree on the direction.
    pub fn score(&self, x: f64) -> f64 {
        let d = x - self.expected;
        if d == 0.0 {
            return 0.0;
        }
        let by_spread = if self.spread > 0.0 {
            d / self.spread
        } else {
            d.signum() * f64::INFINITY
        };
        let by_noise = self.noise_z(x);
        if by_noise.signum() != d.signum() || by_noise == 0.0 {
            return 0.0;
        }
        if by_spread.abs() < by_noise.abs() {
            by_spread
        } else {
            by_noise
        }
    }

    /// The least value scoring `Z_LOW` and the greatest scoring `−Z_LOW`.
    pub fn z_bounds(&self) -> (f64, f64) {
        (
            (self.expected - Z_LOW * self.spread).min(self.noise_threshold(-Z_LOW)),
            (self.expected + Z_LOW * self.spread).max(self.noise_threshold(Z_LOW)),
        )
    }
}

/// The smallest rise (above `expected`) that is material for `metric` in an hour like `current`.
pub fn material_rise(metric: Metric, expected: f64, current: &HourStats) -> f64 {
    match metric {
        Metric::Cost => MIN_COST_CHANGE,
        Metric::Calls => MIN_CALLS_RISE,
        Metric::Tokens => MIN_TOKENS_CHANGE,
        Metric::ErrorRate => MIN_ERROR_RATE_CHANGE
            .max(100.0 * MIN_ERRORS as f64 / current.calls.max(1) as f64 - expected),
        Metric::Latency => MIN_LATENCY_CHANGE_MS.max(MIN_LATENCY_RISE * expected),
    }
}

/// The highest value of a drop that is material (calls only): at most a quarter of usual and at
/// least `MIN_CALLS_DROP` below it. Negative when no drop can be material.
pub fn material_drop_ceiling(expected: f64) -> f64 {
    (DROP_MAX_RATIO * expected).min(expected - MIN_CALLS_DROP)
}

/// The hour's value without its largest execution (cost, tokens) or its slowest successful call
/// (latency); `None` for counts and rates, where one call is one call.
pub fn without_largest_call(metric: Metric, s: &HourStats) -> Option<f64> {
    match metric {
        Metric::Cost => Some((s.cost - s.max_cost) as f64),
        Metric::Tokens => Some((s.tokens - s.max_tokens) as f64),
        Metric::Latency => {
            Some((s.ok_duration_sum - s.ok_duration_max) / (s.ok_timed - 1).max(1) as f64)
        }
        Metric::Calls | Metric::ErrorRate => None,
    }
}

/// One anomalous hour of one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Start of the UTC hour.
    pub hour: Millis,
    pub metric: Metric,
    pub severity: Severity,
    /// Robust z-score, negative for a drop.
    pub score: f64,
    pub current: f64,
    pub expected: f64,
    /// Values in `[min, max]` would not have been reported.
    pub range: (f64, f64),
    /// The hour's sums (for descriptions).
    pub stats: HourStats,
}

/// Whether each of `n` hours from `start` falls on a weekend in `zone`.
pub fn weekends(zone: &Zone, start: Millis, n: usize) -> Vec<bool> {
    (0..n as i64)
        .map(|i| is_weekend(zone, start + i * HOUR))
        .collect()
}

/// Which hours are weekend hours, worked out once for a run of hours and then handed to every
/// agent's series (time zone arithmetic is costly).
#[derive(Debug, Clone)]
pub struct Calendar {
    zone: Zone,
    start: Millis,
    weekend: Vec<bool>,
}

impl Calendar {
    /// The hours from the one holding `start` up to the one holding `end − 1`.
    pub fn new(zone: Zone, start: Millis, end: Millis) -> Calendar {
        let start = start.div_euclid(HOUR) * HOUR;
        let n = ((end - start + HOUR - 1) / HOUR).max(0) as usize;
        Calendar {
            zone,
            start,
            weekend: weekends(&zone, start, n),
        }
    }

    /// The flags of the `n` hours from `from` (an hour start), as `weekends` would give them.
    pub fn flags(&self, from: Millis, n: usize) -> Vec<bool> {
        (0..n as i64)
            .map(|i| {
                let t = from + i * HOUR;
                let k = usize::try_from((t - self.start).div_euclid(HOUR)).ok();
                match k.and_then(|k| self.weekend.get(k)) {
                    Some(&w) => w,
                    None => is_weekend(&self.zone, t),
                }
            })
            .collect()
    }
}

/// What judging a series needs beside its hours (`AgentSeries::context`).
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    weekend: Vec<bool>,
    calls: Vec<i64>,
    errors: Vec<i64>,
    /// `active[k]`: the first hour at or after `k` with executions (`hours.len()` if none).
    active: Vec<usize>,
}

/// Where the detector looks, up to when the data is complete, and whose calendar it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    /// Judge the hours starting in `[from, to)`.
    pub from: Millis,
    pub to: Millis,
    /// Data exists up to here (the window's end, or now if earlier): an hour ending later is
    /// partial, and a partial hour is never a drop.
    pub complete_until: Millis,
    /// Says which days are weekends.
    pub zone: Zone,
}

/// One agent's hours, dense: `hours[i]` is the UTC hour starting at `start + i·HOUR`, zeros for
/// hours without executions; `start` is the first hour with executions that was fetched.
///
/// For judging hour `i`, the agent's history starts at its first active hour in the lookback
/// `[i − LOOKBACK_HOURS, i]`: before it the agent did not exist (or had not run for two weeks,
/// which is the same for a baseline), which is not the same as being idle. So an hour's findings
/// depend on its lookback only, never on how much was fetched before it: the same hour gets the
/// same verdict from every window, and a verdict can be remembered until data of its lookback
/// changes (`dashboard::memo`).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSeries {
    pub start: Millis,
    pub hours: Vec<HourStats>,
}

impl AgentSeries {
    /// Fill the gaps of sparse `(hour start, stats)` rows (ascending) up to the hour holding
    /// `end − 1`. `None` when there are no rows.
    pub fn from_sparse(
        rows: impl IntoIterator<Item = (Millis, HourStats)>,
        end: Millis,
    ) -> Option<AgentSeries> {
        Self::from_sparse_in(rows, end, Vec::new())
    }

    /// `from_sparse`, filling `hours` (cleared first): a caller judging agent after agent
    /// passes the previous series' `hours` back rather than allocating ~30 KB per agent.
    pub fn from_sparse_in(
        rows: impl IntoIterator<Item = (Millis, HourStats)>,
        end: Millis,
        mut hours: Vec<HourStats>,
    ) -> Option<AgentSeries> {
        let mut rows = rows.into_iter().peekable();
        let start = rows.peek()?.0;
        let n = ((end - start + HOUR - 1) / HOUR).max(0) as usize;
        hours.clear();
        hours.resize(n, HourStats::default());
        for (t, s) in rows {
            if let Some(h) = hours.get_mut(((t - start) / HOUR) as usize) {
                *h = s;
            }
        }
        Some(AgentSeries { start, hours })
    }

    fn hour_start(&self, i: usize) -> Millis {
        self.start + i as i64 * HOUR
    }

    fn stats(&self, i: isize) -> Option<&HourStats> {
        usize::try_from(i).ok().and_then(|i| self.hours.get(i))
    }

    /// Every hour of the trailing week before hour `i`, from `lo` (`floor`) on.
    fn week(&self, i: usize, lo: usize) -> &[HourStats] {
        &self.hours[lo.max(i.saturating_sub(TRAILING_HOURS))..i]
    }

    /// Where hour `i`'s history starts: the first hour with executions in its lookback
    /// `[i − LOOKBACK_HOURS, i]`; `None` when there is none (nothing to judge).
    pub fn floor(&self, i: usize, ctx: &Context) -> Option<usize> {
        let lo = ctx.active[i.saturating_sub(LOOKBACK_HOURS)];
        (lo <= i).then_some(lo)
    }

    /// The zero-call hours ending with hour `i`, counted up to `MAX_SILENT_HOURS + 1` (all a
    /// judgment needs to know).
    pub fn silent(&self, i: usize) -> usize {
        self.hours[..=i]
            .iter()
            .rev()
            .take(MAX_SILENT_HOURS + 1)
            .take_while(|s| s.calls == 0)
            .count()
    }

    /// The reference values of `metric` for hour `i` (see `reference_into`).
    pub fn reference(&self, i: usize, metric: Metric, ctx: &Context) -> Option<Vec<f64>> {
        let mut out = Vec::new();
        self.reference_into(i, metric, ctx, &mut out).then_some(out)
    }

    /// Put the reference values of `metric` for hour `i` into `out` (cleared first); `false`
    /// when there is too little history for a baseline. For the error rate: the rates of each of
    /// the previous `HISTORY_DAYS` days (the 24 hours before the hour, then the 24 before
    /// those…), the days with enough calls for a rate, at least one of them; failures are rare,
    /// so few single hours have enough calls for a rate, and the rate follows the hour of day
    /// little. A burst moves one day's rate, not the median of the days. For the other metrics:
    /// the same hour on each of the previous `HISTORY_DAYS` days of the same kind (weekdays for a
    /// weekday hour, weekend days for a weekend hour) when there are `MIN_SEASONAL`
    /// (`MIN_SEASONAL_WEEKEND`) of them; else the same hour on each previous day when at least
    /// `MIN_SEASONAL` have a value; else the trailing week's hours when at least `MIN_TRAILING`
    /// do; else none.
    pub fn reference_into(
        &self,
        i: usize,
        metric: Metric,
        ctx: &Context,
        out: &mut Vec<f64>,
    ) -> bool {
        const PER_DAY: usize = (DAY / HOUR) as usize;
        out.clear();
        let Some(lo) = self.floor(i, ctx) else {
            return false;
        };
        if metric == Metric::ErrorRate {
            for k in 1..=HISTORY_DAYS as usize {
                let Some(from) = i.checked_sub(k * PER_DAY).filter(|&j| j >= lo) else {
                    break;
                };
                let day = HourStats {
                    calls: ctx.calls[from + PER_DAY] - ctx.calls[from],
                    errors: ctx.errors[from + PER_DAY] - ctx.errors[from],
                    ..HourStats::default()
                };
                out.extend(value(metric, &day));
            }
            return !out.is_empty();
        }
        let weekend = &ctx.weekend;
        let same_hour = (1..=HISTORY_DAYS as usize)
            .map_while(|k| i.checked_sub(k * PER_DAY).filter(|&j| j >= lo))
            .filter_map(|j| Some((j, value(metric, &self.hours[j])?)));
        let (mut kinds, mut all) = (0, 0);
        for (j, v) in same_hour.clone() {
            all += 1;
            if weekend[j] == weekend[i] {
                kinds += 1;
                out.push(v);
            }
        }
        let needed = if weekend[i] {
            MIN_SEASONAL_WEEKEND
        } else {
            MIN_SEASONAL
        };
        if kinds >= needed {
            return true;
        }
        out.clear();
        if all >= MIN_SEASONAL {
            out.extend(same_hour.map(|(_, v)| v));
            return true;
        }
        out.extend(self.week(i, lo).iter().filter_map(|s| value(metric, s)));
        out.len() >= MIN_TRAILING
    }

    /// Whether each hour falls on a weekend in `zone`.
    pub fn weekends(&self, zone: &Zone) -> Vec<bool> {
        weekends(zone, self.start, self.hours.len())
    }

    /// What judging needs beside the hours: `weekend[i]` as `weekends()` (computed once for
    /// many series by the caller: time zone arithmetic is costly), and running sums of calls and
    /// errors (a day's error rate in two subtractions).
    pub fn context(&self, weekend: Vec<bool>) -> Context {
        let n = self.hours.len();
        let mut calls = Vec::with_capacity(n + 1);
        let mut errors = Vec::with_capacity(n + 1);
        let (mut c, mut e) = (0, 0);
        calls.push(0);
        errors.push(0);
        for h in &self.hours {
            c += h.calls;
            e += h.errors;
            calls.push(c);
            errors.push(e);
        }
        let mut active = vec![n; n + 1];
        for k in (0..n).rev() {
            active[k] = if self.hours[k].calls > 0 {
                k
            } else {
                active[k + 1]
            };
        }
        Context {
            weekend,
            calls,
            errors,
            active,
        }
    }

    /// Judge every hour of `scope`, oldest first.
    pub fn detect(&self, scope: &Scope) -> Vec<Finding> {
        self.detect_in(scope, &self.context(self.weekends(&scope.zone)))
    }

    /// `detect` with a context made by the caller.
    pub fn detect_in(&self, scope: &Scope, ctx: &Context) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        let first = (((scope.from - self.start).max(0) + HOUR - 1) / HOUR) as usize;
        for i in first..self.hours.len() {
            let hour = self.hour_start(i);
            if hour >= scope.to {
                break;
            }
            let complete = hour + HOUR <= scope.complete_until;
            self.judge_hour(i, complete, ctx, &mut scratch, &mut out);
        }
        out
    }

    /// The index of the hour starting at `hour`, if the series holds it.
    pub fn index(&self, hour: Millis) -> Option<usize> {
        let i = usize::try_from((hour - self.start).div_euclid(HOUR)).ok()?;
        (i < self.hours.len()).then_some(i)
    }

    /// Judge hour `i` on every metric, pushing what is found to `out` in metric order;
    /// `complete`: the hour's data is all there; `scratch`: a buffer reused from call to call.
    pub fn judge_hour(
        &self,
        i: usize,
        complete: bool,
        ctx: &Context,
        scratch: &mut Vec<f64>,
        out: &mut Vec<Finding>,
    ) {
        let silent = self.silent(i);
        for metric in METRICS {
            if let Some(f) = self.judge_with(i, metric, complete, silent, ctx, scratch) {
                out.push(f);
            }
        }
    }

    /// Judge hour `i` on `metric`. `complete`: the hour's data is all there; `silent`: the
    /// zero-call hours ending with this one; `ctx`: `context()` of the series.
    pub fn judge(
        &self,
        i: usize,
        metric: Metric,
        complete: bool,
        silent: usize,
        ctx: &Context,
    ) -> Option<Finding> {
        self.judge_with(i, metric, complete, silent, ctx, &mut Vec::new())
    }

    /// `judge`, with a buffer for the reference values reused from call to call.
    fn judge_with(
        &self,
        i: usize,
        metric: Metric,
        complete: bool,
        silent: usize,
        ctx: &Context,
        reference: &mut Vec<f64>,
    ) -> Option<Finding> {
        let current = &self.hours[i];
        let x = value(metric, current)?;
        if !self.reference_into(i, metric, ctx, reference) {
            return None;
        }
        let expected = median(reference);
        let rising = x > expected;
        // Cheap tests first: most hours stop here, before any MAD is computed.
        if rising {
            if x - expected < material_rise(metric, expected, current)
                || (metric == Metric::ErrorRate && current.errors < MIN_ERRORS)
            {
                return None;
            }
        } else if !both_directions(metric)
            || !complete
            || silent > MAX_SILENT_HOURS
            || x > material_drop_ceiling(expected)
        {
            return None;
        }
        // `reference_into` found a floor.
        let lo = self.floor(i, ctx)?;
        let week = self.week(i, lo);
        let model = Model::new(metric, reference, week, current);
        let score = model.score(x);
        let severity = severity(score)?;
        let (z_lower, z_upper) = model.z_bounds();
        // A rise to a level the agent reaches every week (its trailing week's 95th percentile
        // of hours) is a habit, not an anomaly: bursty agents, a batch at varying hours.
        let ceiling = {
            let t: Vec<f64> = week.iter().filter_map(|s| value(metric, s)).collect();
            (!t.is_empty()).then(|| percentile(&t, CEILING_PERCENTILE))
        };
        let upper = z_upper
            .max(expected + material_rise(metric, expected, current))
            .max(ceiling.unwrap_or(f64::NEG_INFINITY));
        if rising && ceiling.is_some_and(|c| x <= c) {
            return None;
        }
        // One execution, however large, is a small count: the rest of the hour must be unusual too.
        if rising && without_largest_call(metric, current).is_some_and(|rest| rest <= upper) {
            return None;
        }
        // The same hour of the week one and two weeks ago: when both were as far out (within
        // their own volume noise), this is a weekly rhythm (weekend lulls, a Monday batch job).
        let week_len = (7 * DAY / HOUR) as isize;
        let weekly: Option<Vec<bool>> = [1, 2]
            .iter()
            .map(|k| {
                let j = i as isize - k * week_len;
                if j < lo as isize {
                    return None;
                }
                let s = self.stats(j)?;
                let w = value(metric, s)?;
                let m = Model::with_expected(metric, w, 0.0, week, current);
                Some(if rising {
                    x <= m.noise_threshold(Z_LOW)
                } else {
                    x >= m.noise_threshold(-Z_LOW)
                })
            })
            .collect();
        if weekly.is_some_and(|w| w.iter().all(|&repeats| repeats)) {
            return None;
        }
        let lower = if both_directions(metric) {
            z_lower.min(material_drop_ceiling(expected))
        } else {
            z_lower
        };
        let cap = if metric == Metric::ErrorRate {
            100.0
        } else {
            f64::INFINITY
        };
        Some(Finding {
            hour: self.hour_start(i),
            metric,
            severity,
            score,
            current: x,
            expected,
            range: (lower.max(0.0), upper.min(cap)),
            stats: *current,
        })
    }
}

/// Nano-dollars (as the detector sees cost) to USD.
pub fn nanos_to_usd(n: f64) -> f64 {
    n / crate::money::NANOS_PER_USD as f64
}
