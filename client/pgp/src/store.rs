//! The client's key store: one directory (`~/.config/coffer/keys/` by the
//! caller's choice), mode 0700, one file per key, `FINGERPRINT.asc`, mode
//! 0600, holding the armored key as `gpg --export-secret-keys --armor`
//! writes it (or the public key alone, for a recipient whose secret is
//! elsewhere).
//!
//! Imported secrets stay encrypted at rest exactly as GnuPG exported them,
//! under the user's own passphrase: the store never holds a secret in the
//! clear that GnuPG did not, the passphrase duplicity reads from
//! `PASSPHRASE` keeps working, and each file can go back into GnuPG with
//! `gpg --import` unchanged (no lock-in). Re-encrypting would add a second
//! passphrase to remember and gain nothing: GnuPG's S2K (iterated and
//! salted, AES) is what this store would use too. A key exported without
//! protection is protected on import when a passphrase is given, and kept
//! as it came otherwise.
//!
//! Files are written whole (temporary file created 0600, fsync, rename,
//! fsync of the directory), so a crash never leaves half a key; modes are
//! set at creation, never widened afterwards, and a store another user can
//! open is refused rather than used.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use openpgp::cert::{CertBuilder, CipherSuite};
use openpgp::packet::key::SecretKeyMaterial;
use openpgp::packet::Packet;
use openpgp::types::{Features, KeyFlags};
use openpgp::cert::prelude::*;
use sequoia_openpgp as openpgp;

use crate::error::openpgp_text;
use crate::key::usable_secret;
use crate::{Key, KeyInfo, KeyQuery, Password, PgpError};

/// Largest key file read; a real key with many signatures is a few KiB.
const MAX_KEY_FILE: u64 = 4 << 20;

/// Keys in a directory, loaded when opened.
#[derive(Debug)]
pub struct KeyStore {
    dir: PathBuf,
    keys: Vec<Key>,
}

impl KeyStore {
    /// Opens the store in `dir`, creating it (and missing parents) with
    /// mode 0700. Refuses a directory or key file other users can open.
    pub fn open(dir: &Path) -> Result<KeyStore, PgpError> {
        let store_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PgpError::Store { path, source }
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(store_err(dir))?;
        check_mode(dir, 0o700)?;
        let mut keys = Vec::new();
        let mut names: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(store_err(dir))?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(store_err(dir))?;
        names.sort();
        for path in names {
            let is_key = path.extension().is_some_and(|e| e == "asc")
                && !path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if !is_key {
                continue;
            }
            check_mode(&path, 0o600)?;
            let file = File::open(&path).map_err(store_err(&path))?;
            let size = file.metadata().map_err(store_err(&path))?.len();
            if size > MAX_KEY_FILE {
                return Err(PgpError::InvalidKey {
                    what: path.display().to_string(),
                    reason: format!("{size} bytes, more than any key needs"),
                });
            }
            let bytes = fs::read(&path).map_err(store_err(&path))?;
            keys.push(Key::parse(&bytes, &path.display().to_string())?);
        }
        Ok(KeyStore {
            dir: dir.to_path_buf(),
            keys,
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every key, in fingerprint order (for [`crate::decrypt`]).
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// What `key list` shows, in fingerprint order.
    pub fn list(&self) -> Vec<KeyInfo> {
        self.keys.iter().map(Key::info).collect()
    }

    /// The one key a fingerprint or key id (of its primary key or a
    /// subkey) names, as `--encrypt-key` and `--sign-key` take them.
    pub fn find(&self, query: &str) -> Result<&Key, PgpError> {
        let parsed = KeyQuery::parse(query)?;
        let found: Vec<&Key> = self.keys.iter().filter(|k| k.matches(&parsed)).collect();
        match found.as_slice() {
            [key] => Ok(key),
            [] => Err(PgpError::KeyNotFound {
                query: query.trim().to_owned(),
            }),
            many => Err(PgpError::AmbiguousKey {
                query: query.trim().to_owned(),
                candidates: many.iter().map(|k| k.fingerprint()).collect(),
            }),
        }
    }

    /// Imports one key (armored or binary; GnuPG's `--export-secret-keys
    /// --armor` or `--export --armor`). Protected secrets must open with
    /// `passphrase` (checked now, so a typo is caught at import, not at
    /// the first restore) and are stored as they are; unprotected secrets
    /// are protected with `passphrase` if one is given. A key already in the
    /// store is merged with the import (new signatures, subkeys, secrets).
    pub fn import(
        &mut self,
        bytes: &[u8],
        passphrase: Option<&Password>,
    ) -> Result<KeyInfo, PgpError> {
        let mut key = Key::from_bytes(bytes)?;
        if key.is_locked() {
            let passphrase = passphrase.ok_or_else(|| key.passphrase_needed())?;
            key.unlocked(passphrase)?;
        } else if let Some(passphrase) = passphrase.filter(|p| !p.map(|b| b.is_empty())) {
            key = protect(&key, passphrase)?;
        }
        if key.cert().with_policy(&crate::key::POLICY, None).is_err() {
            return Err(PgpError::InvalidKey {
                what: "the imported key".into(),
                reason: "no valid self-signature (or one this client refuses, such as SHA-1)"
                    .into(),
            });
        }
        let fingerprint = key.fingerprint();
        if let Some(old) = self.keys.iter().find(|k| k.fingerprint() == fingerprint) {
            let merged = old
                .cert()
                .clone()
                .merge_public_and_secret(key.cert().clone())
                .map_err(|e| PgpError::InvalidKey {
                    what: "the imported key".into(),
                    reason: openpgp_text(&e),
                })?;
            key = Key::from_cert(merged);
        }
        self.save(key)
    }

    /// Makes a key as a modern `gpg --quick-gen-key NAME` does: an ed25519
    /// primary key for certifying and signing and a cv25519 subkey for
    /// encryption, both created at `now`, without expiry (an expired key
    /// would stop backups when nobody is looking; set one with GnuPG if
    /// wanted). Secrets are protected by `passphrase` when given. Its
    /// features advertise SEIPD v1 only, so other OpenPGP implementations
    /// encrypting to it write what GnuPG 2.2 can read too.
    pub fn generate(
        &mut self,
        name: &str,
        passphrase: Option<&Password>,
        now: SystemTime,
    ) -> Result<KeyInfo, PgpError> {
        if name.trim().is_empty() {
            return Err(PgpError::InvalidInput("the key's name is empty".into()));
        }
        let sq = |e: openpgp::anyhow::Error| PgpError::OpenPgp(openpgp_text(&e));
        let builder = CertBuilder::new()
            .set_cipher_suite(CipherSuite::Cv25519)
            .set_creation_time(now)
            .set_validity_period(None)
            .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
            .add_subkey(
                KeyFlags::empty()
                    .set_transport_encryption()
                    .set_storage_encryption(),
                None,
                None,
            )
            .add_userid(name)
            .set_features(Features::empty().set_seipdv1())
            .map_err(sq)?
            .set_password(passphrase.filter(|p| !p.map(|b| b.is_empty())).cloned());
        let (cert, _revocation) = builder.generate().map_err(sq)?;
        self.save(Key::from_cert(cert))
    }

    /// Writes `key` to its file (whole, 0600) and into the loaded list.
    fn save(&mut self, key: Key) -> Result<KeyInfo, PgpError> {
        let fingerprint = key.fingerprint();
        let bytes = key.secret_armored()?;
        let path = self.dir.join(format!("{fingerprint}.asc"));
        let temp = self.dir.join(format!(".{fingerprint}.asc.tmp"));
        let store_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PgpError::Store { path, source }
        };
        // A temporary left by a crash is ours to replace.
        match fs::remove_file(&temp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(store_err(&temp)(e)),
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(store_err(&temp))?;
        file.write_all(&bytes).map_err(store_err(&temp))?;
        file.sync_all().map_err(store_err(&temp))?;
        drop(file);
        fs::rename(&temp, &path).map_err(store_err(&path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(store_err(&self.dir))?;
        let info = key.info();
        match self.keys.iter_mut().find(|k| k.fingerprint() == fingerprint) {
            Some(slot) => *slot = key,
            None => {
                self.keys.push(key);
                self.keys.sort_by_key(Key::fingerprint);
            }
        }
        Ok(info)
    }
}

/// Refuses a path with group or other permission bits.
fn check_mode(path: &Path, wanted: u32) -> Result<(), PgpError> {
    let meta = fs::metadata(path).map_err(|source| PgpError::Store {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(PgpError::UnsafeStore {
            path: path.to_path_buf(),
            mode,
            wanted,
        });
    }
    Ok(())
}

/// Protects every unprotected secret of `key` with `passphrase` (sequoia's
/// default for v4 keys: iterated and salted SHA-256 S2K, AES-256, which
/// GnuPG 2.2 imports).
fn protect(key: &Key, passphrase: &Password) -> Result<Key, PgpError> {
    let sq = |e: openpgp::anyhow::Error| PgpError::OpenPgp(openpgp_text(&e));
    let mut packets: Vec<Packet> = Vec::new();
    for ka in key.cert().keys() {
        if !matches!(ka.key().optional_secret(), Some(SecretKeyMaterial::Unencrypted(_)))
            || !usable_secret(ka.key())
        {
            continue;
        }
        let secret = ka
            .key()
            .clone()
            .parts_into_secret()
            .and_then(|k| k.encrypt_secret(passphrase))
            .map_err(sq)?;
        packets.push(if ka.primary() {
            secret.role_into_primary().into()
        } else {
            secret.role_into_subordinate().into()
        });
    }
    let (cert, _) = key.cert().clone().insert_packets(packets).map_err(sq)?;
    Ok(Key::from_cert(cert))
}
