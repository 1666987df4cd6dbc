//! OpenSSH's `known_hosts` rules, as pure data: which keys a host is known
//! by, and what a server's key means against them (trusted, unknown,
//! changed, revoked). The client never learns a key: anything but trusted
//! is refused with the fingerprint and the line a person would add.
//!
//! Covered (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"): comma-separated
//! patterns with `*`, `?` and `!` negation; `[host]:port` for ports other
//! than 22; hashed `|1|salt|hmac` names (HMAC-SHA1 of the name); the
//! `@revoked` marker (that key is refused for the hosts it names, whatever
//! else says); `@cert-authority` lines are read but trust no plain key, as
//! host certificates are not accepted. Lines that do not parse are skipped,
//! as OpenSSH skips them.

use hmac::{Hmac, Mac};
use russh::keys::PublicKey;
use sha1::Sha1;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Where a line came from, for messages: `~/.ssh/known_hosts:12`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRef {
    pub file: String,
    pub line: usize,
}

impl std::fmt::Display for LineRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Plain,
    Revoked,
    CertAuthority,
}

#[derive(Debug, Clone)]
struct Entry {
    at: LineRef,
    marker: Marker,
    patterns: String,
    key: PublicKey,
}

/// The verdict on a server's host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Trusted,
    /// No key of this type is known for the host. `other_types` lists the
    /// types that are (OpenSSH's "but keys of different type are already
    /// known").
    Unknown { other_types: Vec<String> },
    /// A different key of the same type is known: the first such line.
    Changed { known: LineRef },
    /// The key is marked `@revoked` for this host.
    Revoked { at: LineRef },
}

/// The keys of every `known_hosts` file read, in order.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

impl KnownHosts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the lines of one file; `file` names it in messages.
    pub fn add(&mut self, file: &str, text: &str) {
        for (i, line) in text.lines().enumerate() {
            if let Some((marker, patterns, key)) = parse_line(line) {
                let at = LineRef { file: file.to_string(), line: i + 1 };
                self.entries.push(Entry { at, marker, patterns: patterns.to_string(), key });
            }
        }
    }

    fn for_host(&self, host: &str, port: u16) -> Vec<&Entry> {
        let name = host_name(host, port);
        self.entries.iter().filter(|e| patterns_match(&e.patterns, &name)).collect()
    }

    /// What `key`, offered by `host:port`, means.
    pub fn check(&self, host: &str, port: u16, key: &PublicKey) -> Verdict {
        let matching = self.for_host(host, port);
        if let Some(e) = matching.iter().find(|e| e.marker == Marker::Revoked && e.key.key_data() == key.key_data()) {
            return Verdict::Revoked { at: e.at.clone() };
        }
        let plain = || matching.iter().filter(|e| e.marker == Marker::Plain);
        if plain().any(|e| e.key.key_data() == key.key_data()) {
            return Verdict::Trusted;
        }
        if let Some(e) = plain().find(|e| e.key.algorithm() == key.algorithm()) {
            return Verdict::Changed { known: e.at.clone() };
        }
        let mut other_types: Vec<String> = plain().map(|e| e.key.algorithm().to_string()).collect();
        other_types.dedup();
        Verdict::Unknown { other_types }
    }

    /// The key types known for a host, first line first, so the client can
    /// ask the server for a key it can check (as OpenSSH orders
    /// `HostKeyAlgorithms`).
    pub fn known_algorithms(&self, host: &str, port: u16) -> Vec<russh::keys::Algorithm> {
        let mut out: Vec<russh::keys::Algorithm> = Vec::new();
        for e in self.for_host(host, port).into_iter().filter(|e| e.marker == Marker::Plain) {
            let alg = e.key.algorithm();
            if !out.contains(&alg) {
                out.push(alg);
            }
        }
        out
    }
}

/// The name a host is recorded under: `host` on port 22, `[host]:port`
/// otherwise.
pub fn host_name(host: &str, port: u16) -> String {
    if port == 22 { host.to_string() } else { format!("[{host}]:{port}") }
}

/// The line that would make `key` trusted for `host:port`.
pub fn line_for(host: &str, port: u16, key: &PublicKey) -> String {
    let mut key = key.clone();
    key.set_comment("");
    format!("{} {}", host_name(host, port), key.to_openssh().unwrap_or_default())
}

/// `SHA256:…`, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(russh::keys::HashAlg::Sha256).to_string()
}

fn parse_line(line: &str) -> Option<(Marker, &str, PublicKey)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_ascii_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        m if m.starts_with('@') => return None,
        _ => Marker::Plain,
    };
    if marker != Marker::Plain {
        first = fields.next()?;
    }
    let key_type = fields.next()?;
    let blob = fields.next()?;
    let key = russh::keys::parse_public_key_base64(blob).ok()?;
    // The type word must agree with the key it names.
    if key.algorithm().as_str() != key_type && !(key_type == "ssh-rsa" && key.algorithm().is_rsa()) {
        return None;
    }
    Some((marker, first, key))
}

/// Whether a comma-separated pattern list matches `name`: any positive
/// pattern matches and no negated one does.
fn patterns_match(patterns: &str, name: &str) -> bool {
    let mut matched = false;
    for p in patterns.split(',') {
        if let Some(neg) = p.strip_prefix('!') {
            if glob(neg.as_bytes(), name.as_bytes()) {
                return false;
            }
        } else if let Some(hashed) = p.strip_prefix("|1|") {
            matched |= hashed_match(hashed, name);
        } else {
            matched |= glob(p.as_bytes(), name.as_bytes());
        }
    }
    matched
}

fn hashed_match(salt_and_hash: &str, name: &str) -> bool {
    let Some((salt, hash)) = salt_and_hash.split_once('|') else { return false };
    let (Ok(salt), Ok(hash)) = (STANDARD.decode(salt), STANDARD.decode(hash)) else { return false };
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else { return false };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// OpenSSH's `match_pattern`: `*` any run, `?` one character, the rest
/// compared without case (host names are case-insensitive).
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p].eq_ignore_ascii_case(&name[n])) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((sp, sn)) = star {
            p = sp + 1;
            n = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICmnNsNoIn81uEb5Lw9oVir0B0KYZO6N+Tl6tYSE+OKH";
    const ED_B: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJkbHCKkbs/tncvTshAhMu/GQA39ElQh4tUodtrbxKdI";
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBE+ZACMN0F0dZuMUy2w6wJ6Ov/naMe7bN6jPXoTjJzOdeArDQ+LMERJdytEPq68Xh+y3F+8W8TiU5nolnU2TgqU=";

    fn key(line: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(line.split(' ').nth(1).unwrap_or_default()).expect("test key")
    }

    fn hashed(name: &str, salt: &[u8]) -> String {
        let mut mac = Hmac::<Sha1>::new_from_slice(salt).expect("hmac");
        mac.update(name.as_bytes());
        format!("|1|{}|{}", STANDARD.encode(salt), STANDARD.encode(mac.finalize().into_bytes()))
    }

    fn check(file: &str, host: &str, port: u16, offered: &str) -> Verdict {
        let mut kh = KnownHosts::new();
        kh.add("known_hosts", file);
        kh.check(host, port, &key(offered))
    }

    fn at(line: usize) -> LineRef {
        LineRef { file: "known_hosts".into(), line }
    }

    #[test]
    fn verdicts() {
        let unknown = Verdict::Unknown { other_types: vec![] };
        let hashed_box = hashed("box", b"0123456789abcdefghij");
        let hashed_port = hashed("[box]:2222", b"salt-salt-salt-salt-");
        let table: Vec<(String, &str, u16, &str, Verdict)> = vec![
            (format!("box {ED_A}"), "box", 22, ED_A, Verdict::Trusted),
            (format!("box {ED_A}"), "BOX", 22, ED_A, Verdict::Trusted),
            (format!("box {ED_A}"), "box", 2222, ED_A, unknown.clone()),
            (format!("[box]:2222 {ED_A}"), "box", 2222, ED_A, Verdict::Trusted),
            (format!("[box]:2222 {ED_A}"), "box", 22, ED_A, unknown.clone()),
            (format!("other,box {ED_A}"), "box", 22, ED_A, Verdict::Trusted),
            (format!("*.lan {ED_A}"), "box.lan", 22, ED_A, Verdict::Trusted),
            (format!("b?x {ED_A}"), "box", 22, ED_A, Verdict::Trusted),
            (format!("*,!box {ED_A}"), "box", 22, ED_A, unknown.clone()),
            (format!("{hashed_box} {ED_A}"), "box", 22, ED_A, Verdict::Trusted),
            (format!("{hashed_box} {ED_A}"), "box2", 22, ED_A, unknown.clone()),
            (format!("{hashed_port} {ED_A}"), "box", 2222, ED_A, Verdict::Trusted),
            (format!("# comment\n\nbox {ED_B}"), "box", 22, ED_A, Verdict::Changed { known: at(3) }),
            (format!("box {ECDSA}"), "box", 22, ED_A, Verdict::Unknown { other_types: vec!["ecdsa-sha2-nistp256".into()] }),
            (format!("box {ED_A}\n@revoked * {ED_A}"), "box", 22, ED_A, Verdict::Revoked { at: at(2) }),
            (format!("@cert-authority box {ED_A}"), "box", 22, ED_A, unknown.clone()),
            (format!("@unknown-marker box {ED_A}"), "box", 22, ED_A, unknown.clone()),
            (format!("box ssh-rsa {}", ED_A.split(' ').nth(1).unwrap_or_default()), "box", 22, ED_A, unknown.clone()),
            ("box ssh-ed25519 not-base64".to_string(), "box", 22, ED_A, unknown.clone()),
            (format!("box {ED_B}\nbox {ED_A}"), "box", 22, ED_A, Verdict::Trusted),
        ];
        for (file, host, port, offered, want) in table {
            assert_eq!(check(&file, host, port, offered), want, "{file:?} {host}:{port}");
        }
    }

    #[test]
    fn names_lines_and_fingerprints() {
        assert_eq!(host_name("box", 22), "box");
        assert_eq!(host_name("127.0.0.1", 2200), "[127.0.0.1]:2200");
        let k = key(ED_A);
        assert_eq!(line_for("box", 2200, &k), format!("[box]:2200 {ED_A}"));
        assert!(fingerprint(&k).starts_with("SHA256:"), "{}", fingerprint(&k));
        let mut kh = KnownHosts::new();
        kh.add("f", &format!("box {ECDSA}\nbox {ED_A}\nbox {ED_B}"));
        assert_eq!(kh.known_algorithms("box", 22), vec![key(ECDSA).algorithm(), k.algorithm()]);
    }

    #[test]
    fn globs() {
        for (p, n, want) in [("*", "", true), ("a*c", "abbbc", true), ("a*c", "abd", false), ("*.*", "a.b", true), ("?", "", false), ("**a", "ba", true)] {
            assert_eq!(glob(p.as_bytes(), n.as_bytes()), want, "{p} {n}");
        }
    }

    proptest::proptest! {
        #[test]
        fn lines_never_panic(text in "\\PC{0,200}", host in "[a-z.]{0,10}", port in proptest::prelude::any::<u16>()) {
            let mut kh = KnownHosts::new();
            kh.add("f", &text);
            let _ = kh.check(&host, port, &key(ED_A));
        }
    }
}
