//! Why a bundle was refused or could not be made.
//!
//! Error policy: one enum for the crate, because every caller does the same
//! thing with it (refuse the update or the import and tell a person why).
//! Each message reads well after "update refused: " or "import failed: ",
//! names the file or key involved, and says what this box expected, so the
//! operator can act without reading logs. Errors from sequoia are carried as
//! text: callers never need to match on OpenPGP internals, and sequoia's
//! `anyhow` errors stay out of this crate's signatures.

use thiserror::Error;

/// Everything that can go wrong making or opening a bundle.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BundleError {
    /// The input is bigger than this box accepts; checked before parsing.
    #[error("the bundle is too large ({size} bytes; at most {max} bytes are accepted)")]
    TooLarge {
        /// Size of the input (or of the content it would produce).
        size: u64,
        /// The limit.
        max: u64,
    },

    /// Not a well-formed update bundle at the OpenPGP level: cut short,
    /// bytes flipped, extra bytes after the end, armored, compressed,
    /// encrypted, or not OpenPGP at all.
    #[error("the bundle is truncated or corrupt: {0}")]
    Corrupt(String),

    /// A well-formed OpenPGP message without any signature.
    #[error("the bundle is not signed")]
    NotSigned,

    /// Every signature was made by a key other than the update key.
    #[error(
        "signed by an unknown key (fingerprint {found}); this box accepts updates signed by {expected}"
    )]
    UnknownSigner {
        /// Fingerprint (or key ID) the signature names.
        found: String,
        /// Fingerprint of the update certificate this box trusts.
        expected: String,
    },

    /// The signature names the update key but does not verify: the signed
    /// content was changed, or the signature is damaged.
    #[error("bad signature from the update key {signer}: {reason}")]
    BadSignature {
        /// Fingerprint of the key the signature claims.
        signer: String,
        /// What sequoia said.
        reason: String,
    },

    /// The signature is from the update certificate, but the key that made
    /// it is not valid at verification time (revoked, expired, not a
    /// signing key, or the signature is dated in the future: check the
    /// box's clock).
    #[error("the update key {signer} cannot be used to sign updates: {reason}")]
    SignerNotValid {
        /// Fingerprint of the certificate or key.
        signer: String,
        /// What sequoia said.
        reason: String,
    },

    /// The signed content is newer (or older) than this firmware understands.
    #[error("unknown bundle format {found}; this box understands format {supported}")]
    UnknownFormat {
        /// The `format` field of the metadata.
        found: u64,
        /// The format this crate reads.
        supported: u64,
    },

    /// The signed content is not a valid update payload (bad magic, bad
    /// JSON, missing fields, bad names or hashes, bytes left over).
    #[error("the bundle content is invalid: {0}")]
    InvalidContent(String),

    /// The metadata lists the same file twice.
    #[error("file {0} appears more than once")]
    DuplicateFile(String),

    /// A file the caller requires is not in the bundle.
    #[error("file {0} is missing from the bundle")]
    MissingFile(String),

    /// A file's content is not as long as the metadata says.
    #[error(
        "file {name}: size mismatch (metadata says {expected} bytes, the bundle holds {actual})"
    )]
    SizeMismatch {
        /// File name.
        name: String,
        /// Size from the metadata.
        expected: u64,
        /// Bytes actually available for it.
        actual: u64,
    },

    /// A file's content does not hash to the sha256 in the metadata.
    #[error("file {0}: sha256 mismatch")]
    HashMismatch(String),

    /// The bundle is for other hardware.
    #[error("the bundle is for board {bundle}, this box is {this}")]
    WrongBoard {
        /// Board named in the bundle.
        bundle: String,
        /// Board of this box.
        this: String,
    },

    /// The bundle holds an older firmware than the running slot, and no
    /// downgrade was allowed.
    #[error(
        "the bundle holds firmware {bundle}, older than the running {running} (an older release may bring back flaws fixed since); to install it anyway, run `update apply --allow-downgrade`"
    )]
    Downgrade {
        /// Version in the bundle.
        bundle: String,
        /// Version of the running slot.
        running: String,
    },

    /// The bundle's or the running slot's version is not a semantic version,
    /// so it cannot be told whether the bundle is older.
    #[error(
        "cannot tell whether the bundle's firmware {bundle} is older than the running {running} (both must be versions like 1.4.0); to install it anyway, run `update apply --allow-downgrade`"
    )]
    IncomparableVersion {
        /// Version in the bundle.
        bundle: String,
        /// Version of the running slot.
        running: String,
    },

    /// Input to [`crate::sign_update`] or [`crate::generate_update_key`]
    /// that would make a bundle the box refuses.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A key or certificate could not be parsed or used.
    #[error("invalid key or certificate: {0}")]
    InvalidKey(String),

    /// The secret key has no usable signing (sub)key with secret material.
    #[error("the key {0} has no usable secret signing key")]
    NoSigningKey(String),

    /// The certificate has no usable encryption (sub)key.
    #[error("the certificate {0} has no usable encryption key")]
    NoEncryptionKey(String),

    /// No passphrase-encrypted session key in the message opened with the
    /// given passphrase.
    #[error("wrong passphrase")]
    WrongPassphrase,

    /// The message is OpenPGP, but not encrypted with a passphrase (plain,
    /// or encrypted only to keys).
    #[error("the file is not encrypted with a passphrase")]
    NotPassphraseEncrypted,

    /// The encrypted message is cut short, damaged or was changed: the
    /// integrity check (MDC or AEAD tag) failed or the packets do not parse.
    #[error("the encrypted file is truncated, corrupt or has been tampered with: {0}")]
    Tampered(String),

    /// Making a message failed inside sequoia (should not happen with the
    /// keys this crate makes).
    #[error("OpenPGP operation failed: {0}")]
    OpenPgp(String),
}
