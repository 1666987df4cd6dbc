//! `--time`, as duplicity takes it (`3D`, `2M`, ISO dates, epoch seconds).
//! A date or time written without a zone is the machine's local time, as
//! duplicity reads it: the zone from `TZ` or `/etc/localtime`, with the
//! offset that held on that date (summer time included).

use coffer_duplicity::{TimeSpecError, parse_time_spec};
use jiff::tz::TimeZone;

/// Seconds since the epoch for `time`, read in the machine's zone.
pub(crate) fn parse_time(time: Option<&str>, now: i64) -> Result<Option<i64>, TimeSpecError> {
    let zone = TimeZone::try_system().unwrap_or(TimeZone::UTC);
    time.map(|spec| parse_in(spec, now, &zone)).transpose()
}

/// `spec` read in `zone`. The offset depends on the date it names: it is
/// taken at the reading in UTC, and once more at the result, which settles
/// it everywhere except inside the hour a clock change skips or repeats.
fn parse_in(spec: &str, now: i64, zone: &TimeZone) -> Result<i64, TimeSpecError> {
    let offset_at = |t: i64| {
        jiff::Timestamp::from_second(t).map_or(0, |ts| i64::from(zone.to_offset(ts).seconds()))
    };
    let first = parse_time_spec(spec, now, offset_at(parse_time_spec(spec, now, 0)?))?;
    parse_time_spec(spec, now, offset_at(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central European time, without a time zone database.
    fn berlin() -> TimeZone {
        TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").expect("a valid POSIX zone")
    }

    const NOW: i64 = 1_796_000_000; // 2026-11-29

    #[test]
    fn dates_without_a_zone_are_local_with_the_offset_of_their_day() {
        // Midnight in winter is 23:00 UTC the day before; in summer 22:00.
        assert_eq!(
            parse_in("2026-01-15", NOW, &berlin()).unwrap(),
            1_768_431_600
        );
        assert_eq!(
            parse_in("2026-07-15", NOW, &berlin()).unwrap(),
            1_784_066_400
        );
        assert_eq!(
            parse_in("2026-07-15T12:00:00", NOW, &berlin()).unwrap(),
            1_784_109_600
        );
    }

    #[test]
    fn zones_relative_times_and_epoch_seconds_ignore_the_local_zone() {
        assert_eq!(
            parse_in("2026-07-15T12:00:00Z", NOW, &berlin()).unwrap(),
            1_784_116_800
        );
        assert_eq!(
            parse_in("2026-07-15T12:00:00+02:00", NOW, &berlin()).unwrap(),
            1_784_109_600
        );
        assert_eq!(parse_in("3D", NOW, &berlin()).unwrap(), NOW - 3 * 86_400);
        assert_eq!(
            parse_in("1784116800", NOW, &berlin()).unwrap(),
            1_784_116_800
        );
    }

    #[test]
    fn in_utc_nothing_moves() {
        assert_eq!(
            parse_in("2026-07-15", NOW, &TimeZone::UTC).unwrap(),
            1_784_073_600
        );
    }
}
