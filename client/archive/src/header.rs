//! One tar header as bytes, both ways. Writing reproduces Python 3's
//! `TarInfo.tobuf` in PAX format (duplicity 0.8's only format): a POSIX
//! ustar block, preceded by a `././@PaxHeader` extended header when a name
//! is not ASCII, longer than its field, or a number does not fit; ustar
//! fields then hold the name with every non-ASCII character as `?`. Reading
//! accepts ustar, PAX and the GNU long-name extension, and checks the
//! checksum and every number.

use crate::entry::{FileType, Meta};
use crate::error::{ReadError, WriteError};

/// Size of a tar block.
pub(crate) const BLOCK: usize = 512;
/// Python's `tarfile.RECORDSIZE`: archives end on a multiple of it.
pub const RECORD_SIZE: u64 = 20 * 512;
/// Upper bound on a PAX extended header or GNU long name read back from a
/// server; anything longer is refused rather than allocated.
pub const MAX_EXTENDED_HEADER: u64 = 1 << 20;

const POSIX_MAGIC: &[u8; 8] = b"ustar\x0000";

/// Type flag of a file type.
fn type_flag(file_type: &FileType) -> u8 {
    match file_type {
        FileType::Regular => b'0',
        FileType::Symlink(_) => b'2',
        FileType::CharDevice { .. } => b'3',
        FileType::BlockDevice { .. } => b'4',
        FileType::Directory => b'5',
        FileType::Fifo => b'6',
    }
}

/// The bytes Python's `str.encode("ascii", "replace")` gives for a name
/// that Python holds decoded as UTF-8 with `surrogateescape`: ASCII stays,
/// every other character (a valid multi-byte sequence, or one undecodable
/// byte) becomes one `?`.
fn ascii_replace(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            out.push(if c.is_ascii() { c as u8 } else { b'?' });
        }
        out.extend(std::iter::repeat_n(b'?', chunk.invalid().len()));
    }
    out
}

/// Python's `stn`: the bytes cut to `len`, NUL-padded.
fn put_str(out: &mut Vec<u8>, s: &[u8], len: usize) {
    let s = &s[..s.len().min(len)];
    out.extend_from_slice(s);
    out.extend(std::iter::repeat_n(0, len - s.len()));
}

/// Python's `itn` for ustar/PAX: `digits - 1` octal digits and a NUL.
/// The caller has made sure the value fits.
fn put_octal(out: &mut Vec<u8>, value: u64, digits: usize) {
    let text = format!("{value:0width$o}", width = digits - 1);
    out.extend_from_slice(text.as_bytes());
    out.push(0);
}

fn fits(value: u64, digits: usize) -> bool {
    // 8^(digits-1) = 2^(3*(digits-1)); digits ≤ 12 keeps this below 2^64.
    value < 1u64 << (3 * (digits - 1))
}

/// The fields of one ustar block.
struct Ustar<'a> {
    name: &'a [u8],
    mode: u64,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    flag: u8,
    linkname: &'a [u8],
    uname: &'a [u8],
    gname: &'a [u8],
    device: Option<(u64, u64)>,
}

/// Python's `_create_header(info, USTAR_FORMAT, "ascii", "replace")`.
fn ustar_block(h: &Ustar<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    put_str(out, &ascii_replace(h.name), 100);
    put_octal(out, h.mode & 0o7777, 8);
    put_octal(out, h.uid, 8);
    put_octal(out, h.gid, 8);
    put_octal(out, h.size, 12);
    put_octal(out, h.mtime, 12);
    out.extend_from_slice(b"        ");
    out.push(h.flag);
    put_str(out, &ascii_replace(h.linkname), 100);
    out.extend_from_slice(POSIX_MAGIC);
    put_str(out, &ascii_replace(h.uname), 32);
    put_str(out, &ascii_replace(h.gname), 32);
    match h.device {
        Some((major, minor)) => {
            put_octal(out, major, 8);
            put_octal(out, minor, 8);
        }
        None => out.extend_from_slice(&[0; 16]),
    }
    out.extend(std::iter::repeat_n(0, start + BLOCK - out.len()));
    let sum: u64 = out[start..].iter().map(|b| u64::from(*b)).sum();
    let text = format!("{sum:06o}\0");
    out[start + 148..start + 155].copy_from_slice(text.as_bytes());
}

/// One PAX record, `LEN KEY=VALUE\n`, LEN counting itself.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let base = key.len() + value.len() + 3;
    let mut len = base;
    loop {
        let next = base + len.to_string().len();
        if next == len {
            break;
        }
        len = next;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Appends the header blocks for one entry named `name` (the full tar name)
/// with `size` bytes of data, exactly as Python 3.11's tarfile writes them.
pub(crate) fn encode(name: &[u8], meta: &Meta, size: u64, out: &mut Vec<u8>) -> Result<(), WriteError> {
    let shown = || name.escape_ascii().to_string();
    let linkname: &[u8] = match &meta.file_type {
        FileType::Symlink(target) => target,
        _ => b"",
    };
    if [name, linkname, &meta.uname, &meta.gname].iter().any(|s| s.contains(&0)) {
        return Err(WriteError::Nul { name: shown() });
    }
    let device = match meta.file_type {
        FileType::CharDevice { major, minor } | FileType::BlockDevice { major, minor } => {
            for value in [major, minor] {
                if !fits(u64::from(value), 8) {
                    return Err(WriteError::Overflow {
                        name: shown(),
                        field: "device number",
                        value: u64::from(value),
                    });
                }
            }
            Some((u64::from(major), u64::from(minor)))
        }
        _ => None,
    };

    // Python builds the PAX keys in this order, after any keys already in
    // `pax_headers`, which win over generated ones.
    let mut pax: Vec<(&[u8], Vec<u8>)> = meta.extra_pax.iter().map(|(k, v)| (k.as_slice(), v.clone())).collect();
    let has = |pax: &Vec<(&[u8], Vec<u8>)>, key: &[u8]| pax.iter().any(|(k, _)| *k == key);
    for (value, key, limit) in [
        (name, &b"path"[..], 100),
        (linkname, b"linkpath", 100),
        (&meta.uname, b"uname", 32),
        (&meta.gname, b"gname", 32),
    ] {
        if !has(&pax, key) && (!value.is_ascii() || value.len() > limit) {
            pax.push((key, value.to_vec()));
        }
    }
    let mut numbers =
        [(meta.uid, &b"uid"[..], 8), (meta.gid, b"gid", 8), (size, b"size", 12), (meta.mtime, b"mtime", 12)];
    for (value, key, digits) in &mut numbers {
        if !fits(*value, *digits) {
            if !has(&pax, key) {
                pax.push((key, value.to_string().into_bytes()));
            }
            *value = 0;
        }
    }
    let [(uid, ..), (gid, ..), (size_field, ..), (mtime, ..)] = numbers;

    if !pax.is_empty() {
        let mut records = Vec::new();
        // Python writes undecodable names as raw bytes and says so first.
        if pax.iter().any(|(_, v)| std::str::from_utf8(v).is_err()) {
            records.extend_from_slice(b"21 hdrcharset=BINARY\n");
        }
        for (key, value) in &pax {
            pax_record(&mut records, key, value);
        }
        let header = Ustar {
            name: b"././@PaxHeader",
            mode: 0,
            uid: 0,
            gid: 0,
            size: records.len() as u64,
            mtime: 0,
            flag: b'x',
            linkname: b"",
            uname: b"",
            gname: b"",
            device: None,
        };
        ustar_block(&header, out);
        out.extend_from_slice(&records);
        pad_to_block(out);
    }
    let header = Ustar {
        name,
        mode: u64::from(meta.mode),
        uid,
        gid,
        size: size_field,
        mtime,
        flag: type_flag(&meta.file_type),
        linkname,
        uname: &meta.uname,
        gname: &meta.gname,
        device,
    };
    ustar_block(&header, out);
    Ok(())
}

/// Zeros up to the next 512-byte boundary.
pub(crate) fn pad_to_block(out: &mut Vec<u8>) {
    let rest = out.len() % BLOCK;
    if rest != 0 {
        out.extend(std::iter::repeat_n(0, BLOCK - rest));
    }
}

/// Zeros needed after `len` bytes of data to reach a block boundary.
pub(crate) fn padding(len: u64) -> u64 {
    (BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64
}

/// A ustar block as read, before extended headers are applied.
#[derive(Debug)]
pub(crate) struct RawHeader {
    pub(crate) name: Vec<u8>,
    pub(crate) mode: u64,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    pub(crate) size: u64,
    pub(crate) mtime: u64,
    pub(crate) flag: u8,
    pub(crate) linkname: Vec<u8>,
    pub(crate) uname: Vec<u8>,
    pub(crate) gname: Vec<u8>,
    pub(crate) devmajor: u64,
    pub(crate) devminor: u64,
}

/// The bytes before the first NUL (Python's `nts`).
fn field_str(field: &[u8]) -> &[u8] {
    field.iter().position(|b| *b == 0).map_or(field, |end| &field[..end])
}

/// Python's `nti`: base-256 when the first byte is 0x80 (0xff, negative,
/// is refused), else octal digits surrounded by spaces and NULs.
fn field_number(field: &[u8], offset: u64, name: &'static str) -> Result<u64, ReadError> {
    let bad = || ReadError::BadNumber { offset, field: name };
    match field.first() {
        Some(0x80) => {
            let mut n: u64 = 0;
            for b in &field[1..] {
                n = n.checked_mul(256).and_then(|n| n.checked_add(u64::from(*b))).ok_or_else(bad)?;
            }
            Ok(n)
        }
        Some(0xff) => Err(bad()),
        _ => {
            let text = field_str(field);
            let text = text.trim_ascii();
            if text.is_empty() {
                return Ok(0);
            }
            let mut n: u64 = 0;
            for b in text {
                if !(b'0'..=b'7').contains(b) {
                    return Err(bad());
                }
                n = n.checked_mul(8).and_then(|n| n.checked_add(u64::from(b - b'0'))).ok_or_else(bad)?;
            }
            Ok(n)
        }
    }
}

/// Parses one 512-byte block found at `offset`: `None` for an all-zero block
/// (the end of the archive).
pub(crate) fn decode(block: &[u8; BLOCK], offset: u64) -> Result<Option<RawHeader>, ReadError> {
    if block.iter().all(|b| *b == 0) {
        return Ok(None);
    }
    let stored = field_number(&block[148..156], offset, "checksum")?;
    let unsigned: u64 =
        block.iter().enumerate().map(|(i, b)| if (148..156).contains(&i) { 32 } else { u64::from(*b) }).sum();
    let signed: i64 =
        block.iter().enumerate().map(|(i, b)| if (148..156).contains(&i) { 32 } else { i64::from(*b as i8) }).sum();
    if stored != unsigned && i64::try_from(stored).ok() != Some(signed) {
        return Err(ReadError::Checksum { offset, stored, computed: unsigned });
    }
    let mut name = field_str(&block[0..100]).to_vec();
    let magic = &block[257..265];
    if &magic[..6] == b"ustar\0" {
        let prefix = field_str(&block[345..500]);
        if !prefix.is_empty() {
            let mut full = prefix.to_vec();
            full.push(b'/');
            full.extend_from_slice(&name);
            name = full;
        }
    }
    Ok(Some(RawHeader {
        name,
        mode: field_number(&block[100..108], offset, "mode")?,
        uid: field_number(&block[108..116], offset, "uid")?,
        gid: field_number(&block[116..124], offset, "gid")?,
        size: field_number(&block[124..136], offset, "size")?,
        mtime: field_number(&block[136..148], offset, "mtime")?,
        flag: block[156],
        linkname: field_str(&block[157..257]).to_vec(),
        uname: field_str(&block[265..297]).to_vec(),
        gname: field_str(&block[297..329]).to_vec(),
        devmajor: field_number(&block[329..337], offset, "devmajor")?,
        devminor: field_number(&block[337..345], offset, "devminor")?,
    }))
}

/// One PAX record as (key, value).
pub(crate) type PaxRecord = (Vec<u8>, Vec<u8>);

/// Splits PAX records `LEN KEY=VALUE\n` into pairs, checking every length.
pub(crate) fn decode_pax(mut records: &[u8], offset: u64) -> Result<Vec<PaxRecord>, ReadError> {
    let bad = |why| ReadError::BadPax { offset, why };
    let mut pairs = Vec::new();
    while !records.is_empty() {
        // Python's tarfile tolerates NUL padding after the last record.
        if records.iter().all(|b| *b == 0) {
            break;
        }
        let space = records.iter().position(|b| *b == b' ').ok_or_else(|| bad("no length"))?;
        let digits = &records[..space];
        if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
            return Err(bad("length is not a number"));
        }
        let len: usize = digits.iter().fold(0, |n, d| n * 10 + usize::from(d - b'0'));
        if len <= space + 1 || len > records.len() {
            return Err(bad("length beyond the header"));
        }
        let record = &records[space + 1..len];
        let record = record.strip_suffix(b"\n").ok_or_else(|| bad("record does not end in a newline"))?;
        let eq = record.iter().position(|b| *b == b'=').ok_or_else(|| bad("record has no '='"))?;
        pairs.push((record[..eq].to_vec(), record[eq + 1..].to_vec()));
        records = &records[len..];
    }
    Ok(pairs)
}

/// A decimal PAX number; a fraction (PAX mtimes may have one) is dropped
/// and a negative value reads as 0, as duplicity stores negative times.
pub(crate) fn pax_number(value: &[u8], offset: u64) -> Result<u64, ReadError> {
    let bad = || ReadError::BadPax { offset, why: "number field is not a number" };
    let (negative, value) = match value.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let whole = value.split(|b| *b == b'.').next().unwrap_or(value);
    if whole.is_empty() || !whole.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let fraction = &value[whole.len()..];
    if !fraction.is_empty() && !fraction[1..].iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    if negative {
        return Ok(0);
    }
    std::str::from_utf8(whole).ok().and_then(|w| w.parse().ok()).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_replace_counts_characters_not_bytes() {
        assert_eq!(ascii_replace(b"h\xc3\xa9llo"), b"h?llo");
        assert_eq!(ascii_replace(b"bad\xff\xfename"), b"bad??name");
        assert_eq!(ascii_replace(b"\xe2\x82"), b"??");
        assert_eq!(ascii_replace("日本".as_bytes()), b"??");
    }

    #[test]
    fn pax_records_count_their_own_length() {
        for (key, value, want) in
            [(&b"path"[..], &b"x"[..], &b"9 path=x\n"[..]), (b"path", &[b'a'; 90], b""), (b"path", &[b'a'; 91], b"")]
        {
            let mut out = Vec::new();
            pax_record(&mut out, key, value);
            let len: usize =
                std::str::from_utf8(&out[..out.iter().position(|b| *b == b' ').unwrap()]).unwrap().parse().unwrap();
            assert_eq!(len, out.len());
            if !want.is_empty() {
                assert_eq!(out, want);
            }
            assert_eq!(decode_pax(&out, 0).unwrap(), vec![(key.to_vec(), value.to_vec())]);
        }
    }

    #[test]
    fn numbers_read_as_python_reads_them() {
        let table: &[(&[u8], Option<u64>)] = &[
            (b"0000644\0", Some(0o644)),
            (b"  644 \0\0", Some(0o644)),
            (b"\0\0\0\0\0\0\0\0", Some(0)),
            (b"0000648\0", None),
            (b"\x80\0\0\0\0\0\x01\x00", Some(256)),
            (b"\xff\xff\xff\xff\xff\xff\xff\xff", None),
        ];
        for (field, want) in table {
            assert_eq!(field_number(field, 0, "f").ok(), *want, "{field:?}");
        }
        assert_eq!(pax_number(b"1700000000.25", 0).unwrap(), 1_700_000_000);
        assert_eq!(pax_number(b"-5", 0).unwrap(), 0);
        assert!(pax_number(b"12a", 0).is_err());
        assert!(pax_number(b"", 0).is_err());
    }

    #[test]
    fn hostile_pax_records_are_refused() {
        for records in [&b"999 path=x\n"[..], b"5 path=x\n", b"x path\n", b"10 pathxx\n", b"10 path=xx"] {
            assert!(decode_pax(records, 0).is_err(), "{records:?}");
        }
    }
}
