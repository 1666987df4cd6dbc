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
pub struct Uploads<'a> {
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

/// One volume being written.
pub struct Sink {
    sealed: Box<dyn Sealed>,
    written: Rc<Cell<u64>>,
    path: PathBuf,
    name: String,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sealed.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sealed.flush()
    }
}

impl Uploads<'_> {
    /// Stores a finished staging file as `name`; its SHA-1 in hex.
    pub fn store(&mut self, sealed: Box<dyn Sealed>, path: &std::path::Path, name: &str) -> io::Result<String> {
        let sha1 = sealed.finish()?.finish()?;
        let mut file = std::fs::File::open(path)?;
        self.bytes += self.remote.put(name, &mut file).map_err(|e| io::Error::other(format!("uploading {name}: {e}")))?;
        std::fs::remove_file(path)?;
        Ok(sha1)
    }

    /// A fresh staging file for `name`, sealed.
    pub fn start(&self, name: &str, compress: bool) -> io::Result<(Box<dyn Sealed>, Rc<Cell<u64>>, PathBuf)> {
        let path = self.staging.join(name);
        let counted = Counted::create(&path)?;
        let written = counted.counter();
        Ok((self.protection.seal(counted, compress)?, written, path))
    }

    /// The file name of this set's file in `role`.
    pub fn name(&self, role: FileRole) -> String {
        ArchiveName { role, encrypted: self.protection.encrypted(), ..self.set.clone() }.file_name()
    }
}

impl Volumes for Uploads<'_> {
    type Sink = Sink;

    fn open(&mut self, number: u32) -> io::Result<Sink> {
        let name = self.name(FileRole::Volume(number));
        let (sealed, written, path) = self.start(&name, true)?;
        Ok(Sink { sealed, written, path, name })
    }

    fn output_len(&self, sink: &Sink) -> u64 {
        sink.written.get()
    }

    fn close(&mut self, sink: Sink, range: VolumeRange) -> io::Result<()> {
        let sha1 = self.store(sink.sealed, &sink.path, &sink.name)?;
        log::info!("stored {}", sink.name);
        self.volumes.push(VolumeInfo::new(range, &sha1));
        Ok(())
    }
}
