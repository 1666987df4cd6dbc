//! Calendar arithmetic for duplicity's time stamps (UTC, no time zone database).

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the epoch for a UTC date and time; `None` if out of range.
pub fn unix_from_civil(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<i64> {
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || !(0..=23).contains(&h) || !(0..=59).contains(&mi) || !(0..=60).contains(&s) {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

/// (year, month, day, hour, minute, second) of a UTC time.
pub fn civil_from_unix(t: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, secs / 3600, (secs % 3600) / 60, secs % 60)
}

/// `YYYYMMDDTHHMMSSZ`, duplicity's current time format.
pub fn format_stamp(t: i64) -> String {
    let (y, mo, d, h, mi, s) = civil_from_unix(t);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses a duplicity time: `YYYYMMDDTHHMMSSZ`, or the W3 form of
/// `--old-filenames` (`YYYY-MM-DDTHH:MM:SS±HH:MM` or `…Z`, where `:` may be
/// any `--time-separator` character).
pub fn parse_stamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() == 16 && b[8] == b'T' && b[15] == b'Z' {
        return unix_from_civil(
            digits(&s[0..4])?,
            digits(&s[4..6])?,
            digits(&s[6..8])?,
            digits(&s[9..11])?,
            digits(&s[11..13])?,
            digits(&s[13..15])?,
        );
    }
    // W3: 2002-08-17T16:17:01-07:00 (19 characters, then a zone).
    if b.len() >= 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b[16] && !b[13].is_ascii_digit() {
        let local = unix_from_civil(
            digits(&s[0..4])?,
            digits(&s[5..7])?,
            digits(&s[8..10])?,
            digits(&s[11..13])?,
            digits(&s[14..16])?,
            digits(&s[17..19])?,
        )?;
        let zone = &s[19..];
        if zone == "Z" {
            return Some(local);
        }
        let zb = zone.as_bytes();
        if zb.len() == 6 && (zb[0] == b'+' || zb[0] == b'-') && zb[3] == b[13] {
            let offset = digits(&zone[1..3])? * 3600 + digits(&zone[4..6])? * 60;
            return Some(if zb[0] == b'+' { local - offset } else { local + offset });
        }
        return None;
    }
    None
}

/// Base-36 time of `--short-filenames`.
pub(crate) fn parse_base36(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 12 {
        return None;
    }
    i64::from_str_radix(s, 36).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps() {
        let t = parse_stamp("20261127T052936Z").unwrap();
        assert_eq!(format_stamp(t), "20261127T052936Z");
        assert_eq!(parse_stamp("2002-08-17T16:17:01-07:00"), parse_stamp("20020817T231701Z"));
        assert_eq!(parse_stamp("2002-08-17T16_17_01+02_00"), parse_stamp("20020817T141701Z"));
        assert_eq!(parse_stamp("20261327T052936Z"), None);
        assert_eq!(parse_stamp("garbage"), None);
    }

    proptest::proptest! {
        #[test]
        fn stamp_roundtrip(t in 0i64..8_000_000_000) {
            proptest::prop_assert_eq!(parse_stamp(&format_stamp(t)), Some(t));
        }
    }
}
