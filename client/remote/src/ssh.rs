//! The SSH connection as OpenSSH's client would make it: host keys checked
//! against `~/.ssh/known_hosts` and `/etc/ssh/ssh_known_hosts` and never
//! learnt, keys from ssh-agent first and then `~/.ssh/id_*` (or only the
//! file `--ssh-key` names), modern algorithms only (the server's set:
//! mlkem768x25519/curve25519, ed25519/ecdsa/rsa-sha2, AEAD ciphers).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{Preferred, cipher, kex, mac};

use crate::error::RemoteError;
use crate::known_hosts::{self, KnownHosts, Verdict};
use crate::url::SshTarget;

/// How to reach SSH servers: where keys and `known_hosts` are, which key
/// to use. [`SshOptions::from_env`] gives OpenSSH's defaults.
#[derive(Clone)]
pub struct SshOptions {
    /// The login name when the URL names none (OpenSSH: the local user).
    pub local_user: String,
    /// Where `id_rsa`, `id_ecdsa` and `id_ed25519` are looked for.
    pub ssh_dir: Option<PathBuf>,
    /// The `known_hosts` files, in order; missing files are skipped.
    pub known_hosts: Vec<PathBuf>,
    /// `--ssh-key FILE`: use this key only (OpenSSH's `-i` with
    /// `IdentitiesOnly`).
    pub key_file: Option<PathBuf>,
    /// The passphrase of `key_file`, when it is encrypted.
    pub passphrase: Option<String>,
    /// The ssh-agent socket (`SSH_AUTH_SOCK`); its keys are tried first.
    pub agent: Option<PathBuf>,
    pub connect_timeout: Duration,
}

/// The key files OpenSSH 9.2 (Debian 12) tries, in its order (`ssh(1)`,
/// `-i`), minus the kinds russh cannot use (security keys, DSA).
const DEFAULT_KEYS: &[&str] = &["id_rsa", "id_ecdsa", "id_ed25519"];

impl SshOptions {
    /// OpenSSH's defaults for the user whose home is `home`: keys and
    /// `known_hosts` under `home/.ssh`, then `/etc/ssh/ssh_known_hosts`.
    pub fn for_home(home: &Path, local_user: &str) -> Self {
        let ssh_dir = home.join(".ssh");
        SshOptions {
            local_user: local_user.to_string(),
            known_hosts: vec![ssh_dir.join("known_hosts"), PathBuf::from("/etc/ssh/ssh_known_hosts")],
            ssh_dir: Some(ssh_dir),
            key_file: None,
            passphrase: None,
            agent: None,
            connect_timeout: Duration::from_secs(30),
        }
    }

    /// [`SshOptions::for_home`] from `HOME` and `USER` (or `LOGNAME`), with
    /// the agent from `SSH_AUTH_SOCK`.
    pub fn from_env() -> Self {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"));
        let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_default();
        let mut o = Self::for_home(&home, &user);
        o.agent = std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()).map(PathBuf::from);
        o
    }
}

/// Everything but the passphrase, which never reaches a log.
impl std::fmt::Debug for SshOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshOptions")
            .field("local_user", &self.local_user)
            .field("ssh_dir", &self.ssh_dir)
            .field("known_hosts", &self.known_hosts)
            .field("key_file", &self.key_file)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<hidden>"))
            .field("agent", &self.agent)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

const KEX: &[kex::Name] = &[
    kex::MLKEM768X25519_SHA256,
    kex::CURVE25519,
    kex::CURVE25519_PRE_RFC_8731,
    kex::EXTENSION_SUPPORT_AS_CLIENT,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
];

/// AES-GCM first: with AES instructions it encrypts faster than
/// chacha20-poly1305, and the bulk of every session is archive bytes.
const CIPHERS: &[cipher::Name] = &[cipher::AES_256_GCM, cipher::AES_128_GCM, cipher::CHACHA20_POLY1305];

const MACS: &[mac::Name] = &[mac::HMAC_SHA256_ETM, mac::HMAC_SHA512_ETM];

const HOST_KEYS: &[russh::keys::Algorithm] = &[
    russh::keys::Algorithm::Ed25519,
    russh::keys::Algorithm::Ecdsa { curve: russh::keys::EcdsaCurve::NistP256 },
    russh::keys::Algorithm::Ecdsa { curve: russh::keys::EcdsaCurve::NistP384 },
    russh::keys::Algorithm::Ecdsa { curve: russh::keys::EcdsaCurve::NistP521 },
    russh::keys::Algorithm::Rsa { hash: Some(HashAlg::Sha512) },
    russh::keys::Algorithm::Rsa { hash: Some(HashAlg::Sha256) },
];

/// Host-key algorithms with the ones `known_hosts` holds for this host
/// first, so the server proves a key the client can check.
fn host_key_order(known: &[russh::keys::Algorithm]) -> Vec<russh::keys::Algorithm> {
    let is_known = |a: &russh::keys::Algorithm| known.iter().any(|k| k == a || (k.clone().is_rsa() && a.clone().is_rsa()));
    let mut order: Vec<_> = HOST_KEYS.iter().filter(|a| is_known(a)).cloned().collect();
    order.extend(HOST_KEYS.iter().filter(|a| !is_known(a)).cloned());
    order
}

/// Checks the server's key; a refusal is kept for the caller, because
/// russh only reports "unknown key".
pub(crate) struct Verifier {
    known: KnownHosts,
    host: String,
    port: u16,
    refusal: Arc<Mutex<Option<RemoteError>>>,
}

impl Verifier {
    fn verdict(&self, key: &PublicKey) -> Option<RemoteError> {
        let host = known_hosts::host_name(&self.host, self.port);
        let fingerprint = known_hosts::fingerprint(key);
        let line = known_hosts::line_for(&self.host, self.port, key);
        match self.known.check(&self.host, self.port, key) {
            Verdict::Trusted => None,
            Verdict::Unknown { other_types } => {
                let note = if other_types.is_empty() {
                    String::new()
                } else {
                    format!("\n(known_hosts holds keys of other types for this host: {})", other_types.join(", "))
                };
                Some(RemoteError::HostKeyUnknown { host, fingerprint, line, note })
            }
            Verdict::Changed { known } => Some(RemoteError::HostKeyChanged { host, fingerprint, known: known.to_string(), line }),
            Verdict::Revoked { at } => Some(RemoteError::HostKeyRevoked { host, fingerprint, at: at.to_string() }),
        }
    }
}

impl client::Handler for Verifier {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let refusal = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => self.verdict(key),
            PublicKeyOrCertificate::Certificate(_) => Some(RemoteError::HostCertificate { host: self.host.clone() }),
        };
        let trusted = refusal.is_none();
        if let Ok(mut slot) = self.refusal.lock() {
            *slot = refusal;
        }
        Ok(trusted)
    }
}

/// An authenticated connection.
pub(crate) type Connection = Handle<Verifier>;

fn ssh_error(t: &SshTarget, e: impl std::fmt::Display) -> RemoteError {
    RemoteError::Ssh { host: t.host.clone(), port: t.port, reason: e.to_string() }
}

/// Reads every `known_hosts` file that exists.
fn load_known_hosts(o: &SshOptions) -> Result<KnownHosts, RemoteError> {
    let mut known = KnownHosts::new();
    for path in &o.known_hosts {
        match std::fs::read(path) {
            Ok(bytes) => known.add(&path.display().to_string(), &String::from_utf8_lossy(&bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(RemoteError::Local { op: "reading", path: path.clone(), source }),
        }
    }
    Ok(known)
}

/// Connects, checks the host key and logs in.
pub(crate) async fn connect(t: &SshTarget, o: &SshOptions) -> Result<Connection, RemoteError> {
    let known = load_known_hosts(o)?;
    let config = client::Config {
        preferred: Preferred {
            kex: KEX.into(),
            key: host_key_order(&known.known_algorithms(&t.host, t.port)).into(),
            cipher: CIPHERS.into(),
            mac: MACS.into(),
            ..Preferred::default()
        },
        // Large windows and packets, so one channel is never window-bound.
        window_size: 16 * 1024 * 1024,
        maximum_packet_size: 256 * 1024,
        channel_buffer_size: 256,
        nodelay: true,
        ..client::Config::default()
    };
    let refusal = Arc::new(Mutex::new(None));
    let verifier = Verifier { known, host: t.host.clone(), port: t.port, refusal: refusal.clone() };
    let connect = tokio::net::TcpStream::connect((t.host.as_str(), t.port));
    let stream = match tokio::time::timeout(o.connect_timeout, connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => return Err(RemoteError::Connect { host: t.host.clone(), port: t.port, source }),
        Err(_) => {
            let source = std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no answer within {:?}", o.connect_timeout));
            return Err(RemoteError::Connect { host: t.host.clone(), port: t.port, source });
        }
    };
    let _ = stream.set_nodelay(true);
    let mut handle = match client::connect_stream(Arc::new(config), stream, verifier).await {
        Ok(h) => h,
        Err(e) => {
            let kept = refusal.lock().ok().and_then(|mut r| r.take());
            return Err(kept.unwrap_or_else(|| ssh_error(t, e)));
        }
    };
    login(&mut handle, t, o).await?;
    Ok(handle)
}

async fn login(handle: &mut Connection, t: &SshTarget, o: &SshOptions) -> Result<(), RemoteError> {
    let user = t.user.clone().unwrap_or_else(|| o.local_user.clone());
    let mut tried: Vec<String> = Vec::new();
    let mut hints: Vec<String> = Vec::new();
    // rsa-sha2-512 unless the server names another: SHA-1 `ssh-rsa` never.
    let rsa_hash = match handle.best_supported_rsa_hash().await {
        Ok(Some(Some(h))) => Some(h),
        _ => Some(HashAlg::Sha512),
    };

    // With --ssh-key, the agent may still hold that key (an encrypted file
    // whose passphrase was not given): only that public key is tried there.
    let wanted_public = o.key_file.as_deref().map(read_public);
    if let Some(agent_path) = &o.agent {
        match russh::keys::agent::client::AgentClient::connect_uds(agent_path).await {
            Ok(mut agent) => {
                let identities = agent.request_identities().await.unwrap_or_default();
                for identity in identities {
                    let russh::keys::agent::AgentIdentity::PublicKey { key, .. } = identity else { continue };
                    if let Some(wanted) = &wanted_public
                        && wanted.as_ref().is_none_or(|w| w.key_data() != key.key_data())
                    {
                        continue;
                    }
                    let hash = if key.algorithm().is_rsa() { rsa_hash } else { None };
                    tried.push(format!("agent key {}", known_hosts::fingerprint(&key)));
                    match handle.authenticate_publickey_with(&user, key, hash, &mut agent).await {
                        Ok(r) if r.success() => return Ok(()),
                        Ok(_) => {}
                        Err(e) => hints.push(format!("the agent could not sign: {e}")),
                    }
                }
            }
            Err(e) => hints.push(format!("ssh-agent at {} not usable: {e}", agent_path.display())),
        }
    }

    let files: Vec<PathBuf> = match (&o.key_file, &o.ssh_dir) {
        (Some(f), _) => vec![f.clone()],
        (None, Some(dir)) => DEFAULT_KEYS.iter().map(|n| dir.join(n)).filter(|p| p.exists()).collect(),
        (None, None) => Vec::new(),
    };
    for path in files {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| RemoteError::Key { path: path.clone(), reason: e.to_string() })?;
        let key = match russh::keys::decode_secret_key(&text, o.passphrase.as_deref()) {
            Ok(k) => k,
            Err(russh::keys::Error::KeyIsEncrypted) => {
                hints.push(format!(
                    "{} is encrypted: give it with --ssh-key and its passphrase, or add it to ssh-agent",
                    path.display()
                ));
                continue;
            }
            Err(e) if o.key_file.is_some() => return Err(RemoteError::Key { path, reason: e.to_string() }),
            Err(e) => {
                hints.push(format!("{} skipped: {e}", path.display()));
                continue;
            }
        };
        let hash = if key.algorithm().is_rsa() { rsa_hash } else { None };
        tried.push(format!("{} ({})", path.display(), known_hosts::fingerprint(key.public_key())));
        let result = handle
            .authenticate_publickey(&user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await
            .map_err(|e| ssh_error(t, e))?;
        if result.success() {
            return Ok(());
        }
    }
    let hint = if hints.is_empty() { String::new() } else { format!(" ({})", hints.join("; ")) };
    let tried = if tried.is_empty() { "no keys found".to_string() } else { tried.join(", ") };
    Err(RemoteError::Login { user, host: t.host.clone(), port: t.port, tried, hint })
}

/// The public half of a key file, from `FILE.pub`, for finding it in the agent.
fn read_public(path: &Path) -> Option<PublicKey> {
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    russh::keys::load_public_key(PathBuf::from(pub_path)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_follow_openssh_and_hide_the_passphrase() {
        let mut o = SshOptions::for_home(Path::new("/home/u"), "u");
        assert_eq!(o.known_hosts, vec![PathBuf::from("/home/u/.ssh/known_hosts"), PathBuf::from("/etc/ssh/ssh_known_hosts")]);
        assert_eq!(o.ssh_dir.as_deref(), Some(Path::new("/home/u/.ssh")));
        o.passphrase = Some("hunter2".into());
        let shown = format!("{o:?}");
        assert!(!shown.contains("hunter2") && shown.contains("<hidden>"), "{shown}");
    }

    #[test]
    fn known_types_go_first() {
        let ecdsa = russh::keys::Algorithm::Ecdsa { curve: russh::keys::EcdsaCurve::NistP256 };
        let order = host_key_order(std::slice::from_ref(&ecdsa));
        assert_eq!(order[0], ecdsa);
        assert_eq!(order.len(), HOST_KEYS.len());
        let rsa = host_key_order(&[russh::keys::Algorithm::Rsa { hash: None }]);
        assert!(rsa[0].clone().is_rsa() && rsa[1].clone().is_rsa());
        assert_eq!(host_key_order(&[]), HOST_KEYS.to_vec());
    }
}
