//! Durations as pipelines write them: Go syntax (`1h30m`, `1.5s`, `300ms`) plus `d` for days.

use std::time::Duration;

/// Why a duration could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DurationError(String);

const UNITS: &[(&str, f64)] = &[
    ("ns", 1e-9),
    ("us", 1e-6),
    ("µs", 1e-6),
    ("μs", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
    ("d", 86400.0),
];

/// Parses a duration. Zero and negative durations mean "no limit" and give `None`.
///
/// Accepted: an optional sign, then one or more `<decimal number><unit>` pairs with units `ns`,
/// `us` (or `µs`), `ms`, `s`, `m`, `h`, `d`. A bare `0` is allowed.
pub fn parse(text: &str) -> Result<Option<Duration>, DurationError> {
    let invalid = |why: &str| DurationError(format!("invalid duration \"{text}\": {why}"));
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(None);
    }
    if rest.is_empty() {
        return Err(invalid(
            "expected a number followed by a unit such as 30s, 5m or 1h",
        ));
    }
    let mut seconds = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid(
                "expected a number followed by a unit such as 30s, 5m or 1h",
            ));
        }
        let value: f64 = number
            .parse()
            .map_err(|_| invalid("expected a number followed by a unit such as 30s, 5m or 1h"))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        if unit.is_empty() {
            return Err(invalid(&format!(
                "missing unit after {number} (use one of ns, us, ms, s, m, h, d)"
            )));
        }
        let Some((_, factor)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(invalid(&format!(
                "unknown unit \"{unit}\" (use one of ns, us, ms, s, m, h, d)"
            )));
        };
        seconds += value * factor;
        rest = &rest[unit_len..];
    }
    if !seconds.is_finite() || seconds > 1e12 {
        return Err(invalid("the duration is too long"));
    }
    if negative || seconds <= 0.0 {
        return Ok(None);
    }
    Ok(Some(Duration::from_secs_f64(seconds)))
}

/// Formats a duration compactly: `2s`, `1m30s`, `1h`, `1d2h`, `1.5s`, `250ms`.
pub fn format(duration: Duration) -> String {
    let total = duration.as_secs();
    let nanos = duration.subsec_nanos();
    if total == 0 {
        return match nanos {
            0 => "0s".to_owned(),
            n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
            n if n % 1_000 == 0 => format!("{}us", n / 1_000),
            n => format!("{n}ns"),
        };
    }
    let mut out = String::new();
    let (days, hours, minutes, seconds) = (
        total / 86_400,
        total / 3_600 % 24,
        total / 60 % 60,
        total % 60,
    );
    for (value, unit) in [(days, "d"), (hours, "h"), (minutes, "m")] {
        if value > 0 {
            out.push_str(&format!("{value}{unit}"));
        }
    }
    if nanos > 0 {
        let fraction = format!("{:09}", nanos);
        out.push_str(&format!("{seconds}.{}s", fraction.trim_end_matches('0')));
    } else if seconds > 0 {
        out.push_str(&format!("{seconds}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> Option<f64> {
        parse(text).unwrap().map(|d| d.as_secs_f64())
    }

    #[test]
    fn parses_go_syntax_and_days() {
        assert_eq!(secs("1h30m"), Some(5400.0));
        assert_eq!(secs("1.5h"), Some(5400.0));
        assert_eq!(secs("300ms"), Some(0.3));
        assert_eq!(secs("2m3s"), Some(123.0));
        assert_eq!(secs("7d"), Some(604_800.0));
        assert_eq!(secs("1d12h"), Some(129_600.0));
        assert_eq!(secs("10us"), Some(0.00001));
        assert_eq!(secs("+5s"), Some(5.0));
    }

    #[test]
    fn zero_and_negative_mean_no_limit() {
        assert_eq!(secs("0"), None);
        assert_eq!(secs("0s"), None);
        assert_eq!(secs("-5m"), None);
    }

    #[test]
    fn rejects_malformed_text_with_a_reason() {
        for (text, why) in [
            ("", "expected a number"),
            ("5", "missing unit after 5"),
            ("5x", "unknown unit \"x\""),
            ("1w", "unknown unit \"w\""),
            ("h", "expected a number"),
            ("1..5s", "expected a number"),
            ("1 s", "unknown unit \" s\""),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format(Duration::from_secs(2)), "2s");
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_secs(3600)), "1h");
        assert_eq!(format(Duration::from_secs(93_600)), "1d2h");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format(Duration::from_millis(250)), "250ms");
        assert_eq!(format(Duration::ZERO), "0s");
    }
}
