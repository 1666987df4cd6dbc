//! `config export` and `config import`: the state partition's identity (host
//! key, users and their keys, settings, retention) as one OpenPGP-encrypted
//! tar stream, so a dead boot SSD costs a re-flash and an import, and no
//! client sees a new host key.

use std::io::{BufRead, Read, Write};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use coffer_config::{Config, StatePaths, UserDb};

/// Bundles larger than this are not state bundles.
const MAX_BUNDLE: u64 = 16 << 20;

/// The files that make a box's identity, relative to the state directory,
/// with the mode each gets back. Data, quota records and alert queues are
/// not part of it: they belong to the data disks or are rebuilt.
const FILES: &[(&str, u32, bool)] = &[
    ("coffer.toml", 0o600, true),
    ("users.toml", 0o600, true),
    ("retention.toml", 0o600, false),
    ("host-keys/ssh_host_ed25519_key", 0o600, true),
    ("host-keys/ssh_host_ed25519_key.pub", 0o644, true),
];

/// How the bundle is protected.
pub(crate) enum Protection {
    /// A passphrase, read as the first line of standard input.
    Passphrase,
    /// An OpenPGP certificate (armored), read from standard input.
    Recipient,
}

fn read_line(input: &mut impl BufRead, what: &str) -> Result<String> {
    let mut line = String::new();
    input.read_line(&mut line).with_context(|| format!("reading the {what} from standard input"))?;
    let line = line.trim_end_matches(['\r', '\n']).to_string();
    if line.is_empty() {
        bail!("no {what} on standard input");
    }
    Ok(line)
}

pub(crate) fn export(dir: &Path, protection: Protection) -> Result<()> {
    let paths = StatePaths::new(dir);
    Config::load(&paths.config())?;
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    for (rel, mode, required) in FILES {
        let path = paths.root().join(rel);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(_) if !required => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(*mode);
        header.set_cksum();
        tar.append_data(&mut header, rel, bytes.as_slice()).with_context(|| format!("adding {rel}"))?;
    }
    let plain = tar.into_inner().context("finishing the archive")?;
    let mut stdin = std::io::stdin().lock();
    let sealed = match protection {
        Protection::Passphrase => {
            let pass = read_line(&mut stdin, "passphrase")?;
            if pass.chars().count() < 8 {
                bail!("the passphrase is too short: use at least 8 characters (a few words are best)");
            }
            coffer_bundle::encrypt_with_passphrase(&plain, &pass)
        }
        Protection::Recipient => {
            let mut cert = String::new();
            stdin.take(1 << 20).read_to_string(&mut cert).context("reading the recipient certificate")?;
            coffer_bundle::encrypt_to_cert(&plain, &cert)
        }
    }
    .map_err(|e| anyhow!("encrypting the state bundle: {e}"))?;
    let mut out = std::io::stdout().lock();
    out.write_all(&sealed).and_then(|()| out.flush()).context("writing the bundle to standard output")?;
    Ok(())
}

/// One file from a state bundle, checked.
struct Restored {
    rel: &'static str,
    mode: u32,
    bytes: Vec<u8>,
}

fn unpack(plain: &[u8]) -> Result<Vec<Restored>> {
    let mut out = Vec::new();
    let mut archive = tar::Archive::new(plain);
    for entry in archive.entries().context("the state bundle is not a Coffer state archive")? {
        let mut entry = entry.context("the state bundle's archive is damaged")?;
        let name = entry.path().context("a name in the state bundle")?.to_string_lossy().into_owned();
        let Some((rel, mode, _)) = FILES.iter().find(|(r, _, _)| *r == name) else {
            bail!("the state bundle holds {name:?}, which is not a state file; refusing it");
        };
        if !entry.header().entry_type().is_file() {
            bail!("{name} in the state bundle is not a regular file; refusing it");
        }
        if out.iter().any(|r: &Restored| r.rel == *rel) {
            bail!("{name} appears twice in the state bundle; refusing it");
        }
        let mut bytes = Vec::new();
        entry.by_ref().take(MAX_BUNDLE).read_to_end(&mut bytes)?;
        out.push(Restored { rel, mode: *mode, bytes });
    }
    for (rel, _, required) in FILES {
        if *required && !out.iter().any(|r| r.rel == *rel) {
            bail!("the state bundle lacks {rel}; refusing it");
        }
    }
    // Everything must make sense before anything is replaced.
    let text = |rel: &str| out.iter().find(|r| r.rel == rel).map(|r| String::from_utf8_lossy(&r.bytes).into_owned()).unwrap_or_default();
    Config::parse(&text("coffer.toml"), Path::new("coffer.toml (from the bundle)"))?;
    let users = toml::from_str::<UserDb>(&text("users.toml")).context("users.toml in the bundle does not parse")?;
    if users.version != UserDb::default().version {
        bail!("users.toml in the bundle has version {}, this firmware reads version {}", users.version, UserDb::default().version);
    }
    if !users.users.iter().any(|u| u.role == coffer_config::Role::Admin && !u.locked && !u.keys.is_empty()) {
        bail!("users.toml in the bundle has no administrator who can log in; the box would be locked");
    }
    if let Some(u) = users.users.iter().find(|u| u.uid < 1000 || u.gid < 1000) {
        bail!("user {} in the bundle has uid/gid {}/{}, below 1000; refusing it", u.name, u.uid, u.gid);
    }
    russh::keys::decode_secret_key(&text("host-keys/ssh_host_ed25519_key"), None).context("the host key in the bundle is unreadable")?;
    Ok(out)
}

pub(crate) fn import(dir: &Path, passphrase: bool, reboot: bool) -> Result<()> {
    let mut stdin = std::io::stdin().lock();
    let pass = if passphrase { Some(read_line(&mut stdin, "passphrase")?) } else { None };
    let mut bundle = Vec::new();
    stdin.take(MAX_BUNDLE + 1).read_to_end(&mut bundle).context("reading the state bundle")?;
    if bundle.is_empty() {
        bail!("no state bundle on standard input");
    }
    let plain = match (&pass, coffer_bundle::is_openpgp_message(&bundle)) {
        (Some(p), true) => coffer_bundle::decrypt_with_passphrase(&bundle, p).map_err(|e| anyhow!("import refused: {e}; nothing was changed"))?,
        (None, true) => bail!("the bundle is encrypted: give --passphrase-stdin, or decrypt it first (gpg -d) and send the plain archive"),
        (_, false) => bundle,
    };
    let files = unpack(&plain).map_err(|e| anyhow!("import refused: {e:#}; nothing was changed"))?;
    let paths = StatePaths::new(dir);
    // The data area stays where this box has it (see `config set`).
    let here = Config::load(&paths.config())?.server.data_dir;
    let bundle_config = files.iter().find(|f| f.rel == "coffer.toml").map(|f| String::from_utf8_lossy(&f.bytes).into_owned()).unwrap_or_default();
    let there = Config::parse(&bundle_config, Path::new("coffer.toml (from the bundle)"))?.server.data_dir;
    if here != there {
        bail!("import refused: the bundle's server.data-dir ({}) differs from this box's ({}); nothing was changed", there.display(), here.display());
    }
    // Every file is written and synced before any replaces its old self:
    // a failure (a full disk) leaves the state as it was. Then only renames remain.
    let mut staged = Vec::new();
    for f in &files {
        let path = paths.root().join(f.rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("import refused: creating {}; nothing was changed", parent.display()))?;
        }
        let file = coffer_config::StagedFile::write(&path, &f.bytes).map_err(|e| anyhow!("import refused: {e}; nothing was changed"))?;
        file.set_mode(f.mode).map_err(|e| anyhow!("import refused: {e}; nothing was changed"))?;
        staged.push(file);
    }
    for file in staged {
        file.commit()?;
    }
    coffer_runtime::event::emit(&coffer_runtime::event::Event::StateImported { files: files.len() as u64 });
    println!("coffer: restored {} state files (host key, users, settings)", files.len());
    if reboot {
        crate::power::request(true)
    } else {
        println!("coffer: the running services still use the old ones: `reboot` to apply");
        Ok(())
    }
}
