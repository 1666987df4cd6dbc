//! The outer frame of an encrypted message, checked before sequoia sees a
//! byte: key packets (PKESK, SKESK, marker) and then the encrypted data
//! packet (SEIPD), as GnuPG writes every duplicity file.
//!
//! Why: sequoia-openpgp 2.4.2 panics (an `unwrap` in
//! `PacketParser::decrypt`) when a SEIPD v1 body is shorter than one cipher
//! block + 2 + the 22-byte MDC, once a session key opens it; a server can
//! send exactly that, and the client's release build aborts on a panic.
//! Refusing such a frame here, and nested encryption in the decryptor
//! (the only other way to reach that code), keeps hostile input from
//! crashing the client. The same check refuses anything that is not an
//! encrypted message (plain, signed only, compressed, armored) early.
//! Pure: bytes in, verdict out.

/// The shortest SEIPD v1 body sequoia decrypts without panicking: the
/// largest block (16) + 2 check bytes + the MDC packet (22).
pub(crate) const MIN_SEIPD_BODY: u64 = 16 + 2 + 22;

/// At most this much of the message is held to check the frame: the key
/// packets for many recipients fit many times over.
pub(crate) const MAX_FRAME: usize = 1 << 20;

/// What the bytes seen so far say.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// Well-formed so far; more bytes are needed to decide.
    NeedMore,
    /// Key packets, then a SEIPD long enough: hand it to sequoia.
    Good,
    /// Well-formed OpenPGP, but not an encrypted message.
    NotEncrypted,
    /// Not a message this client reads.
    Bad(String),
}

/// A packet header: tag, and how its body is framed.
#[derive(Clone, Copy)]
enum Length {
    Definite(u64),
    /// A partial body chunk of this many bytes; another header follows it.
    Partial(u64),
    /// Old-format "to the end of the input".
    Indeterminate,
}

/// Parses a header at `at`: (tag, length, header size), or `None` when the
/// bytes end inside it. Errors name what is wrong.
fn header(buf: &[u8], at: usize) -> Result<Option<(u8, Length, usize)>, String> {
    let Some(&ctb) = buf.get(at) else {
        return Ok(None);
    };
    if ctb & 0x80 == 0 {
        return Err(format!("byte {at} is not a packet header"));
    }
    let octets = |n: usize| -> Option<u64> {
        let b = buf.get(at + 1..at + 1 + n)?;
        Some(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    };
    if ctb & 0x40 == 0 {
        let tag = (ctb >> 2) & 0x0f;
        let (n, length) = match ctb & 3 {
            0 => (1, octets(1).map(Length::Definite)),
            1 => (2, octets(2).map(Length::Definite)),
            2 => (4, octets(4).map(Length::Definite)),
            _ => (0, Some(Length::Indeterminate)),
        };
        return Ok(length.map(|l| (tag, l, 1 + n)));
    }
    let tag = ctb & 0x3f;
    let Some(first) = octets(1) else {
        return Ok(None);
    };
    Ok(match first {
        0..=191 => Some((tag, Length::Definite(first), 2)),
        192..=223 => {
            octets(2).map(|v| (tag, Length::Definite(((v >> 8) - 192) * 256 + (v & 0xff) + 192), 3))
        }
        255 => buf
            .get(at + 2..at + 6)
            .map(|b| b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
            .map(|v| (tag, Length::Definite(v), 6)),
        _ => Some((tag, Length::Partial(1 << (first & 0x1f)), 2)),
    })
}

/// Partial body chunk lengths after the first (no tag byte).
fn chunk_header(buf: &[u8], at: usize) -> Option<(Length, usize)> {
    let first = u64::from(*buf.get(at)?);
    match first {
        0..=191 => Some((Length::Definite(first), 1)),
        192..=223 => {
            let second = u64::from(*buf.get(at + 1)?);
            Some((Length::Definite((first - 192) * 256 + second + 192), 2))
        }
        255 => {
            let b = buf.get(at + 1..at + 5)?;
            Some((Length::Definite(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x))), 5))
        }
        _ => Some((Length::Partial(1 << (first & 0x1f)), 1)),
    }
}

/// Checks the frame of `buf`, the first bytes of a message; `eof` says the
/// message ends there.
pub(crate) fn check(buf: &[u8], eof: bool) -> Frame {
    let short = |what: &str| {
        if eof {
            Frame::Bad(format!("it ends inside {what}"))
        } else {
            Frame::NeedMore
        }
    };
    if buf.first().is_some_and(|b| *b == b'-') {
        return Frame::Bad("it is ASCII-armored; duplicity's files are binary".into());
    }
    let mut at = 0usize;
    loop {
        if at >= buf.len() {
            if eof && at == 0 {
                return Frame::Bad("it is empty".into());
            }
            return short("the key packets (no encrypted data follows them)");
        }
        let (tag, length, size) = match header(buf, at) {
            Ok(Some(h)) => h,
            Ok(None) => return short("a packet header"),
            Err(e) => return Frame::Bad(e),
        };
        match (tag, length) {
            // PKESK, SKESK, marker.
            (1 | 3 | 10, Length::Definite(len)) => {
                at = match usize::try_from(len).ok().and_then(|l| (at + size).checked_add(l)) {
                    Some(next) if next <= MAX_FRAME => next,
                    _ => return Frame::Bad(format!("a key packet of {len} bytes at byte {at}")),
                };
            }
            (1 | 3 | 10, _) => {
                return Frame::Bad(format!("a key packet without a definite length at byte {at}"));
            }
            (18, length) => return seipd_body(buf, at + size, length, eof),
            // Literal, compressed, signature, one-pass signature: plain
            // or signed only. Anything else (old SED, AEAD, keys) is not
            // a message GnuPG 2.2 writes.
            (2 | 4 | 8 | 11, _) => return Frame::NotEncrypted,
            (other, _) => {
                return Frame::Bad(format!("packet type {other} at byte {at} where key packets or encrypted data belong"));
            }
        }
    }
}

/// Are at least [`MIN_SEIPD_BODY`] bytes of the SEIPD body starting at
/// `at` here? Counted on the bytes present, not on the lengths claimed: a
/// message cut short inside them would reach sequoia's panic as well.
fn seipd_body(buf: &[u8], mut at: usize, mut length: Length, eof: bool) -> Frame {
    let too_short = |n: u64| Frame::Bad(format!("its encrypted data is {n} bytes, too short to hold anything"));
    let mut seen = 0u64;
    loop {
        let available = buf.len().saturating_sub(at) as u64;
        let (chunk, last) = match length {
            Length::Definite(len) if seen + len < MIN_SEIPD_BODY => return too_short(seen + len),
            Length::Definite(len) => (len, true),
            Length::Partial(chunk) => (chunk, false),
            Length::Indeterminate => (u64::MAX, true),
        };
        if seen + available.min(chunk) >= MIN_SEIPD_BODY {
            return Frame::Good;
        }
        if available < chunk {
            return match (eof, length) {
                (true, Length::Indeterminate) => too_short(seen + available),
                (true, _) => Frame::Bad("it ends inside the encrypted data".into()),
                (false, _) => Frame::NeedMore,
            };
        }
        if last {
            return too_short(seen + chunk);
        }
        seen += chunk;
        // `chunk` < 40 here (else the body would be long enough).
        at += chunk as usize;
        match chunk_header(buf, at) {
            Some((next, size)) => {
                length = next;
                at += size;
            }
            None if eof => return Frame::Bad("it ends inside the encrypted data".into()),
            None => return Frame::NeedMore,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// New-format header with a one-octet length.
    fn packet(tag: u8, body_len: usize) -> Vec<u8> {
        let mut p = vec![0xc0 | tag, u8::try_from(body_len).expect("short")];
        p.resize(2 + body_len, 0xaa);
        p
    }

    #[test]
    fn frames() {
        let pkesk = packet(1, 94);
        let skesk = packet(3, 13);
        let good = [pkesk.clone(), packet(18, 40)].concat();
        let cases: Vec<(&str, Vec<u8>, bool, Frame)> = vec![
            ("pkesk + seipd", good.clone(), true, Frame::Good),
            ("two esks + seipd", [pkesk.clone(), skesk.clone(), packet(18, 100)].concat(), true, Frame::Good),
            ("seipd body not here yet", good[..good.len() - 1].to_vec(), false, Frame::NeedMore),
            ("seipd body cut short", good[..good.len() - 1].to_vec(), true, Frame::Bad("it ends inside the encrypted data".into())),
            ("40 bytes of a long body", [pkesk.clone(), vec![0xd2, 0xc0, 0x00], vec![0; 40]].concat(), false, Frame::Good),
            ("seipd body 39 bytes", [skesk.clone(), packet(18, 39)].concat(), true, Frame::Bad("its encrypted data is 39 bytes, too short to hold anything".into())),
            ("cut in a key packet", pkesk[..50].to_vec(), false, Frame::NeedMore),
            ("cut in a key packet, eof", pkesk[..50].to_vec(), true, Frame::Bad("it ends inside the key packets (no encrypted data follows them)".into())),
            ("cut in a header, eof", vec![0xc1, 0xff, 0], true, Frame::Bad("it ends inside a packet header".into())),
            ("key packets only", pkesk.clone(), true, Frame::Bad("it ends inside the key packets (no encrypted data follows them)".into())),
            ("empty", vec![], true, Frame::Bad("it is empty".into())),
            ("literal", packet(11, 10), true, Frame::NotEncrypted),
            ("compressed", packet(8, 10), true, Frame::NotEncrypted),
            ("armored", b"-----BEGIN PGP MESSAGE-----".to_vec(), false, Frame::Bad("it is ASCII-armored; duplicity's files are binary".into())),
            ("not openpgp", b"duplicity".to_vec(), false, Frame::Bad("byte 0 is not a packet header".into())),
            ("old SED", [skesk.clone(), packet(9, 60)].concat(), true, Frame::Bad("packet type 9 at byte 15 where key packets or encrypted data belong".into())),
            // Old format SEIPD (tag 18 cannot be old format; tag 1 can).
            ("old-format pkesk", [vec![0x84, 3, 1, 2, 3], packet(18, 50)].concat(), true, Frame::Good),
            ("partial chunks of 1 byte", [skesk.clone(), vec![0xd2, 0xe0, 0xaa, 0xe0, 0xaa, 5, 1, 2, 3, 4, 5]].concat(), true, Frame::Bad("its encrypted data is 7 bytes, too short to hold anything".into())),
            ("partial chunk of 512", [skesk.clone(), vec![0xd2, 0xe9], vec![0; 40]].concat(), false, Frame::Good),
            ("partial chunk of 512, cut", [skesk.clone(), vec![0xd2, 0xe9], vec![0; 39]].concat(), true, Frame::Bad("it ends inside the encrypted data".into())),
            ("partial chunks of 32 then 8", [skesk.clone(), vec![0xd2, 0xe5], vec![0; 32], vec![8], vec![0; 8]].concat(), true, Frame::Good),
            ("five-octet length 39", [skesk, vec![0xd2, 0xff, 0, 0, 0, 39]].concat(), false, Frame::Bad("its encrypted data is 39 bytes, too short to hold anything".into())),
        ];
        for (name, bytes, eof, want) in cases {
            assert_eq!(check(&bytes, eof), want, "{name}");
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_more_bytes_never_undo_a_verdict(bytes in proptest::collection::vec(any::<u8>(), 0..300), cut in any::<prop::sample::Index>()) {
            let at = cut.index(bytes.len() + 1);
            let early = check(&bytes[..at], false);
            let full = check(&bytes, true);
            if early != Frame::NeedMore {
                prop_assert_eq!(early, full);
            }
        }
    }
}
