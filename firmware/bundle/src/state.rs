//! Encrypted state bundles: the box's configuration exported under a
//! passphrase or to an administrator's certificate, and imported back.
//!
//! Messages are binary RFC 4880 OpenPGP: SKESK v4 (iterated and salted
//! SHA-256 S2K) or PKESK v3, then SEIPD v1 with an MDC, AES-256, one
//! uncompressed literal packet. That is what GnuPG 2.2 (Debian 12) reads:
//! `gpg --batch --pinentry-mode loopback --passphrase P -d state.pgp`. The
//! newer SEIPD v2 (AEAD) is used only when every recipient key asks for it,
//! which keys made by GnuPG never do. Decryption also accepts armored input
//! and what GnuPG writes (deflate/zlib-compressed, signed or not); bzip2 is
//! not supported because it would pull a C library into the firmware.

use std::io::{Read, Write};

use openpgp::crypto::{Password, SessionKey};
use openpgp::packet::{PKESK, SKESK};
use openpgp::parse::Parse;
use openpgp::parse::stream::{
    DecryptionHelper, DecryptorBuilder, MessageLayer, MessageStructure, VerificationHelper,
};
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{Encryptor, LiteralWriter, Message, Recipient};
use openpgp::types::{DataFormat, SymmetricAlgorithm};
use openpgp::{Cert, KeyHandle};
use sequoia_openpgp as openpgp;

use crate::BundleError;
use crate::update::openpgp_error;

/// Largest plaintext [`decrypt_with_passphrase`] returns; a compressed
/// message that inflates past it is refused.
pub const MAX_STATE_SIZE: usize = 128 << 20;

/// Encrypts `plain` with `passphrase` (binary message, SKESK v4 + SEIPD v1).
pub fn encrypt_with_passphrase(plain: &[u8], passphrase: &str) -> Result<Vec<u8>, BundleError> {
    if passphrase.is_empty() {
        return Err(BundleError::InvalidInput("the passphrase is empty".into()));
    }
    let mut sink = Vec::with_capacity(plain.len() + 512);
    let message = Encryptor::with_passwords(Message::new(&mut sink), Some(passphrase))
        .symmetric_algo(SymmetricAlgorithm::AES256)
        .build()
        .map_err(openpgp_error)?;
    write_literal(message, plain)?;
    Ok(sink)
}

/// Encrypts `plain` to every valid encryption-capable key (transport or
/// storage) of the recipient certificate.
pub fn encrypt_to_cert(plain: &[u8], recipient_cert_armored: &str) -> Result<Vec<u8>, BundleError> {
    let policy = StandardPolicy::new();
    let cert = Cert::from_bytes(recipient_cert_armored.as_bytes())
        .map_err(|e| BundleError::InvalidKey(format!("the recipient certificate: {e:#}")))?;
    let recipients: Vec<Recipient> = cert
        .keys()
        .with_policy(&policy, None)
        .supported()
        .alive()
        .revoked(false)
        .for_storage_encryption()
        .for_transport_encryption()
        .map(Recipient::from)
        .collect();
    if recipients.is_empty() {
        return Err(BundleError::NoEncryptionKey(cert.fingerprint().to_hex()));
    }
    let mut sink = Vec::with_capacity(plain.len() + 512);
    let message = Encryptor::for_recipients(Message::new(&mut sink), recipients)
        .symmetric_algo(SymmetricAlgorithm::AES256)
        .build()
        .map_err(openpgp_error)?;
    write_literal(message, plain)?;
    Ok(sink)
}

/// One uncompressed binary literal packet inside the encryption layer.
fn write_literal(message: Message<'_>, plain: &[u8]) -> Result<(), BundleError> {
    let mut literal = LiteralWriter::new(message)
        .format(DataFormat::Binary)
        .build()
        .map_err(openpgp_error)?;
    literal
        .write_all(plain)
        .map_err(|e| BundleError::OpenPgp(e.to_string()))?;
    literal.finalize().map_err(openpgp_error)
}

/// Decrypts a passphrase-encrypted message (binary or armored) and checks
/// its integrity before returning anything.
pub fn decrypt_with_passphrase(msg: &[u8], passphrase: &str) -> Result<Vec<u8>, BundleError> {
    let policy = StandardPolicy::new();
    let helper = PassphraseHelper {
        password: Password::from(passphrase),
    };
    let refused = |e: openpgp::anyhow::Error| match e.downcast::<BundleError>() {
        Ok(b) => b,
        Err(e) => BundleError::Tampered(format!("{e:#}")),
    };
    // A buffer as big as the largest accepted plaintext makes the decryptor
    // read to the end of the message, and check the MDC, inside
    // `with_policy`; larger (decompressed) messages are refused below.
    let mut decryptor = DecryptorBuilder::from_bytes(msg)
        .map_err(refused)?
        .buffer_size(MAX_STATE_SIZE + 1)
        .with_policy(&policy, None, helper)
        .map_err(refused)?;
    let mut plain = Vec::new();
    decryptor
        .by_ref()
        .take(MAX_STATE_SIZE as u64 + 1)
        .read_to_end(&mut plain)
        .map_err(|e| BundleError::Tampered(e.to_string()))?;
    if plain.len() > MAX_STATE_SIZE {
        return Err(BundleError::TooLarge {
            size: plain.len() as u64,
            max: MAX_STATE_SIZE as u64,
        });
    }
    if !decryptor.message_processed() {
        return Err(BundleError::Tampered(
            "the message did not end properly".into(),
        ));
    }
    Ok(plain)
}

/// Cheap sniff: does `bytes` start like an OpenPGP message (binary packet
/// header of a message packet, or an armor header)? Lets an import accept
/// either an encrypted bundle or an already-decrypted payload (which starts
/// with ASCII, a tar header or a compression magic, never with a byte that
/// has the high bit set and names a message packet).
pub fn is_openpgp_message(bytes: &[u8]) -> bool {
    let text = bytes.trim_ascii_start();
    if text.starts_with(b"-----BEGIN PGP MESSAGE-----") {
        return true;
    }
    let [ctb, _, ..] = bytes else {
        return false;
    };
    if ctb & 0x80 == 0 {
        return false;
    }
    let tag = if ctb & 0x40 != 0 {
        ctb & 0x3f
    } else {
        (ctb >> 2) & 0x0f
    };
    // PKESK, Signature, SKESK, One-Pass Signature, Compressed, SED, Marker,
    // Literal, SEIPD, AED: the packets a message can start with.
    matches!(tag, 1 | 2 | 3 | 4 | 8 | 9 | 10 | 11 | 18 | 20)
}

/// Tries the passphrase on every SKESK; signatures inside are neither
/// required nor checked (a state bundle's integrity comes from the MDC).
struct PassphraseHelper {
    password: Password,
}

impl VerificationHelper for PassphraseHelper {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(Vec::new())
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        // `decrypt` below is only called for encrypted messages; without an
        // encryption layer this is a plain (or only signed) message.
        if structure
            .iter()
            .any(|l| matches!(l, MessageLayer::Encryption { .. }))
        {
            Ok(())
        } else {
            Err(BundleError::NotPassphraseEncrypted.into())
        }
    }
}

impl DecryptionHelper for PassphraseHelper {
    fn decrypt(
        &mut self,
        _pkesks: &[PKESK],
        skesks: &[SKESK],
        _sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        if skesks.is_empty() {
            return Err(BundleError::NotPassphraseEncrypted.into());
        }
        for skesk in skesks {
            // A wrong passphrase usually yields a key that fails the
            // quick check in `decrypt`, sometimes an outright error.
            if let Ok((algo, key)) = skesk.decrypt(&self.password)
                && decrypt(algo, &key)
            {
                return Ok(None);
            }
        }
        Err(BundleError::WrongPassphrase.into())
    }
}

#[cfg(test)]
mod tests {
    use openpgp::cert::prelude::*;
    use openpgp::crypto::KeyPair;
    use openpgp::serialize::SerializeInto;
    use openpgp::serialize::stream::Armorer;
    use proptest::prelude::*;

    use super::*;
    use crate::test_gpg::Gpg;

    const PLAIN: &[u8] = b"[box]\nname = \"coffer\"\n\x00\xff binary too";

    #[test]
    fn passphrase_round_trip() {
        for plain in [PLAIN, b"", &[7u8; 100_000][..]] {
            let msg = encrypt_with_passphrase(plain, "correct horse").expect("encrypt");
            assert!(is_openpgp_message(&msg));
            assert_eq!(
                decrypt_with_passphrase(&msg, "correct horse").expect("decrypt"),
                plain
            );
        }
    }

    #[test]
    fn message_is_skesk4_then_seipd1() {
        let msg = encrypt_with_passphrase(PLAIN, "pw").expect("encrypt");
        let pile = openpgp::PacketPile::from_bytes(&msg).expect("parse");
        let tags: Vec<_> = pile.children().map(|p| (p.tag(), p.version())).collect();
        use openpgp::packet::Tag;
        assert_eq!(tags, [(Tag::SKESK, Some(4)), (Tag::SEIP, Some(1))]);
    }

    #[test]
    fn wrong_passphrase_is_named() {
        let msg = encrypt_with_passphrase(PLAIN, "right").expect("encrypt");
        assert_eq!(
            decrypt_with_passphrase(&msg, "wrong"),
            Err(BundleError::WrongPassphrase)
        );
        assert!(encrypt_with_passphrase(PLAIN, "").is_err());
    }

    #[test]
    fn tampered_or_truncated_ciphertext_is_refused() {
        let msg = encrypt_with_passphrase(PLAIN, "pw").expect("encrypt");
        // Inside the encrypted data, past the IV: only the MDC can catch it.
        for pos in [msg.len() - 1, msg.len() - 10, msg.len() - 30] {
            let mut bad = msg.clone();
            bad[pos] ^= 0x40;
            let err = decrypt_with_passphrase(&bad, "pw").expect_err("tampered refused");
            assert!(matches!(err, BundleError::Tampered(_)), "at {pos}: {err}");
        }
        for len in [msg.len() - 1, msg.len() - 22, msg.len() / 2] {
            let err = decrypt_with_passphrase(&msg[..len], "pw").expect_err("truncated refused");
            assert!(
                matches!(err, BundleError::Tampered(_) | BundleError::WrongPassphrase),
                "at {len}: {err}"
            );
        }
    }

    proptest! {
        // Each case runs the full S2K, so only a few.
        #![proptest_config(ProptestConfig::with_cases(12))]
        #[test]
        fn any_changed_byte_is_refused(pos in any::<prop::sample::Index>(), x in 1u8..=255) {
            let msg = encrypt_with_passphrase(PLAIN, "pw").expect("encrypt");
            let mut bad = msg.clone();
            let i = pos.index(bad.len());
            bad[i] ^= x;
            prop_assert!(decrypt_with_passphrase(&bad, "pw").is_err(), "byte {i} ^ {x:#x} accepted");
        }
    }

    #[test]
    fn plain_or_key_encrypted_messages_are_not_passphrase_encrypted() {
        let mut plain = Vec::new();
        write_literal(Message::new(&mut plain), PLAIN).expect("literal");
        assert_eq!(
            decrypt_with_passphrase(&plain, "pw"),
            Err(BundleError::NotPassphraseEncrypted)
        );
        let (cert, _) = CertBuilder::general_purpose(Some("a@example.org"))
            .generate()
            .expect("cert");
        let armored = String::from_utf8(cert.armored().to_vec().expect("armor")).expect("utf8");
        let msg = encrypt_to_cert(PLAIN, &armored).expect("encrypt");
        assert_eq!(
            decrypt_with_passphrase(&msg, "pw"),
            Err(BundleError::NotPassphraseEncrypted)
        );
        assert!(decrypt_with_passphrase(b"", "pw").is_err());
        assert!(decrypt_with_passphrase(b"{\"not\": \"openpgp\"}", "pw").is_err());
    }

    #[test]
    fn armored_input_is_accepted() {
        let msg = encrypt_with_passphrase(PLAIN, "pw").expect("encrypt");
        let mut armored = Vec::new();
        let mut w = Armorer::new(Message::new(&mut armored))
            .build()
            .expect("armor");
        w.write_all(&msg).expect("write");
        w.finalize().expect("finalize");
        assert!(is_openpgp_message(&armored));
        assert_eq!(
            decrypt_with_passphrase(&armored, "pw").expect("decrypt"),
            PLAIN
        );
    }

    /// Decrypts with a secret key: the box never does this, the test does.
    struct KeyHelper(Vec<KeyPair>);
    impl VerificationHelper for KeyHelper {
        fn get_certs(&mut self, _: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
            Ok(Vec::new())
        }
        fn check(&mut self, _: MessageStructure) -> openpgp::Result<()> {
            Ok(())
        }
    }
    impl DecryptionHelper for KeyHelper {
        fn decrypt(
            &mut self,
            pkesks: &[PKESK],
            _: &[SKESK],
            sym_algo: Option<SymmetricAlgorithm>,
            decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
        ) -> openpgp::Result<Option<Cert>> {
            for pkesk in pkesks {
                for pair in &mut self.0 {
                    if let Some((algo, sk)) = pkesk.decrypt(pair, sym_algo)
                        && decrypt(algo, &sk)
                    {
                        return Ok(None);
                    }
                }
            }
            Err(openpgp::Error::MissingSessionKey("no key".into()).into())
        }
    }

    #[test]
    fn cert_round_trip_to_every_encryption_subkey() {
        let policy = StandardPolicy::new();
        let (cert, _) = CertBuilder::new()
            .add_userid("admin@example.org")
            .add_transport_encryption_subkey()
            .add_storage_encryption_subkey()
            .generate()
            .expect("cert");
        let armored = String::from_utf8(cert.armored().to_vec().expect("armor")).expect("utf8");
        let msg = encrypt_to_cert(PLAIN, &armored).expect("encrypt");
        let pile = openpgp::PacketPile::from_bytes(&msg).expect("parse");
        let pkesks = pile
            .children()
            .filter(|p| p.tag() == openpgp::packet::Tag::PKESK)
            .count();
        assert_eq!(pkesks, 2, "one PKESK per encryption subkey");
        // Each subkey alone can decrypt it.
        for ka in cert.keys().subkeys().with_policy(&policy, None).secret() {
            let pair = ka.key().clone().into_keypair().expect("keypair");
            let mut d = DecryptorBuilder::from_bytes(&msg)
                .expect("builder")
                .with_policy(&policy, None, KeyHelper(vec![pair]))
                .expect("decrypt");
            let mut out = Vec::new();
            d.read_to_end(&mut out).expect("read");
            assert_eq!(out, PLAIN);
        }

        let (sign_only, _) = CertBuilder::new()
            .add_signing_subkey()
            .generate()
            .expect("cert");
        let armored =
            String::from_utf8(sign_only.armored().to_vec().expect("armor")).expect("utf8");
        assert!(matches!(
            encrypt_to_cert(PLAIN, &armored),
            Err(BundleError::NoEncryptionKey(_))
        ));
        assert!(matches!(
            encrypt_to_cert(PLAIN, "garbage"),
            Err(BundleError::InvalidKey(_))
        ));
    }

    #[test]
    fn sniff() {
        let msg = encrypt_with_passphrase(b"x", "pw").expect("encrypt");
        assert!(is_openpgp_message(&msg));
        assert!(is_openpgp_message(b"\n-----BEGIN PGP MESSAGE-----\n"));
        for plain in [
            &b""[..],
            b"\x8c",
            b"{\"version\": 1}",
            b"[box]\n",
            b"coffer.toml\0\0\0\0\0\0\0\0\0",
            b"\x1f\x8b\x08\x00",
            b"\x28\xb5\x2f\xfd",
            b"\xc6\x05", // tag 6: a public key, not a message
            b"\xff\xfe",
        ] {
            assert!(!is_openpgp_message(plain), "{plain:?}");
        }
    }

    // ---- GnuPG interop ----

    #[test]
    fn gpg_decrypts_passphrase_bundle() {
        let Some(gpg) = Gpg::new() else { return };
        let msg = encrypt_with_passphrase(PLAIN, "s3cret passphrase").expect("encrypt");
        let out = gpg.run(&["--passphrase", "s3cret passphrase", "-d"], &msg);
        assert_eq!(out.stdout, PLAIN);
    }

    #[test]
    fn gpg_encrypted_passphrase_message_decrypts() {
        let Some(gpg) = Gpg::new() else { return };
        // GnuPG compresses by default (ZIP/ZLIB): deflate must be there.
        let plain = b"state ".repeat(1000);
        let out = gpg.run(&["--passphrase", "pw", "-c"], &plain);
        assert_eq!(
            decrypt_with_passphrase(&out.stdout, "pw").expect("decrypt"),
            plain
        );
        let out = gpg.run(&["--passphrase", "pw", "-c", "--armor"], &plain);
        assert_eq!(
            decrypt_with_passphrase(&out.stdout, "pw").expect("decrypt"),
            plain
        );
        assert_eq!(
            decrypt_with_passphrase(&out.stdout, "nope"),
            Err(BundleError::WrongPassphrase)
        );
    }

    #[test]
    fn gpg_decrypts_bundle_encrypted_to_its_key() {
        let Some(gpg) = Gpg::new() else { return };
        gpg.run(
            &[
                "--passphrase",
                "",
                "--quick-gen-key",
                "Test <t@example.org>",
                "default",
                "default",
                "never",
            ],
            b"",
        );
        let public = gpg
            .run(&["--armor", "--export", "t@example.org"], b"")
            .stdout;
        let public = String::from_utf8(public).expect("armored");
        let msg = encrypt_to_cert(PLAIN, &public).expect("encrypt");
        let out = gpg.run(&["--passphrase", "", "-d"], &msg);
        assert_eq!(out.stdout, PLAIN);
    }
}
