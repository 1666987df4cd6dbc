//! OpenPGP for `coffer-client`, as duplicity uses GnuPG, so that stock
//! duplicity (through `gpg`) reads every volume the client writes and the
//! client reads every volume duplicity wrote.
//!
//! - [`KeyStore`]: the client's keys in a directory of its own (0700, files
//!   0600): [`KeyStore::import`] of a GnuPG export, [`KeyStore::generate`],
//!   [`KeyStore::list`], [`KeyStore::find`] by fingerprint or key id as
//!   duplicity's `--encrypt-key` takes them.
//! - [`Encryptor`]: a streaming `Write` that encrypts to keys and/or a
//!   passphrase (`gpg --encrypt`, `gpg --symmetric`), optionally signed
//!   (`gpg --sign --encrypt`): SEIPD v1 with MDC, the packet GnuPG 2.2
//!   (Debian 12) reads, whatever the recipient keys advertise.
//! - [`Decryptor`]: a streaming `Read` of a message GnuPG or the client
//!   wrote, with the signature's verdict at the end ([`Decryptor::finish`]).
//!
//! The core is pure: bytes in, bytes out, no global state, no network; only
//! the key store touches files, and only its own directory. Messages read
//! back from a server are hostile until their integrity check passed: the
//! decryptor never panics on them and holds at most a bounded look-ahead.

mod decrypt;
mod encrypt;
mod error;
mod framing;
mod key;
mod query;
mod store;

pub use decrypt::{
    DEFAULT_LOOKAHEAD, Decryptor, PassphraseRequest, SignatureCheck, Verification, decrypt,
};
pub use encrypt::{Cipher, Compression, EncryptOptions, Encryptor};
pub use error::PgpError;
pub use key::{Capabilities, Key, KeyInfo, SigningKey};
pub use query::KeyQuery;
pub use sequoia_openpgp::crypto::Password;
pub use store::KeyStore;
