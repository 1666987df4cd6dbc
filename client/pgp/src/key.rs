//! One OpenPGP key (a certificate, with or without its secret half) as the
//! client sees it: what it can do, whether its secret is here, whether a
//! query names it, and unlocking its secret parts with a passphrase.
//!
//! Secret key material stays encrypted in a [`Key`] as it was stored;
//! [`Key::unlocked`] and [`Key::signing_key`] decrypt it in memory only, so
//! a caller that unlocks once can decrypt many volumes without running the
//! passphrase's key derivation for each.

use std::fmt;
use std::time::SystemTime;

use openpgp::Cert;
use openpgp::crypto::{KeyPair, Password};
use openpgp::packet::key::{PublicParts, SecretKeyMaterial};
use openpgp::packet::{Packet, key};
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::SerializeInto;
use openpgp::cert::prelude::*;
use sequoia_openpgp as openpgp;

use crate::error::openpgp_text;
use crate::{KeyQuery, PgpError};

/// The one policy: sequoia's standard policy (it refuses SHA-1 signatures
/// and weak keys, which GnuPG 2.2 no longer makes either).
pub(crate) static POLICY: StandardPolicy<'static> = StandardPolicy::new();

/// A certificate, possibly with (encrypted or plain) secret key material.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    cert: Cert,
}

/// What a key can do: the union over its valid, live, unrevoked keys, as
/// GnuPG's `[SCEA]` shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Can certify other keys (the primary key).
    pub certify: bool,
    /// Can sign data.
    pub sign: bool,
    /// Can be encrypted to (storage or transport).
    pub encrypt: bool,
    /// Can authenticate (SSH, for example).
    pub authenticate: bool,
}

impl fmt::Display for Capabilities {
    /// GnuPG's letters: `SCEA`, in that order, `-` when it can do nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let letters: String = [
            (self.sign, 'S'),
            (self.certify, 'C'),
            (self.encrypt, 'E'),
            (self.authenticate, 'A'),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, c)| *c)
        .collect();
        f.write_str(if letters.is_empty() { "-" } else { &letters })
    }
}

/// A key as `key list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// The primary key's fingerprint, upper-case hex without spaces.
    pub fingerprint: String,
    /// User ids, primary first (lossy UTF-8).
    pub user_ids: Vec<String>,
    /// What the key can do now.
    pub capabilities: Capabilities,
    /// Is the secret half of an encryption or signing key here (a GnuPG
    /// stub from `--export-secret-subkeys` does not count)?
    pub secret: bool,
    /// When the primary key was made.
    pub created: SystemTime,
}

/// A signing key with its secret unlocked in memory, ready for
/// [`crate::EncryptOptions::signer`].
#[derive(Clone)]
pub struct SigningKey {
    pair: KeyPair,
    fingerprint: String,
}

impl SigningKey {
    /// Fingerprint of the certificate the signing (sub)key belongs to.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub(crate) fn pair(&self) -> &KeyPair {
        &self.pair
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.fingerprint)
    }
}

impl Key {
    /// Parses exactly one key (armored or binary, public or secret).
    pub fn from_bytes(bytes: &[u8]) -> Result<Key, PgpError> {
        Key::parse(bytes, "the imported key")
    }

    pub(crate) fn parse(bytes: &[u8], what: &str) -> Result<Key, PgpError> {
        let invalid = |reason: String| PgpError::InvalidKey {
            what: what.to_owned(),
            reason,
        };
        let mut certs = openpgp::cert::CertParser::from_bytes(bytes)
            .map_err(|e| invalid(openpgp_text(&e)))?;
        let cert = match certs.next() {
            Some(Ok(cert)) => cert,
            Some(Err(e)) => return Err(invalid(openpgp_text(&e))),
            None => return Err(invalid("no key in it".into())),
        };
        if certs.next().is_some() {
            return Err(invalid(
                "it holds more than one key: export one at a time".into(),
            ));
        }
        Ok(Key { cert })
    }

    pub(crate) fn from_cert(cert: Cert) -> Key {
        Key { cert }
    }

    pub(crate) fn cert(&self) -> &Cert {
        &self.cert
    }

    /// The primary key's fingerprint, upper-case hex without spaces.
    pub fn fingerprint(&self) -> String {
        self.cert.fingerprint().to_hex()
    }

    /// User ids, primary (by policy) first.
    pub fn user_ids(&self) -> Vec<String> {
        let primary = self
            .cert
            .with_policy(&POLICY, None)
            .ok()
            .and_then(|vc| vc.primary_userid().ok())
            .map(|ua| ua.userid().clone());
        let mut ids: Vec<String> = primary
            .iter()
            .map(|u| String::from_utf8_lossy(u.value()).into_owned())
            .collect();
        for ua in self.cert.userids() {
            if Some(ua.userid()) != primary.as_ref() {
                ids.push(String::from_utf8_lossy(ua.userid().value()).into_owned());
            }
        }
        ids
    }

    /// How the key is named in messages: fingerprint and primary user id.
    pub(crate) fn describe(&self) -> String {
        match self.user_ids().first() {
            Some(uid) => format!("{} ({uid})", self.fingerprint()),
            None => self.fingerprint(),
        }
    }

    /// Everything `key list` shows.
    pub fn info(&self) -> KeyInfo {
        let mut caps = Capabilities::default();
        if let Ok(vc) = self.cert.with_policy(&POLICY, None) {
            for ka in vc.keys().alive().revoked(false) {
                caps.certify |= ka.for_certification();
                caps.sign |= ka.for_signing();
                caps.encrypt |= ka.for_storage_encryption() || ka.for_transport_encryption();
                caps.authenticate |= ka.for_authentication();
            }
        }
        let secret = self.cert.keys().any(|ka| {
            usable_secret(ka.key())
                && ka.with_policy(&POLICY, None).is_ok_and(|v| {
                    v.for_signing() || v.for_storage_encryption() || v.for_transport_encryption()
                })
        });
        KeyInfo {
            fingerprint: self.fingerprint(),
            user_ids: self.user_ids(),
            capabilities: caps,
            secret,
            created: self.cert.primary_key().key().creation_time(),
        }
    }

    /// Does the query name this key's primary key or one of its subkeys?
    pub fn matches(&self, query: &KeyQuery) -> bool {
        self.cert.keys().any(|ka| {
            query.matches(&ka.key().fingerprint().to_hex(), &ka.key().keyid().to_hex())
        })
    }

    /// The public half, armored, as `gpg --armor --export` writes it.
    pub fn public_armored(&self) -> Result<Vec<u8>, PgpError> {
        self.cert
            .armored()
            .to_vec()
            .map_err(|e| PgpError::OpenPgp(openpgp_text(&e)))
    }

    /// Public and secret halves, armored, as `gpg --armor
    /// --export-secret-keys` writes it (secrets as protected as they are
    /// here), for `gpg --import`.
    pub fn secret_armored(&self) -> Result<Vec<u8>, PgpError> {
        self.cert
            .as_tsk()
            .armored()
            .to_vec()
            .map_err(|e| PgpError::OpenPgp(openpgp_text(&e)))
    }

    /// Is any usable secret key material protected by a passphrase?
    pub fn is_locked(&self) -> bool {
        self.cert.keys().any(|ka| {
            matches!(ka.key().optional_secret(), Some(SecretKeyMaterial::Encrypted(e)) if e.s2k().is_supported())
        })
    }

    /// The same key with every protected secret decrypted in memory.
    /// Fails with [`PgpError::WrongPassphrase`] unless the passphrase opens
    /// all of them (GnuPG protects all of a key's parts with one).
    pub fn unlocked(&self, passphrase: &Password) -> Result<Key, PgpError> {
        let mut packets: Vec<Packet> = Vec::new();
        for ka in self.cert.keys() {
            let Some(SecretKeyMaterial::Encrypted(e)) = ka.key().optional_secret() else {
                continue;
            };
            if !e.s2k().is_supported() {
                continue;
            }
            let secret = ka
                .key()
                .clone()
                .parts_into_secret()
                .and_then(|k| k.decrypt_secret(passphrase))
                .map_err(|_| self.wrong_passphrase())?;
            packets.push(if ka.primary() {
                secret.role_into_primary().into()
            } else {
                secret.role_into_subordinate().into()
            });
        }
        if packets.is_empty() {
            return Ok(self.clone());
        }
        let (cert, _) = self
            .cert
            .clone()
            .insert_packets(packets)
            .map_err(|e| PgpError::OpenPgp(openpgp_text(&e)))?;
        Ok(Key { cert })
    }

    pub(crate) fn wrong_passphrase(&self) -> PgpError {
        PgpError::WrongPassphrase {
            what: format!("the secret key {}", self.describe()),
        }
    }

    pub(crate) fn passphrase_needed(&self) -> PgpError {
        PgpError::PassphraseNeeded {
            what: format!("the secret key {}", self.describe()),
        }
    }

    /// The key's valid signing (sub)key, unlocked with `passphrase` when
    /// protected.
    pub fn signing_key(&self, passphrase: Option<&Password>) -> Result<SigningKey, PgpError> {
        let none = || PgpError::NoSigningKey {
            fingerprint: self.fingerprint(),
        };
        let vc = self.cert.with_policy(&POLICY, None).map_err(|_| none())?;
        let ka = vc
            .keys()
            .alive()
            .revoked(false)
            .for_signing()
            .find(|ka| usable_secret(ka.key()))
            .ok_or_else(none)?;
        let secret = ka.key().clone().parts_into_secret().map_err(|_| none())?;
        let secret = if secret.has_unencrypted_secret() {
            secret
        } else {
            let passphrase = passphrase.ok_or_else(|| self.passphrase_needed())?;
            secret
                .decrypt_secret(passphrase)
                .map_err(|_| self.wrong_passphrase())?
        };
        let pair = secret
            .into_keypair()
            .map_err(|e| PgpError::OpenPgp(openpgp_text(&e)))?;
        Ok(SigningKey {
            pair,
            fingerprint: self.fingerprint(),
        })
    }
}

/// Is there secret material this crate can use (plain, or protected by an
/// S2K it knows; GnuPG's stubs for secrets kept elsewhere are not)?
pub(crate) fn usable_secret<R: key::KeyRole>(key: &openpgp::packet::Key<PublicParts, R>) -> bool {
    match key.optional_secret() {
        Some(SecretKeyMaterial::Unencrypted(_)) => true,
        Some(SecretKeyMaterial::Encrypted(e)) => e.s2k().is_supported(),
        None => false,
    }
}
