//! Date and time functions: `formatdate`, `timeadd`, `timestamp`. Timestamps are RFC 3339
//! strings; durations are Go durations (`1h30m`, `-10m`, `1.5s`).

use chrono::{DateTime, Datelike, FixedOffset, SecondsFormat, TimeDelta, Timelike, Utc};

use super::{expect_string, invalid};
use crate::diagnostic::quoted;
use crate::value::Value;

/// English month names, January first.
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// English weekday names, Monday first.
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// `timestamp()`: the current UTC time in RFC 3339 (`2026-11-22T10:00:00Z`).
pub(crate) fn timestamp(_args: Vec<Value>) -> Result<Value, String> {
    Ok(Value::String(
        Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
    ))
}

/// `timeadd(timestamp, duration)`: the timestamp moved by the duration, in RFC 3339 with the
/// timestamp's offset (whole seconds, as Terraform).
pub(crate) fn timeadd(args: Vec<Value>) -> Result<Value, String> {
    let time = parse_timestamp(&expect_string(&args, 0, "timestamp")?, "timestamp")?;
    let duration = expect_string(&args, 1, "duration")?;
    let nanos = parse_duration(&duration).map_err(|problem| invalid("duration", problem))?;
    let moved = time
        .checked_add_signed(TimeDelta::nanoseconds(nanos))
        .ok_or_else(|| invalid("duration", "the resulting time is out of range"))?;
    Ok(Value::String(
        moved.to_rfc3339_opts(SecondsFormat::Secs, true),
    ))
}

/// Parses an RFC 3339 timestamp (`T` separator required, as in Terraform).
fn parse_timestamp(text: &str, name: &str) -> Result<DateTime<FixedOffset>, String> {
    if text.len() > 10 && text.as_bytes().get(10) != Some(&b'T') {
        return Err(invalid(
            name,
            "not a valid RFC3339 timestamp: missing required time introducer 'T'",
        ));
    }
    DateTime::parse_from_rfc3339(text)
        .map_err(|error| invalid(name, format!("not a valid RFC3339 timestamp: {error}")))
}

/// Parses a Go duration into nanoseconds: an optional sign, then one or more decimal numbers
/// with a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`); `0` alone needs no unit.
fn parse_duration(text: &str) -> Result<i64, String> {
    let invalid_duration = || format!("invalid duration {}", quoted(text));
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid_duration());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let whole_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (whole, after) = rest.split_at(whole_len);
        let mut value: u128 = 0;
        for digit in whole.bytes() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u128::from(digit - b'0')))
                .filter(|&v| v <= u128::from(u64::MAX))
                .ok_or_else(invalid_duration)?;
        }
        rest = after;
        let (mut fraction, mut scale, mut has_fraction) = (0_u128, 1_u128, false);
        if let Some(after_point) = rest.strip_prefix('.') {
            let fraction_len = after_point.bytes().take_while(u8::is_ascii_digit).count();
            let (digits, after) = after_point.split_at(fraction_len);
            for digit in digits.bytes().take(18) {
                fraction = fraction * 10 + u128::from(digit - b'0');
                scale *= 10;
            }
            has_fraction = fraction_len > 0;
            rest = after;
        }
        if whole_len == 0 && !has_fraction {
            return Err(invalid_duration());
        }
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let (unit, after) = rest.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("missing unit in duration {}", quoted(text))),
            other => {
                return Err(format!(
                    "unknown unit {} in duration {}",
                    quoted(other),
                    quoted(text)
                ));
            }
        };
        total = value
            .checked_mul(unit_nanos)
            .and_then(|nanos| nanos.checked_add(fraction * unit_nanos / scale))
            .and_then(|nanos| total.checked_add(nanos))
            .filter(|&nanos| nanos <= u128::from(i64::MAX.unsigned_abs()))
            .ok_or_else(invalid_duration)?;
        rest = after;
    }
    let total = i64::try_from(total).map_err(|_| invalid_duration())?;
    Ok(if negative { -total } else { total })
}

/// `formatdate(spec, timestamp)`: the timestamp written by Terraform's format spec (`YYYY`,
/// `MM`, `DD`, `hh`, `mm`, `ss`, `ZZZZZ`, … and `'quoted literals'`).
pub(crate) fn formatdate(args: Vec<Value>) -> Result<Value, String> {
    let spec = expect_string(&args, 0, "format")?;
    let time = parse_timestamp(&expect_string(&args, 1, "time")?, "time")?;
    let chars: Vec<char> = spec.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if c == '\'' {
            i = quoted_literal(&chars, i, &mut out)?;
        } else if c.is_ascii_alphabetic() {
            let count = chars.iter().skip(i).take_while(|&&next| next == c).count();
            out.push_str(&date_verb(c, count, &time)?);
            i += count;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Ok(Value::String(out))
}

/// Copies the quoted literal starting at `start` (`''` is a quote) and returns where it ends.
fn quoted_literal(chars: &[char], start: usize, out: &mut String) -> Result<usize, String> {
    if chars.get(start + 1) == Some(&'\'') {
        out.push('\'');
        return Ok(start + 2);
    }
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(invalid("format", "unterminated literal '")),
            Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                out.push('\'');
                i += 2;
            }
            Some('\'') => return Ok(i + 1),
            Some(&other) => {
                out.push(other);
                i += 1;
            }
        }
    }
}

/// The text of one date verb: `count` repetitions of the letter `c`.
fn date_verb(c: char, count: usize, time: &DateTime<FixedOffset>) -> Result<String, String> {
    let verb: String = std::iter::repeat_n(c, count).collect();
    let bad = |rule: &str| {
        let rule = if rule.is_empty() {
            String::new()
        } else {
            format!(": {rule}")
        };
        invalid(
            "format",
            format!("invalid date format verb {}{rule}", quoted(&verb)),
        )
    };
    let month = MONTHS
        .get(time.month0() as usize)
        .copied()
        .unwrap_or_default();
    let weekday = WEEKDAYS
        .get(time.weekday().num_days_from_monday() as usize)
        .copied()
        .unwrap_or_default();
    let hour12 = match time.hour() % 12 {
        0 => 12,
        other => other,
    };
    let text = match (c, count) {
        ('Y', 2) => format!("{:02}", time.year().rem_euclid(100)),
        ('Y', 4) => format!("{:04}", time.year()),
        ('Y', _) => return Err(bad("year must either be \"YY\" or \"YYYY\"")),
        ('M', 1) => time.month().to_string(),
        ('M', 2) => format!("{:02}", time.month()),
        ('M', 3) => month.chars().take(3).collect(),
        ('M', 4) => month.to_owned(),
        ('M', _) => return Err(bad("month must be \"M\", \"MM\", \"MMM\", or \"MMMM\"")),
        ('D', 1) => time.day().to_string(),
        ('D', 2) => format!("{:02}", time.day()),
        ('D', _) => return Err(bad("day of month must either be \"D\" or \"DD\"")),
        ('E', 3) => weekday.chars().take(3).collect(),
        ('E', 4) => weekday.to_owned(),
        ('E', _) => return Err(bad("day of week must either be \"EEE\" or \"EEEE\"")),
        ('h', 1) => time.hour().to_string(),
        ('h', 2) => format!("{:02}", time.hour()),
        ('h', _) => return Err(bad("24-hour must either be \"h\" or \"hh\"")),
        ('H', 1) => hour12.to_string(),
        ('H', 2) => format!("{hour12:02}"),
        ('H', _) => return Err(bad("12-hour must either be \"H\" or \"HH\"")),
        ('A', 2) => (if time.hour() < 12 { "AM" } else { "PM" }).to_owned(),
        ('a', 2) => (if time.hour() < 12 { "am" } else { "pm" }).to_owned(),
        ('A' | 'a', _) => return Err(bad(&format!("must be \"{c}{c}\""))),
        ('m', 1) => time.minute().to_string(),
        ('m', 2) => format!("{:02}", time.minute()),
        ('m', _) => return Err(bad("minute must either be \"m\" or \"mm\"")),
        ('s', 1) => time.second().to_string(),
        ('s', 2) => format!("{:02}", time.second()),
        ('s', _) => return Err(bad("second must either be \"s\" or \"ss\"")),
        ('Z', 1) => zone(time, true, Some("Z")),
        ('Z', 3) => zone(time, false, Some("UTC")),
        ('Z', 4) => zone(time, false, None),
        ('Z', 5) => zone(time, true, None),
        ('Z', _) => return Err(bad("timezone must be Z, ZZZZ, or ZZZZZ")),
        _ => return Err(bad("")),
    };
    Ok(text)
}

/// The UTC offset as `+hhmm` or `+hh:mm`, or `utc_name` when the offset is zero.
fn zone(time: &DateTime<FixedOffset>, colon: bool, utc_name: Option<&str>) -> String {
    let seconds = time.offset().local_minus_utc();
    if let (0, Some(name)) = (seconds, utc_name) {
        return name.to_owned();
    }
    let sign = if seconds < 0 { '-' } else { '+' };
    let minutes = seconds.unsigned_abs() / 60;
    let separator = if colon { ":" } else { "" };
    format!("{sign}{:02}{separator}{:02}", minutes / 60, minutes % 60)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{args, check_err, check_ok, v};
    use super::parse_duration;

    #[test]
    fn formatdate() {
        check_ok(
            "formatdate",
            vec![
                (
                    args!["DD MMM YYYY hh:mm ZZZ", "2018-01-02T23:12:01Z"],
                    v!("02 Jan 2018 23:12 UTC"),
                ),
                (
                    args!["EEEE, DD-MMM-YY hh:mm:ss ZZZ", "2018-01-02T23:12:01Z"],
                    v!("Tuesday, 02-Jan-18 23:12:01 UTC"),
                ),
                (
                    args!["EEE, DD MMM YYYY hh:mm:ss ZZZ", "2018-01-02T23:12:01-08:00"],
                    v!("Tue, 02 Jan 2018 23:12:01 -0800"),
                ),
                (
                    args!["MMM DD, YYYY", "2018-01-02T23:12:01Z"],
                    v!("Jan 02, 2018"),
                ),
                (args!["HH:mmaa", "2018-01-02T23:12:01Z"], v!("11:12pm")),
                (args!["H:mm AA", "2018-01-02T00:05:09Z"], v!("12:05 AM")),
                (args!["h'h'mm", "2018-01-02T23:12:01-08:00"], v!("23h12")),
                (
                    args!["YYYY-MM-DD'T'hh:mm:ssZ", "2018-01-02T23:12:01Z"],
                    v!("2018-01-02T23:12:01Z"),
                ),
                (
                    args!["Z ZZZZ ZZZZZ", "2018-01-02T23:12:01+05:30"],
                    v!("+05:30 +0530 +05:30"),
                ),
                (args!["M/D h:m:s", "2018-03-04T05:06:07Z"], v!("3/4 5:6:7")),
                (
                    args!["MMMM EEEE", "2024-12-29T00:00:00Z"],
                    v!("December Sunday"),
                ),
                (args!["'it''s' ''", "2018-01-02T23:12:01Z"], v!("it's '")),
                (args!["D.M. ☃", "2018-01-02T23:12:01.999Z"], v!("2.1. ☃")),
            ],
        );
        check_err(
            "formatdate",
            vec![
                (
                    args!["YYY", "2018-01-02T23:12:01Z"],
                    "invalid date format verb \"YYY\": year must either be \"YY\" or \"YYYY\"",
                ),
                (
                    args!["X", "2018-01-02T23:12:01Z"],
                    "invalid date format verb \"X\"",
                ),
                (args!["A", "2018-01-02T23:12:01Z"], "must be \"AA\""),
                (
                    args!["ZZ", "2018-01-02T23:12:01Z"],
                    "timezone must be Z, ZZZZ, or ZZZZZ",
                ),
                (
                    args!["'abc", "2018-01-02T23:12:01Z"],
                    "unterminated literal '",
                ),
                (
                    args!["YYYY", "2018-01-02 23:12:01Z"],
                    "missing required time introducer 'T'",
                ),
                (args!["YYYY", "2018-01-02"], "not a valid RFC3339 timestamp"),
                (
                    args!["YYYY", "2018-01-02T23:12:01"],
                    "not a valid RFC3339 timestamp",
                ),
                (
                    args!["YYYY", "2018-13-02T23:12:01Z"],
                    "not a valid RFC3339 timestamp",
                ),
            ],
        );
    }

    #[test]
    fn timeadd() {
        check_ok(
            "timeadd",
            vec![
                (
                    args!["2017-11-22T00:00:00Z", "10m"],
                    v!("2017-11-22T00:10:00Z"),
                ),
                (
                    args!["2017-11-22T00:00:00Z", "1h30m"],
                    v!("2017-11-22T01:30:00Z"),
                ),
                (
                    args!["2017-11-22T00:00:00Z", "-10m"],
                    v!("2017-11-21T23:50:00Z"),
                ),
                (
                    args!["2017-11-22T00:00:00Z", "1.5h"],
                    v!("2017-11-22T01:30:00Z"),
                ),
                (
                    args!["2017-11-22T00:00:00+02:00", "24h"],
                    v!("2017-11-23T00:00:00+02:00"),
                ),
                (
                    args!["2017-11-22T00:00:00.5Z", "600ms"],
                    v!("2017-11-22T00:00:01Z"),
                ),
                (
                    args!["2017-11-22T00:00:00Z", "0"],
                    v!("2017-11-22T00:00:00Z"),
                ),
            ],
        );
        check_err(
            "timeadd",
            vec![
                (
                    args!["2017-11-22T00:00:00Z", "1d"],
                    "unknown unit \"d\" in duration \"1d\"",
                ),
                (
                    args!["2017-11-22T00:00:00Z", "10"],
                    "missing unit in duration \"10\"",
                ),
                (args!["2017-11-22T00:00:00Z", ""], "invalid duration \"\""),
                (
                    args!["2017-11-22", "1h"],
                    "\"timestamp\": not a valid RFC3339 timestamp",
                ),
                (
                    args!["2017-11-22T00:00:00Z", "99999999999h"],
                    "invalid duration",
                ),
            ],
        );
    }

    #[test]
    fn durations() {
        let cases = [
            ("1ns", 1),
            ("1us", 1_000),
            ("1µs", 1_000),
            ("1.5s", 1_500_000_000),
            (".5m", 30_000_000_000),
            ("1h2m3s4ms", 3_723_004_000_000),
            ("+2s", 2_000_000_000),
            ("-1.5h", -5_400_000_000_000),
            ("-0", 0),
        ];
        for (text, nanos) in cases {
            assert_eq!(parse_duration(text), Ok(nanos), "{text}");
        }
        for text in ["", "-", ".", "1.", "h", "1h-2m", "1 h", "2562048h"] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
    }

    #[test]
    fn timestamp() {
        let Ok(crate::value::Value::String(now)) = super::super::call("timestamp", vec![]) else {
            panic!("timestamp() must return a string");
        };
        assert_eq!(now.len(), 20, "{now}");
        assert!(
            now.ends_with('Z') && now.as_bytes().get(10) == Some(&b'T'),
            "{now}"
        );
        assert!(super::parse_timestamp(&now, "t").is_ok());
    }
}
