//! Interop with the real GnuPG 2.2 that duplicity drives (Debian 12's
//! `/usr/bin/gpg`): what the client encrypts, gpg decrypts (and verifies);
//! what gpg encrypts, the client decrypts; keys move both ways. Each test
//! has its own GNUPGHOME and key store. Tests print a note and pass where
//! /usr/bin/gpg is absent.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Instant, SystemTime};

use coffer_pgp::{
    Cipher, Compression, EncryptOptions, Encryptor, Key, KeyStore, Password, PassphraseRequest,
    PgpError, SignatureCheck, decrypt,
};

const GPG_PASS: &str = "gpg key passphrase";

/// A throwaway GnuPG home; the agent it starts is stopped on drop.
struct Gpg {
    home: tempfile::TempDir,
}

impl Gpg {
    fn new() -> Option<Gpg> {
        if !Path::new("/usr/bin/gpg").exists() {
            eprintln!("note: /usr/bin/gpg is absent; skipping the GnuPG interop test");
            return None;
        }
        Some(Gpg {
            home: tempfile::tempdir().expect("tempdir"),
        })
    }

    /// Runs gpg in batch mode with `stdin`; returns its output, whatever
    /// the exit status.
    fn try_run(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = Command::new("/usr/bin/gpg")
            .env("GNUPGHOME", self.home.path())
            .args(["--batch", "--no-tty", "--pinentry-mode", "loopback"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gpg");
        let mut input = child.stdin.take().expect("stdin");
        let data = stdin.to_vec();
        let feeder = std::thread::spawn(move || {
            // gpg may stop reading early on errors.
            let _ = input.write_all(&data);
        });
        let out = child.wait_with_output().expect("gpg output");
        feeder.join().expect("feeder");
        out
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        let out = self.try_run(args, stdin);
        assert!(
            out.status.success(),
            "gpg {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// A key as `gpg --quick-gen-key NAME default default never` makes it
    /// (RSA-3072 on GnuPG 2.2.40), protected with `GPG_PASS`; returns its
    /// fingerprint.
    fn generate(&self, name: &str) -> String {
        self.generate_with(name, "default")
    }

    /// The same with another algorithm: `future-default` is ed25519 +
    /// cv25519, GnuPG 2.4's default.
    fn generate_with(&self, name: &str, algo: &str) -> String {
        self.run(
            &["--passphrase", GPG_PASS, "--quick-gen-key", name, algo, "default", "never"],
            b"",
        );
        let listing = self.run(&["--with-colons", "--list-keys", name], b"").stdout;
        String::from_utf8(listing)
            .expect("utf8")
            .lines()
            .find(|l| l.starts_with("fpr:"))
            .and_then(|l| l.split(':').nth(9))
            .expect("fingerprint")
            .to_owned()
    }

    fn export_secret(&self, fpr: &str) -> Vec<u8> {
        self.run(
            &["--passphrase", GPG_PASS, "--armor", "--export-secret-keys", fpr],
            b"",
        )
        .stdout
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "all"])
            .status();
    }
}

fn store() -> (tempfile::TempDir, KeyStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = KeyStore::open(&dir.path().join("keys")).expect("open store");
    (dir, store)
}

fn pw(s: &str) -> Password {
    Password::from(s)
}

fn encrypt(options: &EncryptOptions<'_>, plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = Encryptor::new(&mut out, options).expect("encryptor");
    // Uneven writes, as a tar writer makes them.
    for chunk in plain.chunks(100_003) {
        w.write_all(chunk).expect("write");
    }
    w.finish().expect("finish");
    out
}

/// Decrypts with the store's keys, answering every passphrase request.
fn decrypt_all(
    keys: &[Key],
    msg: &[u8],
    passphrase: &str,
) -> Result<(Vec<u8>, coffer_pgp::Verification), PgpError> {
    let p = passphrase.to_owned();
    let mut d = decrypt(msg, keys, move |_: &PassphraseRequest| Some(pw(&p)))?;
    let mut plain = Vec::new();
    d.read_to_end(&mut plain).map_err(PgpError::from_io)?;
    Ok((plain, d.finish()?))
}

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Half random, half text-like, so compression has work.
            if (i / 4096) % 2 == 0 { x as u8 } else { b"duplicity "[i % 10] }
        })
        .collect()
}

/// A gpg key (RSA and ed25519/cv25519) imported into the store: gpg decrypts (and verifies) what we
/// encrypt to it and sign with it, for empty and multi-MB inputs, every
/// cipher and compression.
#[test]
fn gpg_decrypts_what_we_encrypt_to_its_key() {
    for algo in ["default", "future-default"] {
        gpg_decrypts_what_we_encrypt_to(algo);
    }
}

fn gpg_decrypts_what_we_encrypt_to(algo: &str) {
    let Some(gpg) = Gpg::new() else { return };
    let fpr = gpg.generate_with("Alice <alice@example.org>", algo);
    let (_dir, mut store) = store();
    store
        .import(&gpg.export_secret(&fpr), Some(&pw(GPG_PASS)))
        .expect("import");
    let key = store.find(&fpr).expect("find");
    let signer = key.signing_key(Some(&pw(GPG_PASS))).expect("signing key");
    let big = pseudo_random(3 << 20);
    for plain in [&b""[..], b"hello\n", &big] {
        for (cipher, compression, signed) in [
            (Cipher::Aes256, Compression::default(), false),
            (Cipher::Aes256, Compression::default(), true),
            (Cipher::Aes128, Compression::None, true),
            (Cipher::Aes128, Compression::Zlib(1), false),
        ] {
            let options = EncryptOptions {
                recipients: vec![key],
                signer: signed.then_some(&signer),
                cipher,
                compression,
                ..EncryptOptions::default()
            };
            let msg = encrypt(&options, plain);
            let out = gpg.run(
                &["--passphrase", GPG_PASS, "--status-fd", "2", "--decrypt"],
                &msg,
            );
            assert_eq!(out.stdout, plain, "{cipher:?} {compression:?} signed={signed}");
            let status = String::from_utf8_lossy(&out.stderr);
            assert_eq!(status.contains("[GNUPG:] GOODSIG"), signed, "{status}");
            assert!(status.contains("[GNUPG:] DECRYPTION_OKAY"), "{status}");
        }
    }
}

/// Duplicity without `--encrypt-key`: `gpg --symmetric`; both ways, signed
/// or not, empty and multi-MB.
#[test]
fn symmetric_both_ways() {
    let Some(gpg) = Gpg::new() else { return };
    let fpr = gpg.generate("Sym <sym@example.org>");
    let (_dir, mut store) = store();
    store
        .import(&gpg.export_secret(&fpr), Some(&pw(GPG_PASS)))
        .expect("import");
    let signer = store
        .find(&fpr)
        .expect("find")
        .signing_key(Some(&pw(GPG_PASS)))
        .expect("signer");
    let big = pseudo_random(2 << 20);
    for plain in [&b""[..], &big] {
        for signed in [false, true] {
            let options = EncryptOptions {
                passphrase: Some(pw("backup passphrase")),
                signer: signed.then_some(&signer),
                ..EncryptOptions::default()
            };
            let msg = encrypt(&options, plain);
            let out = gpg.run(
                &["--passphrase", "backup passphrase", "--status-fd", "2", "--decrypt"],
                &msg,
            );
            assert_eq!(out.stdout, plain);
            let status = String::from_utf8_lossy(&out.stderr);
            assert_eq!(status.contains("[GNUPG:] GOODSIG"), signed, "{status}");
        }
        // gpg --symmetric as duplicity runs it (ZIP compression by default).
        let msg = gpg
            .run(&["--passphrase", "sym pass", "--symmetric", "--force-mdc"], plain)
            .stdout;
        let (got, verification) = decrypt_all(&[], &msg, "sym pass").expect("decrypt");
        assert_eq!(got, plain);
        assert!(!verification.is_signed());
        assert!(matches!(
            decrypt_all(&[], &msg, "not it"),
            Err(PgpError::WrongPassphrase { .. })
        ));
        let declined = decrypt(&msg[..], &[], |_: &PassphraseRequest| None);
        assert!(matches!(declined, Err(PgpError::PassphraseNeeded { .. })));
    }
}

/// What gpg encrypts (and signs) to a key (RSA and ed25519/cv25519)
/// imported from it, we decrypt and verify.
#[test]
fn we_decrypt_what_gpg_encrypts() {
    for algo in ["default", "future-default"] {
        we_decrypt_what_gpg_encrypts_to(algo);
    }
}

fn we_decrypt_what_gpg_encrypts_to(algo: &str) {
    let Some(gpg) = Gpg::new() else { return };
    let fpr = gpg.generate_with("Bob <bob@example.org>", algo);
    let (_dir, mut store) = store();
    let info = store
        .import(&gpg.export_secret(&fpr), Some(&pw(GPG_PASS)))
        .expect("import");
    assert_eq!(info.fingerprint, fpr);
    assert!(info.secret);
    assert_eq!(info.capabilities.to_string(), "SCE");
    assert_eq!(info.user_ids, ["Bob <bob@example.org>"]);
    let big = pseudo_random(5 << 20);
    for plain in [&b""[..], b"manifest\n", &big] {
        for sign in [false, true] {
            let mut args = vec!["--passphrase", GPG_PASS, "--recipient", &fpr, "--encrypt"];
            if sign {
                args.extend(["--sign", "--default-key", &fpr]);
            }
            let msg = gpg.run(&args, plain).stdout;
            let mut asked = Vec::new();
            let mut d = decrypt(&msg[..], store.keys(), |r: &PassphraseRequest| {
                asked.push(r.clone());
                Some(pw(GPG_PASS))
            })
            .expect("decrypt");
            let mut got = Vec::new();
            d.read_to_end(&mut got).expect("read");
            let verification = d.finish().expect("finish");
            assert_eq!(got, plain);
            assert_eq!(
                asked,
                [PassphraseRequest::SecretKey {
                    fingerprint: fpr.clone(),
                    user_id: Some("Bob <bob@example.org>".into())
                }]
            );
            if sign {
                assert!(matches!(&verification.checks[..],
                    [SignatureCheck::Good { signer, .. }] if *signer == fpr));
                assert!(verification.is_signed_by(store.find(&fpr).expect("key")));
            } else {
                assert!(!verification.is_signed());
            }
        }
    }
    // Unlocked once, the key decrypts without asking again.
    let unlocked = store.find(&fpr).expect("key").unlocked(&pw(GPG_PASS)).expect("unlock");
    let msg = gpg.run(&["--recipient", &fpr, "--encrypt"], b"again").stdout;
    let mut d = decrypt(&msg[..], std::slice::from_ref(&unlocked), |_: &PassphraseRequest| {
        panic!("asked for a passphrase")
    })
    .expect("decrypt");
    let mut got = Vec::new();
    d.read_to_end(&mut got).expect("read");
    assert_eq!(got, b"again");
}

/// Import checks the passphrase at once; lookup by fingerprint, long and
/// short id of the primary key or the subkey; the files' modes.
#[test]
fn import_and_lookup() {
    let Some(gpg) = Gpg::new() else { return };
    let fpr = gpg.generate("Carol <carol@example.org>");
    let exported = gpg.export_secret(&fpr);
    let (dir, mut store) = store();
    assert!(matches!(
        store.import(&exported, Some(&pw("wrong"))),
        Err(PgpError::WrongPassphrase { what }) if what.contains(&fpr)
    ));
    assert!(matches!(
        store.import(&exported, None),
        Err(PgpError::PassphraseNeeded { .. })
    ));
    assert!(store.list().is_empty());
    store.import(&exported, Some(&pw(GPG_PASS))).expect("import");
    let listing = String::from_utf8(gpg.run(&["--with-colons", "--with-subkey-fingerprints", "--list-keys", &fpr], b"").stdout)
        .expect("utf8");
    let sub_fpr = listing
        .lines()
        .filter(|l| l.starts_with("fpr:"))
        .nth(1)
        .and_then(|l| l.split(':').nth(9))
        .expect("subkey fingerprint")
        .to_owned();
    let spaced: String = fpr
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    for query in [
        fpr.clone(),
        fpr.to_lowercase(),
        format!("0x{}", &fpr[24..]),
        fpr[32..].to_owned(),
        spaced,
        sub_fpr.clone(),
        sub_fpr[24..].to_owned(),
    ] {
        assert_eq!(store.find(&query).expect(&query).fingerprint(), fpr, "{query}");
    }
    assert!(matches!(store.find("0123456789ABCDEF"), Err(PgpError::KeyNotFound { .. })));
    assert!(matches!(store.find("carol"), Err(PgpError::BadKeyQuery { .. })));

    // At rest: the export's protected secrets, unchanged; modes 0700/0600.
    use std::os::unix::fs::PermissionsExt;
    let keys_dir = dir.path().join("keys");
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&keys_dir), 0o700);
    let file = keys_dir.join(format!("{fpr}.asc"));
    assert_eq!(mode(&file), 0o600);
    let reopened = KeyStore::open(&keys_dir).expect("reopen");
    let key = reopened.find(&fpr).expect("reloaded");
    assert!(key.is_locked(), "secrets stay protected at rest");
    assert_eq!(reopened.list(), store.list());

    // The stored file goes back into GnuPG as it is.
    let other = Gpg::new().expect("gpg");
    other.run(
        &["--passphrase", GPG_PASS, "--import", file.to_str().expect("path")],
        b"",
    );
    let msg = other.run(&["--trust-model", "always", "-r", &fpr, "-e"], b"x").stdout;
    assert_eq!(other.run(&["--passphrase", GPG_PASS, "-d"], &msg).stdout, b"x");
}

/// A key the client generates: gpg imports its public half and encrypts to
/// it, we decrypt; gpg imports its secret half and decrypts and verifies
/// what we sign and encrypt.
#[test]
fn generated_key_works_with_gpg() {
    let Some(gpg) = Gpg::new() else { return };
    let (_dir, mut store) = store();
    let info = store
        .generate("Dave <dave@example.org>", Some(&pw("dave pass")), SystemTime::now())
        .expect("generate");
    assert!(info.secret);
    assert_eq!(info.capabilities.to_string(), "SCE");
    let key = store.find(&info.fingerprint).expect("find");
    assert!(key.is_locked());

    gpg.run(&["--import"], &key.public_armored().expect("public"));
    let plain = pseudo_random(1 << 20);
    let msg = gpg
        .run(&["--trust-model", "always", "-r", &info.fingerprint, "-e"], &plain)
        .stdout;
    let (got, _) = decrypt_all(store.keys(), &msg, "dave pass").expect("decrypt");
    assert_eq!(got, plain);

    gpg.run(
        &["--passphrase", "dave pass", "--import"],
        &key.secret_armored().expect("secret"),
    );
    let signer = key.signing_key(Some(&pw("dave pass"))).expect("signer");
    assert!(matches!(key.signing_key(Some(&pw("nope"))), Err(PgpError::WrongPassphrase { .. })));
    let options = EncryptOptions {
        recipients: vec![key],
        signer: Some(&signer),
        ..EncryptOptions::default()
    };
    let msg = encrypt(&options, &plain);
    let out = gpg.run(&["--passphrase", "dave pass", "--status-fd", "2", "-d"], &msg);
    assert_eq!(out.stdout, plain);
    assert!(String::from_utf8_lossy(&out.stderr).contains("[GNUPG:] GOODSIG"));
}

/// The errors a user acts on: whose key is missing, a wrong passphrase, a
/// damaged or cut message, an unencrypted one.
#[test]
fn errors_name_what_to_do() {
    let Some(gpg) = Gpg::new() else { return };
    let theirs = gpg.generate("Eve <eve@example.org>");
    let (_dir, mut store) = store();
    store
        .generate("Me <me@example.org>", None, SystemTime::now())
        .expect("generate");
    let msg = gpg.run(&["-r", &theirs, "-e"], b"not for me").stdout;
    match decrypt_all(store.keys(), &msg, "") {
        Err(e @ PgpError::NoSecretKey { .. }) => {
            let listing = String::from_utf8(
                gpg.run(&["--with-colons", "--list-keys", &theirs], b"").stdout,
            )
            .expect("utf8");
            let sub_id = listing
                .lines()
                .find(|l| l.starts_with("sub:"))
                .and_then(|l| l.split(':').nth(4))
                .expect("subkey id");
            assert!(e.to_string().contains(sub_id), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // gpg --sign alone: well-formed, not encrypted.
    let signed = gpg.run(&["--passphrase", GPG_PASS, "-u", &theirs, "--sign"], b"plain").stdout;
    assert!(matches!(decrypt_all(store.keys(), &signed, ""), Err(PgpError::NotEncrypted)));

    let msg = gpg
        .run(&["--passphrase", "pw", "--symmetric"], &pseudo_random(200_000))
        .stdout;
    for cut in [msg.len() - 1, msg.len() - 25, msg.len() / 2, 40] {
        match decrypt_all(&[], &msg[..cut], "pw") {
            Err(PgpError::Corrupt { offset, .. }) => assert!(offset <= cut as u64),
            other => panic!("cut at {cut}: {:?}", other.map(|_| ())),
        }
    }
    for at in [msg.len() - 1, msg.len() - 30, msg.len() / 2] {
        let mut bad = msg.clone();
        bad[at] ^= 0x20;
        assert!(
            matches!(decrypt_all(&[], &bad, "pw"), Err(PgpError::Corrupt { .. })),
            "byte {at}"
        );
    }
}

/// Throughput on 100 MiB, single-threaded (a volume is one stream; the
/// client runs several at once), against gpg on the same data. It takes a
/// minute, so it runs when `COFFER_MEASURE` is set (`scripts/test` sets it):
/// `COFFER_MEASURE=1 cargo test -p coffer-pgp --test gpg -- --nocapture throughput`.
#[test]
fn throughput() {
    if std::env::var_os("COFFER_MEASURE").is_none() {
        eprintln!("throughput: skipped, set COFFER_MEASURE=1 to measure");
        return;
    }
    let Some(gpg) = Gpg::new() else { return };
    let (_dir, mut store) = store();
    let info = store.generate("Bench", None, SystemTime::now()).expect("generate");
    let key = store.find(&info.fingerprint).expect("key");
    let plain = pseudo_random(100 << 20);
    let mib = plain.len() as f64 / f64::from(1 << 20);
    for (cipher, compression) in [
        (Cipher::Aes256, Compression::None),
        (Cipher::Aes128, Compression::None),
        (Cipher::Aes256, Compression::Zlib(6)),
        (Cipher::Aes128, Compression::Zlib(6)),
        (Cipher::Aes256, Compression::Zlib(1)),
    ] {
        let options = EncryptOptions {
            recipients: vec![key],
            cipher,
            compression,
            ..EncryptOptions::default()
        };
        let start = Instant::now();
        let msg = encrypt(&options, &plain);
        let enc = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let mut d = decrypt(&msg[..], store.keys(), |_: &PassphraseRequest| None).expect("decrypt");
        let n = std::io::copy(&mut d, &mut std::io::sink()).expect("read");
        d.finish().expect("finish");
        let dec = start.elapsed().as_secs_f64();
        assert_eq!(n, plain.len() as u64);
        println!(
            "coffer-pgp {cipher:?} {compression:?}: encrypt {:.0} MiB/s, decrypt {:.0} MiB/s, {:.1} MiB out",
            mib / enc,
            mib / dec,
            msg.len() as f64 / f64::from(1 << 20)
        );
    }
    gpg.run(&["--import"], &key.secret_armored().expect("secret"));
    for algo in ["AES256", "AES"] {
        let start = Instant::now();
        let msg = gpg
            .run(&["--trust-model", "always", "--cipher-algo", algo, "-r", &info.fingerprint, "-e"], &plain)
            .stdout;
        let enc = start.elapsed().as_secs_f64();
        let start = Instant::now();
        gpg.run(&["-d"], &msg);
        let dec = start.elapsed().as_secs_f64();
        println!(
            "gpg {algo} (default compression): encrypt {:.0} MiB/s, decrypt {:.0} MiB/s",
            mib / enc,
            mib / dec
        );
    }
}
