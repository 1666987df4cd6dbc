//! SNTPv4 packets (RFC 4330, RFC 5905 §7.3) as data: the client request,
//! the server reply and its validation, and the offset/delay arithmetic.
//! Pure: no socket, no clock; the caller passes every time in.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Length of an NTP header without extension fields or MAC.
pub const PACKET_LEN: usize = 48;

/// Seconds from 1900-01-01 (the NTP epoch) to 1970-01-01 (the Unix epoch).
const NTP_TO_UNIX_SECS: i128 = 2_208_988_800;
const NANOS_PER_SEC: i128 = 1_000_000_000;
/// An NTP era: the 32-bit seconds field wraps every 2^32 s (136 years);
/// era 1 starts on 2036-02-07 06:28:16 UTC.
const ERA_NANOS: i128 = (1 << 32) * NANOS_PER_SEC;

/// Era pivot floor, seconds since the Unix epoch: 2025-01-01T00:00:00Z. A
/// reply's timestamps are read in the era that puts them closest to
/// `max(our clock, this floor)`, so a box whose RTC lost power (and boots in
/// 1970) still reads the right era until 68 years after the floor (2093),
/// and a correct clock reads it for ever.
pub const ERA_PIVOT_FLOOR_UNIX: u64 = 1_735_689_600;

/// [`ERA_PIVOT_FLOOR_UNIX`] as a `SystemTime`.
pub fn era_pivot_floor() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(ERA_PIVOT_FLOOR_UNIX)
}

const MODE_CLIENT: u8 = 3;
const MODE_SERVER: u8 = 4;
const MODE_BROADCAST: u8 = 5;
const VERSION: u8 = 4;

/// A 64-bit NTP timestamp: seconds since 1900 modulo 2^32 (the era is not
/// on the wire) in the high half, binary fraction of a second in the low.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NtpTimestamp(u64);

impl NtpTimestamp {
    /// The "no time" value (RFC 5905: zero means unknown or not sent).
    pub const ZERO: NtpTimestamp = NtpTimestamp(0);

    /// The timestamp as its 64 wire bits.
    pub const fn from_bits(bits: u64) -> Self {
        NtpTimestamp(bits)
    }

    /// The 64 wire bits.
    pub const fn to_bits(self) -> u64 {
        self.0
    }

    /// Encodes `t`, rounded to the nearest 2^-32 s; the era is dropped.
    pub fn from_system_time(t: SystemTime) -> Self {
        let since_1900 = unix_nanos(t) + NTP_TO_UNIX_SECS * NANOS_PER_SEC;
        let secs = since_1900.div_euclid(NANOS_PER_SEC);
        let sub = since_1900.rem_euclid(NANOS_PER_SEC);
        // Round to nearest: the fraction has 4.3 steps per nanosecond, so
        // decoding gives back the exact nanosecond.
        let fraction = ((sub << 32) + NANOS_PER_SEC / 2) / NANOS_PER_SEC;
        let bits = ((secs << 32) + fraction).rem_euclid(1 << 64);
        // `rem_euclid(2^64)` leaves a value in 0..2^64, so it fits.
        NtpTimestamp(u64::try_from(bits).unwrap_or(0))
    }

    /// Decodes in the era that puts the result closest to `pivot` (so any
    /// time within 68 years of the pivot comes back right, across the 2036
    /// roll-over). `None` only if the result is beyond what `SystemTime`
    /// holds.
    pub fn to_system_time(self, pivot: SystemTime) -> Option<SystemTime> {
        system_time_from_unix_nanos(self.unix_nanos_near(unix_nanos(pivot)))
    }

    /// Nanoseconds since the Unix epoch, era chosen closest to `pivot_unix`.
    fn unix_nanos_near(self, pivot_unix: i128) -> i128 {
        let secs = i128::from(self.0 >> 32);
        let fraction = i128::from(self.0 & 0xffff_ffff);
        let in_era = secs * NANOS_PER_SEC + ((fraction * NANOS_PER_SEC + (1 << 31)) >> 32);
        let pivot_since_1900 = pivot_unix + NTP_TO_UNIX_SECS * NANOS_PER_SEC;
        let era = (pivot_since_1900 - in_era + ERA_NANOS / 2).div_euclid(ERA_NANOS);
        in_era + era * ERA_NANOS - NTP_TO_UNIX_SECS * NANOS_PER_SEC
    }
}

/// Leap indicator (the two top bits of the first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leap {
    /// No leap second pending.
    None,
    /// The last minute of the day has 61 seconds.
    Insert,
    /// The last minute of the day has 59 seconds.
    Delete,
    /// Alarm: the server's clock is not synchronised.
    Unsynchronized,
}

/// A server reply that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Leap indicator (never [`Leap::Unsynchronized`] once validated).
    pub leap: Leap,
    /// NTP version of the reply (3 or 4).
    pub version: u8,
    /// 4 (server) or 5 (broadcast).
    pub mode: u8,
    /// 1 (primary reference) to 15.
    pub stratum: u8,
    /// Log2 of the poll interval the server suggests, in seconds.
    pub poll: i8,
    /// Log2 of the server clock's precision, in seconds.
    pub precision: i8,
    /// Round trip to the reference clock, NTP short format (16.16 s).
    pub root_delay: u32,
    /// Dispersion to the reference clock, NTP short format (16.16 s).
    pub root_dispersion: u32,
    /// Reference identifier: the source for stratum 1, an address otherwise.
    pub reference_id: [u8; 4],
    /// When the server's clock was last set.
    pub reference: NtpTimestamp,
    /// Our transmit timestamp, echoed (T1 on the wire).
    pub origin: NtpTimestamp,
    /// When the server received the request (T2).
    pub receive: NtpTimestamp,
    /// When the server sent the reply (T3).
    pub transmit: NtpTimestamp,
}

/// Why a reply was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// Fewer than 48 bytes.
    #[error("SNTP reply is {len} bytes, an NTP header needs 48: not an NTP server")]
    TooShort {
        /// Bytes received.
        len: usize,
    },
    /// Not a server or broadcast packet.
    #[error(
        "SNTP reply has mode {0}, expected 4 (server) or 5 (broadcast): not an NTP server reply"
    )]
    Mode(u8),
    /// Not NTP version 3 or 4.
    #[error("SNTP reply has version {0}, expected 3 or 4: use an NTPv4 server")]
    Version(u8),
    /// The origin timestamp is not the transmit timestamp we sent: a stale
    /// reply to an earlier request, or a forged one.
    #[error(
        "SNTP reply does not echo our request (origin timestamp mismatch): stale or forged, ignored"
    )]
    OriginMismatch,
    /// Stratum 0: the server refuses service ("kiss-o'-death", RFC 4330 §8).
    #[error("time server sent kiss-o'-death {code:?}: {}", kiss_advice(.code))]
    KissOfDeath {
        /// The four-letter code from the reference identifier (RATE, DENY, RSTR, …).
        code: String,
    },
    /// Leap indicator 3: the server itself is not synchronised.
    #[error(
        "time server says its clock is not synchronised (leap indicator 3): use another server"
    )]
    Unsynchronized,
    /// Stratum 16 or more: unsynchronised or reserved.
    #[error("time server has stratum {0} (unsynchronised): use another server")]
    Stratum(u8),
    /// The server did not fill in its transmit timestamp.
    #[error("SNTP reply has no transmit timestamp: the server is broken, use another")]
    ZeroTransmit,
    /// The timestamps put the server's clock beyond what can be represented.
    #[error("SNTP reply timestamps are out of range for this system")]
    OutOfRange,
}

fn kiss_advice(code: &str) -> &'static str {
    match code {
        "RATE" => "we asked too often; wait before asking this server again",
        "DENY" | "RSTR" => "this server refuses us; remove it from the configuration",
        _ => "the server refuses service for now; try another",
    }
}

/// The 48-byte client request (LI 0, version 4, mode 3) carrying `transmit`
/// as its transmit timestamp; every other field is zero (RFC 4330 §5).
pub fn request(transmit: NtpTimestamp) -> [u8; PACKET_LEN] {
    let mut packet = [0u8; PACKET_LEN];
    packet[0] = (VERSION << 3) | MODE_CLIENT;
    packet[40..48].copy_from_slice(&transmit.to_bits().to_be_bytes());
    packet
}

/// Parses and validates a reply to the request that carried `sent`.
/// Extension fields and a MAC after the header are ignored.
pub fn parse_reply(bytes: &[u8], sent: NtpTimestamp) -> Result<Reply, ReplyError> {
    let header: &[u8; PACKET_LEN] = bytes
        .get(..PACKET_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(ReplyError::TooShort { len: bytes.len() })?;
    let u32_at =
        |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let ts_at = |i: usize| NtpTimestamp((u64::from(u32_at(i)) << 32) | u64::from(u32_at(i + 4)));

    let leap = match header[0] >> 6 {
        0 => Leap::None,
        1 => Leap::Insert,
        2 => Leap::Delete,
        _ => Leap::Unsynchronized,
    };
    let version = (header[0] >> 3) & 0b111;
    let mode = header[0] & 0b111;
    let stratum = header[1];
    let reference_id = [header[12], header[13], header[14], header[15]];
    let reply = Reply {
        leap,
        version,
        mode,
        stratum,
        poll: i8::from_be_bytes([header[2]]),
        precision: i8::from_be_bytes([header[3]]),
        root_delay: u32_at(4),
        root_dispersion: u32_at(8),
        reference_id,
        reference: ts_at(16),
        origin: ts_at(24),
        receive: ts_at(32),
        transmit: ts_at(40),
    };

    if mode != MODE_SERVER && mode != MODE_BROADCAST {
        return Err(ReplyError::Mode(mode));
    }
    if version != 3 && version != 4 {
        return Err(ReplyError::Version(version));
    }
    // Before anything the server claims: a reply that does not echo our
    // request says nothing about us (not even a kiss-o'-death).
    if reply.origin != sent {
        return Err(ReplyError::OriginMismatch);
    }
    if stratum == 0 {
        let code = reference_id
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() {
                    char::from(b)
                } else {
                    '?'
                }
            })
            .collect();
        return Err(ReplyError::KissOfDeath { code });
    }
    if leap == Leap::Unsynchronized {
        return Err(ReplyError::Unsynchronized);
    }
    if stratum > 15 {
        return Err(ReplyError::Stratum(stratum));
    }
    if reply.transmit == NtpTimestamp::ZERO {
        return Err(ReplyError::ZeroTransmit);
    }
    Ok(reply)
}

/// One measurement of the server's clock against ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Server clock minus our clock, nanoseconds: add it to our clock.
    pub offset_ns: i64,
    /// Round-trip time of the exchange minus the server's processing time
    /// (zero if a broken server made it negative).
    pub delay: Duration,
    /// The server's stratum.
    pub stratum: u8,
    /// The server's leap indicator.
    pub leap: Leap,
    /// Our clock when the reply arrived (T4).
    pub received_at: SystemTime,
}

impl Sample {
    /// Computes offset ((T2−T1)+(T3−T4))/2 and delay (T4−T1)−(T3−T2) from
    /// our send time `t1`, the reply, and our receive time `t4`. The reply's
    /// timestamps are read in the era closest to `max(t1, floor)` (see
    /// [`ERA_PIVOT_FLOOR_UNIX`]).
    pub fn from_exchange(
        t1: SystemTime,
        reply: &Reply,
        t4: SystemTime,
        floor: SystemTime,
    ) -> Result<Sample, ReplyError> {
        let (t1n, t4n) = (unix_nanos(t1), unix_nanos(t4));
        let pivot = t1n.max(unix_nanos(floor));
        let t2n = reply.receive.unix_nanos_near(pivot);
        let t3n = reply.transmit.unix_nanos_near(pivot);
        let (offset, delay) = offset_and_delay(t1n, t2n, t3n, t4n);
        let offset_ns = i64::try_from(offset).map_err(|_| ReplyError::OutOfRange)?;
        let delay_ns = u64::try_from(delay.max(0)).map_err(|_| ReplyError::OutOfRange)?;
        Ok(Sample {
            offset_ns,
            delay: Duration::from_nanos(delay_ns),
            stratum: reply.stratum,
            leap: reply.leap,
            received_at: t4,
        })
    }

    /// The offset in whole milliseconds (rounded toward zero).
    pub fn offset_ms(&self) -> i64 {
        self.offset_ns / 1_000_000
    }

    /// `local` corrected by the offset: what the server's clock read then.
    /// `None` if that is beyond what `SystemTime` holds.
    pub fn corrected(&self, local: SystemTime) -> Option<SystemTime> {
        system_time_from_unix_nanos(unix_nanos(local) + i128::from(self.offset_ns))
    }

    /// The server's time at the moment the reply arrived.
    pub fn server_time(&self) -> Option<SystemTime> {
        self.corrected(self.received_at)
    }
}

/// ((t2−t1)+(t3−t4))/2 and (t4−t1)−(t3−t2), all in nanoseconds.
fn offset_and_delay(t1: i128, t2: i128, t3: i128, t4: i128) -> (i128, i128) {
    (((t2 - t1) + (t3 - t4)) / 2, (t4 - t1) - (t3 - t2))
}

/// Signed nanoseconds since the Unix epoch (negative before 1970).
pub(crate) fn unix_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => -i128::try_from(before.duration().as_nanos()).unwrap_or(i128::MAX),
    }
}

pub(crate) fn system_time_from_unix_nanos(nanos: i128) -> Option<SystemTime> {
    let magnitude = u64::try_from(nanos.unsigned_abs() / 1_000_000_000).ok()?;
    let sub = u32::try_from(nanos.unsigned_abs() % 1_000_000_000).ok()?;
    let d = Duration::new(magnitude, sub);
    if nanos >= 0 {
        UNIX_EPOCH.checked_add(d)
    } else {
        UNIX_EPOCH.checked_sub(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(unix_secs: i64, nanos: u32) -> SystemTime {
        system_time_from_unix_nanos(i128::from(unix_secs) * NANOS_PER_SEC + i128::from(nanos))
            .unwrap()
    }

    const SENT: NtpTimestamp = NtpTimestamp(0xE8A1_2B3C_1234_5678);

    /// A valid server reply with the given first byte and stratum, echoing `SENT`.
    fn reply_bytes(first: u8, stratum: u8, transmit: u64) -> Vec<u8> {
        let mut p = vec![0u8; PACKET_LEN];
        p[0] = first;
        p[1] = stratum;
        p[2] = 6;
        p[3] = 0xEC; // -20
        p[12..16].copy_from_slice(b"GPS\0");
        p[24..32].copy_from_slice(&SENT.to_bits().to_be_bytes());
        p[32..40].copy_from_slice(&transmit.to_be_bytes());
        p[40..48].copy_from_slice(&transmit.to_be_bytes());
        p
    }

    #[test]
    fn request_is_version_4_client_with_our_timestamp() {
        let p = request(SENT);
        assert_eq!(p[0], 0x23);
        assert!(p[1..40].iter().all(|&b| b == 0));
        assert_eq!(&p[40..], &SENT.to_bits().to_be_bytes());
    }

    #[test]
    fn reply_validation_table() {
        let t = 0xE8A1_2B3D_0000_0000_u64;
        let good = 0b00_100_100;
        let cases: Vec<(&str, Vec<u8>, Result<(), ReplyError>)> = vec![
            ("v4 server", reply_bytes(good, 1, t), Ok(())),
            ("v3 server", reply_bytes(0b00_011_100, 2, t), Ok(())),
            ("broadcast mode", reply_bytes(0b00_100_101, 2, t), Ok(())),
            ("leap insert", reply_bytes(0b01_100_100, 2, t), Ok(())),
            ("stratum 15", reply_bytes(good, 15, t), Ok(())),
            (
                "with extension bytes",
                [reply_bytes(good, 2, t), vec![0; 20]].concat(),
                Ok(()),
            ),
            ("empty", vec![], Err(ReplyError::TooShort { len: 0 })),
            (
                "47 bytes",
                reply_bytes(good, 1, t)[..47].to_vec(),
                Err(ReplyError::TooShort { len: 47 }),
            ),
            (
                "client mode",
                reply_bytes(0b00_100_011, 1, t),
                Err(ReplyError::Mode(3)),
            ),
            (
                "symmetric mode",
                reply_bytes(0b00_100_001, 1, t),
                Err(ReplyError::Mode(1)),
            ),
            (
                "version 2",
                reply_bytes(0b00_010_100, 1, t),
                Err(ReplyError::Version(2)),
            ),
            (
                "version 5",
                reply_bytes(0b00_101_100, 1, t),
                Err(ReplyError::Version(5)),
            ),
            (
                "leap alarm",
                reply_bytes(0b11_100_100, 1, t),
                Err(ReplyError::Unsynchronized),
            ),
            (
                "stratum 16",
                reply_bytes(good, 16, t),
                Err(ReplyError::Stratum(16)),
            ),
            (
                "stratum 255",
                reply_bytes(good, 255, t),
                Err(ReplyError::Stratum(255)),
            ),
            (
                "zero transmit",
                reply_bytes(good, 1, 0),
                Err(ReplyError::ZeroTransmit),
            ),
            (
                "kiss-o'-death",
                {
                    let mut p = reply_bytes(0b11_100_100, 0, t);
                    p[12..16].copy_from_slice(b"RATE");
                    p
                },
                Err(ReplyError::KissOfDeath {
                    code: "RATE".into(),
                }),
            ),
            (
                "origin mismatch",
                {
                    let mut p = reply_bytes(good, 1, t);
                    p[31] ^= 1;
                    p
                },
                Err(ReplyError::OriginMismatch),
            ),
            (
                "forged kiss is a mismatch first",
                {
                    let mut p = reply_bytes(good, 0, t);
                    p[24] ^= 1;
                    p
                },
                Err(ReplyError::OriginMismatch),
            ),
        ];
        for (name, bytes, expect) in cases {
            let got = parse_reply(&bytes, SENT).map(|_| ());
            assert_eq!(got, expect, "{name}");
        }
    }

    #[test]
    fn reply_fields_are_decoded() {
        let r = parse_reply(&reply_bytes(0b01_100_100, 2, 0xE8A1_2B3D_8000_0000), SENT).unwrap();
        assert_eq!(r.leap, Leap::Insert);
        assert_eq!(
            (r.version, r.mode, r.stratum, r.poll, r.precision),
            (4, 4, 2, 6, -20)
        );
        assert_eq!(&r.reference_id, b"GPS\0");
        assert_eq!(r.origin, SENT);
        assert_eq!(r.transmit.to_bits(), 0xE8A1_2B3D_8000_0000);
    }

    #[test]
    fn kiss_codes_advise() {
        let e = ReplyError::KissOfDeath {
            code: "DENY".into(),
        };
        assert!(e.to_string().contains("remove it"), "{e}");
    }

    #[test]
    fn known_timestamps() {
        // 1970-01-01 is 2208988800 s after the NTP epoch.
        assert_eq!(
            NtpTimestamp::from_system_time(UNIX_EPOCH).to_bits(),
            2_208_988_800u64 << 32
        );
        // Half a second is fraction 2^31.
        assert_eq!(
            NtpTimestamp::from_system_time(at(0, 500_000_000)).to_bits() & 0xffff_ffff,
            1 << 31
        );
        // Era 1 begins at 2036-02-07T06:28:16Z = unix 2085978496: wire seconds 0.
        assert_eq!(
            NtpTimestamp::from_system_time(at(2_085_978_496, 0)).to_bits(),
            0
        );
        assert_eq!(
            NtpTimestamp::from_system_time(at(2_085_978_497, 0)).to_bits(),
            1 << 32
        );
    }

    #[test]
    fn era_chosen_closest_to_pivot() {
        let wire_zero = NtpTimestamp::ZERO;
        // Near 2036 the zero timestamp is the roll-over moment, not 1900.
        assert_eq!(
            wire_zero.to_system_time(at(2_085_000_000, 0)),
            Some(at(2_085_978_496, 0))
        );
        // Near 1900 it is 1900.
        assert_eq!(
            wire_zero.to_system_time(at(-2_208_000_000, 0)),
            Some(at(-2_208_988_800, 0))
        );
        // Just before the roll-over, read from just after it.
        let before = NtpTimestamp::from_system_time(at(2_085_978_495, 0));
        assert_eq!(before.to_bits() >> 32, 0xffff_ffff);
        assert_eq!(
            before.to_system_time(at(2_085_978_500, 0)),
            Some(at(2_085_978_495, 0))
        );
    }

    fn server_reply(t2: SystemTime, t3: SystemTime) -> Reply {
        Reply {
            leap: Leap::None,
            version: 4,
            mode: 4,
            stratum: 1,
            poll: 0,
            precision: 0,
            root_delay: 0,
            root_dispersion: 0,
            reference_id: *b"GPS\0",
            reference: NtpTimestamp::ZERO,
            origin: SENT,
            receive: NtpTimestamp::from_system_time(t2),
            transmit: NtpTimestamp::from_system_time(t3),
        }
    }

    #[test]
    fn offset_and_delay_arithmetic() {
        // (t1, t2, t3, t4) in ms since some base → (offset ms, delay ms)
        let cases: [(i64, i64, i64, i64, i64, i64); 5] = [
            (0, 0, 0, 0, 0, 0),
            (0, 5, 5, 10, 0, 10),                // symmetric path, clocks agree
            (0, 1005, 1007, 12, 1000, 10),       // server 1 s ahead
            (5000, 1005, 1007, 5012, -4000, 10), // server 4 s behind
            (0, 30, 30, 40, 10, 40),             // asymmetric path shows as offset
        ];
        let base = 1_800_000_000;
        for (t1, t2, t3, t4, offset, delay) in cases {
            let ms = |v: i64| {
                at(
                    base + v.div_euclid(1000),
                    u32::try_from(v.rem_euclid(1000) * 1_000_000).unwrap(),
                )
            };
            let s = Sample::from_exchange(
                ms(t1),
                &server_reply(ms(t2), ms(t3)),
                ms(t4),
                era_pivot_floor(),
            )
            .unwrap();
            assert_eq!(
                (s.offset_ms(), s.delay.as_millis()),
                (offset, u128::try_from(delay).unwrap()),
                "{t1} {t2} {t3} {t4}"
            );
            assert_eq!(s.server_time(), Some(ms(t4 + offset)));
        }
        // A server that spends longer than the round trip: delay clamps to 0.
        let s = Sample::from_exchange(
            at(base, 0),
            &server_reply(at(base, 0), at(base + 1, 0)),
            at(base, 1000),
            era_pivot_floor(),
        )
        .unwrap();
        assert_eq!(s.delay, Duration::ZERO);
    }

    #[test]
    fn rtc_lost_power_still_gets_the_right_era() {
        // Our clock says 1970, the server says 2040 (past the 2036 roll-over).
        let real = at(2_208_988_800, 0);
        let ours = UNIX_EPOCH;
        let s = Sample::from_exchange(ours, &server_reply(real, real), ours, era_pivot_floor())
            .unwrap();
        assert_eq!(s.server_time(), Some(real));
        assert_eq!(s.offset_ns, 2_208_988_800 * 1_000_000_000);
    }

    proptest! {
        #[test]
        fn timestamp_round_trips_within_68_years_of_pivot(
            secs in -2_208_988_800i64..6_000_000_000,
            nanos in 0u32..1_000_000_000,
            skew in -2_000_000_000i64..2_000_000_000,
        ) {
            let t = at(secs, nanos);
            let pivot = at(secs + skew, 0);
            prop_assert_eq!(NtpTimestamp::from_system_time(t).to_system_time(pivot), Some(t));
        }

        #[test]
        fn offset_is_exact_across_eras(
            t1 in 1_700_000_000i64..3_000_000_000,
            offset in -1_000_000_000i64..1_000_000_000,
            delay_ms in 0i64..2000,
        ) {
            // Symmetric delay: the measured offset is the true one, whichever
            // side of 2036 each clock is on.
            let half = delay_ms * 500_000;
            let t1n = i128::from(t1) * NANOS_PER_SEC;
            let t2n = t1n + i128::from(offset) * NANOS_PER_SEC + i128::from(half);
            let t4n = t1n + 2 * i128::from(half);
            let st = |n: i128| system_time_from_unix_nanos(n).unwrap();
            let s = Sample::from_exchange(st(t1n), &server_reply(st(t2n), st(t2n)), st(t4n), era_pivot_floor()).unwrap();
            prop_assert_eq!(i128::from(s.offset_ns), i128::from(offset) * NANOS_PER_SEC);
            prop_assert_eq!(s.delay.as_millis(), u128::try_from(delay_ms).unwrap());
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100), sent in any::<u64>()) {
            let _ = parse_reply(&bytes, NtpTimestamp::from_bits(sent));
        }
    }
}
