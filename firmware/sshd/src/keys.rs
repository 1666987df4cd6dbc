//! Which client keys and signature algorithms are accepted.

use russh::keys::{Algorithm, HashAlg, PublicKey};
use thiserror::Error;

/// Why a key or signature algorithm is refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyPolicyError {
    #[error("{0} signatures are refused (SHA-1 ssh-rsa and DSA are weak); use an ed25519 key, or an RSA key with rsa-sha2-256/512 (OpenSSH 7.2 or later)")]
    WeakAlgorithm(String),
    #[error("key type {0} is not accepted; use ed25519, ecdsa-sha2-nistp256/384 or RSA")]
    UnsupportedType(String),
    #[error("not an OpenSSH public key line: {0}")]
    Malformed(String),
}

/// Accepts ed25519, ECDSA P-256/P-384 and RSA with SHA-2 signatures.
pub fn accepted_key_algorithm(alg: &Algorithm) -> Result<(), KeyPolicyError> {
    match alg {
        Algorithm::Ed25519 => Ok(()),
        Algorithm::Ecdsa { curve } => match curve {
            russh::keys::EcdsaCurve::NistP256 | russh::keys::EcdsaCurve::NistP384 => Ok(()),
            other => Err(KeyPolicyError::UnsupportedType(format!("ecdsa {other:?}"))),
        },
        Algorithm::Rsa { hash: Some(HashAlg::Sha256 | HashAlg::Sha512) } => Ok(()),
        Algorithm::Rsa { hash: None } => Err(KeyPolicyError::WeakAlgorithm("ssh-rsa".into())),
        Algorithm::Dsa => Err(KeyPolicyError::WeakAlgorithm("ssh-dss".into())),
        other => Err(KeyPolicyError::UnsupportedType(other.as_str().to_string())),
    }
}

/// Parses an `authorized_keys`-style line (`type base64 [comment]`) and
/// checks that its key type can log in.
pub fn parse_authorized_key(line: &str) -> Result<PublicKey, KeyPolicyError> {
    let mut parts = line.split_whitespace();
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
        return Err(KeyPolicyError::Malformed(line.chars().take(40).collect()));
    };
    let key = russh::keys::parse_public_key_base64(blob).map_err(|e| KeyPolicyError::Malformed(format!("{kind}: {e}")))?;
    if key.algorithm().as_str() != kind {
        return Err(KeyPolicyError::Malformed(format!("type {kind} does not match the key ({})", key.algorithm().as_str())));
    }
    match key.algorithm() {
        Algorithm::Ed25519 | Algorithm::Rsa { .. } => Ok(key),
        ref a @ Algorithm::Ecdsa { .. } => accepted_key_algorithm(a).map(|()| key),
        Algorithm::Dsa => Err(KeyPolicyError::WeakAlgorithm("ssh-dss".into())),
        other => Err(KeyPolicyError::UnsupportedType(other.as_str().to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_policy() {
        assert!(accepted_key_algorithm(&Algorithm::Ed25519).is_ok());
        assert!(accepted_key_algorithm(&Algorithm::Rsa { hash: Some(HashAlg::Sha512) }).is_ok());
        assert!(matches!(accepted_key_algorithm(&Algorithm::Rsa { hash: None }), Err(KeyPolicyError::WeakAlgorithm(_))));
        assert!(matches!(accepted_key_algorithm(&Algorithm::Dsa), Err(KeyPolicyError::WeakAlgorithm(_))));
    }

    #[test]
    fn key_lines() {
        let ok = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGdLbD0zR8x3fA0d2hHvmfWQ0NmV5wKxr9l2FqZpuO6x me@laptop";
        assert!(parse_authorized_key(ok).is_ok());
        assert!(parse_authorized_key("ssh-ed25519").is_err());
        assert!(parse_authorized_key("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIGdLbD0zR8x3fA0d2hHvmfWQ0NmV5wKxr9l2FqZpuO6x").is_err());
    }
}
