//! Durations in the forms duplicity users know: `2M`, `3W`, `10D`, `12h`,
//! `30m`, `45s`, `1Y`, and combinations such as `1W3D` (months are 30 days
//! and years 365, as in duplicity).

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid duration {0:?}: use a number and a unit s, m, h, D, W, M or Y (for example 2M, 3W, 10D, 12h)")]
pub struct DurationError(pub String);

/// Seconds in a duration string.
pub fn parse_duration(s: &str) -> Result<i64, DurationError> {
    let err = || DurationError(s.to_string());
    if s.is_empty() {
        return Err(err());
    }
    let mut total: i64 = 0;
    let mut number = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit: i64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'D' | 'd' => 86_400,
            'W' | 'w' => 7 * 86_400,
            'M' => 30 * 86_400,
            'Y' | 'y' => 365 * 86_400,
            _ => return Err(err()),
        };
        let n: i64 = number.parse().map_err(|_| err())?;
        total = total.checked_add(n.checked_mul(unit).ok_or_else(err)?).ok_or_else(err)?;
        number.clear();
    }
    if !number.is_empty() {
        return Err(err());
    }
    Ok(total)
}

/// The shortest exact form: `60D` → `2M`, `90000` → `25h`.
pub fn format_duration(secs: i64) -> String {
    for (unit, len) in [("Y", 365 * 86_400), ("M", 30 * 86_400), ("W", 7 * 86_400), ("D", 86_400), ("h", 3600), ("m", 60)] {
        if secs != 0 && secs % len == 0 {
            return format!("{}{unit}", secs / len);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(parse_duration("2M"), Ok(60 * 86_400));
        assert_eq!(parse_duration("3W"), Ok(21 * 86_400));
        assert_eq!(parse_duration("10D"), Ok(10 * 86_400));
        assert_eq!(parse_duration("12h"), Ok(12 * 3600));
        assert_eq!(parse_duration("1W3D"), Ok(10 * 86_400));
        for bad in ["", "2", "M", "2X", "-1D", "99999999999999999999Y"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(60 * 86_400), "2M");
        assert_eq!(format_duration(36 * 3600), "36h");
    }
}
