//! Money as integer nano-dollars: parsed from the decimal text the caller wrote, summed exactly
//! in SQLite integers, and turned into a JSON number only at the edge.

/// Nano-dollars (1e-9 USD). An i64 holds ±9.2 billion dollars.
pub type Nanos = i64;

pub const NANOS_PER_USD: i64 = 1_000_000_000;

/// Parse a non-negative decimal (`"0.1"`, `"12"`, `"1e-6"`, `"3.5E2"`) to nano-dollars,
/// rounding half away from zero past the ninth decimal. `None` if it is not such a number or
/// does not fit.
pub fn parse_usd(text: &str) -> Option<Nanos> {
    let s = text.trim();
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let mantissa = mantissa.strip_prefix('+').unwrap_or(mantissa);
    if let Some(rest) = mantissa.strip_prefix('-') {
        // "-0" and "-0.0" are zero, anything else negative is refused by the caller.
        return (!rest.is_empty() && rest.chars().all(|c| c == '0' || c == '.')).then_some(0);
    }
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // value = F × 10^(exp − |frac|) dollars = F × 10^k nanos, with F all the digits.
    let all = format!("{int_part}{frac_part}");
    let f = all.trim_start_matches('0');
    if f.is_empty() {
        return Some(0);
    }
    let k = i64::from(exp) + 9 - frac_part.len() as i64;
    if k >= 0 {
        let mut value: i64 = f.parse().ok()?;
        for _ in 0..k {
            value = value.checked_mul(10)?;
        }
        Some(value)
    } else {
        let cut = f.len() as i64 + k;
        if cut < 0 {
            return Some(0);
        }
        let (whole, rest) = f.split_at(cut as usize);
        let mut value: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        if rest.as_bytes().first().is_some_and(|&b| b >= b'5') {
            value = value.checked_add(1)?;
        }
        Some(value)
    }
}

/// Nano-dollars from a JSON number. A float is first turned into the shortest decimal that
/// reads back as the same float, which is the decimal the caller wrote (`0.1` stays `0.1`).
pub fn from_f64(v: f64) -> Option<Nanos> {
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    parse_usd(&format!("{v}"))
}

/// Dollars as a JSON number: the double nearest to the exact decimal amount.
pub fn to_usd(n: Nanos) -> f64 {
    let sign = if n < 0 { "-" } else { "" };
    let a = n.unsigned_abs();
    let per = NANOS_PER_USD as u64;
    format!("{sign}{}.{:09}", a / per, a % per)
        .parse()
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_usd("0.1"), Some(100_000_000));
        assert_eq!(parse_usd("12"), Some(12 * NANOS_PER_USD));
        assert_eq!(parse_usd("0.0000000015"), Some(2));
        assert_eq!(parse_usd("0.0000000014"), Some(1));
        assert_eq!(parse_usd("1e-6"), Some(1000));
        assert_eq!(parse_usd("3.5E2"), Some(350 * NANOS_PER_USD));
        assert_eq!(parse_usd("000.250"), Some(250_000_000));
        assert_eq!(parse_usd(".5"), Some(500_000_000));
        assert_eq!(parse_usd("-0"), Some(0));
        assert_eq!(parse_usd("-1"), None);
        assert_eq!(parse_usd("abc"), None);
        assert_eq!(parse_usd("1e30"), None);
        assert_eq!(from_f64(0.1), Some(100_000_000));
        assert_eq!(from_f64(1.0e-7), Some(100));
        assert_eq!(to_usd(100_000 * NANOS_PER_USD), 100000.0);
    }
}
