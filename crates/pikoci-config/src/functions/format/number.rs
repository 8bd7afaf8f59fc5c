//! The numeric verbs of `format`: `%b %d %o %x %X` (integers) and `%e %E %f %g %G` (floats),
//! with Go's rules for signs, padding and precision.

use super::Verb;

/// The sign of a number as the flags ask for it.
fn sign(verb: &Verb<'_>, negative: bool) -> &'static str {
    if negative {
        "-"
    } else if verb.plus {
        "+"
    } else if verb.space {
        " "
    } else {
        ""
    }
}

/// `%b %d %o %x %X`: a whole number in base 2, 10, 8 or 16 (Go's rules for flags and padding).
pub(crate) fn integer(verb: &Verb<'_>, number: f64) -> Result<String, String> {
    if !number.is_finite() || number.fract() != 0.0 {
        return Err(verb.unsupported("an integer is required"));
    }
    if number.abs() >= 1.0e38 {
        return Err(verb.unsupported("the integer is too large to format"));
    }
    let magnitude = number.abs() as u128;
    if verb.precision == Some(0) && magnitude == 0 {
        return Ok(String::new());
    }
    let digits = match verb.mode {
        'b' => format!("{magnitude:b}"),
        'o' => format!("{magnitude:o}"),
        'x' => format!("{magnitude:x}"),
        'X' => format!("{magnitude:X}"),
        _ => magnitude.to_string(),
    };
    let sign = sign(verb, number < 0.0);
    let prefix = match (verb.sharp, verb.mode) {
        (true, 'b') => "0b",
        (true, 'o') => "0",
        (true, 'x') => "0x",
        (true, 'X') => "0X",
        _ => "",
    };
    let mut zeros = verb.precision.map_or(0, |p| p.saturating_sub(digits.len()));
    let (mut left, mut right) = (0, 0);
    let length = sign.len() + prefix.len() + zeros + digits.len();
    if let Some(width) = verb.width.filter(|&w| w > length) {
        let extra = width - length;
        if verb.minus {
            right = extra;
        } else if verb.zero && verb.precision.is_none() {
            zeros += extra;
        } else {
            left = extra;
        }
    }
    Ok(format!(
        "{}{sign}{prefix}{}{digits}{}",
        " ".repeat(left),
        "0".repeat(zeros),
        " ".repeat(right)
    ))
}

/// `%e %E %f %g %G`: a number in scientific, decimal or shortest notation (Go's rules).
pub(crate) fn float(verb: &Verb<'_>, number: f64) -> String {
    let upper = matches!(verb.mode, 'E' | 'G');
    let magnitude = number.abs();
    let body = if number.is_nan() {
        "NaN".to_owned()
    } else if number.is_infinite() {
        "Inf".to_owned()
    } else {
        match verb.mode {
            'e' | 'E' => scientific(magnitude, verb.precision.unwrap_or(6), upper),
            'f' => format!("{magnitude:.*}", verb.precision.unwrap_or(6)),
            _ => general(magnitude, verb.precision, upper),
        }
    };
    let sign = sign(verb, number < 0.0);
    let padding = verb
        .width
        .map_or(0, |w| w.saturating_sub(sign.len() + body.len()));
    if verb.zero && number.is_finite() {
        format!("{sign}{}{body}", "0".repeat(padding))
    } else if verb.minus {
        format!("{sign}{body}{}", " ".repeat(padding))
    } else {
        format!("{}{sign}{body}", " ".repeat(padding))
    }
}

/// Scientific notation with `precision` fraction digits and a two-digit signed exponent.
fn scientific(magnitude: f64, precision: usize, upper: bool) -> String {
    let text = format!("{magnitude:.precision$e}");
    let (mantissa, exponent) = split_exponent(&text);
    exponent_form(mantissa, exponent, upper)
}

/// Splits Rust's `1.5e3` form into mantissa and exponent.
fn split_exponent(text: &str) -> (&str, i32) {
    match text.split_once('e') {
        Some((mantissa, exponent)) => (mantissa, exponent.parse().unwrap_or(0)),
        None => (text, 0),
    }
}

/// Writes `mantissa` with Go's exponent suffix (`e+03`).
fn exponent_form(mantissa: &str, exponent: i32, upper: bool) -> String {
    let e = if upper { 'E' } else { 'e' };
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}{e}{sign}{:02}", exponent.unsigned_abs())
}

/// `%g`: the shortest form (or `precision` significant digits), in scientific notation for
/// small and large exponents, without trailing zeros.
fn general(magnitude: f64, precision: Option<usize>, upper: bool) -> String {
    let text = match precision {
        None => format!("{magnitude:e}"),
        Some(p) => format!("{magnitude:.*e}", p.max(1) - 1),
    };
    let (mantissa, exponent) = split_exponent(&text);
    let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    let count = digits.len() as i64;
    let point = i64::from(exponent) + 1;
    let mut shown = precision.map_or(count, |p| p.max(1) as i64);
    let mut limit = shown;
    if limit > count && count >= point {
        limit = count;
    }
    if precision.is_none() {
        limit = 6;
    }
    let digit = |i: i64| {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i))
            .map_or('0', |&d| d as char)
    };
    let exponent10 = point - 1;
    if exponent10 < -4 || exponent10 >= limit {
        shown = shown.min(count);
        let mut mantissa = String::from(digit(0));
        if shown > 1 {
            mantissa.push('.');
            mantissa.extend((1..shown).map(digit));
        }
        return exponent_form(&mantissa, exponent, upper);
    }
    if shown > point {
        shown = count;
    }
    let fraction = (shown - point).max(0);
    let mut out: String = if point > 0 {
        (0..point).map(digit).collect()
    } else {
        "0".to_owned()
    };
    if fraction > 0 {
        out.push('.');
        out.extend((point..point + fraction).map(digit));
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::functions::test_support::{args, check_ok, v};

    #[test]
    fn format_bools_and_integers() {
        check_ok(
            "format",
            vec![
                (args!["%t", true], v!("true")),
                (args!["%t", "false"], v!("false")),
                (args!["%d bottles", 10], v!("10 bottles")),
                (args!["%+d", 10], v!("+10")),
                (args!["% d", 10], v!(" 10")),
                (args!["%5d|", 10], v!("   10|")),
                (args!["%-5d|", 10], v!("10   |")),
                (args!["%05d", (-42)], v!("-0042")),
                (args!["%.4d", 7], v!("0007")),
                (args!["%06.3d", 7], v!("   007")),
                (args!["%.0d", 0], v!("")),
                (args!["%d", "12"], v!("12")),
                (args!["%b", 5], v!("101")),
                (args!["%o", 9], v!("11")),
                (args!["%#o", 9], v!("011")),
                (args!["%x", 254], v!("fe")),
                (args!["%X", 254], v!("FE")),
                (args!["%#x", (-255)], v!("-0xff")),
                (args!["%#b", 2], v!("0b10")),
            ],
        );
    }

    #[test]
    fn format_floats() {
        check_ok(
            "format",
            vec![
                (args!["%f things", 10], v!("10.000000 things")),
                (args!["%+f", 10], v!("+10.000000")),
                (args!["% f", 10], v!(" 10.000000")),
                (args!["% f", (-10)], v!("-10.000000")),
                (args!["%.1f", "1.06"], v!("1.1")),
                (args!["%.2f", 1.23456], v!("1.23")),
                (args!["%8.2f|", 1.23456], v!("    1.23|")),
                (args!["%-8.2f|", 1.23456], v!("1.23    |")),
                (args!["%08.2f", (-1.23456)], v!("-0001.23")),
                (args!["%e", 1000], v!("1.000000e+03")),
                (args!["%E", 1000], v!("1.000000E+03")),
                (args!["%.2e", 0.000123], v!("1.23e-04")),
                (args!["%g", 1000], v!("1000")),
                (args!["%G", 1000], v!("1000")),
                (args!["%g", "0.00000000000000000000001"], v!("1e-23")),
                (args!["%G", "0.00000000000000000000001"], v!("1E-23")),
                (args!["%g", 1234567], v!("1.234567e+06")),
                (args!["%g", 123456], v!("123456")),
                (args!["%g", 0.0001], v!("0.0001")),
                (args!["%g", 0.00001], v!("1e-05")),
                (args!["%g", 0.5], v!("0.5")),
                (args!["%g", 0], v!("0")),
                (args!["%.3g", 1234567], v!("1.23e+06")),
                (args!["%.3g", 1.23456], v!("1.23")),
                (args!["%.5g", 100], v!("100")),
                (args!["%.3g", 1.0], v!("1")),
                (args!["%.2g", 0.000012345], v!("1.2e-05")),
            ],
        );
    }
}
