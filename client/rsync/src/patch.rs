//! Patching: rebuilding a new file from a basis and a delta that may come
//! from a hostile server. Every command is checked before it acts: lengths
//! must be positive (as librsync requires), COPY must stay inside the basis,
//! and the output may not outgrow the caller's limit, so a few bytes of delta
//! can neither allocate nor loop without bound. Data moves through one
//! 64 KiB buffer whatever the lengths say.

use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};

use crate::DELTA_MAGIC;
use crate::error::PatchError;

/// Size of the buffer data is moved through.
const COPY_BUF: usize = 64 * 1024;

/// Limits on what a delta may make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchLimits {
    /// The longest output accepted. Repeated COPY commands of a few bytes
    /// each can ask for the whole basis again and again, so a delta's own
    /// length does not bound its output; the file's size recorded in the
    /// archive does.
    pub max_output: u64,
}

/// The delta, read through a buffer, with the offset of the next byte.
struct DeltaReader<D: Read> {
    inner: BufReader<D>,
    offset: u64,
}

impl<D: Read> DeltaReader<D> {
    fn read_exact(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), PatchError> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => return Err(PatchError::Truncated { offset: self.offset + got as u64, what }),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(PatchError::ReadDelta { offset: self.offset + got as u64, source }),
            }
        }
        self.offset += got as u64;
        Ok(())
    }

    /// A big-endian integer of `width` (1, 2, 4 or 8) bytes.
    fn read_int(&mut self, width: usize, what: &'static str) -> Result<u64, PatchError> {
        let mut bytes = [0u8; 8];
        self.read_exact(&mut bytes[8 - width..], what)?;
        Ok(u64::from_be_bytes(bytes))
    }
}

/// One decoded command.
enum Command {
    End,
    Literal(u64),
    Copy { pos: u64, len: u64 },
}

/// The widths librsync's command bytes give their parameters.
const WIDTHS: [usize; 4] = [1, 2, 4, 8];

fn read_command<D: Read>(delta: &mut DeltaReader<D>) -> Result<Command, PatchError> {
    let offset = delta.offset;
    let mut op = [0u8];
    delta.read_exact(&mut op, "the delta has no END command")?;
    let op = op[0];
    match op {
        0 => Ok(Command::End),
        1..=0x40 => Ok(Command::Literal(u64::from(op))),
        0x41..=0x44 => Ok(Command::Literal(delta.read_int(WIDTHS[usize::from(op - 0x41)], "inside a LITERAL length")?)),
        0x45..=0x54 => {
            let code = usize::from(op - 0x45);
            let pos = delta.read_int(WIDTHS[code / 4], "inside a COPY offset")?;
            let len = delta.read_int(WIDTHS[code % 4], "inside a COPY length")?;
            Ok(Command::Copy { pos, len })
        }
        _ => Err(PatchError::UnknownCommand { op, offset }),
    }
}

/// Applies `delta` to `basis`, writing the new file to `out`; returns the
/// new file's length. The delta is read through a buffer, so bytes after its
/// END command may have been consumed from `delta`.
pub fn apply_patch<B: Read + Seek, D: Read, W: Write>(
    mut basis: B,
    delta: D,
    mut out: W,
    limits: PatchLimits,
) -> Result<u64, PatchError> {
    let basis_len = basis.seek(SeekFrom::End(0)).map_err(|source| PatchError::ReadBasis { pos: 0, source })?;
    let mut delta = DeltaReader { inner: BufReader::with_capacity(COPY_BUF, delta), offset: 0 };
    let magic = delta.read_int(4, "inside the magic")? as u32;
    if magic != DELTA_MAGIC {
        return Err(PatchError::BadMagic { found: magic });
    }
    let mut buf = vec![0u8; COPY_BUF];
    let mut written = 0u64;
    loop {
        let offset = delta.offset;
        let command = read_command(&mut delta)?;
        let (name, len) = match command {
            Command::End => break,
            Command::Literal(len) => ("LITERAL", len),
            Command::Copy { len, .. } => ("COPY", len),
        };
        // librsync reads parameters as signed 64-bit numbers and refuses lengths <= 0.
        if len == 0 || len > i64::MAX as u64 {
            return Err(PatchError::BadLength { command: name, offset, len });
        }
        if written.checked_add(len).is_none_or(|total| total > limits.max_output) {
            return Err(PatchError::OutputLimit { offset, limit: limits.max_output });
        }
        match command {
            Command::Copy { pos, len } => {
                if pos.checked_add(len).is_none_or(|end| end > basis_len) {
                    return Err(PatchError::CopyOutOfRange { offset, pos, len, basis_len });
                }
                basis.seek(SeekFrom::Start(pos)).map_err(|source| PatchError::ReadBasis { pos, source })?;
                copy_from_basis(&mut basis, pos, len, &mut out, &mut buf)?;
            }
            _ => copy_literal(&mut delta, len, &mut out, &mut buf)?,
        }
        written += len;
    }
    out.flush().map_err(|source| PatchError::Write { source })?;
    Ok(written)
}

/// Moves `len` bytes at `pos` of the basis to `out`; a basis that ends early
/// (it shrank since its length was taken) is an error.
fn copy_from_basis<B: Read, W: Write>(
    basis: &mut B,
    mut pos: u64,
    len: u64,
    out: &mut W,
    buf: &mut [u8],
) -> Result<(), PatchError> {
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match basis.read(&mut buf[..want]) {
            Ok(0) => {
                let source = io::Error::new(io::ErrorKind::UnexpectedEof, "the basis ended early");
                return Err(PatchError::ReadBasis { pos, source });
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(PatchError::ReadBasis { pos, source }),
        };
        out.write_all(&buf[..n]).map_err(|source| PatchError::Write { source })?;
        pos += n as u64;
        left -= n as u64;
    }
    Ok(())
}

/// Moves a LITERAL's `len` bytes from the delta to `out`.
fn copy_literal<D: Read, W: Write>(
    delta: &mut DeltaReader<D>,
    len: u64,
    out: &mut W,
    buf: &mut [u8],
) -> Result<(), PatchError> {
    let mut left = len;
    while left > 0 {
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        delta.read_exact(&mut buf[..n], "inside LITERAL data")?;
        out.write_all(&buf[..n]).map_err(|source| PatchError::Write { source })?;
        left -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    const UNLIMITED: PatchLimits = PatchLimits { max_output: u64::MAX };

    fn patch(basis: &[u8], commands: &[u8], limits: PatchLimits) -> Result<Vec<u8>, PatchError> {
        let delta = [&DELTA_MAGIC.to_be_bytes()[..], commands].concat();
        let mut out = Vec::new();
        let len = apply_patch(Cursor::new(basis), &delta[..], &mut out, limits)?;
        assert_eq!(len, out.len() as u64);
        Ok(out)
    }

    #[test]
    fn every_command_form_is_applied() {
        let basis: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (vec![0], vec![]),
            (vec![2, b'h', b'i', 0], b"hi".to_vec()),
            ([vec![0x41, 65], vec![7; 65], vec![0]].concat(), vec![7; 65]),
            ([vec![0x42, 0, 2], vec![7; 2], vec![0]].concat(), vec![7; 2]),
            ([vec![0x43, 0, 0, 0, 1, 7], vec![0]].concat(), vec![7]),
            ([vec![0x44, 0, 0, 0, 0, 0, 0, 0, 1, 7], vec![0]].concat(), vec![7]),
            (vec![0x45, 3, 2, 0], vec![3, 4]),
            (vec![0x46, 3, 0, 2, 0], vec![3, 4]),
            (vec![0x49, 1, 1, 2, 0], vec![1, 2]),
            (vec![0x4d, 0, 1, 0, 0, 1, 0], basis[65_536..65_537].to_vec()),
            (vec![0x54, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0], vec![0]),
            (vec![0x47, 0, 0, 1, 0x11, 0x70, 0], basis.clone()),
        ];
        for (commands, want) in cases {
            assert_eq!(patch(&basis, &commands, UNLIMITED).expect("valid delta"), want, "{commands:02x?}");
        }
    }

    #[test]
    fn hostile_deltas_are_refused_with_the_spot() {
        let basis = b"0123456789";
        let check = |delta: &[u8], limits: PatchLimits, want: &str| {
            let mut out = Vec::new();
            let err = apply_patch(Cursor::new(&basis[..]), delta, &mut out, limits).expect_err("must be refused");
            assert_eq!(err.to_string(), want, "{delta:02x?}");
            assert!(out.len() <= 10, "no runaway output");
        };
        let d = |commands: &[u8]| [&DELTA_MAGIC.to_be_bytes()[..], commands].concat();
        check(b"", UNLIMITED, "delta truncated at offset 0: inside the magic");
        check(
            &[0x72, 0x73, 0x01, 0x36],
            UNLIMITED,
            "delta magic 0x72730136 at offset 0 is not librsync's delta magic 0x72730236",
        );
        check(&d(&[]), UNLIMITED, "delta truncated at offset 4: the delta has no END command");
        check(&d(&[3, b'a']), UNLIMITED, "delta truncated at offset 6: inside LITERAL data");
        check(&d(&[0x42, 1]), UNLIMITED, "delta truncated at offset 6: inside a LITERAL length");
        check(&d(&[0x46, 1, 0]), UNLIMITED, "delta truncated at offset 7: inside a COPY length");
        check(&d(&[0x55]), UNLIMITED, "delta command byte 0x55 at offset 4 is not a librsync command");
        check(&d(&[0xff]), UNLIMITED, "delta command byte 0xff at offset 4 is not a librsync command");
        check(&d(&[0x41, 0, 0]), UNLIMITED, "delta LITERAL at offset 4 has invalid length 0");
        check(&d(&[0x45, 0, 0, 0]), UNLIMITED, "delta COPY at offset 4 has invalid length 0");
        check(
            &d(&[0x44, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            UNLIMITED,
            "delta LITERAL at offset 4 has invalid length 9223372036854775808",
        );
        check(&d(&[0x45, 5, 6, 0]), UNLIMITED, "delta COPY at offset 4 reads 6 bytes at 5 from a basis of 10 bytes");
        check(
            &d(&[0x51, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 0]),
            UNLIMITED,
            "delta COPY at offset 4 reads 1 bytes at 18446744073709551615 from a basis of 10 bytes",
        );
        check(
            &d(&[0x45, 0, 10, 0x45, 0, 1, 0]),
            PatchLimits { max_output: 10 },
            "delta command at offset 7 would make the output longer than the limit of 10 bytes",
        );
    }
}
