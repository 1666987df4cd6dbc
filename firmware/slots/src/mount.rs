//! Mounting the ESP only while it is read or changed: a FAT file system that
//! stays mounted read-write is one power cut away from a dirty boot disk.

use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags, mount, unmount};

use crate::{Esp, EspError};

/// The ESP mounted at a directory; unmounted (after a sync) when dropped.
#[derive(Debug)]
pub struct EspMount {
    at: PathBuf,
    esp: Esp,
}

impl EspMount {
    /// Mounts the FAT file system on `device` at `at`, read-only unless
    /// `write`. Each process uses its own `at`, so one's unmount never
    /// pulls the file system from under another's writes.
    pub fn mount(device: &Path, at: &Path, write: bool) -> Result<Self, EspError> {
        std::fs::create_dir_all(at).map_err(|source| EspError::Io { path: at.to_path_buf(), source })?;
        let mut flags = MountFlags::NOATIME | MountFlags::NODEV | MountFlags::NOSUID | MountFlags::NOEXEC;
        if !write {
            flags |= MountFlags::RDONLY;
        }
        // Explicit character sets: the kernel's default (utf8) may be a module
        // the image does not load; the ESP's names are ASCII anyway.
        mount(device, at, "vfat", flags, c"codepage=437,iocharset=iso8859-1")
            .map_err(|e| EspError::Io { path: device.to_path_buf(), source: e.into() })?;
        Ok(EspMount { at: at.to_path_buf(), esp: Esp::at(at) })
    }

    pub fn esp(&self) -> &Esp {
        &self.esp
    }
}

impl Drop for EspMount {
    fn drop(&mut self) {
        rustix::fs::sync();
        if unmount(&self.at, UnmountFlags::empty()).is_err() {
            let _ = unmount(&self.at, UnmountFlags::DETACH);
        }
        let _ = std::fs::remove_dir(&self.at);
    }
}
