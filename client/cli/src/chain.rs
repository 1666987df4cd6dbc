//! Reading a backup back: which sets make up the backup as it was at a
//! time (duplicity's rule: the newest chain whose full set is not after the
//! time, and its sets up to the time), their manifests, and their volumes
//! streamed from the target, checked against the manifest's SHA-1 and
//! opened (gunzipped or decrypted) on the way, each on a thread of its own
//! while the restore writes files.

use std::io::{self, Read};

use anyhow::{Context, Result, bail};
use coffer_duplicity::{BackupSet, Collection, FileInfo, format_stamp};
use coffer_remote::Remote;
use coffer_restore::{Chain, VolumeSource};
use sha1::{Digest, Sha1};

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

/// Volumes fetched from the target as the restore asks for them.
pub(crate) struct RemoteVolumes<'a> {
    pub(crate) remote: &'a dyn Remote,
    pub(crate) opener: &'a Opener<'static>,
    pub(crate) sets: Vec<&'a BackupSet>,
    pub(crate) chain: &'a Chain,
}

impl VolumeSource for RemoteVolumes<'_> {
    fn name(&self, set: usize, volume: u32) -> String {
        self.sets.get(set).and_then(|s| s.volumes.get(&volume)).cloned().unwrap_or_else(|| format!("set {set} volume {volume} (not at the target)"))
    }

    fn open(&mut self, set: usize, volume: u32) -> io::Result<Box<dyn Read>> {
        let name = self.sets.get(set).and_then(|s| s.volumes.get(&volume)).ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the volume is not at the target"))?;
        let stream = self.remote.get(name).map_err(|e| io::Error::other(e.to_string()))?;
        let expected = self.chain.manifests.get(set).and_then(|m| m.volumes.iter().find(|v| v.number == volume)).and_then(|v| {
            v.best_hash().filter(|(kind, _)| *kind == "SHA1").map(|(_, hex)| hex.to_ascii_lowercase())
        });
        let checked: Box<dyn Read + Send> = Box::new(HashChecked { inner: stream, sha1: Sha1::new(), expected, name: name.clone() });
        Ok(Box::new(Background::start(Opener { keys: self.opener.keys, passphrase: self.opener.passphrase.clone() }, name.clone(), checked)))
    }
}

/// Chunks a volume's reader thread hands over at a time, and how many may wait.
const CHUNK: usize = 256 * 1024;
const CHUNKS_AHEAD: usize = 8;

/// A volume fetched, checked and opened (decrypted or inflated) on a thread
/// of its own, so that work overlaps with the restore writing files.
struct Background {
    chunks: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
}

impl Background {
    fn start(opener: Opener<'static>, name: String, stream: Box<dyn Read + Send>) -> Background {
        let (tx, chunks) = std::sync::mpsc::sync_channel(CHUNKS_AHEAD);
        std::thread::spawn(move || {
            let mut plain = match opener.open(&name, stream) {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx.send(Err(io::Error::other(format!("{e:#}"))));
                    return;
                }
            };
            loop {
                let mut chunk = vec![0; CHUNK];
                match plain.read(&mut chunk) {
                    // The end, after the opener checked the whole message.
                    Ok(0) => return,
                    Ok(n) => {
                        chunk.truncate(n);
                        if tx.send(Ok(chunk)).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
        });
        Background { chunks, current: Vec::new(), at: 0 }
    }
}

impl Read for Background {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            match self.chunks.recv() {
                Ok(chunk) => {
                    self.current = chunk?;
                    self.at = 0;
                }
                // The thread finished without an error: the volume's end.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
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
