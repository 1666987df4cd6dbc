//! Reading a backup back: which sets make up the backup as it was at a
//! time (duplicity's rule: the newest chain whose full set is not after the
//! time, and its sets up to the time), their manifests, and their volumes
//! streamed from the target, checked against the manifest's SHA-1 and
//! opened (gunzipped or decrypted) on the way, each on a thread of its own
//! while the restore writes files (`crate::background`).

use std::collections::HashMap;
use std::io::{self, Read};

use anyhow::{Context, Result, bail};
use coffer_duplicity::{BackupSet, Collection, FileInfo, format_stamp};
use coffer_remote::Remote;
use coffer_restore::{Chain, VolumeSource};
use sha1::{Digest, Sha1};

use crate::background::{Background, Buffer};
use crate::backup::Opener;

/// The target's files grouped into sets and chains.
pub(crate) fn collection(remote: &dyn Remote) -> Result<Collection> {
    let files: Vec<FileInfo> = remote.list()?.into_iter().map(|e| FileInfo { name: e.name, mtime: 0, ctime: 0, size: e.size }).collect();
    Ok(Collection::from_files(&files))
}

/// The sets, full first, that give the backup as it was at `time` (the
/// newest when `None`).
pub(crate) fn sets_at(collection: &Collection, time: Option<i64>) -> Result<Vec<&BackupSet>> {
    let fits = |set: &BackupSet| time.is_none_or(|t| set.end <= t);
    let Some(chain) = collection.chains.iter().rev().find(|c| fits(&collection.sets[c.sets[0]])) else {
        match (collection.chains.first(), time) {
            (None, _) => bail!("there is no complete backup at the target (`coffer-client status URL` shows what is there)"),
            (Some(c), Some(t)) => bail!(
                "there is no backup as early as {}: the oldest is from {}",
                format_stamp(t),
                format_stamp(collection.sets[c.sets[0]].end)
            ),
            (Some(_), None) => bail!("no chain fits"),
        }
    };
    Ok(chain.sets.iter().map(|&i| &collection.sets[i]).filter(|s| fits(s)).collect())
}

/// The manifests of `sets`, read and parsed.
pub(crate) fn read_chain(remote: &dyn Remote, opener: &Opener<'_>, sets: &[&BackupSet]) -> Result<Chain> {
    let mut manifests = Vec::new();
    for set in sets {
        let name = set.manifest.as_deref().context("a set without a manifest")?;
        let mut bytes = Vec::new();
        opener.open(name, remote.get(name)?)?.read_to_end(&mut bytes).with_context(|| format!("reading {name}"))?;
        manifests.push(bytes);
    }
    Chain::parse(&manifests).context("reading the manifests")
}

/// The sigtars of `sets`, opened, oldest first.
pub(crate) fn sigtars<'k>(remote: &dyn Remote, opener: &Opener<'k>, sets: &[&BackupSet]) -> Result<Vec<Box<dyn Read + 'k>>> {
    let mut out = Vec::new();
    for set in sets {
        let name = set.signatures.first().with_context(|| format!("the set {} has no signature file at the target", set.key()))?;
        out.push(opener.open(name, remote.get(name)?)?);
    }
    Ok(out)
}

/// Volumes fetched from the target as the restore asks for them, the next
/// one of each set already on its way while the current one is read.
pub(crate) struct RemoteVolumes<'a> {
    remote: &'a dyn Remote,
    opener: &'a Opener<'static>,
    sets: Vec<&'a BackupSet>,
    chain: &'a Chain,
    /// Volumes started before they were asked for, by (set, volume).
    ahead: HashMap<(usize, u32), Background>,
}

impl<'a> RemoteVolumes<'a> {
    pub(crate) fn new(remote: &'a dyn Remote, opener: &'a Opener<'static>, sets: Vec<&'a BackupSet>, chain: &'a Chain) -> Self {
        RemoteVolumes { remote, opener, sets, chain, ahead: HashMap::new() }
    }

    fn start(&self, set: usize, volume: u32, buffer: Buffer) -> io::Result<Background> {
        let name = self.sets.get(set).and_then(|s| s.volumes.get(&volume)).ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the volume is not at the target"))?;
        let stream = self.remote.get(name).map_err(|e| io::Error::other(e.to_string()))?;
        let expected = self.chain.manifests.get(set).and_then(|m| m.volumes.iter().find(|v| v.number == volume)).and_then(|v| {
            v.best_hash().filter(|(kind, _)| *kind == "SHA1").map(|(_, hex)| hex.to_ascii_lowercase())
        });
        let checked: Box<dyn Read + Send> = Box::new(HashChecked { inner: stream, sha1: Sha1::new(), expected, name: name.clone() });
        Background::start(Opener { keys: self.opener.keys, passphrase: self.opener.passphrase.clone() }, name.clone(), checked, buffer)
    }
}

impl VolumeSource for RemoteVolumes<'_> {
    fn name(&self, set: usize, volume: u32) -> String {
        self.sets.get(set).and_then(|s| s.volumes.get(&volume)).cloned().unwrap_or_else(|| format!("set {set} volume {volume} (not at the target)"))
    }

    fn open(&mut self, set: usize, volume: u32) -> io::Result<Box<dyn Read>> {
        match self.ahead.remove(&(set, volume)) {
            Some(started) => Ok(Box::new(started)),
            None => Ok(Box::new(self.start(set, volume, Buffer::Chunks)?)),
        }
    }

    /// One volume ahead per set, spooled: it is decrypted on another core
    /// while the one before it is read.
    fn prefetch(&mut self, set: usize, volume: u32) {
        // A volume that cannot be started now is tried again, and its
        // error reported, when it is opened.
        if !self.ahead.contains_key(&(set, volume))
            && let Ok(started) = self.start(set, volume, Buffer::Spool)
        {
            self.ahead.insert((set, volume), started);
        }
    }
}

/// A volume's bytes, failing at the end when they are not what the manifest
/// recorded (a damaged or replaced volume is named, not trusted).
struct HashChecked {
    inner: Box<dyn Read + Send>,
    sha1: Sha1,
    expected: Option<String>,
    name: String,
}

impl Read for HashChecked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha1.update(&buf[..n]);
        if n == 0
            && !buf.is_empty()
            && let Some(expected) = self.expected.take()
        {
            let got = hex::encode(self.sha1.clone().finalize());
            if got != expected {
                return Err(io::Error::other(format!("{} is damaged: its SHA-1 is {got}, the manifest recorded {expected}", self.name)));
            }
        }
        Ok(n)
    }
}
