//! Volumes on their way to the target: each is sealed into a staging file
//! while the volume writer fills it, then uploaded under its final name and
//! recorded (range and SHA-1) for the manifest.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use coffer_archive::{VolumeInfo, VolumeRange, Volumes};
use coffer_duplicity::{ArchiveName, FileRole};
use coffer_remote::Remote;

use super::seal::{Counted, Protection, Sealed, Tally};

/// Where the volume writer's volumes go.
pub(super) struct Uploads<'a, 'k> {
    pub remote: &'a dyn Remote,
    pub staging: PathBuf,
    pub protection: &'a Protection<'k>,
    /// The set's name with a placeholder role.
    pub set: ArchiveName,
    /// Every finished volume, in order.
    pub volumes: Vec<VolumeInfo>,
    /// Bytes stored so far.
    pub bytes: u64,
}

/// An archive file being written to its staging file.
pub(super) struct Staged<'a> {
    pub(super) sealed: Box<dyn Sealed + 'a>,
    /// What the staging file holds so far.
    tally: Arc<Tally>,
    /// Bytes written into the stream, before compression or encryption.
    plain: u64,
    path: PathBuf,
    name: String,
}

impl Write for Staged<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.sealed.write(buf)?;
        self.plain += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sealed.flush()
    }
}

impl<'a> Uploads<'a, '_> {
    /// Finishes a staged file (`sealed` may have been taken out and put back)
    /// and stores it under its name; its SHA-1 in hex.
    pub(super) fn store(&mut self, staged: Staged<'_>) -> io::Result<String> {
        staged.sealed.finish()?;
        let sha1 = staged.tally.sha1_hex();
        let mut file = std::fs::File::open(&staged.path)?;
        file.sync_all()?;
        let name = &staged.name;
        self.bytes += self.remote.put(name, &mut file).map_err(|e| io::Error::other(format!("uploading {name}: {e}")))?;
        std::fs::remove_file(&staged.path)?;
        log::info!("stored {name}");
        Ok(sha1)
    }

    /// A fresh staging file for the set's file in `role`, sealed;
    /// `compress` is false for the manifest.
    pub(super) fn start(&self, role: FileRole, compress: bool) -> io::Result<Staged<'a>> {
        let name = self.name(role);
        let path = self.staging.join(&name);
        let counted = Counted::create(&path)?;
        let tally = counted.tally();
        Ok(Staged { sealed: self.protection.seal(counted, compress)?, tally, plain: 0, path, name })
    }

    /// The file name of this set's file in `role`.
    pub(super) fn name(&self, role: FileRole) -> String {
        ArchiveName { role, encrypted: self.protection.encrypted(), ..self.set.clone() }.file_name()
    }
}

impl<'a> Volumes for Uploads<'a, '_> {
    type Sink = Staged<'a>;

    fn open(&mut self, number: u32) -> io::Result<Staged<'a>> {
        self.start(FileRole::Volume(number), true)
    }

    /// Gzip holds back little, so its output decides, as in duplicity. The
    /// OpenPGP writer holds back up to 4 MiB in each of its two packet
    /// layers, so its output lags far behind: the plain bytes (never fewer
    /// than the encrypted ones, archives being mostly incompressible)
    /// keep a volume within its size.
    fn output_len(&self, sink: &Staged<'a>) -> u64 {
        if self.protection.encrypted() { sink.plain } else { sink.tally.written() }
    }

    fn close(&mut self, sink: Staged<'a>, range: VolumeRange) -> io::Result<()> {
        let sha1 = self.store(sink)?;
        self.volumes.push(VolumeInfo::new(range, &sha1));
        Ok(())
    }
}
