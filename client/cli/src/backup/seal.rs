//! How an archive file is stored: gzipped (`--no-encryption`, duplicity's
//! `.gz`) or OpenPGP-encrypted (`.gpg`), written to a staging file whose
//! size and SHA-1 (the manifest's `Hash SHA1`) are counted as it grows.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::rc::Rc;

use flate2::Compression;
use flate2::write::GzEncoder;
use sha1::{Digest, Sha1};

/// A staging file that counts and hashes what is written to it.
pub(crate) struct Counted {
    file: BufWriter<File>,
    sha1: Sha1,
    written: Rc<Cell<u64>>,
}

impl Counted {
    pub(crate) fn create(path: &Path) -> io::Result<Counted> {
        Ok(Counted { file: BufWriter::with_capacity(256 * 1024, File::create(path)?), sha1: Sha1::new(), written: Rc::default() })
    }

    /// A handle on the byte count, readable while the file is being written.
    pub(crate) fn counter(&self) -> Rc<Cell<u64>> {
        Rc::clone(&self.written)
    }

    /// Flushes and syncs; the file's SHA-1 in hex.
    pub(crate) fn finish(self) -> io::Result<String> {
        let file = self.file.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        Ok(hex::encode(self.sha1.finalize()))
    }
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.sha1.update(&buf[..n]);
        self.written.set(self.written.get() + n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A stream that must be finished (a gzip trailer, an OpenPGP packet end).
pub(crate) trait Sealed: Write {
    fn finish(self: Box<Self>) -> io::Result<Counted>;
}

impl Sealed for GzEncoder<Counted> {
    fn finish(self: Box<Self>) -> io::Result<Counted> {
        GzEncoder::finish(*self)
    }
}

/// Which way archive files are stored.
pub(crate) enum Protection {
    /// `--no-encryption`: gzip, as duplicity writes `.difftar.gz`.
    Gzip,
}

impl Protection {
    pub(crate) fn encrypted(&self) -> bool {
        match self {
            Protection::Gzip => false,
        }
    }

    /// Wraps a staging file; `compress` is false for the manifest, which
    /// duplicity stores plain when it does not encrypt.
    pub(crate) fn seal(&self, out: Counted, compress: bool) -> io::Result<Box<dyn Sealed>> {
        match self {
            Protection::Gzip if compress => Ok(Box::new(GzEncoder::new(out, Compression::new(6)))),
            Protection::Gzip => Ok(Box::new(Plain(out))),
        }
    }
}

/// Stored as written.
struct Plain(Counted);

impl Write for Plain {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Sealed for Plain {
    fn finish(self: Box<Self>) -> io::Result<Counted> {
        Ok(self.0)
    }
}

/// A stand-in while the real stream is lent to a writer.
pub(super) struct Discard;

impl Write for Discard {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sealed for Discard {
    fn finish(self: Box<Self>) -> io::Result<Counted> {
        Err(io::Error::other("a stand-in stream was finished"))
    }
}
