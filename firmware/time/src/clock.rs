//! Applying the time: the system clock (`clock_settime`) and the hardware
//! RTC (`RTC_SET_TIME`). Both need `CAP_SYS_TIME`; the conversion to the
//! RTC's broken-down UTC is pure and tested, the two calls are not.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use rustix::time::{ClockId, Timespec, clock_settime};

use crate::packet::unix_nanos;

/// Sets `CLOCK_REALTIME` to `t`. Needs `CAP_SYS_TIME`.
pub fn set_system_clock(t: SystemTime) -> io::Result<()> {
    let nanos = unix_nanos(t);
    let tv_sec = i64::try_from(nanos.div_euclid(1_000_000_000)).map_err(|_| out_of_range())?;
    let tv_nsec = i64::try_from(nanos.rem_euclid(1_000_000_000)).map_err(|_| out_of_range())?;
    clock_settime(ClockId::Realtime, Timespec { tv_sec, tv_nsec }).map_err(io::Error::from)
}

/// Writes `t` (whole seconds, UTC) to the RTC device `dev`, normally
/// `/dev/rtc0` as named by `coffer-hal`. Needs `CAP_SYS_TIME`.
pub fn write_rtc(dev: &Path, t: SystemTime) -> io::Result<()> {
    let tm = rtc_time(t)?;
    // RTC devices take the ioctl on a read-only descriptor (as hwclock does).
    let file = File::open(dev)?;
    set_rtc_time(&file, tm)
}

/// `struct rtc_time` from `<linux/rtc.h>`: nine `int`s, like `struct tm`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RtcTime {
    tm_sec: i32,
    tm_min: i32,
    tm_hour: i32,
    tm_mday: i32,
    /// 0 = January.
    tm_mon: i32,
    /// Years since 1900.
    tm_year: i32,
    /// 0 = Sunday.
    tm_wday: i32,
    /// 0 = 1 January.
    tm_yday: i32,
    tm_isdst: i32,
}

/// `_IOW('p', 0x0a, struct rtc_time)`.
const RTC_SET_TIME: rustix::ioctl::Opcode = rustix::ioctl::opcode::write::<RtcTime>(b'p', 0x0a);

#[allow(unsafe_code)]
fn set_rtc_time(file: &File, tm: RtcTime) -> io::Result<()> {
    // SAFETY: RTC_SET_TIME is `_IOW('p', 0x0a, struct rtc_time)`: the kernel
    // reads one `struct rtc_time`, which `RtcTime` mirrors field for field
    // (`#[repr(C)]`, nine `i32`s), from the pointer the Setter passes, and
    // writes nothing back. `file` is open for the whole call.
    unsafe {
        let ioctl = rustix::ioctl::Setter::<RTC_SET_TIME, RtcTime>::new(tm);
        rustix::ioctl::ioctl(file, ioctl)
    }
    .map_err(io::Error::from)
}

/// Broken-down UTC for the RTC; RTCs hold whole seconds from 1970 on.
fn rtc_time(t: SystemTime) -> io::Result<RtcTime> {
    let secs =
        i64::try_from(unix_nanos(t).div_euclid(1_000_000_000)).map_err(|_| out_of_range())?;
    if secs < 0 {
        return Err(out_of_range());
    }
    let (year, month, day, hour, minute, second) = coffer_duplicity::civil_from_unix(secs);
    let start_of_year = coffer_duplicity::unix_from_civil(year, 1, 1, 0, 0, 0).ok_or_else(out_of_range)?;
    let int = |v: i64| i32::try_from(v).map_err(|_| out_of_range());
    Ok(RtcTime {
        tm_sec: int(second)?,
        tm_min: int(minute)?,
        tm_hour: int(hour)?,
        tm_mday: int(day)?,
        tm_mon: int(month - 1)?,
        tm_year: int(year - 1900)?,
        // 1970-01-01 was a Thursday.
        tm_wday: int((secs.div_euclid(86_400) + 4).rem_euclid(7))?,
        tm_yday: int((secs - start_of_year).div_euclid(86_400))?,
        tm_isdst: 0,
    })
}

fn out_of_range() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "time out of range for the clock",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn tm(t: u64) -> RtcTime {
        rtc_time(UNIX_EPOCH + Duration::from_secs(t)).unwrap()
    }

    #[test]
    fn broken_down_utc() {
        let t = tm(0);
        assert_eq!(
            (
                t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_wday, t.tm_yday
            ),
            (70, 0, 1, 0, 4, 0)
        );
        // 2024-02-29T23:59:59Z, a Thursday, day 59 of a leap year.
        let t = tm(1_709_251_199);
        assert_eq!(
            (
                t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec
            ),
            (124, 1, 29, 23, 59, 59)
        );
        assert_eq!((t.tm_wday, t.tm_yday), (4, 59));
        // 2036-02-07T06:28:16Z (NTP era 1 begins), a Thursday.
        let t = tm(2_085_978_496);
        assert_eq!(
            (
                t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, t.tm_wday
            ),
            (136, 1, 7, 6, 28, 16, 4)
        );
        // 2100-12-31 (not a leap year): day 364.
        assert_eq!(tm(4_133_980_800 - 86_400).tm_yday, 364);
    }

    #[test]
    fn before_1970_is_refused() {
        assert!(rtc_time(UNIX_EPOCH - Duration::from_secs(1)).is_err());
    }

    #[test]
    fn opcode_matches_the_kernel_header() {
        // RTC_SET_TIME on x86_64, from <linux/rtc.h>.
        assert_eq!(RTC_SET_TIME, 0x4024_700a);
    }
}
