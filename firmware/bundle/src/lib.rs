//! OpenPGP for the appliance: signed firmware update bundles and encrypted
//! state bundles (config export/import).
//!
//! - [`update`]: a build host signs an update ([`sign_update`]) with a key
//!   from [`generate_update_key`]; the box opens it ([`open_update`]) and gets
//!   a [`VerifiedUpdate`] only if the whole bundle verified against the one
//!   update certificate it trusts. Nothing unverified is ever handed out.
//! - [`version`]: firmware versions and the downgrade rule ([`check_version`]).
//! - [`state`]: a state export is encrypted to a passphrase
//!   ([`encrypt_with_passphrase`]) or to a certificate ([`encrypt_to_cert`]),
//!   as plain RFC 4880 messages (SEIPDv1 with MDC) that GnuPG 2.2 decrypts.
//!
//! Crypto is sequoia-openpgp with its pure-Rust backend, so the firmware
//! stays one static musl binary without nettle or OpenSSL. This crate never
//! touches files, the clock (except through sequoia's "now" when verifying)
//! or the network: bytes in, bytes out.

mod error;
pub mod state;
#[cfg(test)]
mod test_gpg;
pub mod update;
pub mod version;

pub use error::BundleError;
pub use state::{
    MAX_STATE_SIZE, decrypt_with_passphrase, encrypt_to_cert, encrypt_with_passphrase,
    is_openpgp_message,
};
pub use update::{
    FORMAT, FileMeta, MAX_BUNDLE_SIZE, MAX_FILES, UpdateInfo, UpdateMeta, VerifiedUpdate,
    generate_update_key, open_update, open_update_at, sign_update,
};
pub use version::{FirmwareVersion, VersionChange, check_version};
