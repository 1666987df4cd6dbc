//! Streaming encryption of one volume, manifest or sigtar, as duplicity has
//! GnuPG do it: `gpg --encrypt -r KEY…` (one PKESK per encryption subkey of
//! each recipient), `gpg --symmetric` (one SKESK from the passphrase), or
//! both, optionally `--sign` (one-pass signature).
//!
//! Packets, outermost first: PKESK v3 / SKESK v4, SEIPD v1 with MDC,
//! compressed (ZLIB, as GnuPG 2.2 writes by default), one-pass signature,
//! literal (binary, no name, no date), signature. SEIPD v1 is forced even
//! for recipients whose keys advertise SEIPD v2 (sequoia's own keys do):
//! GnuPG 2.2 from Debian 12 cannot read v2, and duplicity restores through
//! it.

use std::fmt;
use std::io::{self, Write};

use openpgp::serialize::stream::{
    Compressor, Encryptor as SqEncryptor, LiteralWriter, Message, Recipient, Signer,
};
use openpgp::types::{
    CompressionAlgorithm, CompressionLevel, DataFormat, Features, HashAlgorithm,
    SymmetricAlgorithm,
};
use openpgp::KeyHandle;
use sequoia_openpgp as openpgp;

use crate::error::openpgp_text;
use crate::key::POLICY;
use crate::{Key, Password, PgpError, SigningKey};

/// The session cipher. GnuPG 2.2 picks AES-256 for keys it made and for
/// `--symmetric`; AES-128 is about a fifth faster in the pure-Rust backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cipher {
    /// AES with 128-bit keys.
    Aes128,
    /// AES with 256-bit keys (what GnuPG 2.2 uses).
    #[default]
    Aes256,
}

/// Compression inside the encryption, as GnuPG's `--compress-algo` and
/// `-z`. Duplicity never gzips encrypted volumes: GnuPG's compression is
/// all the compression a duplicity archive gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// No compression packet (`-z 0`): for data already compressed.
    None,
    /// ZLIB (RFC 1950) at a level from 1 (fastest) to 9 (smallest); GnuPG's
    /// default is level 6.
    Zlib(u8),
}

impl Default for Compression {
    /// What `gpg --encrypt` does without options: ZLIB, level 6.
    fn default() -> Compression {
        Compression::Zlib(6)
    }
}

/// How to encrypt: to whom, with which passphrase, signed by whom.
#[derive(Default)]
pub struct EncryptOptions<'k> {
    /// Encrypt to every valid encryption (sub)key of each.
    pub recipients: Vec<&'k Key>,
    /// Also (or only) encrypt with this passphrase (`gpg --symmetric`).
    pub passphrase: Option<Password>,
    /// Sign with this key (`gpg --sign`), inside the encryption.
    pub signer: Option<&'k SigningKey>,
    /// Session cipher.
    pub cipher: Cipher,
    /// Compression.
    pub compression: Compression,
}

impl fmt::Debug for EncryptOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let recipients: Vec<String> = self.recipients.iter().map(|k| k.fingerprint()).collect();
        f.debug_struct("EncryptOptions")
            .field("recipients", &recipients)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "…"))
            .field("signer", &self.signer)
            .field("cipher", &self.cipher)
            .field("compression", &self.compression)
            .finish()
    }
}

/// A message being written: write the plaintext, then [`Encryptor::finish`].
/// Dropping it without `finish` leaves a truncated message that every
/// reader refuses.
pub struct Encryptor<'a> {
    inner: Message<'a>,
}

impl<'a> Encryptor<'a> {
    /// Starts a message into `sink` (packet headers are written at once).
    pub fn new<W>(sink: W, options: &EncryptOptions<'a>) -> Result<Encryptor<'a>, PgpError>
    where
        W: Write + Send + Sync + 'a,
    {
        let sq = |e: openpgp::anyhow::Error| PgpError::OpenPgp(openpgp_text(&e));
        let mut recipients: Vec<Recipient<'a>> = Vec::new();
        for key in &options.recipients {
            let before = recipients.len();
            if let Ok(vc) = key.cert().with_policy(&POLICY, None) {
                for ka in vc
                    .keys()
                    .supported()
                    .alive()
                    .revoked(false)
                    .for_storage_encryption()
                    .for_transport_encryption()
                {
                    // SEIPD v1 only: see the module comment.
                    let features = Features::empty().set_seipdv1();
                    recipients.push(Recipient::new(features, KeyHandle::from(ka.key().keyid()), ka.key()));
                }
            }
            if recipients.len() == before {
                return Err(PgpError::NoEncryptionKey {
                    fingerprint: key.fingerprint(),
                });
            }
        }
        if recipients.is_empty() && options.passphrase.is_none() {
            return Err(PgpError::NoRecipient);
        }
        let mut encryptor = SqEncryptor::for_recipients(Message::new(sink), recipients)
            .symmetric_algo(match options.cipher {
                Cipher::Aes128 => SymmetricAlgorithm::AES128,
                Cipher::Aes256 => SymmetricAlgorithm::AES256,
            });
        if let Some(passphrase) = &options.passphrase {
            encryptor = encryptor.add_passwords(Some(passphrase.clone()));
        }
        let mut message = encryptor.build().map_err(sq)?;
        if let Compression::Zlib(level) = options.compression {
            let level = CompressionLevel::new(level.clamp(1, 9)).map_err(sq)?;
            message = Compressor::new(message)
                .algo(CompressionAlgorithm::Zlib)
                .level(level)
                .build()
                .map_err(sq)?;
        }
        if let Some(signer) = options.signer {
            // SHA-256, GnuPG 2.2's default digest: as strong as the keys
            // it signs with, and three times faster than SHA-512 on CPUs
            // with SHA extensions.
            message = Signer::new(message, signer.pair().clone())
                .and_then(|s| s.hash_algo(HashAlgorithm::SHA256))
                .and_then(|s| s.build())
                .map_err(sq)?;
        }
        let inner = LiteralWriter::new(message)
            .format(DataFormat::Binary)
            .build()
            .map_err(sq)?;
        Ok(Encryptor { inner })
    }

    /// Ends the message: flushes the compressor, writes the signature and
    /// the MDC. Only a finished message decrypts.
    pub fn finish(self) -> Result<(), PgpError> {
        self.inner.finalize().map_err(|e| match e.downcast::<io::Error>() {
            Ok(io) => PgpError::Write(io),
            Err(e) => PgpError::OpenPgp(openpgp_text(&e)),
        })
    }
}

impl Write for Encryptor<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
