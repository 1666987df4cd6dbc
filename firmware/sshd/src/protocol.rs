//! The SSH protocol settings the endpoint offers: algorithms, windows,
//! authentication timing. Which clients each choice serves is said here,
//! next to the choice.

use std::time::Duration;

use russh::{MethodKind, MethodSet, Preferred, cipher, kex, mac};

/// Cipher order: modern AEADs first; the CTR modes stay because paramiko
/// 2.12 (duplicity's sftp:// and scp://) offers nothing else.
const CIPHERS: &[cipher::Name] = &[
    cipher::CHACHA20_POLY1305,
    cipher::AES_128_GCM,
    cipher::AES_256_GCM,
    cipher::AES_128_CTR,
    cipher::AES_192_CTR,
    cipher::AES_256_CTR,
];

const MACS: &[mac::Name] = &[mac::HMAC_SHA256_ETM, mac::HMAC_SHA512_ETM, mac::HMAC_SHA256, mac::HMAC_SHA512];

/// Key exchanges: every supported client has curve25519 (OpenSSH since 6.5,
/// paramiko since 2.9 for duplicity, Go's x/crypto for restic and rclone),
/// and OpenSSH 9.9+ prefers the post-quantum hybrid. The finite-field
/// Diffie-Hellman groups are absent: no supported client needs them, and a
/// group-18 exchange cost ~380 ms of server CPU, which an attacker could
/// repeat without ever logging in.
const KEX: &[kex::Name] = &[
    kex::MLKEM768X25519_SHA256,
    kex::CURVE25519,
    kex::CURVE25519_PRE_RFC_8731,
    kex::EXTENSION_SUPPORT_AS_SERVER,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];

/// Host-key and public-key algorithms. `ssh-rsa` (SHA-1) and DSA are absent,
/// so `server-sig-algs` steers RSA clients to rsa-sha2-256/512.
const KEY_ALGORITHMS: &[russh::keys::Algorithm] = &[
    russh::keys::Algorithm::Ed25519,
    russh::keys::Algorithm::Ecdsa { curve: russh::keys::EcdsaCurve::NistP256 },
    russh::keys::Algorithm::Ecdsa { curve: russh::keys::EcdsaCurve::NistP384 },
    russh::keys::Algorithm::Rsa { hash: Some(russh::keys::HashAlg::Sha512) },
    russh::keys::Algorithm::Rsa { hash: Some(russh::keys::HashAlg::Sha256) },
];

/// The only login method: public keys.
pub(crate) fn login_methods() -> MethodSet {
    MethodSet::from(&[MethodKind::PublicKey][..])
}

/// The russh server settings for a server with `host_key` that closes
/// connections idle for `idle_timeout`.
pub(crate) fn server_config(host_key: &russh::keys::PrivateKey, idle_timeout: Duration) -> russh::server::Config {
    russh::server::Config {
        server_id: russh::SshId::Standard(format!("SSH-2.0-Coffer_{}", env!("CARGO_PKG_VERSION")).into()),
        methods: login_methods(),
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key.clone()],
        // Large windows and packets, so one stream is never window-bound.
        window_size: 16 * 1024 * 1024,
        maximum_packet_size: 256 * 1024,
        channel_buffer_size: 64,
        preferred: Preferred {
            kex: KEX.into(),
            key: KEY_ALGORITHMS.into(),
            cipher: CIPHERS.into(),
            mac: MACS.into(),
            ..Preferred::default()
        },
        max_auth_attempts: 10,
        inactivity_timeout: Some(idle_timeout),
        keepalive_interval: None,
        nodelay: true,
        ..Default::default()
    }
}
