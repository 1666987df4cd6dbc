//! Messages a server could send, without GnuPG: round trips under random
//! options, any changed byte refused, a bad signature named, nested
//! encryption and tiny encrypted packets refused without a panic, and the
//! store's modes.

use std::io::{Read, Write};
use std::time::SystemTime;

use coffer_pgp::{
    Cipher, Compression, EncryptOptions, Encryptor, Key, KeyStore, PassphraseRequest, PgpError,
    decrypt,
};
use proptest::prelude::*;
use openpgp::parse::Parse;
use sequoia_openpgp as openpgp;

fn key() -> (tempfile::TempDir, KeyStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = KeyStore::open(&dir.path().join("keys")).expect("store");
    store.generate("Test <t@example.org>", None, SystemTime::now()).expect("generate");
    (dir, store)
}

fn read_all(keys: &[Key], msg: &[u8]) -> Result<Vec<u8>, PgpError> {
    let mut d = decrypt(msg, keys, |_: &PassphraseRequest| None)?;
    let mut out = Vec::new();
    d.read_to_end(&mut out).map_err(PgpError::from_io)?;
    d.finish()?;
    Ok(out)
}

fn seal(keys: &[Key], plain: &[u8], signed: bool, compression: Compression) -> Vec<u8> {
    let signer = keys[0].signing_key(None).expect("signer");
    let options = EncryptOptions {
        recipients: vec![&keys[0]],
        signer: signed.then_some(&signer),
        compression,
        cipher: Cipher::Aes128,
        ..EncryptOptions::default()
    };
    let mut out = Vec::new();
    let mut w = Encryptor::new(&mut out, &options).expect("encryptor");
    w.write_all(plain).expect("write");
    w.finish().expect("finish");
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn round_trip_and_any_changed_byte_is_refused(
        plain in proptest::collection::vec(any::<u8>(), 0..20_000),
        signed in any::<bool>(),
        zlib in any::<bool>(),
        pos in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let (_dir, store) = key();
        let compression = if zlib { Compression::Zlib(6) } else { Compression::None };
        let msg = seal(store.keys(), &plain, signed, compression);
        prop_assert_eq!(read_all(store.keys(), &msg).expect("decrypt"), plain);
        let mut bad = msg.clone();
        let i = pos.index(bad.len());
        bad[i] ^= flip;
        prop_assert!(read_all(store.keys(), &bad).is_err(), "byte {} ^ {:#x} accepted", i, flip);
        let cut = pos.index(msg.len());
        prop_assert!(read_all(store.keys(), &msg[..cut]).is_err(), "cut at {} accepted", cut);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2_000)) {
        let (_dir, store) = key();
        let _ = read_all(store.keys(), &bytes);
    }
}

/// Encrypts raw packet bytes (not a literal packet) to `key`: what a
/// hostile sender with the public key can make.
fn encrypt_raw(key: &Key, inner: &[u8]) -> Vec<u8> {
    use openpgp::serialize::stream::{Encryptor as SqEncryptor, Message, Recipient};
    let cert = openpgp::Cert::from_bytes(&key.public_armored().expect("public")).expect("cert");
    let policy = openpgp::policy::StandardPolicy::new();
    let recipients: Vec<Recipient> = cert
        .keys()
        .with_policy(&policy, None)
        .for_storage_encryption()
        .map(|ka| {
            Recipient::new(
                openpgp::types::Features::empty().set_seipdv1(),
                openpgp::KeyHandle::from(ka.key().keyid()),
                ka.key(),
            )
        })
        .collect();
    let mut out = Vec::new();
    let mut m = SqEncryptor::for_recipients(Message::new(&mut out), recipients)
        .build()
        .expect("encryptor");
    m.write_all(inner).expect("write");
    m.finalize().expect("finalize");
    out
}

#[test]
fn nested_encryption_with_a_tiny_inner_packet_is_refused() {
    let (_dir, store) = key();
    let key = &store.keys()[0];
    // A valid outer message whose content is a PKESK and a 3-byte SEIPD:
    // sequoia 2.4.2 panics decrypting that unless it is stopped first.
    let outer = encrypt_raw(key, &encrypt_raw(key, b"")[..]);
    let inner = encrypt_raw(key, b"x");
    let pkesk_len = inner.iter().position(|b| *b == 0xd2).expect("seipd tag");
    let nested = [&inner[..pkesk_len], &[0xd2, 3, 1, 2, 3][..]].concat();
    let msg = encrypt_raw(key, &nested);
    assert!(matches!(read_all(store.keys(), &msg), Err(PgpError::Corrupt { .. })));
    // And an ordinary nested message is refused too: GnuPG never writes one.
    assert!(matches!(read_all(store.keys(), &outer), Err(PgpError::Corrupt { .. })));
}

/// Where the encrypted data packet (tag 18) starts, found by walking the
/// packet headers: its tag byte may also occur inside the key packets'
/// random bytes before it.
fn seipd_offset(msg: &[u8]) -> usize {
    let mut at = 0;
    loop {
        let header = msg[at];
        assert!(header & 0xc0 == 0xc0, "sequoia writes new-format packet headers");
        if header & 0x3f == 18 {
            return at;
        }
        let (len, used) = match msg[at + 1] {
            n @ 0..192 => (usize::from(n), 1),
            n @ 192..224 => ((usize::from(n) - 192) * 256 + usize::from(msg[at + 2]) + 192, 2),
            255 => (usize::try_from(u32::from_be_bytes([msg[at + 2], msg[at + 3], msg[at + 4], msg[at + 5]])).expect("length"), 5),
            _ => panic!("a partial length before the encrypted data"),
        };
        at += 1 + used + len;
    }
}

#[test]
fn a_tiny_top_level_packet_is_refused() {
    let (_dir, store) = key();
    let msg = encrypt_raw(&store.keys()[0], b"x");
    let pkesk_len = seipd_offset(&msg);
    for body in [0usize, 1, 18, 39] {
        let mut bad = msg[..pkesk_len].to_vec();
        bad.extend([0xd2, u8::try_from(body).expect("small")]);
        bad.extend(std::iter::repeat_n(7u8, body));
        match read_all(store.keys(), &bad) {
            Err(PgpError::Corrupt { reason, .. }) => assert!(reason.contains("too short"), "{reason}"),
            other => panic!("{body}: {other:?}"),
        }
    }
}

#[test]
fn a_changed_signed_literal_is_a_bad_signature() {
    use openpgp::serialize::stream::{LiteralWriter, Message, Signer};
    let (_dir, store) = key();
    let key = &store.keys()[0];
    // Sign in the clear with the store key's secret, change one byte of
    // the literal data, then encrypt the result: the MDC is good, the
    // signature is not.
    let cert = openpgp::Cert::from_bytes(&key.secret_armored().expect("secret")).expect("tsk");
    let policy = openpgp::policy::StandardPolicy::new();
    let pair = cert
        .keys()
        .with_policy(&policy, None)
        .for_signing()
        .secret()
        .next()
        .expect("signing key")
        .key()
        .clone()
        .into_keypair()
        .expect("pair");
    let mut signed = Vec::new();
    let m = Signer::new(Message::new(&mut signed), pair).expect("signer").build().expect("build");
    let mut w = LiteralWriter::new(m).build().expect("literal");
    w.write_all(b"the volume's data").expect("write");
    w.finalize().expect("finalize");
    let at = signed.windows(3).position(|w| w == b"vol").expect("data");
    signed[at] = b'V';
    let msg = encrypt_raw(key, &signed);
    match read_all(store.keys(), &msg) {
        Err(e @ PgpError::BadSignature { .. }) => {
            let id = cert.keys().with_policy(&policy, None).for_signing().next().expect("key").key().keyid().to_hex();
            assert!(e.to_string().contains(&id), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_signer_the_caller_does_not_know_is_a_verdict() {
    let (_dir, store) = key();
    let (_other_dir, other) = key();
    let signer = other.keys()[0].signing_key(None).expect("signer");
    let options = EncryptOptions {
        recipients: vec![&store.keys()[0]],
        signer: Some(&signer),
        ..EncryptOptions::default()
    };
    let mut msg = Vec::new();
    let mut w = Encryptor::new(&mut msg, &options).expect("encryptor");
    w.write_all(b"data").expect("write");
    w.finish().expect("finish");
    let mut d = decrypt(&msg[..], store.keys(), |_: &PassphraseRequest| None).expect("decrypt");
    std::io::copy(&mut d, &mut std::io::sink()).expect("read");
    let verification = d.finish().expect("finish");
    assert!(matches!(&verification.checks[..], [coffer_pgp::SignatureCheck::UnknownKey { .. }]));
    assert!(!verification.is_signed_by(&other.keys()[0]));
}

#[test]
fn store_modes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("deep/keys");
    let mut store = KeyStore::open(&path).expect("open");
    let info = store.generate("M", None, SystemTime::now()).expect("generate");
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o700);
    assert_eq!(mode(&dir.path().join("deep")), 0o700);
    let file = path.join(format!("{}.asc", info.fingerprint));
    assert_eq!(mode(&file), 0o600);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert!(matches!(KeyStore::open(&path), Err(PgpError::UnsafeStore { wanted: 0o600, .. })));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert!(matches!(KeyStore::open(&path), Err(PgpError::UnsafeStore { wanted: 0o700, .. })));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::write(path.join("junk.asc"), b"not a key").expect("write");
    std::fs::set_permissions(path.join("junk.asc"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    match KeyStore::open(&path) {
        Err(PgpError::InvalidKey { what, .. }) => assert!(what.ends_with("junk.asc"), "{what}"),
        other => panic!("{other:?}"),
    }
}
