//! `dashboard_get_timeline`: one metric per time bucket, optionally split by agent or model.

use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, Result};
use crate::money::to_usd;
use crate::store::{Filter, GroupKey, Totals};
use crate::time::{Granularity, Millis, DAY, HOUR, MINUTE};
use crate::wire::{
    BreakdownBy, GranularityName, TimelineAggregate, TimelineInput, TimelineMetric, TimelineOutput,
    TimelinePoint,
};

use super::{json_len, period, resolve_window, Dashboard, MAX_RESULT_BYTES};

/// Keys shown by name in a breakdown; the rest are summed into "other".
const TOP_KEYS: usize = 10;
/// The longest window a minute timeline may cover.
const MAX_MINUTE_WINDOW: Millis = 6 * HOUR;

/// The metric's value for some totals. Integer sums stay integers until here.
fn value(metric: TimelineMetric, t: &Totals) -> Option<f64> {
    match metric {
        TimelineMetric::Cost => Some(to_usd(t.cost)),
        TimelineMetric::Calls => Some(t.calls as f64),
        TimelineMetric::Tokens => Some(t.tokens as f64),
        TimelineMetric::Errors => Some(t.errors as f64),
        TimelineMetric::Latency => (t.timed > 0).then(|| t.duration_sum / t.timed as f64),
    }
}

/// What ranks the keys of a breakdown: the metric's window total (timed calls for latency).
fn rank(metric: TimelineMetric, t: &Totals) -> f64 {
    match metric {
        TimelineMetric::Cost => t.cost as f64,
        TimelineMetric::Calls => t.calls as f64,
        TimelineMetric::Tokens => t.tokens as f64,
        TimelineMetric::Errors => t.errors as f64,
        TimelineMetric::Latency => t.timed as f64,
    }
}

impl Dashboard {
    pub fn timeline(&self, input: TimelineInput) -> Result<TimelineOutput> {
        let w = resolve_window(&input.window_args(), self.now())?;
        let metric = input.metric.unwrap_or(TimelineMetric::Cost);
        let g = match input.granularity {
            None => Granularity::default_for(&w),
            Some(GranularityName::Minute) => Granularity::Minute,
            Some(GranularityName::Hour) => Granularity::Hour,
            Some(GranularityName::Day) => Granularity::Day,
        };
        if g == Granularity::Minute && w.len() > MAX_MINUTE_WINDOW {
            return Err(Error::invalid(
                "granularity",
                "\"minute\" is allowed for windows up to 6 hours; use hour or day for longer windows",
            ));
        }
        let starts = self.zone.buckets(&w, g)?;
        // The coarsest unit that never straddles a bucket boundary: SQL groups by it, and each
        // group then falls into exactly one bucket.
        let unit = [DAY, HOUR, MINUTE, 1000, 1]
            .into_iter()
            .find(|u| starts.iter().skip(1).all(|b| b % u == 0) && *u <= g_len(g))
            .unwrap_or(1);
        let f = Filter {
            agent: input.agent_id.clone(),
            model: input.model.clone(),
        };
        let key = match input.breakdown {
            None => GroupKey::None,
            Some(BreakdownBy::Agent) => GroupKey::Agent,
            Some(BreakdownBy::Model) => GroupKey::Model,
        };
        let groups = self.store.read(|c| c.grouped(&w, &f, unit, key))?;

        let n = starts.len();
        // A group can start before the window (its unit is not aligned to `w.start`), but its rows
        // are all inside: it belongs to the first bucket.
        let bucket_of = |u: i64| starts.partition_point(|&b| b <= u * unit).saturating_sub(1);
        let mut per_bucket = vec![Totals::default(); n];
        let mut window_total = Totals::default();
        let mut by_key: HashMap<&str, Totals> = HashMap::new();
        for (u, k, t) in &groups {
            per_bucket[bucket_of(*u)].add(t);
            window_total.add(t);
            if key != GroupKey::None {
                by_key.entry(k.as_str()).or_default().add(t);
            }
        }

        // The breakdown: top keys of the window by the metric, the rest as "other".
        let top: Vec<&str> = {
            let mut keys: Vec<(&str, f64)> =
                by_key.iter().map(|(k, t)| (*k, rank(metric, t))).collect();
            keys.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
            keys.into_iter().take(TOP_KEYS).map(|(k, _)| k).collect()
        };
        let mut split: Vec<HashMap<&str, Totals>> =
            vec![HashMap::new(); if key == GroupKey::None { 0 } else { n }];
        if key != GroupKey::None {
            for (u, k, t) in &groups {
                let name = if top.contains(&k.as_str()) {
                    k.as_str()
                } else {
                    "other"
                };
                split[bucket_of(*u)].entry(name).or_default().add(t);
            }
        }

        let mut series: Vec<TimelinePoint> = (0..n)
            .map(|i| TimelinePoint {
                timestamp: self.zone.format(starts[i]),
                value: value(metric, &per_bucket[i]),
                breakdown: (key != GroupKey::None).then(|| {
                    top.iter()
                        .copied()
                        .chain(std::iter::once("other"))
                        .map(|k| {
                            (
                                k.to_owned(),
                                value(metric, &split[i].get(k).copied().unwrap_or_default()),
                            )
                        })
                        .collect::<BTreeMap<_, _>>()
                }),
            })
            .collect();

        let (peak_i, peak) = series
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.value.map(|v| (i, v)))
            .fold(None, |best: Option<(usize, f64)>, (i, v)| match best {
                Some((_, bv)) if bv >= v => best,
                _ => Some((i, v)),
            })
            .map_or((None, None), |(i, v)| (Some(i), Some(v)));
        let aggregate = if metric == TimelineMetric::Latency {
            TimelineAggregate {
                total: None,
                average: value(metric, &window_total),
                peak,
                peak_time: peak_i.map(|i| series[i].timestamp.clone()),
            }
        } else {
            let total = value(metric, &window_total).unwrap_or(0.0);
            TimelineAggregate {
                total: Some(total),
                average: Some(total / n as f64),
                peak,
                peak_time: peak_i.map(|i| series[i].timestamp.clone()),
            }
        };

        let granularity = match g {
            Granularity::Minute => GranularityName::Minute,
            Granularity::Hour => GranularityName::Hour,
            Granularity::Day => GranularityName::Day,
        };
        let mut out = TimelineOutput {
            period: period(&w),
            granularity,
            metric,
            series: Vec::new(),
            aggregate,
            has_more: false,
            next_start: Some(self.zone.format(w.start)),
        };
        // Cut the series (never the aggregate) to stay under the result cap.
        let mut size = json_len(&out) + 64;
        let mut keep = series.len();
        for (i, p) in series.iter().enumerate() {
            size += json_len(p) + 1;
            if size > MAX_RESULT_BYTES {
                keep = i;
                break;
            }
        }
        out.has_more = keep < series.len();
        out.next_start = out.has_more.then(|| crate::time::format_utc(starts[keep]));
        series.truncate(keep);
        out.series = series;
        Ok(out)
    }
}

fn g_len(g: Granularity) -> Millis {
    match g {
        Granularity::Minute => MINUTE,
        Granularity::Hour => HOUR,
        Granularity::Day => DAY,
    }
}
