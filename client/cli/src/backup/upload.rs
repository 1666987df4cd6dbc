//! Volumes on their way to the target: each is sealed into a staging file
//! while the volume writer fills it, then uploaded under its final name and
//! recorded (range and SHA-1) for the manifest.

use std::cell::Cell;
use std::io::{self, Write};
use std::path::PathBuf;
use std::rc::Rc;

use coffer_archive::{VolumeInfo, VolumeRange, Volumes};
use coffer_duplicity::{ArchiveName, FileRole};
use coffer_remote::Remote;

use super::seal::{Counted, Protection, Sealed};

/// Where the volume writer's volumes go.
pub(super) struct Uploads<'a> {
    pub remote: &'a dyn Remote,
    pub staging: PathBuf,
    pub protection: &'a Protection,
    /// The set's name with a placeholder role.
    pub set: ArchiveName,
    /// Every finished volume, in order.
    pub volumes: Vec<VolumeInfo>,
    /// Bytes stored so far.
    pub bytes: u64,
}

/// An archive file being written to its staging file.
pub(super) struct Staged {
    pub(super) sealed: Box<dyn Sealed>,
    /// Bytes in the staging file so far.
    written: Rc<Cell<u64>>,
    path: PathBuf,
    name: String,
}

impl Write for Staged {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sealed.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sealed.flush()
    }
}

impl Uploads<'_> {
    /// Finishes a staged file (`sealed` may have been taken out and put back)
    /// and stores it under its name; its SHA-1 in hex.
    pub(super) fn store(&mut self, staged: Staged) -> io::Result<String> {
        let sha1 = staged.sealed.finish()?.finish()?;
        let mut file = std::fs::File::open(&staged.path)?;
        let name = &staged.name;
        self.bytes += self.remote.put(name, &mut file).map_err(|e| io::Error::other(format!("uploading {name}: {e}")))?;
        std::fs::remove_file(&staged.path)?;
        log::info!("stored {name}");
        Ok(sha1)
    }

    /// A fresh staging file for the set's file in `role`, sealed;
    /// `compress` is false for the manifest.
    pub(super) fn start(&self, role: FileRole, compress: bool) -> io::Result<Staged> {
        let name = self.name(role);
        let path = self.staging.join(&name);
        let counted = Counted::create(&path)?;
        let written = counted.counter();
        Ok(Staged { sealed: self.protection.seal(counted, compress)?, written, path, name })
    }

    /// The file name of this set's file in `role`.
    pub(super) fn name(&self, role: FileRole) -> String {
        ArchiveName { role, encrypted: self.protection.encrypted(), ..self.set.clone() }.file_name()
    }
}

impl Volumes for Uploads<'_> {
    type Sink = Staged;

    fn open(&mut self, number: u32) -> io::Result<Staged> {
        self.start(FileRole::Volume(number), true)
    }

    fn output_len(&self, sink: &Staged) -> u64 {
        sink.written.get()
    }

    fn close(&mut self, sink: Staged, range: VolumeRange) -> io::Result<()> {
        let sha1 = self.store(sink)?;
        self.volumes.push(VolumeInfo::new(range, &sha1));
        Ok(())
    }
}
