//! A streaming tar reader for volumes and sigtars read back from a server.
//! Memory stays bounded whatever the input: entry data is handed out
//! through [`TarReader::data`] as it is read, and only extended headers
//! (PAX records, GNU long names) are held, each refused beyond
//! [`MAX_EXTENDED_HEADER`]. The archive ends at the first all-zero block
//! (trailing bytes, such as duplicity's top-off padding of encrypted
//! volumes, are ignored) or at a clean end of input on a block boundary
//! (duplicity 0.8 writes gzip volumes without an end-of-archive marker).

use std::io::{self, Read};

use crate::entry::{EntryName, FileType, Meta};
use crate::error::ReadError;
use crate::header::{self, BLOCK, MAX_EXTENDED_HEADER, RawHeader};

/// One entry's header with every extended header applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The full tar name (`snapshot/a/b`), as bytes.
    pub name: Vec<u8>,
    pub meta: Meta,
    /// Bytes of data that follow (0 for anything but a regular file, as
    /// Python's tarfile reads it).
    pub size: u64,
    /// Offset of the entry's first header block in the tar stream.
    pub offset: u64,
}

impl Header {
    /// The duplicity meaning of the name (kind, path, piece).
    pub fn entry_name(&self) -> Result<EntryName, ReadError> {
        EntryName::parse(&self.name, self.meta.is_dir()).map_err(|e| ReadError::Entry {
            offset: self.offset,
            name: self.name.escape_ascii().to_string(),
            source: Box::new(e),
        })
    }
}

/// Reads tar entries one after another from `R`.
pub struct TarReader<R> {
    inner: R,
    offset: u64,
    remaining: u64,
    padding: u64,
    finished: bool,
}

/// Extended-header values waiting for the entry they describe.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Vec<(Vec<u8>, Vec<u8>)>,
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> Self {
        Self { inner, offset: 0, remaining: 0, padding: 0, finished: false }
    }

    /// Offset in the tar stream of the next byte to be read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Fills `buf` as far as the input goes; the count read.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(ReadError::Io { offset: self.offset + got as u64, source });
                }
            }
        }
        self.offset += got as u64;
        Ok(got)
    }

    fn read_exact(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), ReadError> {
        let start = self.offset;
        if self.fill(buf)? < buf.len() {
            return Err(ReadError::Truncated { offset: start, what });
        }
        Ok(())
    }

    /// Reads and drops `n` bytes.
    fn skip(&mut self, mut n: u64, what: &'static str) -> Result<(), ReadError> {
        let mut scratch = [0u8; 8192];
        while n > 0 {
            let take = n.min(scratch.len() as u64) as usize;
            self.read_exact(&mut scratch[..take], what)?;
            n -= take as u64;
        }
        Ok(())
    }

    /// The data of an extended header, bounded.
    fn extended(&mut self, raw: &RawHeader, at: u64) -> Result<Vec<u8>, ReadError> {
        if raw.size > MAX_EXTENDED_HEADER {
            return Err(ReadError::ExtendedTooLong { offset: at, size: raw.size, limit: MAX_EXTENDED_HEADER });
        }
        let mut data = vec![0; raw.size as usize];
        self.read_exact(&mut data, "an extended header")?;
        self.skip(header::padding(raw.size), "an extended header")?;
        Ok(data)
    }

    /// The next entry's header, skipping whatever is left of the previous
    /// entry's data; `None` at the end of the archive.
    pub fn next_header(&mut self) -> Result<Option<Header>, ReadError> {
        if self.finished {
            return Ok(None);
        }
        let rest = self.remaining + self.padding;
        self.remaining = 0;
        self.padding = 0;
        self.skip(rest, "entry data")?;
        let mut pending = Pending::default();
        // All extended headers of one entry together stay under the bound,
        // however many of them a hostile stream chains.
        let mut extended_total = 0u64;
        let mut first = None;
        loop {
            let at = self.offset;
            let first_at = *first.get_or_insert(at);
            let mut block = [0u8; BLOCK];
            let got = self.fill(&mut block)?;
            if got == 0 && first_at == at {
                self.finished = true;
                return Ok(None);
            }
            if got < BLOCK {
                return Err(ReadError::Truncated { offset: at, what: "a header block" });
            }
            let Some(raw) = header::decode(&block, at)? else {
                if first_at != at {
                    return Err(ReadError::Truncated { offset: at, what: "an extended header's entry" });
                }
                self.finished = true;
                return Ok(None);
            };
            if matches!(raw.flag, b'x' | b'L' | b'K') {
                extended_total += raw.size;
                if extended_total > MAX_EXTENDED_HEADER {
                    return Err(ReadError::ExtendedTooLong {
                        offset: at,
                        size: extended_total,
                        limit: MAX_EXTENDED_HEADER,
                    });
                }
            }
            match raw.flag {
                b'x' => {
                    let data = self.extended(&raw, at)?;
                    pending.pax.extend(header::decode_pax(&data, at)?);
                }
                b'g' => {
                    // Global PAX headers carry nothing duplicity uses.
                    self.skip(raw.size + header::padding(raw.size), "a global header")?;
                }
                b'L' | b'K' => {
                    let data = self.extended(&raw, at)?;
                    let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
                    let value = data[..end].to_vec();
                    if raw.flag == b'L' {
                        pending.long_name = Some(value);
                    } else {
                        pending.long_link = Some(value);
                    }
                }
                _ => return self.finish_header(raw, pending, first_at).map(Some),
            }
        }
    }

    fn finish_header(&mut self, raw: RawHeader, pending: Pending, at: u64) -> Result<Header, ReadError> {
        let mut name = pending.long_name.unwrap_or(raw.name);
        let mut linkname = pending.long_link.unwrap_or(raw.linkname);
        let (mut uname, mut gname) = (raw.uname, raw.gname);
        let (mut uid, mut gid, mut size, mut mtime) = (raw.uid, raw.gid, raw.size, raw.mtime);
        let mut extra_pax = Vec::new();
        for (key, value) in pending.pax {
            match key.as_slice() {
                b"path" => name = value,
                b"linkpath" => linkname = value,
                b"uname" => uname = value,
                b"gname" => gname = value,
                b"uid" => uid = header::pax_number(&value, at)?,
                b"gid" => gid = header::pax_number(&value, at)?,
                b"size" => size = header::pax_number(&value, at)?,
                b"mtime" => mtime = header::pax_number(&value, at)?,
                // Names are kept as bytes whatever the charset says.
                b"hdrcharset" => {}
                _ => {
                    if let Some(slot) = extra_pax.iter_mut().find(|(k, _): &&mut (Vec<u8>, Vec<u8>)| *k == key) {
                        slot.1 = value;
                    } else {
                        extra_pax.push((key, value));
                    }
                }
            }
        }
        if name.is_empty() {
            return Err(ReadError::EmptyName { offset: at });
        }
        let device = |what| -> Result<(u32, u32), ReadError> {
            let major = u32::try_from(raw.devmajor).map_err(|_| ReadError::BadNumber { offset: at, field: what })?;
            let minor = u32::try_from(raw.devminor).map_err(|_| ReadError::BadNumber { offset: at, field: what })?;
            Ok((major, minor))
        };
        let file_type = match raw.flag {
            b'0' | b'7' => FileType::Regular,
            b'\0' if name.ends_with(b"/") => FileType::Directory,
            b'\0' => FileType::Regular,
            b'2' => FileType::Symlink(linkname),
            b'3' => {
                let (major, minor) = device("devmajor")?;
                FileType::CharDevice { major, minor }
            }
            b'4' => {
                let (major, minor) = device("devmajor")?;
                FileType::BlockDevice { major, minor }
            }
            b'5' => FileType::Directory,
            b'6' => FileType::Fifo,
            other => {
                return Err(ReadError::UnsupportedType {
                    offset: at,
                    kind: char::from(other),
                    name: name.escape_ascii().to_string(),
                });
            }
        };
        let data = if file_type == FileType::Regular { size } else { 0 };
        self.remaining = data;
        self.padding = header::padding(data);
        let meta = Meta { file_type, mode: (raw.mode & 0o7777) as u32, uid, gid, uname, gname, mtime, extra_pax };
        Ok(Header { name, meta, size: data, offset: at })
    }

    /// The current entry's data, to read to its end (or not: the next
    /// [`next_header`](Self::next_header) skips the rest).
    pub fn data(&mut self) -> EntryData<'_, R> {
        EntryData { reader: self }
    }

    /// Reads the current entry's data into `buf`; 0 at its end.
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
        let take = self.remaining.min(buf.len() as u64) as usize;
        if take == 0 {
            return Ok(0);
        }
        let start = self.offset;
        let got = self.fill(&mut buf[..take])?;
        if got == 0 {
            return Err(ReadError::Truncated { offset: start, what: "entry data" });
        }
        self.remaining -= got as u64;
        Ok(got)
    }
}

/// The data of the current entry as an `io::Read`; read errors carry the
/// [`ReadError`] inside an `io::Error`.
pub struct EntryData<'a, R> {
    reader: &'a mut TarReader<R>,
}

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read_data(buf).map_err(|e| match e {
            ReadError::Io { source, .. } => source,
            other => io::Error::new(io::ErrorKind::UnexpectedEof, other),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Meta;

    fn pax_block(records: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let meta = Meta { extra_pax: vec![(b"X.k".to_vec(), records.to_vec())], ..Meta::deleted() };
        header::encode(b"deleted/a", &meta, 0, &mut out).unwrap();
        out.truncate(out.len() - BLOCK);
        out
    }

    #[test]
    fn chained_extended_headers_stay_bounded() {
        let one = pax_block(&vec![b'v'; 600_000]);
        let mut stream = Vec::new();
        stream.extend_from_slice(&one);
        stream.extend_from_slice(&one);
        let err = TarReader::new(stream.as_slice()).next_header().unwrap_err();
        assert!(matches!(err, ReadError::ExtendedTooLong { .. }), "{err}");
    }

    #[test]
    fn truncation_and_damage_are_reported_with_offsets() {
        let mut tar = Vec::new();
        header::encode(b"snapshot/f", &Meta { mode: 0o644, ..Meta::deleted() }, 1000, &mut tar).unwrap();
        tar.extend_from_slice(&[7; 1000]);
        header::pad_to_block(&mut tar);

        let mut cut = TarReader::new(&tar[..700]);
        cut.next_header().unwrap().unwrap();
        let mut data = Vec::new();
        let err = cut.data().read_to_end(&mut data).unwrap_err();
        assert!(err.to_string().contains("offset 700"), "{err}");

        let mut bad = tar.clone();
        bad[10] ^= 1;
        let err = TarReader::new(bad.as_slice()).next_header().unwrap_err();
        assert!(matches!(err, ReadError::Checksum { offset: 0, .. }), "{err}");

        let err = TarReader::new(&tar[..300]).next_header().unwrap_err();
        assert!(matches!(err, ReadError::Truncated { offset: 0, .. }), "{err}");

        // A clean end on a block boundary without a footer is the end.
        let mut whole = TarReader::new(tar.as_slice());
        assert!(whole.next_header().unwrap().is_some());
        assert!(whole.next_header().unwrap().is_none());
    }
}
