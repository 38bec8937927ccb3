//! Instants, the clock, time zones, and the windows every query shares (SPEC §2.3): timeframes,
//! custom `start`/`end`, the previous period, and bucket boundaries aligned to the zone.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;

use crate::error::{Error, Result};

/// Milliseconds since the Unix epoch, UTC. Every instant in the store and the queries is one.
pub type Millis = i64;

pub const MINUTE: Millis = 60_000;
pub const HOUR: Millis = 60 * MINUTE;
pub const DAY: Millis = 24 * HOUR;
/// The longest window a query accepts.
pub const MAX_WINDOW: Millis = 400 * DAY;
/// The most buckets a timeline answers with.
pub const MAX_BUCKETS: usize = 2000;
/// The latest instant we store: 9999-12-31T23:59:59.999Z.
pub const MAX_INSTANT: Millis = 253_402_300_799_999;

/// Where "now" comes from: the system clock, or a pinned instant (`--now`) for reproducible runs.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    Fixed(Millis),
}

impl Clock {
    pub fn now(&self) -> Millis {
        match self {
            Clock::System => Utc::now().timestamp_millis(),
            Clock::Fixed(t) => *t,
        }
    }
}

/// The time zone that periods and day buckets follow. UTC unless configured (`--tz`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone(pub Tz);

impl Default for Zone {
    fn default() -> Self {
        Zone(Tz::UTC)
    }
}

impl Zone {
    /// Parse an IANA zone name (`Europe/Berlin`, `UTC`).
    pub fn parse(name: &str) -> Result<Self> {
        name.parse::<Tz>().map(Zone).map_err(|_| {
            Error::invalid(
                "tz",
                format!("{} is not an IANA time zone name (for example UTC, Europe/Berlin, America/New_York)", crate::input::quoted(name)),
            )
        })
    }

    pub fn is_utc(&self) -> bool {
        self.0 == Tz::UTC
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// The local calendar date of `t` in this zone.
    pub fn date_of(&self, t: Millis) -> NaiveDate {
        self.0.timestamp_millis_opt(t).unwrap().date_naive()
    }

    /// The first instant of local date `d` (midnight, or the first valid local time after a
    /// DST gap at midnight).
    pub fn start_of_date(&self, d: NaiveDate) -> Millis {
        let mut naive = d.and_time(NaiveTime::MIN);
        // A gap is at most a few hours; step forward until the local time exists.
        for _ in 0..48 {
            match self.0.from_local_datetime(&naive) {
                LocalResult::Single(t) => return t.timestamp_millis(),
                LocalResult::Ambiguous(a, _) => return a.timestamp_millis(),
                LocalResult::None => naive += Duration::minutes(30),
            }
        }
        Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN))
            .timestamp_millis()
    }

    /// Format `t` as RFC 3339: `Z` in UTC, the zone's offset otherwise.
    pub fn format(&self, t: Millis) -> String {
        if self.is_utc() {
            format_utc(t)
        } else {
            self.0
                .timestamp_millis_opt(t)
                .unwrap()
                .to_rfc3339_opts(SecondsFormat::AutoSi, false)
        }
    }
}

/// RFC 3339 in UTC with a `Z`, fractional seconds only when there are any.
pub fn format_utc(t: Millis) -> String {
    DateTime::<Utc>::from_timestamp_millis(t)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Parse an RFC 3339 instant (any offset) to UTC milliseconds; sub-millisecond digits are
/// truncated. `field` names the input in the error.
pub fn parse_rfc3339(field: &str, s: &str) -> Result<Millis> {
    let t = DateTime::parse_from_rfc3339(s.trim()).map_err(|e| {
        Error::invalid(
            field,
            format!("{} is not an RFC 3339 timestamp ({e}); expected e.g. 2026-11-23T14:00:00Z or 2026-11-23T15:00:00+01:00", crate::input::quoted(s)),
        )
    })?;
    let ms = t.timestamp_millis();
    check_range(field, ms, s)?;
    Ok(ms)
}

/// Reject instants before 1970 or after year 9999.
pub fn check_range(field: &str, ms: Millis, given: &str) -> Result<()> {
    if !(0..=MAX_INSTANT).contains(&ms) {
        return Err(Error::invalid(
            field,
            format!("{} is out of range; allowed are instants from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z", crate::input::cut(given)),
        ));
    }
    Ok(())
}

/// A half-open window `[start, end)` in UTC milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Millis,
    pub end: Millis,
}

impl Window {
    pub fn len(&self) -> Millis {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// The window of the same length that ends where this one starts (for trends).
    pub fn previous(&self) -> Window {
        Window {
            start: self.start - self.len(),
            end: self.start,
        }
    }

    pub fn contains(&self, t: Millis) -> bool {
        self.start <= t && t < self.end
    }
}

/// Bucket size of a timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Minute,
    Hour,
    Day,
}

impl Granularity {
    pub fn name(&self) -> &'static str {
        match self {
            Granularity::Minute => "minute",
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }
    }

    /// The default for a window: hours up to 48 h, days beyond.
    pub fn default_for(window: &Window) -> Granularity {
        if window.len() <= 48 * HOUR {
            Granularity::Hour
        } else {
            Granularity::Day
        }
    }
}

impl Zone {
    /// The start of the bucket holding `t`.
    pub fn bucket_floor(&self, t: Millis, g: Granularity) -> Millis {
        match g {
            Granularity::Day => self.start_of_date(self.date_of(t)),
            Granularity::Minute | Granularity::Hour => {
                let step = if g == Granularity::Minute {
                    MINUTE
                } else {
                    HOUR
                };
                // Local minutes and hours line up with UTC ones up to the zone's offset, which is
                // a whole number of minutes (and, but for a few zones, of hours).
                let offset = self.offset_millis(t);
                (t + offset).div_euclid(step) * step - offset
            }
        }
    }

    /// The start of the bucket after the one starting at `b`.
    pub fn bucket_next(&self, b: Millis, g: Granularity) -> Millis {
        match g {
            Granularity::Minute => b + MINUTE,
            Granularity::Hour => b + HOUR,
            Granularity::Day => {
                self.start_of_date(self.date_of(b).succ_opt().unwrap_or(NaiveDate::MAX))
            }
        }
    }

    fn offset_millis(&self, t: Millis) -> Millis {
        use chrono::Offset;
        let dt = self.0.timestamp_millis_opt(t).unwrap();
        i64::from(dt.offset().fix().local_minus_utc()) * 1000
    }

    /// The bucket starts covering `window`: the first may begin before `window.start` and the
    /// last may run past `window.end` (partial edge buckets). Errors past `MAX_BUCKETS`.
    pub fn buckets(&self, window: &Window, g: Granularity) -> Result<Vec<Millis>> {
        let mut out = Vec::new();
        let mut b = self.bucket_floor(window.start, g);
        while b < window.end {
            if out.len() == MAX_BUCKETS {
                return Err(Error::invalid(
                    "granularity",
                    format!(
                        "{:?} over this window gives more than {MAX_BUCKETS} buckets; choose a coarser granularity or a shorter window",
                        g.name()
                    ),
                ));
            }
            out.push(b);
            b = self.bucket_next(b, g);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Millis {
        parse_rfc3339("t", s).unwrap()
    }

    #[test]
    fn offsets_are_normalised_to_utc() {
        assert_eq!(t("2026-11-23T15:00:00+01:00"), t("2026-11-23T14:00:00Z"));
        assert_eq!(
            format_utc(t("2026-11-23T15:00:00.250+01:00")),
            "2026-11-23T14:00:00.250Z"
        );
    }

    #[test]
    fn day_buckets_follow_dst_in_a_zone() {
        let z = Zone::parse("America/New_York").unwrap();
        // 2026-03-08 is the spring-forward day in New York: 23 hours long.
        let w = Window {
            start: t("2026-03-08T05:00:00Z"),
            end: t("2026-03-10T04:00:00Z"),
        };
        let b = z.buckets(&w, Granularity::Day).unwrap();
        assert_eq!(
            b,
            vec![t("2026-03-08T05:00:00Z"), t("2026-03-09T04:00:00Z")]
        );
    }

    #[test]
    fn partial_edge_buckets() {
        let z = Zone::default();
        let w = Window {
            start: t("2026-11-23T10:30:00Z"),
            end: t("2026-11-23T12:15:00Z"),
        };
        let b = z.buckets(&w, Granularity::Hour).unwrap();
        assert_eq!(
            b,
            vec![
                t("2026-11-23T10:00:00Z"),
                t("2026-11-23T11:00:00Z"),
                t("2026-11-23T12:00:00Z")
            ]
        );
        let aligned = Window {
            start: t("2026-11-23T10:00:00Z"),
            end: t("2026-11-23T12:00:00Z"),
        };
        assert_eq!(z.buckets(&aligned, Granularity::Hour).unwrap().len(), 2);
    }
}
