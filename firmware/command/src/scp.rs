//! Control lines of the legacy scp protocol (`scp -t` / `scp -f`).
//!
//! `C<mode> <size> <name>` announces a file, `D<mode> 0 <name>` enters a
//! directory, `E` leaves it, `T<mtime> 0 <atime> 0` carries times for the
//! next entry, and `\x01`/`\x02` lines are warnings/fatal errors.

use thiserror::Error;

/// One control line, without its trailing newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScpLine {
    File { mode: u32, size: u64, name: Vec<u8> },
    Dir { mode: u32, name: Vec<u8> },
    EndDir,
    Times { mtime: u64, atime: u64 },
    Warning(Vec<u8>),
    Fatal(Vec<u8>),
}

/// A control line that does not follow the protocol.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScpLineError {
    #[error("empty scp control line")]
    Empty,
    #[error("bad scp control line: {0}")]
    Malformed(String),
    #[error("unsafe file name in scp control line: {0:?}")]
    UnsafeName(String),
}

impl ScpLine {
    pub fn parse(line: &[u8]) -> Result<Self, ScpLineError> {
        let (&kind, rest) = line.split_first().ok_or(ScpLineError::Empty)?;
        let bad = || ScpLineError::Malformed(String::from_utf8_lossy(line).into_owned());
        match kind {
            b'C' | b'D' => {
                let mut parts = rest.splitn(3, |&b| b == b' ');
                let mode = parts.next().ok_or_else(bad)?;
                let size = parts.next().ok_or_else(bad)?;
                let name = parts.next().ok_or_else(bad)?;
                if mode.len() != 4 || !mode.iter().all(|b| (b'0'..=b'7').contains(b)) {
                    return Err(bad());
                }
                let mode = u32::from_str_radix(std::str::from_utf8(mode).map_err(|_| bad())?, 8).map_err(|_| bad())?;
                let size = parse_u64(size).ok_or_else(bad)?;
                // A name is one path component; anything else would let a sender escape the target.
                if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
                    return Err(ScpLineError::UnsafeName(String::from_utf8_lossy(name).into_owned()));
                }
                let name = name.to_vec();
                Ok(if kind == b'C' { ScpLine::File { mode, size, name } } else { ScpLine::Dir { mode, name } })
            }
            b'E' if rest.is_empty() => Ok(ScpLine::EndDir),
            b'T' => {
                let fields: Vec<&[u8]> = rest.split(|&b| b == b' ').collect();
                if fields.len() != 4 {
                    return Err(bad());
                }
                let mtime = parse_u64(fields[0]).ok_or_else(bad)?;
                let atime = parse_u64(fields[2]).ok_or_else(bad)?;
                parse_u64(fields[1]).ok_or_else(bad)?;
                parse_u64(fields[3]).ok_or_else(bad)?;
                Ok(ScpLine::Times { mtime, atime })
            }
            1 => Ok(ScpLine::Warning(rest.to_vec())),
            2 => Ok(ScpLine::Fatal(rest.to_vec())),
            _ => Err(bad()),
        }
    }
}

fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_table() {
        assert_eq!(ScpLine::parse(b"C0644 12 a b.txt").unwrap(), ScpLine::File { mode: 0o644, size: 12, name: b"a b.txt".to_vec() });
        assert_eq!(ScpLine::parse(b"D0755 0 dir").unwrap(), ScpLine::Dir { mode: 0o755, name: b"dir".to_vec() });
        assert_eq!(ScpLine::parse(b"E").unwrap(), ScpLine::EndDir);
        assert_eq!(ScpLine::parse(b"T1700000000 0 1700000001 0").unwrap(), ScpLine::Times { mtime: 1_700_000_000, atime: 1_700_000_001 });
        assert!(matches!(ScpLine::parse(b"C0644 12 ../x"), Err(ScpLineError::UnsafeName(_))));
        assert!(matches!(ScpLine::parse(b"C0644 12 a/b"), Err(ScpLineError::UnsafeName(_))));
        assert!(ScpLine::parse(b"C0644 -1 x").is_err());
        assert!(ScpLine::parse(b"C999 1 x").is_err());
        assert!(ScpLine::parse(b"").is_err());
    }
}
