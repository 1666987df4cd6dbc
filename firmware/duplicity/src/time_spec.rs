//! Times as duplicity's command line takes them (`--time`, `restore -t`,
//! `--full-if-older-than`): `now`, an age (`3D`, `2W`, `1h30m`, `1M`, `1Y`),
//! seconds since the epoch, duplicity's stamps (`20261127T052936Z`), a W3
//! date and time (`2026-11-27T05:29:36Z`,
//! `…+02:00`, or without a zone: local time), or a date (`2026-11-27`,
//! `2026/11/27`, `11/27/2026`: local midnight). Pure: the caller gives the
//! current time and the local zone's offset.

use crate::time::{parse_stamp, unix_from_civil};

/// Why a time was refused; the text lists the forms that work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a time: use `now`, an age such as 3D, 2W, 1h30m, 1M or 1Y (s m h D W M Y), seconds since the epoch, \
     a date such as 2026-11-27 or 2026/11/27 or 11/27/2026, or a date and time such as 2026-11-27T05:29:36Z"
)]
pub struct TimeSpecError(pub String);

/// Seconds of each unit of an age, as duplicity counts them (a month is 30
/// days, a year 365).
fn unit_seconds(unit: u8) -> Option<i64> {
    Some(match unit {
        b's' => 1,
        b'm' => 60,
        b'h' => 3600,
        b'D' => 86_400,
        b'W' => 7 * 86_400,
        b'M' => 30 * 86_400,
        b'Y' => 365 * 86_400,
        _ => return None,
    })
}

/// An age such as `1h30m`: whole numbers, each followed by a unit.
pub fn parse_age(s: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut number: Option<i64> = None;
    for b in s.bytes() {
        if b.is_ascii_digit() {
            number = Some(number.unwrap_or(0).checked_mul(10)?.checked_add(i64::from(b - b'0'))?);
        } else {
            total = total.checked_add(number.take()?.checked_mul(unit_seconds(b)?)?)?;
        }
    }
    (number.is_none() && !s.is_empty()).then_some(total)
}

fn number(s: &str, len: std::ops::RangeInclusive<usize>) -> Option<i64> {
    (len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

/// A calendar date in one of duplicity's three orders.
fn parse_date(s: &str) -> Option<(i64, i64, i64)> {
    let parts: Vec<&str> = s.split(['-', '/']).collect();
    let [a, b, c] = parts.as_slice() else { return None };
    if a.len() == 4 {
        Some((number(a, 4..=4)?, number(b, 1..=2)?, number(c, 1..=2)?))
    } else {
        Some((number(c, 4..=4)?, number(a, 1..=2)?, number(b, 1..=2)?))
    }
}

/// `HH:MM:SS` followed by `Z`, `±HH:MM`, or nothing (local time): seconds
/// into the day, and the zone's offset east of UTC if one was given.
fn parse_clock(s: &str) -> Option<(i64, Option<i64>)> {
    let (clock, zone) = match s.find(['Z', '+', '-']) {
        Some(i) => (&s[..i], Some(&s[i..])),
        None => (s, None),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    let [h, m, sec] = parts.as_slice() else { return None };
    let (h, m, sec) = (number(h, 2..=2)?, number(m, 2..=2)?, number(sec, 2..=2)?);
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let offset = match zone {
        None => None,
        Some("Z") => Some(0),
        Some(z) => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let (zh, zm) = z[1..].split_once(':')?;
            let (zh, zm) = (number(zh, 2..=2)?, number(zm, 2..=2)?);
            if zh > 14 || zm > 59 {
                return None;
            }
            Some(sign * (zh * 3600 + zm * 60))
        }
    };
    Some((h * 3600 + m * 60 + sec, offset))
}

/// Seconds since the epoch for `spec`, given the current time and the local
/// zone's offset east of UTC (for dates and times without a zone).
pub fn parse_time_spec(spec: &str, now: i64, local_offset: i64) -> Result<i64, TimeSpecError> {
    let refuse = || TimeSpecError(spec.to_string());
    let s = spec.trim();
    if s == "now" {
        return Ok(now);
    }
    if let Some(age) = parse_age(s) {
        return now.checked_sub(age).ok_or_else(refuse);
    }
    if let Some(secs) = number(s, 1..=12) {
        return Ok(secs);
    }
    // duplicity's own stamps, as its file names and listings show them.
    if let Some(t) = parse_stamp(s) {
        return Ok(t);
    }
    let (date, clock) = match s.split_once('T') {
        Some((d, c)) => (d, Some(c)),
        None => (s, None),
    };
    let (y, mo, d) = parse_date(date).ok_or_else(refuse)?;
    let (seconds, offset) = match clock {
        Some(c) => parse_clock(c).ok_or_else(refuse)?,
        None => (0, None),
    };
    let midnight = unix_from_civil(y, mo, d, 0, 0, 0).ok_or_else(refuse)?;
    Ok(midnight + seconds - offset.unwrap_or(local_offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_000_000;

    #[test]
    fn every_form_duplicity_takes() {
        let table: &[(&str, i64)] = &[
            ("now", NOW),
            ("3D", NOW - 3 * 86_400),
            ("2W", NOW - 14 * 86_400),
            ("1M", NOW - 30 * 86_400),
            ("1Y", NOW - 365 * 86_400),
            ("1h30m", NOW - 5400),
            ("1h78m", NOW - 3600 - 78 * 60),
            ("45s", NOW - 45),
            ("1796000000", 1_796_000_000),
            ("0", 0),
            ("2026-11-27T05:29:36Z", 1_795_757_376),
            ("20261127T052936Z", 1_795_757_376),
            ("2026-11-27T07:29:36+02:00", 1_795_757_376),
            ("2026-11-27T00:29:36-05:00", 1_795_757_376),
            ("2026-11-27", 1_795_737_600),
            ("2026/11/27", 1_795_737_600),
            ("11/27/2026", 1_795_737_600),
            ("11-27-2026", 1_795_737_600),
            ("2026-1-5", 1_767_571_200),
        ];
        for (spec, expected) in table {
            assert_eq!(parse_time_spec(spec, NOW, 0), Ok(*expected), "{spec}");
        }
    }

    #[test]
    fn dates_without_a_zone_are_local() {
        // One hour east of UTC: local midnight is 23:00 UTC the day before.
        assert_eq!(parse_time_spec("2026-11-27", NOW, 3600), Ok(1_795_737_600 - 3600));
        assert_eq!(parse_time_spec("2026-11-27T05:29:36", NOW, 3600), Ok(1_795_757_376 - 3600));
        assert_eq!(parse_time_spec("2026-11-27T05:29:36Z", NOW, 3600), Ok(1_795_757_376));
    }

    #[test]
    fn anything_else_is_refused_with_the_forms_that_work() {
        for spec in ["", "3", "D", "3d", "1h30", "h1", "yesterday", "2026-13-01", "2026-11-27T25:00:00Z", "2026-11-27T05:29Z", "2026-11", "99999999999999999999D", "2026-11-27T05:29:36+2"] {
            let e = parse_time_spec(spec, NOW, 0);
            if spec == "3" {
                assert_eq!(e, Ok(3), "a bare number is seconds since the epoch");
                continue;
            }
            let e = e.unwrap_err();
            assert!(e.to_string().contains("is not a time") && e.to_string().contains("3D"), "{spec}: {e}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,40}", now in proptest::prelude::any::<i64>(), offset in -50_400i64..=50_400) {
            let _ = parse_time_spec(&s, now, offset);
        }
    }
}
