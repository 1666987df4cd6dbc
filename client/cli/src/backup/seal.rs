//! How an archive file is stored: gzipped (`--no-encryption`, duplicity's
//! `.gz`) or OpenPGP-encrypted (`.gpg`, as GnuPG 2.2 reads it), written to a
//! staging file whose size and SHA-1 (the manifest's `Hash SHA1`) are
//! tallied as it grows, and read back the same two ways.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use coffer_pgp::{Cipher, EncryptOptions, Encryptor, Key, Password, SigningKey};
use flate2::write::GzEncoder;
use sha1::{Digest, Sha1};

/// What has been written to a staging file so far.
#[derive(Default)]
pub(super) struct Tally {
    sha1: Mutex<Sha1>,
    written: AtomicU64,
}

impl Tally {
    pub(super) fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// The SHA-1 of everything written, in hex.
    pub(super) fn sha1_hex(&self) -> String {
        self.sha1.lock().map(|h| hex::encode(h.clone().finalize())).unwrap_or_default()
    }
}

/// A staging file, or the pipe to an upload, that tallies what is written
/// to it. Unbuffered: the compressor or the encryptor above it writes in
/// large pieces.
pub(super) struct Counted {
    file: Box<dyn Write + Send + Sync>,
    tally: Arc<Tally>,
}

impl Counted {
    pub(super) fn create(path: &Path) -> io::Result<Counted> {
        Ok(Counted::new(File::create(path)?))
    }

    pub(super) fn new(out: impl Write + Send + Sync + 'static) -> Counted {
        Counted { file: Box::new(out), tally: Arc::default() }
    }

    pub(super) fn tally(&self) -> Arc<Tally> {
        Arc::clone(&self.tally)
    }
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        if let Ok(mut h) = self.tally.sha1.lock() {
            h.update(&buf[..n]);
        }
        self.tally.written.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A stream that must be finished (a gzip trailer, the end of an OpenPGP
/// message) before its staging file is complete.
pub(super) trait Sealed: Write {
    fn finish(self: Box<Self>) -> io::Result<()>;
}

impl Sealed for GzEncoder<Counted> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        GzEncoder::finish(*self).map(drop)
    }
}

impl Sealed for Encryptor<'_> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        Encryptor::finish(*self).map_err(io::Error::other)
    }
}

/// Which way archive files are stored.
pub(crate) enum Protection<'k> {
    /// `--no-encryption`: gzip, as duplicity writes `.difftar.gz`.
    Gzip,
    /// `--encrypt-key` (and `--sign-key`): OpenPGP to these keys.
    Pgp { recipients: Vec<&'k Key>, signer: Option<Box<SigningKey>> },
}

impl<'k> Protection<'k> {
    pub(crate) fn encrypted(&self) -> bool {
        matches!(self, Protection::Pgp { .. })
    }

    /// Wraps a staging file; `compress` is false for a plain manifest,
    /// which duplicity stores as it is when it does not encrypt, and for
    /// an encrypted file whose bytes would not shrink.
    pub(super) fn seal<'s>(&'s self, out: Counted, compress: bool) -> io::Result<Box<dyn Sealed + 's>>
    where
        'k: 's,
    {
        match self {
            Protection::Gzip if compress => Ok(Box::new(GzEncoder::new(out, flate2::Compression::new(6)))),
            Protection::Gzip => Ok(Box::new(Plain(out))),
            Protection::Pgp { recipients, signer } => {
                let options = EncryptOptions {
                    recipients: recipients.clone(),
                    passphrase: None,
                    signer: signer.as_deref(),
                    cipher: Cipher::Aes256,
                    // Level 1 compresses archives almost as well as gpg's
                    // default 6, at three times the speed.
                    compression: if compress { coffer_pgp::Compression::Zlib(1) } else { coffer_pgp::Compression::None },
                };
                Ok(Box::new(Encryptor::new(out, &options).map_err(io::Error::other)?))
            }
        }
    }
}

/// A staging file kept plain: the volume's tar bytes, sealed later by a
/// worker.
pub(super) fn plain(out: Counted) -> Box<dyn Sealed> {
    Box::new(Plain(out))
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
    fn finish(self: Box<Self>) -> io::Result<()> {
        Ok(())
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
    fn finish(self: Box<Self>) -> io::Result<()> {
        Err(io::Error::other("a stand-in stream was finished"))
    }
}

/// A stream from the target made `Sync`, as the decryptor wants it.
struct Shared(Mutex<Box<dyn Read + Send>>);

impl Read for Shared {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.get_mut().map_err(|_| io::Error::other("a reader panicked"))?.read(buf)
    }
}

/// A decrypted stream whose end is only reported once the whole message
/// checked out (its MDC, its signatures): bytes of a long message come out
/// before that is known, so a forged tail fails the read at the end.
struct Verified<'k>(Option<coffer_pgp::Decryptor<'k>>);

impl Read for Verified<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(decryptor) = self.0.as_mut() else { return Ok(0) };
        let n = decryptor.read(buf)?;
        if n == 0
            && let Some(decryptor) = self.0.take()
        {
            decryptor.finish().map_err(io::Error::other)?;
        }
        Ok(n)
    }
}

/// What opens archive files read back from the target: the machine's keys
/// and the passphrase of their secret halves (`PASSPHRASE`, as duplicity).
pub(crate) struct Opener<'k> {
    pub(crate) keys: &'k [Key],
    pub(crate) passphrase: Option<Password>,
}

impl<'k> Opener<'k> {
    /// The plain bytes of the archive file `name`, from its stream.
    pub(crate) fn open(&self, name: &str, stream: Box<dyn Read + Send>) -> anyhow::Result<Box<dyn Read + 'k>> {
        if name.ends_with(".gz") {
            Ok(Box::new(flate2::read::MultiGzDecoder::new(stream)))
        } else if name.ends_with(".gpg") {
            let passphrase = self.passphrase.clone();
            let decryptor = coffer_pgp::decrypt(Shared(Mutex::new(stream)), self.keys, move |_| passphrase.clone())
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            Ok(Box::new(Verified(Some(decryptor))))
        } else {
            Ok(stream)
        }
    }
}
