//! Applying slot changes to a mounted ESP (FAT). Files are replaced by
//! writing a temporary file, syncing and renaming, so a power cut leaves the
//! old or the new file; the ADV is rewritten in place because syslinux
//! finds it by sector.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::{ADV_BYTES, EspChange, LoaderFiles, Slot, SlotRecord, adv_boot_once, adv_with_boot_once};

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EspError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} has no valid syslinux ADV at its end; reinstall the boot loader (flash the image again)")]
    NoAdv { path: PathBuf },
    #[error("{path}: read back differs from what was written; the boot disk may be failing")]
    ReadBack { path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EspError + '_ {
    move |source| EspError::Io { path: path.to_path_buf(), source }
}

/// A mounted ESP.
#[derive(Debug, Clone)]
pub struct Esp {
    root: PathBuf,
}

impl Esp {
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Esp { root: root.into() }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// `/coffer/slots`; an image without one has had no update yet.
    pub fn record(&self) -> SlotRecord {
        std::fs::read_to_string(self.path("coffer/slots")).map(|t| SlotRecord::parse(&t)).unwrap_or_default()
    }

    pub fn loader_files(&self) -> Result<LoaderFiles, EspError> {
        let entries_dir = self.path("loader/entries");
        let mut entries = Vec::new();
        if entries_dir.is_dir() {
            for e in std::fs::read_dir(&entries_dir).map_err(io(&entries_dir))? {
                entries.push(e.map_err(io(&entries_dir))?.file_name().to_string_lossy().into_owned());
            }
        }
        entries.sort();
        Ok(LoaderFiles {
            syslinux_cfg: std::fs::read_to_string(self.path("syslinux/syslinux.cfg")).ok(),
            loader_conf: std::fs::read_to_string(self.path("loader/loader.conf")).ok(),
            entries,
        })
    }

    /// syslinux's pending boot-once label.
    pub fn boot_once(&self) -> Result<Option<String>, EspError> {
        let path = self.path("syslinux/ldlinux.sys");
        let mut f = File::open(&path).map_err(io(&path))?;
        let len = f.metadata().map_err(io(&path))?.len();
        let mut adv = [0u8; ADV_BYTES];
        f.seek(SeekFrom::Start(len.saturating_sub(ADV_BYTES as u64))).map_err(io(&path))?;
        f.read_exact(&mut adv).map_err(io(&path))?;
        adv_boot_once(&adv).map_err(|()| EspError::NoAdv { path })
    }

    pub fn apply(&self, changes: &[EspChange]) -> Result<(), EspError> {
        for c in changes {
            match c {
                EspChange::WriteSyslinuxCfg(text) => self.replace("syslinux/syslinux.cfg", text.as_bytes())?,
                EspChange::WriteLoaderConf(text) => self.replace("loader/loader.conf", text.as_bytes())?,
                EspChange::RenameEntry { from, to } => {
                    let (from, to) = (self.path(&format!("loader/entries/{from}")), self.path(&format!("loader/entries/{to}")));
                    std::fs::rename(&from, &to).map_err(io(&from))?;
                    sync_dir(&self.path("loader/entries"))?;
                }
                EspChange::BootOnce(slot) => self.set_boot_once(*slot)?,
                EspChange::WriteRecord(r) => self.replace("coffer/slots", r.to_text().as_bytes())?,
            }
        }
        Ok(())
    }

    fn set_boot_once(&self, slot: Option<Slot>) -> Result<(), EspError> {
        let path = self.path("syslinux/ldlinux.sys");
        if !path.exists() {
            // A UEFI-only board has no syslinux.
            return Ok(());
        }
        // Check there is an ADV before overwriting the file's last kilobyte.
        self.boot_once()?;
        let mut f = OpenOptions::new().write(true).open(&path).map_err(io(&path))?;
        let len = f.metadata().map_err(io(&path))?.len();
        f.seek(SeekFrom::Start(len - ADV_BYTES as u64)).map_err(io(&path))?;
        f.write_all(&adv_with_boot_once(slot.map(Slot::name))).map_err(io(&path))?;
        f.sync_all().map_err(io(&path))?;
        if self.boot_once()?.as_deref() != slot.map(Slot::name) {
            return Err(EspError::ReadBack { path });
        }
        Ok(())
    }

    /// Replaces `rel` whole: temporary file, sync, rename, sync the directory.
    pub fn replace(&self, rel: &str, bytes: &[u8]) -> Result<(), EspError> {
        let path = self.path(rel);
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| self.root.clone());
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let tmp = path.with_extension("new");
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io(&tmp))?;
        drop(f);
        // Read back before it replaces anything: FAT on a cheap SSD can lie.
        if std::fs::read(&tmp).map_err(io(&tmp))? != bytes {
            return Err(EspError::ReadBack { path: tmp });
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        sync_dir(&dir)
    }

    /// Path of a slot's file (`vmlinuz`, `initrd.zst`, `version`).
    pub fn slot_file(&self, slot: Slot, name: &str) -> PathBuf {
        self.path(&format!("coffer/{slot}/{name}"))
    }
}

fn sync_dir(dir: &Path) -> Result<(), EspError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit;

    fn esp() -> (tempfile::TempDir, Esp) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["syslinux", "loader/entries", "coffer/a", "coffer/b"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("syslinux/syslinux.cfg"), "DEFAULT a\nLABEL a\nLABEL b\n").unwrap();
        let mut ldlinux = vec![0x90u8; 4096];
        ldlinux.extend_from_slice(&adv_with_boot_once(None));
        std::fs::write(root.join("syslinux/ldlinux.sys"), ldlinux).unwrap();
        std::fs::write(root.join("loader/loader.conf"), "default coffer-a.conf\ntimeout 0\n").unwrap();
        std::fs::write(root.join("loader/entries/coffer-a.conf"), "a").unwrap();
        std::fs::write(root.join("loader/entries/coffer-b.conf"), "b").unwrap();
        let esp = Esp::at(root);
        (dir, esp)
    }

    #[test]
    fn arm_then_mark_good_on_a_tree() {
        let (dir, esp) = esp();
        let files = esp.loader_files().unwrap();
        esp.apply(&edit::arm_trial(&files, Slot::B, Slot::A)).unwrap();
        assert_eq!(esp.boot_once().unwrap().as_deref(), Some("b"));
        assert_eq!(esp.record().trying, Some(Slot::B));
        assert!(dir.path().join("loader/entries/coffer-b+1.conf").exists());
        let head = std::fs::read(dir.path().join("syslinux/ldlinux.sys")).unwrap();
        assert!(head[..4096].iter().all(|b| *b == 0x90), "only the ADV changes");

        let files = esp.loader_files().unwrap();
        esp.apply(&edit::make_good(&files, Slot::B, esp.record())).unwrap();
        assert_eq!(esp.boot_once().unwrap(), None);
        assert_eq!(esp.record(), SlotRecord { good: Some(Slot::B), ..SlotRecord::default() });
        assert!(std::fs::read_to_string(dir.path().join("syslinux/syslinux.cfg")).unwrap().starts_with("DEFAULT b\n"));
        assert!(dir.path().join("loader/entries/coffer-b.conf").exists());
        assert!(std::fs::read_to_string(dir.path().join("loader/loader.conf")).unwrap().starts_with("default coffer-b.conf"));
    }

    #[test]
    fn a_file_without_adv_is_refused() {
        let (dir, esp) = esp();
        std::fs::write(dir.path().join("syslinux/ldlinux.sys"), vec![0u8; 2048]).unwrap();
        assert!(matches!(esp.apply(&[EspChange::BootOnce(Some(Slot::B))]), Err(EspError::NoAdv { .. })));
    }
}
