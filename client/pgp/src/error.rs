//! Why a key could not be stored or found, or a message could not be
//! encrypted or decrypted.
//!
//! Error policy: one enum for the crate, because every caller does the same
//! with it: stop that volume or that command and tell the user one line they
//! can act on (which key, which file, how far into the message). Errors from
//! sequoia are carried as text, so sequoia's `anyhow` errors stay out of this
//! crate's signatures. Errors met while streaming travel inside an
//! `io::Error` (that is what `Read` and `Write` can return);
//! [`PgpError::from_io`] gets them back out.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong in this crate.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PgpError {
    /// A passphrase was given but does not unlock the secret key or the
    /// passphrase-encrypted message.
    #[error("wrong passphrase for {what}")]
    WrongPassphrase {
        /// "the secret key FPR (user id)" or "the passphrase-encrypted message".
        what: String,
    },

    /// A passphrase is needed and none was given (the callback declined).
    #[error("a passphrase is needed for {what} and none was given")]
    PassphraseNeeded {
        /// What the passphrase is for, as in [`PgpError::WrongPassphrase`].
        what: String,
    },

    /// The message is encrypted only to keys whose secret half is not in the
    /// store.
    #[error(
        "no secret key for this message: it is encrypted to key id {} (import the secret key with `coffer-client key import`)",
        key_ids.join(", ")
    )]
    NoSecretKey {
        /// The recipients' key ids (16 hex digits; all zeros for a hidden
        /// recipient).
        key_ids: Vec<String>,
    },

    /// The message is well-formed OpenPGP but not encrypted (plain or only
    /// signed): a volume must be encrypted, else a server could swap it.
    #[error("the message is not encrypted (a plain OpenPGP message is refused: it could come from anyone)")]
    NotEncrypted,

    /// The bytes are not a well-formed encrypted message: cut short,
    /// changed (the integrity check failed), or not OpenPGP at all.
    #[error("the message is corrupted or truncated (after reading {offset} bytes of it): {reason}")]
    Corrupt {
        /// Bytes of the message read from the source when it failed
        /// (sequoia reads ahead, so the damage is at or before this).
        offset: u64,
        /// What the parser said.
        reason: String,
    },

    /// A signature in the message does not verify: the signed data or the
    /// signature was changed, or it was made by another key with this id.
    #[error("bad signature by key {key_id}: the data or the signature was changed after signing")]
    BadSignature {
        /// Key id (or fingerprint) the signature names.
        key_id: String,
    },

    /// Reading the message from its source failed (not a format problem).
    #[error("reading the message failed after {offset} bytes: {source}")]
    Read {
        /// Bytes read successfully before the failure.
        offset: u64,
        /// The source's error.
        source: io::Error,
    },

    /// Writing the encrypted message to its sink failed.
    #[error("writing the encrypted message failed: {0}")]
    Write(#[source] io::Error),

    /// A file or directory of the key store could not be read or written.
    #[error("key store {}: {source}", path.display())]
    Store {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },

    /// A key store directory or file that other users may open.
    #[error(
        "key store {}: mode {mode:03o} lets other users in; run chmod {wanted:o} on it",
        path.display()
    )]
    UnsafeStore {
        /// The directory or file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// The mode it should have (0700 for the directory, 0600 for files).
        wanted: u32,
    },

    /// Bytes that should hold a key (an import, or a file of the store) do
    /// not.
    #[error("{what}: not a usable OpenPGP key: {reason}")]
    InvalidKey {
        /// The file, or "the imported key".
        what: String,
        /// What is wrong.
        reason: String,
    },

    /// A key query that is not a fingerprint or key id.
    #[error("{query:?} is not a key id: give 8, 16 or 40 hexadecimal digits (short id, long id, fingerprint)")]
    BadKeyQuery {
        /// What was asked for.
        query: String,
    },

    /// No key in the store matches the query.
    #[error("no key {query} in the key store (see `coffer-client key list`)")]
    KeyNotFound {
        /// What was asked for.
        query: String,
    },

    /// A short or long key id that matches more than one key.
    #[error("key id {query} matches more than one key ({}): give the full fingerprint", candidates.join(", "))]
    AmbiguousKey {
        /// What was asked for.
        query: String,
        /// Fingerprints of the keys it matches.
        candidates: Vec<String>,
    },

    /// The key cannot encrypt (no valid, unexpired, unrevoked encryption
    /// subkey).
    #[error("key {fingerprint} has no usable encryption key")]
    NoEncryptionKey {
        /// The key's fingerprint.
        fingerprint: String,
    },

    /// The key cannot sign: no valid signing key, or its secret half is not
    /// in the store.
    #[error("key {fingerprint} has no usable secret signing key")]
    NoSigningKey {
        /// The key's fingerprint.
        fingerprint: String,
    },

    /// Encryption asked for without a recipient and without a passphrase.
    #[error("nothing to encrypt to: give a recipient key or a passphrase")]
    NoRecipient,

    /// An argument this crate refuses (an empty name or passphrase).
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// Making a message or a key failed inside sequoia.
    #[error("OpenPGP operation failed: {0}")]
    OpenPgp(String),
}

impl PgpError {
    /// The error behind an `io::Error` from [`crate::Encryptor`]'s `Write` or
    /// [`crate::Decryptor`]'s `Read`: this crate's own error when it carries
    /// one, else a [`PgpError::Write`].
    pub fn from_io(error: io::Error) -> PgpError {
        match error.get_ref().is_some_and(|e| e.is::<PgpError>()) {
            true => match error.into_inner().map(|e| e.downcast::<PgpError>()) {
                Some(Ok(e)) => *e,
                Some(Err(e)) => PgpError::Write(io::Error::other(e)),
                None => PgpError::OpenPgp("an error without its cause".into()),
            },
            false => PgpError::Write(error),
        }
    }

    /// Wraps the error for a `Read` or `Write` implementation.
    pub(crate) fn into_io(self) -> io::Error {
        io::Error::other(self)
    }
}

/// Text of a sequoia error with its causes (sequoia's errors are `anyhow`).
pub(crate) fn openpgp_text(e: &sequoia_openpgp::anyhow::Error) -> String {
    format!("{e:#}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_survive_a_trip_through_io_error() {
        let e = PgpError::BadSignature {
            key_id: "0123456789ABCDEF".into(),
        }
        .into_io();
        assert!(matches!(PgpError::from_io(e), PgpError::BadSignature { key_id } if key_id == "0123456789ABCDEF"));
        let plain = io::Error::new(io::ErrorKind::BrokenPipe, "pipe");
        assert!(matches!(PgpError::from_io(plain), PgpError::Write(e) if e.kind() == io::ErrorKind::BrokenPipe));
    }

    #[test]
    fn messages_are_one_line_and_name_what_failed() {
        let all = [
            PgpError::WrongPassphrase { what: "the secret key ABCD".into() },
            PgpError::NoSecretKey { key_ids: vec!["1111111111111111".into(), "2222222222222222".into()] },
            PgpError::Corrupt { offset: 4096, reason: "MDC check failed".into() },
            PgpError::BadSignature { key_id: "3333333333333333".into() },
        ];
        for e in &all {
            let text = e.to_string();
            assert!(!text.contains('\n'), "{text}");
        }
        assert!(all[1].to_string().contains("1111111111111111, 2222222222222222"));
        assert!(all[2].to_string().contains("4096"));
    }
}
