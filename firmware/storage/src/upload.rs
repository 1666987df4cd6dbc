//! An upload in progress: a hidden temporary file that becomes the final
//! name only when committed. Dropping it uncommitted removes the temporary.

use std::fs::File;
use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, RenameFlags};

/// A file being written under a temporary name next to its final name.
#[derive(Debug)]
pub struct Upload {
    pub(crate) dir: OwnedFd,
    pub(crate) tmp_name: Vec<u8>,
    pub(crate) final_name: Vec<u8>,
    pub(crate) file: File,
    /// The client asked for EXCL: never replace a file that appeared meanwhile.
    pub(crate) no_replace: bool,
    pub(crate) finished: bool,
}

impl Upload {
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Makes the upload durable and visible: fsync the data, rename onto the
    /// final name, fsync the directory. Returns what the rename replaced.
    pub fn commit(mut self) -> std::io::Result<Option<crate::Meta>> {
        self.file.sync_data()?;
        let replaced = rustix::fs::statat(&self.dir, self.final_name.as_slice(), AtFlags::SYMLINK_NOFOLLOW).ok().map(|st| crate::Meta::of(&st));
        let flags = if self.no_replace { RenameFlags::NOREPLACE } else { RenameFlags::empty() };
        rustix::fs::renameat_with(&self.dir, self.tmp_name.as_slice(), &self.dir, self.final_name.as_slice(), flags)?;
        self.finished = true;
        rustix::fs::fsync(&self.dir)?;
        Ok(replaced)
    }

    /// Identity of the uploaded inode (it keeps it across the rename).
    pub fn identity(&self) -> std::io::Result<crate::FileId> {
        crate::FileId::of(&self.file)
    }

    /// Flushes the data written so far to disk (`fsync@openssh.com`).
    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.finished
            && let Err(e) = rustix::fs::unlinkat(&self.dir, self.tmp_name.as_slice(), AtFlags::empty())
        {
            log::warn!("could not remove unfinished upload {}: {e}", String::from_utf8_lossy(&self.tmp_name));
        }
    }
}
