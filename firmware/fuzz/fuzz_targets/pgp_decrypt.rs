//! Messages read back from a server, decrypted by the client: whatever
//! the bytes, `coffer_pgp::decrypt` and reading the plaintext must end in
//! an error or a message, never a panic, with bounded memory (the frame
//! check, sequoia's packet limits, a small look-ahead). Seeds worth
//! starting from: `gpg -r fuzz@coffer.invalid [--sign] -e` output (the
//! key below, imported into a throwaway GnuPG home).
#![no_main]

use std::io::Read;
use std::sync::OnceLock;

use coffer_pgp::{Decryptor, Key, Password, PassphraseRequest};
use libfuzzer_sys::fuzz_target;

/// A throwaway, unprotected key made by `gpg --quick-gen-key ...
/// future-default` for this target only (ed25519 + cv25519), so mutated
/// seeds reach the decryption and signature code.
const TEST_KEY: &str = "\
-----BEGIN PGP PRIVATE KEY BLOCK-----\n\
\n\
lFgEaxV3wxYJKwYBBAHaRw8BAQdAYICXm4mg6iixdhWsmGaEi9jzPLeqnL5KEBC3\n\
kPT8eTQAAP0ej7b2BjmJ5qGI1PreJHdQlo3saOx/Jl3TwJ8dpYFaPBI0tCVDb2Zm\n\
ZXIgZnV6eiBrZXkgPGZ1enpAY29mZmVyLmludmFsaWQ+iJAEExYIADgWIQSzm7Uk\n\
IGBtVCMkAqc4Q9CC/sTyVwUCaxV3wwIbAwULCQgHAgYVCgkICwIEFgIDAQIeAQIX\n\
gAAKCRA4Q9CC/sTyV3i7AP0ZRUKnq7ERNNQhyVbaxmLdCODNa7s3aubetVIMfRSo\n\
xwD/bi4h08Q6mk3HOT2wOYbdpHCiLwyr0aZjxVzxCbPtMwacXQRrFXfDEgorBgEE\n\
AZdVAQUBAQdAGZYvmNzFHniH77f22uMbNUOoAHO7xflz5LgKnh789mIDAQgHAAD/\n\
Rds16OfnX9btRb6OUUzPn+RjsmesTFcS/JC5P3Tk0MgT/Yh4BBgWCAAgFiEEs5u1\n\
JCBgbVQjJAKnOEPQgv7E8lcFAmsVd8MCGwwACgkQOEPQgv7E8leT+AD/SOpmIF/F\n\
VgXXNdpH8k8+b8JgatjWRiewkBOS7imcr5wA/irMLRHrw8PGk9Oj4wRvfSkXvJFs\n\
KrnVzt6H7hGHSwsJ\n\
=y3eq\n\
-----END PGP PRIVATE KEY BLOCK-----\n";

static KEYS: OnceLock<[Key; 1]> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let keys = KEYS.get_or_init(|| [Key::from_bytes(TEST_KEY.as_bytes()).expect("test key")]);
    // The message passphrase is declined: its key derivation (up to 65 MB
    // hashed, as the message asks) would make every run slow, and what
    // follows it is the same code the key path reaches.
    let Ok(mut decryptor) = Decryptor::with_lookahead(
        data,
        keys,
        |request: &PassphraseRequest| match request {
            PassphraseRequest::Message => None,
            PassphraseRequest::SecretKey { .. } => Some(Password::from("fuzz")),
        },
        64 << 10,
    ) else {
        return;
    };
    let mut chunk = [0u8; 4096];
    loop {
        match decryptor.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let _ = decryptor.finish();
});
