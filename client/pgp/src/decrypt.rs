//! Streaming decryption of a message GnuPG (through duplicity) or the
//! client wrote, read back from a server: hostile until proven otherwise.
//!
//! The session key comes from the first PKESK a key of the caller's opens
//! (protected secrets unlocked through the passphrase callback), else from
//! an SKESK and the callback's passphrase. Plaintext is released as it is
//! decrypted, after a look-ahead of [`DEFAULT_LOOKAHEAD`] bytes: a message
//! shorter than that is checked whole (MDC, signatures) before the first
//! byte comes out; a longer one is only known good when [`Decryptor::finish`]
//! says so, as with `gpg --decrypt` in a pipe. Memory stays bounded by the
//! look-ahead and sequoia's parser limits (non-data packets at most 1 MiB,
//! nesting at most 16 deep), whatever length fields the bytes claim, and
//! compressed data is inflated as it is read, never ahead.
//!
//! Unencrypted messages are refused ([`PgpError::NotEncrypted`]): a server
//! could otherwise hand the client any plaintext it likes.

use std::fmt;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use openpgp::crypto::SessionKey;
use openpgp::packet::{PKESK, SKESK};
use openpgp::parse::Parse;
use openpgp::parse::stream::{
    DecryptionHelper, DecryptorBuilder, MessageLayer, MessageStructure, VerificationError,
    VerificationHelper,
};
use openpgp::types::SymmetricAlgorithm;
use openpgp::{Cert, KeyHandle};
use sequoia_openpgp as openpgp;

use crate::error::openpgp_text;
use crate::framing::{self, Frame};
use crate::key::{POLICY, usable_secret};
use crate::{Key, Password, PgpError};

/// Plaintext held back before release, so small messages (manifests) are
/// verified whole first; several volumes decrypt at once, so it is small.
pub const DEFAULT_LOOKAHEAD: usize = 4 << 20;

/// What the passphrase callback is asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PassphraseRequest {
    /// The passphrase of a protected secret key the message is encrypted
    /// to.
    SecretKey {
        /// The key's fingerprint.
        fingerprint: String,
        /// Its primary user id, if any.
        user_id: Option<String>,
    },
    /// The passphrase the message itself is encrypted with (`gpg
    /// --symmetric`, duplicity without `--encrypt-key`).
    Message,
}

impl fmt::Display for PassphraseRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PassphraseRequest::SecretKey {
                fingerprint,
                user_id: Some(uid),
            } => write!(f, "passphrase for the secret key {fingerprint} ({uid})"),
            PassphraseRequest::SecretKey { fingerprint, .. } => {
                write!(f, "passphrase for the secret key {fingerprint}")
            }
            PassphraseRequest::Message => f.write_str("passphrase of the encrypted backup"),
        }
    }
}

/// The verdict on one signature of the message. A signature that does not
/// verify is an error ([`PgpError::BadSignature`]), not a verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureCheck {
    /// Made by a valid signing key of `signer`, over exactly this data.
    Good {
        /// Fingerprint of the certificate (primary key).
        signer: String,
        /// Fingerprint of the (sub)key that signed.
        key: String,
    },
    /// Made by a key that is not among the caller's keys.
    UnknownKey {
        /// The issuer the signature names (key id or fingerprint).
        key_id: String,
    },
    /// Could not be checked: the key is known but not valid for signing
    /// (expired, revoked, weak), or the signature uses an unsupported
    /// algorithm.
    Unverifiable {
        /// The issuer the signature names.
        key_id: String,
        /// Why.
        reason: String,
    },
}

/// Every signature check of a message, once it was read to the end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verification {
    /// One per signature, in message order; empty if not signed.
    pub checks: Vec<SignatureCheck>,
}

impl Verification {
    /// Was the message signed at all?
    pub fn is_signed(&self) -> bool {
        !self.checks.is_empty()
    }

    /// Does a good signature by `key` (any of its subkeys) cover the data?
    pub fn is_signed_by(&self, key: &Key) -> bool {
        let fingerprint = key.fingerprint();
        self.checks
            .iter()
            .any(|c| matches!(c, SignatureCheck::Good { signer, .. } if *signer == fingerprint))
    }
}

/// How far the source was read, and whether the source itself failed, for
/// errors that say where.
#[derive(Default)]
struct Progress {
    offset: AtomicU64,
    source_failed: AtomicBool,
}

/// The source, counted.
struct Counted<R> {
    inner: R,
    progress: Arc<Progress>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.progress.offset.fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.progress.source_failed.store(true, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }
}

/// Asked for passphrases; returns `None` to decline.
type PassphraseCallback<'a> = Box<dyn FnMut(&PassphraseRequest) -> Option<Password> + Send + 'a>;

/// A message being decrypted: read the plaintext, then
/// [`Decryptor::finish`].
pub struct Decryptor<'a> {
    inner: openpgp::parse::stream::Decryptor<'a, Helper<'a>>,
    progress: Arc<Progress>,
}

/// Starts decrypting `source` with the caller's `keys` (secret halves
/// used to decrypt, public halves to check signatures) and `passphrase`
/// for protected keys or passphrase-encrypted messages. The session key is
/// found here, so a wrong passphrase or a missing key fails at once.
pub fn decrypt<'a, R, F>(source: R, keys: &'a [Key], passphrase: F) -> Result<Decryptor<'a>, PgpError>
where
    R: Read + Send + Sync + 'a,
    F: FnMut(&PassphraseRequest) -> Option<Password> + Send + 'a,
{
    Decryptor::with_lookahead(source, keys, passphrase, DEFAULT_LOOKAHEAD)
}

impl<'a> Decryptor<'a> {
    /// [`decrypt`] with a look-ahead of `lookahead` bytes instead of
    /// [`DEFAULT_LOOKAHEAD`].
    pub fn with_lookahead<R, F>(
        source: R,
        keys: &'a [Key],
        passphrase: F,
        lookahead: usize,
    ) -> Result<Decryptor<'a>, PgpError>
    where
        R: Read + Send + Sync + 'a,
        F: FnMut(&PassphraseRequest) -> Option<Password> + Send + 'a,
    {
        let mut source = source;
        let progress = Arc::new(Progress::default());
        let frame = read_frame(&mut source)?;
        let counted = Counted {
            inner: io::Cursor::new(frame).chain(source),
            progress: Arc::clone(&progress),
        };
        let helper = Helper {
            keys,
            passphrase: Box::new(passphrase),
            verification: Verification::default(),
            decrypted: false,
        };
        let inner = DecryptorBuilder::from_reader(counted)
            .map_err(|e| classify_anyhow(e, &progress))?
            .buffer_size(lookahead)
            .with_policy(&POLICY, None, helper)
            .map_err(|e| classify_anyhow(e, &progress))?;
        Ok(Decryptor { inner, progress })
    }

    /// Reads what is left (so the MDC and signatures are checked even if
    /// the caller stopped early) and returns the signatures' verdicts.
    pub fn finish(mut self) -> Result<Verification, PgpError> {
        io::copy(&mut self, &mut io::sink()).map_err(PgpError::from_io)?;
        if !self.inner.message_processed() {
            return Err(PgpError::Corrupt {
                offset: self.progress.offset.load(Ordering::Relaxed),
                reason: "the message does not end properly".into(),
            });
        }
        Ok(self.inner.into_helper().verification)
    }
}

impl Read for Decryptor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner
            .read(buf)
            .map_err(|e| classify_io(e, &self.progress).into_io())
    }
}

/// Reads the first bytes of the message until [`framing::check`] decides
/// (at most [`framing::MAX_FRAME`] and one read more); returns them, to be
/// read again by sequoia.
fn read_frame<R: Read>(source: &mut R) -> Result<Vec<u8>, PgpError> {
    let mut frame = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = match source.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(PgpError::Read {
                    offset: frame.len() as u64,
                    source,
                });
            }
        };
        frame.extend_from_slice(&chunk[..n]);
        let corrupt = |reason: String| PgpError::Corrupt {
            offset: frame.len() as u64,
            reason,
        };
        match framing::check(&frame, n == 0) {
            Frame::Good => return Ok(frame),
            Frame::NotEncrypted => return Err(PgpError::NotEncrypted),
            Frame::Bad(reason) => return Err(corrupt(reason)),
            Frame::NeedMore if frame.len() > framing::MAX_FRAME => {
                return Err(corrupt(format!(
                    "more than {} bytes of key packets",
                    framing::MAX_FRAME
                )));
            }
            Frame::NeedMore => {}
        }
    }
}

/// Our error if the helper raised one, else what went wrong reading.
fn classify_anyhow(e: openpgp::anyhow::Error, progress: &Progress) -> PgpError {
    match e.downcast::<PgpError>() {
        Ok(ours) => ours,
        Err(e) => match e.downcast::<io::Error>() {
            Ok(io) => classify_io(io, progress),
            Err(e) => PgpError::Corrupt {
                offset: progress.offset.load(Ordering::Relaxed),
                reason: openpgp_text(&e),
            },
        },
    }
}

fn classify_io(e: io::Error, progress: &Progress) -> PgpError {
    let offset = progress.offset.load(Ordering::Relaxed);
    if progress.source_failed.load(Ordering::Relaxed) {
        return PgpError::Read { offset, source: e };
    }
    if e.get_ref().is_some_and(|inner| inner.is::<PgpError>()) {
        return PgpError::from_io(e);
    }
    let reason = match e.kind() {
        io::ErrorKind::UnexpectedEof => format!("it ends too early ({e})"),
        _ => e.to_string(),
    };
    PgpError::Corrupt { offset, reason }
}

struct Helper<'a> {
    keys: &'a [Key],
    passphrase: PassphraseCallback<'a>,
    verification: Verification,
    /// Set at the first encryption layer: a second one (nested
    /// encryption, which GnuPG never writes) is refused before sequoia
    /// decrypts it, see [`framing`].
    decrypted: bool,
}

impl Helper<'_> {
    /// Tries every secret (sub)key of `key` that `recipient` names (all of
    /// them for a hidden recipient) on `pkesk`.
    fn try_key(
        &mut self,
        key: &Key,
        pkesk: &PKESK,
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
        unlocked: &mut Vec<(String, Key)>,
    ) -> Result<bool, PgpError> {
        let recipient = pkesk.recipient();
        let names_it =
            |handle: KeyHandle| recipient.as_ref().is_none_or(|r| handle.aliases(r));
        if !key.cert().keys().any(|ka| names_it(ka.key().key_handle()) && usable_secret(ka.key())) {
            return Ok(false);
        }
        let fingerprint = key.fingerprint();
        let unlocked_key = match unlocked.iter().find(|(f, _)| *f == fingerprint) {
            Some((_, k)) => k.clone(),
            None if key.is_locked() => {
                let request = PassphraseRequest::SecretKey {
                    fingerprint: fingerprint.clone(),
                    user_id: key.user_ids().into_iter().next(),
                };
                let passphrase = (self.passphrase)(&request).ok_or_else(|| key.passphrase_needed())?;
                let k = key.unlocked(&passphrase)?;
                unlocked.push((fingerprint, k.clone()));
                k
            }
            None => key.clone(),
        };
        for ka in unlocked_key.cert().keys().secret() {
            if !names_it(ka.key().key_handle()) {
                continue;
            }
            let Ok(mut pair) = ka.key().clone().into_keypair() else {
                continue;
            };
            if let Some((algo, session_key)) = pkesk.decrypt(&mut pair, sym_algo)
                && decrypt(algo, &session_key)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl VerificationHelper for Helper<'_> {
    fn get_certs(&mut self, ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(self
            .keys
            .iter()
            .filter(|k| {
                k.cert()
                    .keys()
                    .any(|ka| ids.iter().any(|id| ka.key().key_handle().aliases(id)))
            })
            .map(|k| k.cert().clone())
            .collect())
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        let mut encrypted = false;
        for layer in structure {
            match layer {
                MessageLayer::Encryption { .. } => encrypted = true,
                MessageLayer::Compression { .. } => {}
                MessageLayer::SignatureGroup { results } => {
                    for result in results {
                        self.verification.checks.push(signature_check(result)?);
                    }
                }
            }
        }
        if encrypted {
            Ok(())
        } else {
            Err(PgpError::NotEncrypted.into())
        }
    }
}

/// One signature's verdict; a signature that fails the check is an error.
fn signature_check(
    result: Result<openpgp::parse::stream::GoodChecksum<'_>, VerificationError<'_>>,
) -> Result<SignatureCheck, PgpError> {
    let issuer = |sig: &openpgp::packet::Signature| {
        sig.get_issuers()
            .first()
            .map_or_else(|| "(none named)".to_owned(), KeyHandle::to_hex)
    };
    Ok(match result {
        Ok(good) => SignatureCheck::Good {
            signer: good.ka.cert().fingerprint().to_hex(),
            key: good.ka.key().fingerprint().to_hex(),
        },
        Err(VerificationError::MissingKey { sig }) => SignatureCheck::UnknownKey {
            key_id: issuer(sig),
        },
        Err(VerificationError::BadSignature { sig, .. }) => {
            return Err(PgpError::BadSignature {
                key_id: issuer(sig),
            });
        }
        Err(VerificationError::MalformedSignature { sig, error }) => {
            return Err(PgpError::BadSignature {
                key_id: format!("{} (malformed: {})", issuer(sig), openpgp_text(&error)),
            });
        }
        Err(VerificationError::UnboundKey { sig, error, .. })
        | Err(VerificationError::BadKey { sig, error, .. }) => SignatureCheck::Unverifiable {
            key_id: issuer(sig),
            reason: openpgp_text(&error),
        },
        Err(other) => SignatureCheck::Unverifiable {
            key_id: "(unknown)".into(),
            reason: other.to_string(),
        },
    })
}

impl DecryptionHelper for Helper<'_> {
    fn decrypt(
        &mut self,
        pkesks: &[PKESK],
        skesks: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        if self.decrypted {
            return Err(openpgp::Error::MalformedMessage(
                "an encrypted message inside the encrypted message".into(),
            )
            .into());
        }
        self.decrypted = true;
        // The first key-related failure (wrong or missing passphrase) is
        // what the user hears if nothing else works.
        let mut failure: Option<PgpError> = None;
        let mut unlocked: Vec<(String, Key)> = Vec::new();
        let keys = self.keys;
        for pkesk in pkesks {
            for key in keys {
                match self.try_key(key, pkesk, sym_algo, decrypt, &mut unlocked) {
                    Ok(true) => return Ok(Some(key.cert().clone())),
                    Ok(false) => {}
                    Err(e) => {
                        failure.get_or_insert(e);
                    }
                }
            }
        }
        if !skesks.is_empty() {
            let Some(passphrase) = (self.passphrase)(&PassphraseRequest::Message) else {
                return Err(failure
                    .unwrap_or(PgpError::PassphraseNeeded {
                        what: "the passphrase-encrypted message".into(),
                    })
                    .into());
            };
            for skesk in skesks {
                // A wrong passphrase usually yields a session key that
                // fails `decrypt`'s quick check, sometimes an error.
                if let Ok((algo, session_key)) = skesk.decrypt(&passphrase)
                    && decrypt(algo, &session_key)
                {
                    return Ok(None);
                }
            }
            return Err(failure
                .unwrap_or(PgpError::WrongPassphrase {
                    what: "the passphrase-encrypted message".into(),
                })
                .into());
        }
        if let Some(failure) = failure {
            return Err(failure.into());
        }
        if pkesks.is_empty() {
            return Err(openpgp::Error::MalformedMessage(
                "encrypted data without a session key packet".into(),
            )
            .into());
        }
        let key_ids = pkesks
            .iter()
            .map(|p| {
                p.recipient()
                    .map_or_else(|| "0000000000000000 (hidden)".to_owned(), |r| r.to_hex())
            })
            .collect();
        Err(PgpError::NoSecretKey { key_ids }.into())
    }
}
