//! Cron schedules as CronJobs write them (upstream parses them with
//! robfig/cron's standard parser): five fields — minute, hour, day of
//! month, month, day of week — each `*` or `?`, a value, a range `a-b`, a
//! step `*/n`, `a-b/n` or `a/n`, or a comma list of those; month and
//! weekday names (`jan`, `mon`); the macros `@yearly`, `@annually`,
//! `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`; and a
//! `CRON_TZ=<zone>` or `TZ=<zone>` prefix. As in cron, when both day fields
//! are restricted a day matching either runs.

use jiff::civil::{DateTime, date};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan as _};

/// A parsed schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Schedule {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// The day-of-month field was `*` (or `?`).
    any_day: bool,
    /// The day-of-week field was `*` (or `?`).
    any_weekday: bool,
    /// The `CRON_TZ=` / `TZ=` prefix, if any.
    pub(crate) zone: Option<String>,
}

/// Why a schedule does not parse (upstream's robfig messages, roughly).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ScheduleError {
    /// Not five fields.
    #[error("expected exactly 5 fields, found {0}: {1}")]
    FieldCount(usize, String),
    /// A field's value is wrong.
    #[error("{0}")]
    Field(String),
    /// An unknown `@` macro.
    #[error("unrecognized descriptor: {0}")]
    Descriptor(String),
}

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DAY: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const WEEKDAY: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

impl std::str::FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Self, ScheduleError> {
        let mut text = text.trim();
        let mut zone = None;
        for prefix in ["CRON_TZ=", "TZ="] {
            if let Some(rest) = text.strip_prefix(prefix) {
                let (name, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                zone = Some(name.to_owned());
                text = rest.trim();
                break;
            }
        }
        let expanded = match text {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(ScheduleError::Descriptor(other.to_owned()));
            }
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(ScheduleError::FieldCount(fields.len(), expanded.to_owned()));
        };
        let (days, any_day) = field(day, &DAY)?;
        let (weekdays, any_weekday) = field(weekday, &WEEKDAY)?;
        Ok(Schedule {
            minutes: field(minute, &MINUTE)?.0,
            hours: field(hour, &HOUR)?.0,
            days,
            months: field(month, &MONTH)?.0,
            weekdays,
            any_day,
            any_weekday,
            zone,
        })
    }
}

/// Parses one field into a bit set; also says whether it was a bare star.
fn field(text: &str, bounds: &Bounds) -> Result<(u64, bool), ScheduleError> {
    let mut bits = 0;
    let mut star = false;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step.parse().map_err(|_| {
                    ScheduleError::Field(format!("failed to parse int from {step}"))
                })?;
                if step == 0 {
                    return Err(ScheduleError::Field(format!(
                        "step of range should be a positive number: {part}"
                    )));
                }
                (range, Some(step))
            }
            None => (part, None),
        };
        let (low, high) = if range == "*" || range == "?" {
            star |= step.is_none_or(|s| s == 1);
            (bounds.min, bounds.max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, bounds)?, value(b, bounds)?)
        } else {
            let v = value(range, bounds)?;
            // `a/n` runs from a to the end.
            (v, if step.is_some() { bounds.max } else { v })
        };
        if low < bounds.min || high > bounds.max || low > high {
            return Err(ScheduleError::Field(format!(
                "{part}: out of range ({}-{})",
                bounds.min, bounds.max
            )));
        }
        let step = step.unwrap_or(1);
        for v in (low..=high).step_by(usize::try_from(step).unwrap_or(1)) {
            bits |= 1 << v;
        }
    }
    Ok((bits, star))
}

fn value(text: &str, bounds: &Bounds) -> Result<u32, ScheduleError> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = bounds.names.iter().position(|n| *n == lower) {
        return Ok(u32::try_from(i).unwrap_or(0) + bounds.min);
    }
    text.parse()
        .map_err(|_| ScheduleError::Field(format!("failed to parse int from {text}")))
}

/// How far ahead a schedule is searched before it is declared never to
/// fire (`30 2 31 2 *`, the 31st of February).
const SEARCH_YEARS: i16 = 5;

impl Schedule {
    /// The first time strictly after `after` the schedule fires, in `tz`.
    pub(crate) fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let start = after.to_zoned(tz.clone()).datetime();
        let mut t = start
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(1.minute())
            .ok()?;
        let limit = start.year().saturating_add(SEARCH_YEARS);
        while t.year() <= limit {
            if !has(self.months, t.month()) {
                t = date(t.year(), t.month(), 1)
                    .at(0, 0, 0, 0)
                    .checked_add(1.month())
                    .ok()?;
                continue;
            }
            if !self.day_matches(t) {
                t = t.date().tomorrow().ok()?.at(0, 0, 0, 0);
                continue;
            }
            if !has(self.hours, t.hour()) {
                t = t.date().at(t.hour(), 0, 0, 0).checked_add(1.hour()).ok()?;
                continue;
            }
            if !has(self.minutes, t.minute()) {
                t = t.checked_add(1.minute()).ok()?;
                continue;
            }
            // A time in a DST gap runs at the first instant after it.
            let at = tz.to_ambiguous_zoned(t).compatible().ok()?.timestamp();
            if at > after {
                return Some(at);
            }
            t = t.checked_add(1.minute()).ok()?;
        }
        None
    }

    fn day_matches(&self, t: DateTime) -> bool {
        let day = has(self.days, t.day());
        let weekday = has(self.weekdays, t.weekday().to_sunday_zero_offset());
        if self.any_day || self.any_weekday {
            day && weekday
        } else {
            day || weekday
        }
    }
}

fn has(bits: u64, v: i8) -> bool {
    u32::try_from(v).is_ok_and(|v| v < 64 && bits & (1 << v) != 0)
}

/// Upstream's limit on missed start times before it warns.
pub(crate) const TOO_MANY_MISSED: usize = 100;

/// The latest time in `(earliest, now]` the schedule fired, and how many
/// times it fired in that window (counted up to a little past
/// `TOO_MANY_MISSED`).
pub(crate) fn most_recent(
    schedule: &Schedule,
    tz: &TimeZone,
    earliest: Timestamp,
    now: Timestamp,
) -> (Option<Timestamp>, usize) {
    let mut last = None;
    let mut missed = 0;
    let mut t = earliest;
    while let Some(next) = schedule.next_after(t, tz) {
        if next > now {
            break;
        }
        last = Some(next);
        missed += 1;
        t = next;
        if missed == TOO_MANY_MISSED + 1 {
            // Skip ahead: only the latest matters now.
            let Some(after) = schedule.next_after(next, tz) else {
                break;
            };
            let interval = after.duration_since(next);
            let jump = now.checked_sub(interval.saturating_mul(2)).unwrap_or(now);
            t = t.max(jump);
        }
    }
    (last, missed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("a valid timestamp")
    }

    fn next(schedule: &str, after: &str, zone: &str) -> Option<String> {
        let s: Schedule = schedule.parse().expect("a valid schedule");
        let tz = TimeZone::get(zone).expect("a known zone");
        s.next_after(at(after), &tz).map(|t| t.to_string())
    }

    #[test]
    fn next_times() {
        let cases = [
            (
                "* * * * *",
                "2024-05-01T10:00:30Z",
                "UTC",
                "2024-05-01T10:01:00Z",
            ),
            (
                "*/15 * * * *",
                "2024-05-01T10:00:00Z",
                "UTC",
                "2024-05-01T10:15:00Z",
            ),
            (
                "5 4 * * *",
                "2024-05-01T10:00:00Z",
                "UTC",
                "2024-05-02T04:05:00Z",
            ),
            (
                "0 0 29 2 *",
                "2024-03-01T00:00:00Z",
                "UTC",
                "2028-02-29T00:00:00Z",
            ),
            (
                "0 9 * * mon-fri",
                "2024-05-03T10:00:00Z",
                "UTC",
                "2024-05-06T09:00:00Z",
            ),
            // Both day fields restricted: either matches (the 1st or a Monday).
            (
                "0 0 1 * mon",
                "2024-05-02T00:00:00Z",
                "UTC",
                "2024-05-06T00:00:00Z",
            ),
            // Day of month restricted, weekday `*`: both must match.
            (
                "0 0 13 * *",
                "2024-05-02T00:00:00Z",
                "UTC",
                "2024-05-13T00:00:00Z",
            ),
            (
                "0 0 1 jan,jul *",
                "2024-02-01T00:00:00Z",
                "UTC",
                "2024-07-01T00:00:00Z",
            ),
            (
                "10-20/5 1 * * *",
                "2024-05-01T01:12:00Z",
                "UTC",
                "2024-05-01T01:15:00Z",
            ),
            (
                "50/5 1 * * *",
                "2024-05-01T01:56:00Z",
                "UTC",
                "2024-05-02T01:50:00Z",
            ),
            (
                "@hourly",
                "2024-05-01T10:00:00Z",
                "UTC",
                "2024-05-01T11:00:00Z",
            ),
            (
                "@daily",
                "2024-05-01T10:00:00Z",
                "UTC",
                "2024-05-02T00:00:00Z",
            ),
            (
                "@weekly",
                "2024-05-01T10:00:00Z",
                "UTC",
                "2024-05-05T00:00:00Z",
            ),
            (
                "@monthly",
                "2024-05-01T10:00:00Z",
                "UTC",
                "2024-06-01T00:00:00Z",
            ),
            (
                "@yearly",
                "2024-05-01T10:00:00Z",
                "UTC",
                "2025-01-01T00:00:00Z",
            ),
            // In a zone: 09:00 in New York is 13:00 UTC in summer.
            (
                "0 9 * * *",
                "2024-07-01T00:00:00Z",
                "America/New_York",
                "2024-07-01T13:00:00Z",
            ),
            // 02:30 does not exist on 2024-03-10 in New York: it runs at 03:30 EDT.
            (
                "30 2 * * *",
                "2024-03-10T05:00:00Z",
                "America/New_York",
                "2024-03-10T07:30:00Z",
            ),
        ];
        for (schedule, after, zone, want) in cases {
            assert_eq!(
                next(schedule, after, zone).as_deref(),
                Some(want),
                "{schedule} after {after} in {zone}"
            );
        }
        assert_eq!(next("0 0 31 2 *", "2024-01-01T00:00:00Z", "UTC"), None);
    }

    #[test]
    fn zone_prefixes() {
        for text in ["CRON_TZ=Asia/Tokyo 0 9 * * *", "TZ=Asia/Tokyo 0 9 * * *"] {
            let s: Schedule = text.parse().expect("valid");
            assert_eq!(s.zone.as_deref(), Some("Asia/Tokyo"));
            let tz = TimeZone::get("Asia/Tokyo").expect("tzdata");
            assert_eq!(
                s.next_after(at("2024-05-01T01:00:00Z"), &tz)
                    .map(|t| t.to_string()),
                Some("2024-05-02T00:00:00Z".to_owned())
            );
        }
    }

    #[test]
    fn bad_schedules() {
        let cases = [
            ("* * * *", "expected exactly 5 fields, found 4: * * * *"),
            ("60 * * * *", "60: out of range (0-59)"),
            ("* * * * 7", "7: out of range (0-6)"),
            (
                "*/0 * * * *",
                "step of range should be a positive number: */0",
            ),
            ("x * * * *", "failed to parse int from x"),
            ("@every 5m", "unrecognized descriptor: @every 5m"),
        ];
        for (text, want) in cases {
            let err = text.parse::<Schedule>().expect_err(text);
            assert_eq!(err.to_string(), want, "{text}");
        }
    }

    #[test]
    fn missed_start_times() {
        let s: Schedule = "*/10 * * * *".parse().expect("valid");
        let (last, missed) = most_recent(
            &s,
            &TimeZone::UTC,
            at("2024-05-01T10:05:00Z"),
            at("2024-05-01T10:45:00Z"),
        );
        assert_eq!(last, Some(at("2024-05-01T10:40:00Z")));
        assert_eq!(missed, 4);
        let (last, missed) = most_recent(
            &s,
            &TimeZone::UTC,
            at("2024-05-01T10:05:00Z"),
            at("2024-05-01T10:09:00Z"),
        );
        assert_eq!((last, missed), (None, 0));
        // A year of every-minute runs: the latest is found without walking them all.
        let every: Schedule = "* * * * *".parse().expect("valid");
        let (last, missed) = most_recent(
            &every,
            &TimeZone::UTC,
            at("2023-05-01T00:00:00Z"),
            at("2024-05-01T10:09:30Z"),
        );
        assert_eq!(last, Some(at("2024-05-01T10:09:00Z")));
        assert!(missed > TOO_MANY_MISSED);
    }
}
