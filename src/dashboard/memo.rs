//! The anomaly memo: the detector's verdicts on complete hours, remembered until data of their
//! lookback changes, and every agent's recent hours, kept in memory. A call then judges only the
//! hours nobody judged since their data last changed: under live ingest, the current (partial)
//! hour and the one that just completed.
//!
//! Why it is never stale:
//! - A complete hour's findings depend only on the agent's hours `[h − 14 days, h]`
//!   (`anomaly::LOOKBACK_HOURS`; see `AgentSeries`) and the zone, which is fixed per dashboard.
//! - Executions are never deleted or rewritten, and every write transaction marks the
//!   `agent_hour` rows it adds to with a generation larger than any before (one writer at a
//!   time, in any process or replica; `Snapshot::latest_gen`).
//! - So each call first reads, in one snapshot, the (agent, hour) rows marked since the last
//!   generation it saw, forgets the verdicts those hours feed and marks the cached hours stale,
//!   and only then reads what it needs, from snapshots at least that new.
//!
//! Partial hours (the current one, or one cut by the window's end) are judged afresh on every
//! call and never remembered. The memo is bypassed when the store is told not to use rollups:
//! that path, the plain detector over raw rows, is what `tests/exactness.rs` compares it with.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::anomaly::{AgentSeries, Calendar, Finding, LOOKBACK_HOURS};
use crate::cancel::Cancel;
use crate::error::Result;
use crate::store::{AgentRun, Agents, Changes, HourStats, Store};
use crate::time::{Millis, Window, Zone, HOUR};

use super::anomalies::{in_shares, AgentFinding};

/// The lookback of an hour's verdict, in milliseconds (the hour itself excluded).
const LOOKBACK: Millis = LOOKBACK_HOURS as Millis * HOUR;
/// Complete hours kept in memory for every agent: the lookback of the newest hour and two days
/// of slack, so that late data of the last two days is re-judged without touching the store.
const RECENT: Millis = LOOKBACK + 2 * 24 * HOUR;
/// More (agent, hour) pairs written to than this since the last call (a bulk import): start
/// afresh rather than forget verdicts pair by pair.
const MAX_CHANGED_PAIRS: usize = 20_000;
/// More stale cached hours than this: reload the recent hours whole.
const MAX_STALE_HOURS: usize = 48;

/// What the memo knows; one per dashboard, behind a mutex (`Dashboard::detect_anomalies`).
#[derive(Debug, Default)]
pub struct Memo {
    /// Every change up to this generation has been applied (`Snapshot::changes_since`).
    seen: i64,
    /// By agent id.
    agents: HashMap<String, AgentMemo>,
    /// `AgentMemo::hours` holds every agent's hours with executions in `[lo, hi)` (complete
    /// hours only; empty when `lo >= hi`), but for the `stale` ones, changed since read.
    lo: Millis,
    hi: Millis,
    stale: BTreeSet<Millis>,
}

#[derive(Debug, Default)]
struct AgentMemo {
    /// Its hours with executions in `[Memo::lo, Memo::hi)`.
    hours: BTreeMap<Millis, HourStats>,
    /// The complete hours whose verdicts are known…
    judged: HourSet,
    /// …and those of them with findings.
    found: BTreeMap<Millis, Vec<Finding>>,
}

impl AgentMemo {
    /// New data in the hour starting at `hour`: forget the verdicts it feeds.
    fn forget(&mut self, hour: Millis) {
        let until = hour + LOOKBACK + HOUR;
        self.judged.remove(hour, until);
        let gone: Vec<Millis> = self.found.range(hour..until).map(|(&h, _)| h).collect();
        for h in gone {
            self.found.remove(&h);
        }
    }
}

/// A set of hour starts, 64 hours a word.
#[derive(Debug, Default)]
struct HourSet(BTreeMap<i64, u64>);

impl HourSet {
    fn word_bit(hour: Millis) -> (i64, u32) {
        let n = hour.div_euclid(HOUR);
        (n.div_euclid(64), n.rem_euclid(64) as u32)
    }

    fn insert(&mut self, hour: Millis) {
        let (w, b) = Self::word_bit(hour);
        *self.0.entry(w).or_default() |= 1 << b;
    }

    #[cfg(test)]
    fn contains(&self, hour: Millis) -> bool {
        let (w, b) = Self::word_bit(hour);
        self.0.get(&w).is_some_and(|&x| x & (1 << b) != 0)
    }

    /// The hour starts of `[from, to)` (hour starts) not in the set, ascending.
    fn missing(&self, from: Millis, to: Millis) -> Vec<Millis> {
        let (from, to) = (from.div_euclid(HOUR), to.div_euclid(HOUR));
        let mut out = Vec::new();
        let mut n = from;
        while n < to {
            let (w, b) = (n.div_euclid(64), n.rem_euclid(64));
            let word = self.0.get(&w).copied().unwrap_or(0);
            let stop = to.min((w + 1) * 64);
            let mut bit = b;
            while n < stop {
                if word & (1 << bit) == 0 {
                    out.push(n * HOUR);
                }
                n += 1;
                bit += 1;
            }
        }
        out
    }

    /// Remove the hours starting in `[from, to)`.
    fn remove(&mut self, from: Millis, to: Millis) {
        let (from, to) = (from.div_euclid(HOUR), to.div_euclid(HOUR));
        if from >= to {
            return;
        }
        let words: Vec<i64> = self
            .0
            .range(from.div_euclid(64)..=(to - 1).div_euclid(64))
            .map(|(&w, _)| w)
            .collect();
        for w in words {
            let lo = (from - w * 64).clamp(0, 64) as u32;
            let hi = (to - w * 64).clamp(0, 64) as u32;
            let mask = if hi - lo == 64 {
                u64::MAX
            } else {
                ((1u64 << (hi - lo)) - 1) << lo
            };
            if let Some(x) = self.0.get_mut(&w) {
                *x &= !mask;
                if *x == 0 {
                    self.0.remove(&w);
                }
            }
        }
    }
}

/// One call's question.
pub struct Ask<'a> {
    pub window: &'a Window,
    pub agent: Option<&'a str>,
    pub now: Millis,
    pub zone: Zone,
    /// Checked before each agent is judged.
    pub cancel: &'a Cancel,
}

impl Memo {
    /// Every anomaly of the hours overlapping the window, for one agent or all, unsorted.
    pub fn detect(&mut self, store: &dyn Store, ask: &Ask<'_>) -> Result<Vec<AgentFinding>> {
        let w = ask.window;
        let first = w.start.div_euclid(HOUR) * HOUR;
        // Data is complete up to `until`: the hours starting before `done` are complete.
        let until = w.end.min(ask.now);
        let done = until.div_euclid(HOUR) * HOUR;
        self.refresh(store)?;
        let scope: Vec<String> = match ask.agent {
            Some(id) if self.agents.contains_key(id) => vec![id.to_owned()],
            Some(_) => return Ok(Vec::new()),
            None => self.agents.keys().cloned().collect(),
        };
        let partial: Vec<Millis> = (first.max(done)..w.end).step_by(HOUR as usize).collect();
        // Per agent, the hours to judge: complete ones without a verdict, and the partial ones.
        let mut needs: HashMap<String, Vec<Millis>> = HashMap::new();
        for key in &scope {
            let a = &self.agents[key];
            let mut hours = a.judged.missing(first, done);
            hours.extend(&partial);
            if !hours.is_empty() {
                needs.insert(key.clone(), hours);
            }
        }
        let mut fresh = Vec::new();
        if let Some(from) = needs.values().map(|h| h[0]).min() {
            let from = (from - LOOKBACK).max(0);
            self.keep_recent(store, ask.now)?;
            let judged = if self.lo < self.hi && from >= self.lo {
                self.judge_warm(store, ask, &needs, from, done, until)?
            } else {
                judge_cold(store, ask, &needs, from, until)?
            };
            for (key, verdicts) in judged {
                let a = self.agents.entry(key.clone()).or_default();
                for (hour, found) in verdicts {
                    if hour < done {
                        a.judged.insert(hour);
                        if !found.is_empty() {
                            a.found.insert(hour, found);
                        }
                    } else {
                        fresh.extend(found.into_iter().map(|finding| AgentFinding {
                            agent_id: key.clone(),
                            finding,
                        }));
                    }
                }
            }
        }
        let mut out = fresh;
        for key in scope {
            let a = &self.agents[&key];
            // `first <= done` as the window has begun (`detect_anomalies`); `max` keeps a
            // future window from panicking all the same.
            for found in a.found.range(first..done.max(first)).map(|(_, f)| f) {
                out.extend(found.iter().map(|f| AgentFinding {
                    agent_id: key.clone(),
                    finding: f.clone(),
                }));
            }
        }
        Ok(out)
    }

    /// Apply the rows written since `seen`.
    fn refresh(&mut self, store: &dyn Store) -> Result<()> {
        let mut unknown = false;
        let changes = if self.agents.is_empty() {
            // Nothing known, nothing to forget.
            Changes::TooMany {
                gen: store.read(|c| c.latest_gen())?,
            }
        } else {
            store.read(|c| c.changes_since(self.seen, MAX_CHANGED_PAIRS))?
        };
        match changes {
            Changes::TooMany { gen } => {
                *self = Memo {
                    seen: gen,
                    ..Memo::default()
                };
            }
            Changes::Touched { gen, pairs } => {
                for (key, hour) in pairs {
                    match self.agents.get_mut(&key) {
                        Some(a) => a.forget(hour),
                        None => unknown = true,
                    }
                    if self.lo <= hour && hour < self.hi {
                        self.stale.insert(hour);
                    }
                }
                self.seen = gen;
            }
        }
        // A new agent, or nothing known yet (or started afresh): read every agent's id.
        if unknown || self.agents.is_empty() {
            for id in store.read(|c| c.agent_ids())? {
                self.agents.entry(id).or_default();
            }
        }
        Ok(())
    }

    /// Bring the recent hours up to date: `[hour of now − RECENT, hour of now)`, stale hours
    /// read again.
    fn keep_recent(&mut self, store: &dyn Store, now: Millis) -> Result<()> {
        let hi = now.div_euclid(HOUR) * HOUR;
        let lo = (hi - RECENT).max(0);
        if self.lo >= self.hi || lo >= self.hi || hi < self.hi || self.stale.len() > MAX_STALE_HOURS
        {
            for a in self.agents.values_mut() {
                a.hours.clear();
            }
            self.stale.clear();
            self.load(store, lo, hi)?;
            (self.lo, self.hi) = (lo, hi);
            return Ok(());
        }
        if hi > self.hi {
            self.load(store, self.hi, hi)?;
            self.hi = hi;
        }
        if lo > self.lo {
            for a in self.agents.values_mut() {
                a.hours = a.hours.split_off(&lo);
            }
            self.lo = lo;
        }
        // Stale hours read again, a run of consecutive hours in one read.
        let stale = std::mem::take(&mut self.stale);
        let mut run: Option<(Millis, Millis)> = None;
        for &hour in stale.range(self.lo..self.hi) {
            run = match run {
                Some((from, to)) if to == hour => Some((from, hour + HOUR)),
                Some((from, to)) => {
                    self.load(store, from, to)?;
                    Some((hour, hour + HOUR))
                }
                None => Some((hour, hour + HOUR)),
            };
        }
        if let Some((from, to)) = run {
            self.load(store, from, to)?;
        }
        Ok(())
    }

    /// Read every agent's hours of `[from, to)` (whole hours) into the cache.
    fn load(&mut self, store: &dyn Store, from: Millis, to: Millis) -> Result<()> {
        if from >= to {
            return Ok(());
        }
        let range = Window {
            start: from,
            end: to,
        };
        for run in store.read(|c| c.series(&range, &Agents::All))? {
            let a = self.agents.entry(run.agent_id).or_default();
            a.hours.extend(run.hours);
        }
        Ok(())
    }

    /// Judge `needs` from the cached hours before `done` and the store's rows after it.
    fn judge_warm(
        &self,
        store: &dyn Store,
        ask: &Ask<'_>,
        needs: &HashMap<String, Vec<Millis>>,
        from: Millis,
        done: Millis,
        until: Millis,
    ) -> Result<Vec<(String, Verdicts)>> {
        let end = ask.window.end;
        let mut tail: HashMap<String, Vec<(Millis, HourStats)>> = HashMap::new();
        if done < end {
            let which = sole(needs).map_or(Agents::All, |id| Agents::One(id.to_owned()));
            let range = Window { start: done, end };
            for run in store.read(|c| c.series(&range, &which))? {
                tail.insert(run.agent_id, run.hours);
            }
        }
        let calendar = Calendar::new(ask.zone, from, end);
        let mut out = Vec::with_capacity(needs.len());
        let mut buf = Vec::new();
        for (key, hours) in needs {
            ask.cancel.check()?;
            let a = &self.agents[key];
            // Straight into the dense series: no intermediate copy of ~340 hours per agent.
            let rows = a
                .hours
                .range((hours[0] - LOOKBACK).min(done)..done)
                .map(|(&h, s)| (h, *s))
                .chain(tail.remove(key).unwrap_or_default());
            out.push((
                key.clone(),
                judge(rows, hours, end, until, &calendar, &mut buf),
            ));
        }
        Ok(out)
    }
}

/// Verdicts of one agent: per judged hour, its findings (maybe none).
type Verdicts = Vec<(Millis, Vec<Finding>)>;

/// The one agent `needs` holds, if it holds just one.
fn sole(needs: &HashMap<String, Vec<Millis>>) -> Option<&str> {
    match needs.len() {
        1 => needs.keys().next().map(String::as_str),
        _ => None,
    }
}

/// Judge `needs` from the store's series of `[from, window end)`: one agent's alone, or every
/// agent's in shares on all cores (`in_shares`).
fn judge_cold(
    store: &dyn Store,
    ask: &Ask<'_>,
    needs: &HashMap<String, Vec<Millis>>,
    from: Millis,
    until: Millis,
) -> Result<Vec<(String, Verdicts)>> {
    let end = ask.window.end;
    let range = Window { start: from, end };
    let calendar = Calendar::new(ask.zone, from, end);
    let judge_runs = |runs: Vec<AgentRun>| -> Result<Vec<(String, Verdicts)>> {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for run in runs {
            let Some(hours) = needs.get(&run.agent_id) else {
                continue;
            };
            ask.cancel.check()?;
            out.push((
                run.agent_id,
                judge(run.hours, hours, end, until, &calendar, &mut buf),
            ));
        }
        Ok(out)
    };
    let mut out = match sole(needs) {
        Some(one) => judge_runs(store.read(|c| c.series(&range, &Agents::One(one.to_owned())))?)?,
        None => in_shares(store, &range, judge_runs)?,
    };
    // An agent without rows in the range has nothing to judge: its complete hours are judged
    // empty all the same, so they are not read again.
    let seen: std::collections::HashSet<String> = out.iter().map(|(k, _)| k.clone()).collect();
    for (key, hours) in needs {
        if !seen.contains(key) {
            out.push((
                key.clone(),
                hours.iter().map(|&h| (h, Vec::new())).collect(),
            ));
        }
    }
    Ok(out)
}

/// Judge `hours` of one agent from its non-empty hours `rows` (ascending, covering each hour's
/// lookback), the data ending at `end` and complete up to `until`.
fn judge(
    rows: impl IntoIterator<Item = (Millis, HourStats)>,
    hours: &[Millis],
    end: Millis,
    until: Millis,
    calendar: &Calendar,
    buf: &mut Vec<HourStats>,
) -> Verdicts {
    let Some(series) = AgentSeries::from_sparse_in(rows, end, std::mem::take(buf)) else {
        return hours.iter().map(|&h| (h, Vec::new())).collect();
    };
    let ctx = series.context(calendar.flags(series.start, series.hours.len()));
    let mut scratch = Vec::new();
    let verdicts = hours
        .iter()
        .map(|&h| {
            let mut found = Vec::new();
            if let Some(i) = series.index(h) {
                series.judge_hour(i, h + HOUR <= until, &ctx, &mut scratch, &mut found);
            }
            (h, found)
        })
        .collect();
    *buf = series.hours;
    verdicts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_sets_insert_test_and_remove_ranges_across_words() {
        let mut s = HourSet::default();
        let h = |n: i64| n * HOUR;
        for n in [0, 1, 63, 64, 65, 127, 128, 500] {
            s.insert(h(n));
        }
        assert!(s.contains(h(63)) && s.contains(h(64)) && !s.contains(h(2)));
        s.remove(h(63), h(128));
        let left: Vec<i64> = [0, 1, 63, 64, 65, 127, 128, 500]
            .into_iter()
            .filter(|&n| s.contains(h(n)))
            .collect();
        assert_eq!(left, vec![0, 1, 128, 500]);
        assert_eq!(s.missing(h(126), h(130)), vec![h(126), h(127), h(129)]);
        assert_eq!(s.missing(h(0), h(2)), Vec::<Millis>::new());
        s.remove(h(0), h(1000));
        assert!(s.0.is_empty());
    }
}
