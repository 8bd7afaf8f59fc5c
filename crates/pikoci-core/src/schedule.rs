//! `check_interval`: when a resource is checked for new versions.
//!
//! Accepted: standard 5-field cron (`min hour day-of-month month day-of-week`, day of week `0-7`
//! with `0` and `7` both Sunday, names allowed), the descriptors `@hourly`, `@daily`,
//! `@midnight`, `@weekly`, `@monthly`, `@yearly`, `@annually`, and `@every <duration>`.
//! Anything that fires more often than every 10 seconds is rejected.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// The shortest allowed gap between two checks.
pub const MIN_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// The interval used when a resource has no `check_interval`.
pub const DEFAULT_CHECK_INTERVAL: &str = "@every 1m";

/// A validated `check_interval`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CheckInterval {
    spec: String,
    #[serde(skip)]
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Every(Duration),
    /// One schedule, or two when both day fields are restricted: classic cron fires when
    /// either the day of month or the day of week matches, the `cron` crate only when both do.
    Cron(Vec<cron::Schedule>),
}

/// Why a `check_interval` is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The text is not a schedule.
    #[error("failed to parse check interval \"{spec}\": {reason}")]
    Parse {
        /// The schedule as written.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// The schedule fires too often.
    #[error("check interval \"{spec}\" is too short, minimum is 10s")]
    TooShort {
        /// The schedule as written.
        spec: String,
    },
}

impl CheckInterval {
    /// Parses and validates a schedule.
    pub fn parse(spec: &str) -> Result<CheckInterval, ScheduleError> {
        let parse_error = |reason: String| ScheduleError::Parse {
            spec: spec.to_owned(),
            reason,
        };
        let trimmed = spec.trim();
        let kind = if let Some(every) = trimmed.strip_prefix("@every") {
            let every = every.trim();
            match crate::duration::parse(every) {
                Ok(Some(duration)) => Kind::Every(duration),
                Ok(None) => return Err(parse_error("the duration must be positive".to_owned())),
                Err(err) => return Err(parse_error(err.to_string())),
            }
        } else {
            let five_fields = match trimmed {
                "@yearly" | "@annually" => "0 0 1 1 *".to_owned(),
                "@monthly" => "0 0 1 * *".to_owned(),
                "@weekly" => "0 0 * * 0".to_owned(),
                "@daily" | "@midnight" => "0 0 * * *".to_owned(),
                "@hourly" => "0 * * * *".to_owned(),
                other if other.starts_with('@') => {
                    return Err(parse_error(format!(
                        "unknown descriptor \"{other}\" (use @every <duration>, @hourly, @daily, \
                         @weekly, @monthly or @yearly)"
                    )));
                }
                other => other.to_owned(),
            };
            Kind::Cron(parse_cron(&five_fields).map_err(parse_error)?)
        };
        let interval = CheckInterval {
            spec: spec.to_owned(),
            kind,
        };
        let reference = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let first = interval.next_after(reference);
        if first == DateTime::<Utc>::MAX_UTC {
            return Err(parse_error(
                "the schedule never fires (check the day and month)".to_owned(),
            ));
        }
        let first_gap = first - reference;
        if first_gap.to_std().unwrap_or_default() < MIN_CHECK_INTERVAL {
            return Err(ScheduleError::TooShort {
                spec: spec.to_owned(),
            });
        }
        Ok(interval)
    }

    /// The schedule as written.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// The first check time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        match &self.kind {
            Kind::Every(duration) => {
                after + chrono::Duration::from_std(*duration).unwrap_or(chrono::Duration::MAX)
            }
            Kind::Cron(schedules) => schedules
                .iter()
                .filter_map(|schedule| schedule.after(&after).next())
                .min()
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }
}

impl Default for CheckInterval {
    fn default() -> Self {
        CheckInterval {
            spec: DEFAULT_CHECK_INTERVAL.to_owned(),
            kind: Kind::Every(Duration::from_secs(60)),
        }
    }
}

impl TryFrom<String> for CheckInterval {
    type Error = ScheduleError;
    fn try_from(spec: String) -> Result<Self, Self::Error> {
        CheckInterval::parse(&spec)
    }
}

impl From<CheckInterval> for String {
    fn from(interval: CheckInterval) -> String {
        interval.spec
    }
}

/// Parses 5-field cron into the `cron` crate's 6-field form (seconds first, days of week as
/// names: the crate numbers Sunday 1, classic cron 0 or 7).
fn parse_cron(five_fields: &str) -> Result<Vec<cron::Schedule>, String> {
    let fields: Vec<&str> = five_fields.split_whitespace().collect();
    let [minute, hour, day_of_month, month, day_of_week] = fields.as_slice() else {
        return Err(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
            fields.len()
        ));
    };
    let unrestricted = |field: &str| field == "*" || field == "?";
    let day_of_week = if unrestricted(day_of_week) {
        "*".to_owned()
    } else {
        days_of_week(day_of_week)?
    };
    let build = |dom: &str, dow: &str| {
        cron::Schedule::from_str(&format!("0 {minute} {hour} {dom} {month} {dow}"))
            .map_err(|err| first_line(&err.to_string()))
    };
    if unrestricted(day_of_month) || day_of_week == "*" {
        Ok(vec![build(day_of_month, &day_of_week)?])
    } else {
        Ok(vec![build(day_of_month, "*")?, build("*", &day_of_week)?])
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_owned()
}

/// Expands a classic day-of-week field (`0`-`7`, names, ranges, steps, lists; `0` and `7` are
/// Sunday) into a list of day names, e.g. `1-5` → `MON,TUE,WED,THU,FRI`, `5-7` →
/// `SUN,FRI,SAT`.
fn days_of_week(field: &str) -> Result<String, String> {
    const NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    let day = |text: &str| -> Result<usize, String> {
        if let Ok(n) = text.parse::<usize>() {
            return if n <= 7 {
                Ok(n)
            } else {
                Err(format!("day of week {n} is out of range (0-7)"))
            };
        }
        NAMES
            .iter()
            .position(|name| name.eq_ignore_ascii_case(text))
            .ok_or_else(|| format!("invalid day of week \"{text}\" (use 0-7 or SUN-SAT)"))
    };
    let mut days = [false; 7];
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: usize = step
                    .parse()
                    .map_err(|_| format!("invalid step \"{step}\" in \"{part}\""))?;
                if step == 0 {
                    return Err(format!("the step in \"{part}\" must be at least 1"));
                }
                (range, step)
            }
            None => (part, 1),
        };
        let (first, last) = match range {
            "*" | "?" => (0, 6),
            range => match range.split_once('-') {
                Some((a, b)) => (day(a)?, day(b)?),
                None if step > 1 => (day(range)?, 6),
                None => (day(range)?, day(range)?),
            },
        };
        if first > last {
            return Err(format!("the range \"{range}\" goes backwards"));
        }
        for n in (first..=last).step_by(step) {
            days[n % 7] = true;
        }
    }
    Ok(NAMES
        .iter()
        .zip(days)
        .filter(|(_, on)| *on)
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(","))
}

#[cfg(test)]
mod tests {
    use chrono::Timelike;

    use super::*;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 1, h, m, s).unwrap()
    }

    #[test]
    fn accepts_every_cron_and_descriptors() {
        for spec in [
            "@every 10s",
            "@every 1m",
            "@every 1d",
            "*/5 * * * *",
            "0 9 * * 1-5",
            "30 2 * * 0",
            "0 0 * * 7",
            "0 0 1 */2 *",
            "@hourly",
            "@daily",
            "@midnight",
            "@weekly",
            "@monthly",
            "@yearly",
            "@annually",
        ] {
            CheckInterval::parse(spec).unwrap_or_else(|err| panic!("{spec}: {err}"));
        }
    }

    #[test]
    fn rejects_too_short_and_malformed() {
        let err = CheckInterval::parse("@every 5s").unwrap_err();
        assert_eq!(
            err.to_string(),
            "check interval \"@every 5s\" is too short, minimum is 10s"
        );
        let err = CheckInterval::parse("0 */5 * * * *")
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected 5 fields"), "{err}");
        let err = CheckInterval::parse("@sometimes").unwrap_err().to_string();
        assert!(err.contains("unknown descriptor"), "{err}");
        let err = CheckInterval::parse("@every soon").unwrap_err().to_string();
        assert!(err.contains("invalid duration"), "{err}");
        let err = CheckInterval::parse("61 * * * *").unwrap_err().to_string();
        assert!(err.starts_with("failed to parse check interval"), "{err}");
        let err = CheckInterval::parse("0 0 * * 8").unwrap_err().to_string();
        assert!(err.contains("out of range"), "{err}");
        let err = CheckInterval::parse("0 0 * * 5-2").unwrap_err().to_string();
        assert!(err.contains("goes backwards"), "{err}");
        let err = CheckInterval::parse("99 * * * *").unwrap_err().to_string();
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn next_fire_times() {
        let every = CheckInterval::parse("@every 90s").unwrap();
        assert_eq!(every.next_after(at(0, 0, 0)), at(0, 1, 30));
        let cron = CheckInterval::parse("*/5 * * * *").unwrap();
        assert_eq!(cron.next_after(at(0, 3, 7)), at(0, 5, 0));
        let hourly = CheckInterval::parse("@hourly").unwrap();
        assert_eq!(hourly.next_after(at(5, 0, 0)).hour(), 6);
        // 2024-01-01 is a Monday; day 0 is Sunday the 7th.
        let sunday = CheckInterval::parse("0 12 * * 0").unwrap();
        let next = sunday.next_after(at(0, 0, 0));
        assert_eq!(next, Utc.with_ymd_and_hms(2024, 1, 7, 12, 0, 0).unwrap());
        let weekdays = CheckInterval::parse("0 9 * * 1-5").unwrap();
        assert_eq!(
            weekdays.next_after(at(10, 0, 0)),
            Utc.with_ymd_and_hms(2024, 1, 2, 9, 0, 0).unwrap()
        );
    }

    #[test]
    fn days_of_week_follow_classic_cron() {
        assert_eq!(days_of_week("1-5").unwrap(), "MON,TUE,WED,THU,FRI");
        assert_eq!(days_of_week("5-7").unwrap(), "SUN,FRI,SAT");
        assert_eq!(days_of_week("*/2").unwrap(), "SUN,TUE,THU,SAT");
        assert_eq!(days_of_week("mon,wed-fri").unwrap(), "MON,WED,THU,FRI");
        assert_eq!(days_of_week("7").unwrap(), "SUN");
        // 2024-01-01 is a Monday: "the 10th or a Friday" fires on Friday the 5th first.
        let either = CheckInterval::parse("0 12 10 * 5").unwrap();
        assert_eq!(
            either.next_after(at(0, 0, 0)),
            Utc.with_ymd_and_hms(2024, 1, 5, 12, 0, 0).unwrap()
        );
        let after_friday = Utc.with_ymd_and_hms(2024, 1, 6, 0, 0, 0).unwrap();
        assert_eq!(
            either.next_after(after_friday),
            Utc.with_ymd_and_hms(2024, 1, 10, 12, 0, 0).unwrap()
        );
        CheckInterval::parse("0 9 * * 1-7").unwrap();
        let never = CheckInterval::parse("0 0 31 4 *").unwrap_err().to_string();
        assert!(never.contains("never fires"), "{never}");
    }

    #[test]
    fn default_is_every_minute() {
        let default = CheckInterval::default();
        assert_eq!(default.spec(), "@every 1m");
        assert_eq!(default, CheckInterval::parse("@every 1m").unwrap());
    }
}
