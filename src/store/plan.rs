//! The rollup arithmetic every engine shares: how a window splits into raw edges, whole hours
//! and whole days (`Plan`), and the latency histograms (log-spaced buckets, their stored form,
//! the p95 they give). See `sqlite/rollup.rs` for why rollups are laid out this way.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::time::{Millis, Window, DAY, HOUR};

/// Histogram buckets per doubling of the duration.
const BUCKETS_PER_OCTAVE: f64 = 50.0;
/// The bucket of a zero duration (log-spaced buckets cannot hold it).
const ZERO_BUCKET: i64 = -1_000_000;

/// The histogram bucket of a duration in milliseconds (≥ 0).
pub fn latency_bucket(ms: f64) -> i64 {
    if ms > 0.0 {
        (ms.log2() * BUCKETS_PER_OCTAVE).floor() as i64
    } else {
        ZERO_BUCKET
    }
}

/// The value a bucket reports: the geometric middle of its bounds.
pub fn bucket_value(b: i64) -> f64 {
    if b == ZERO_BUCKET {
        0.0
    } else {
        ((b as f64 + 0.5) / BUCKETS_PER_OCTAVE).exp2()
    }
}

/// A latency histogram as stored: its (bucket, count) pairs by ascending bucket, each as two
/// LEB128 varints, the bucket's zigzag difference from the previous one (the first from 0) and
/// the count. One row per agent and hour (or day) instead of one per bucket: a quarter's p95
/// reads 91 rows instead of ~50 k.
pub fn encode_counts(counts: &BTreeMap<i64, i64>) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut out = Vec::with_capacity(counts.len() * 3);
    let mut prev = 0i64;
    for (&b, &n) in counts {
        let d = b.wrapping_sub(prev);
        varint(&mut out, ((d << 1) ^ (d >> 63)) as u64);
        varint(&mut out, n as u64);
        prev = b;
    }
    out
}

/// Call `add(bucket, count)` for each pair of an `encode_counts` blob.
pub fn decode_counts(blob: &[u8], mut add: impl FnMut(i64, i64)) -> Result<()> {
    let mut rest = blob;
    let mut prev = 0i64;
    while !rest.is_empty() {
        let z = read_varint(&mut rest)?;
        let b = prev.wrapping_add(((z >> 1) as i64) ^ -((z & 1) as i64));
        add(b, read_varint(&mut rest)? as i64);
        prev = b;
    }
    Ok(())
}

/// One LEB128 varint off the front of `rest`.
fn read_varint(rest: &mut &[u8]) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let Some((&byte, tail)) = rest.split_first() else {
            break;
        };
        *rest = tail;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(v);
        }
    }
    Err(Error::Internal(
        "a stored latency histogram is corrupt".into(),
    ))
}

/// How a window splits: raw edges, whole hours and whole days (all half-open, in ms).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub raw: Vec<Window>,
    pub hours: Vec<Window>,
    pub days: Option<Window>,
}

impl Plan {
    /// Split `w`; whole days only when `use_days` (a grouping finer than a day cannot use them).
    pub fn of(w: &Window, use_days: bool) -> Plan {
        // Nothing is stored before 1970, so a window reaching before it starts there.
        let w = Window {
            start: w.start.max(0),
            end: w.end,
        };
        if w.is_empty() {
            return Plan::default();
        }
        let (hs, he) = (ceil(w.start, HOUR), floor(w.end, HOUR));
        if hs >= he {
            return Plan {
                raw: vec![w],
                ..Plan::default()
            };
        }
        let mut plan = Plan::default();
        push(&mut plan.raw, w.start, hs);
        push(&mut plan.raw, he, w.end);
        let (ds, de) = (ceil(hs, DAY), floor(he, DAY));
        if use_days && ds < de {
            push(&mut plan.hours, hs, ds);
            push(&mut plan.hours, de, he);
            plan.days = Some(Window { start: ds, end: de });
        } else {
            plan.hours.push(Window { start: hs, end: he });
        }
        plan
    }

    /// All of `w` from raw rows.
    pub fn raw(w: &Window) -> Plan {
        let w = Window {
            start: w.start.max(0),
            end: w.end,
        };
        Plan {
            raw: if w.is_empty() { vec![] } else { vec![w] },
            ..Plan::default()
        }
    }

    /// Does the plan use any rollup?
    pub fn uses_rollups(&self) -> bool {
        !self.hours.is_empty() || self.days.is_some()
    }
}

pub(crate) fn push(v: &mut Vec<Window>, start: Millis, end: Millis) {
    if start < end {
        v.push(Window { start, end });
    }
}

pub(crate) fn floor(t: Millis, unit: Millis) -> Millis {
    t.div_euclid(unit) * unit
}

pub(crate) fn ceil(t: Millis, unit: Millis) -> Millis {
    -floor(-t, unit)
}

/// Up to this many timed executions in a window, the p95 is the exact nearest-rank value from
/// raw rows (sorting that many durations takes a few milliseconds); above, the histograms'.
pub const EXACT_P95_MAX: i64 = 20_000;

/// The nearest-rank 95th percentile of a histogram, as its bucket's value.
pub fn p95_of(hist: &BTreeMap<i64, i64>) -> Option<f64> {
    let n: i64 = hist.values().sum();
    let rank = (n * 95 + 99) / 100;
    let mut seen = 0;
    for (b, count) in hist {
        seen += count;
        if n > 0 && seen >= rank {
            return Some(bucket_value(*b));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_blobs_round_trip() {
        let counts: BTreeMap<i64, i64> = [
            (ZERO_BUCKET, 3),
            (-7, 1),
            (0, 200),
            (1, 1),
            (664, 1 << 40),
            (i64::MAX / 4, 5),
        ]
        .into_iter()
        .collect();
        let blob = encode_counts(&counts);
        let mut back = BTreeMap::new();
        decode_counts(&blob, |b, n| {
            back.insert(b, n);
        })
        .unwrap();
        assert_eq!(back, counts);
        // Two bytes for a small step and a small count.
        let one: BTreeMap<i64, i64> = [(5, 9)].into_iter().collect();
        assert_eq!(encode_counts(&one), vec![10, 9]);
        assert!(encode_counts(&BTreeMap::new()).is_empty());
        // Cut short, or a varint that never ends: an error, not a panic.
        for bad in [&blob[..blob.len() - 1], &[0x80u8; 11][..]] {
            let err = decode_counts(bad, |_, _| {}).unwrap_err();
            assert_eq!(err.to_string(), "a stored latency histogram is corrupt");
        }
    }

    #[test]
    fn buckets_are_within_tolerance() {
        for i in 0..100_000 {
            let v = 0.001 * 1.0003f64.powi(i);
            let r = bucket_value(latency_bucket(v));
            assert!((r - v).abs() / v <= 0.0071, "{v} → {r}");
        }
        assert_eq!(bucket_value(latency_bucket(0.0)), 0.0);
    }

    #[test]
    fn plans_cover_the_window_once() {
        for (s, e) in [
            (0, 1),
            (5 * HOUR + 7, 5 * HOUR + 9),
            (HOUR - 1, 3 * HOUR + 1),
            (DAY - 5, 3 * DAY + 5),
            (2 * DAY, 4 * DAY),
            (-DAY, DAY + 1),
        ] {
            let p = Plan::of(&Window { start: s, end: e }, true);
            let mut parts: Vec<Window> = p.raw.clone();
            parts.extend(p.hours.iter().copied());
            parts.extend(p.days);
            parts.sort_by_key(|w| w.start);
            let mut at = s.max(0);
            for w in parts {
                assert_eq!(w.start, at, "{s}..{e}: {p:?}");
                at = w.end;
            }
            assert_eq!(at, e);
        }
    }
}
