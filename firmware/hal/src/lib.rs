//! Hardware access by reading files. Every path goes through [`SysRoot`], so
//! the same code reads `/` on the appliance and a fixture tree in tests.
//! Actions that files cannot imitate (mounting, module loading, mdadm) live
//! with their callers behind small traits; this crate reads, and writes
//! only the few sysfs knobs that are plain files (LEDs, md sync, speed).

mod block;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixture;
mod input;
mod kmsg;
mod led;
mod md;
mod uevent;

use std::path::{Path, PathBuf};

pub use block::{BlockDevice, DeviceKind, DiskCounters, parse_diskstats};
pub use input::power_button_handlers;
pub use kmsg::KmsgReader;
pub use led::LedSetting;
pub use md::{MdArray, MdMember, MdSync, parse_sync_completed};
pub use uevent::{Uevent, UeventSocket, parse_uevent};

#[derive(Debug, thiserror::Error)]
pub enum HalError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
}

/// The root under which `/sys`, `/proc` and `/dev` are found.
#[derive(Debug, Clone)]
pub struct SysRoot {
    root: PathBuf,
}

impl SysRoot {
    /// The running system.
    pub fn system() -> Self {
        SysRoot { root: PathBuf::from("/") }
    }

    /// A fixture tree laid out like `/`.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        SysRoot { root: root.into() }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    fn read(&self, rel: &str) -> Result<String, HalError> {
        let path = self.path(rel);
        std::fs::read_to_string(&path).map_err(|source| HalError::Read { path, source })
    }

    /// The kernel command line (`/proc/cmdline`).
    pub fn kernel_cmdline(&self) -> Result<KernelCmdline, HalError> {
        Ok(KernelCmdline::parse(&self.read("proc/cmdline")?))
    }

    /// The device node of a kernel name (`vda2` → `/dev/vda2`).
    pub fn dev_node(&self, kname: &str) -> PathBuf {
        self.path("dev").join(kname)
    }

    /// Network interfaces other than loopback, sorted by name.
    pub fn network_interfaces(&self) -> Result<Vec<String>, HalError> {
        let dir = self.path("sys/class/net");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|source| HalError::Read { path: dir.clone(), source })?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "lo")
            .collect();
        names.sort();
        Ok(names)
    }

    /// Whether a whole disk is blank: its first and last MiB are zero (no
    /// partition table, primary or backup; no md superblock, 1.2 at 4 KiB or
    /// 0.90/1.0 at the end; no file system signature).
    pub fn disk_is_blank(&self, kname: &str, size: u64) -> std::io::Result<bool> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(self.dev_node(kname))?;
        let span = (1u64 << 20).min(size) as usize;
        let mut buf = vec![0; span];
        f.read_exact(&mut buf)?;
        if buf.iter().any(|b| *b != 0) {
            return Ok(false);
        }
        f.seek(SeekFrom::Start(size.saturating_sub(span as u64)))?;
        f.read_exact(&mut buf)?;
        Ok(buf.iter().all(|b| *b == 0))
    }

    /// Caps md resync and rebuild speed (`/proc/sys/dev/raid/speed_limit_max`, KiB/s).
    pub fn set_md_speed_limit_max(&self, kib: u64) -> std::io::Result<()> {
        std::fs::write(self.path("proc/sys/dev/raid/speed_limit_max"), format!("{kib}\n"))
    }

    /// Whether a path is a mount point (per `/proc/self/mountinfo`).
    pub fn is_mounted(&self, mount_point: &Path) -> Result<bool, HalError> {
        let info = self.read("proc/self/mountinfo")?;
        let wanted = mount_point.to_string_lossy();
        Ok(info.lines().any(|l| l.split(' ').nth(4) == Some(&*wanted)))
    }
}

/// `key=value` words of the kernel command line; bare words map to "".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelCmdline {
    words: Vec<(String, String)>,
}

impl KernelCmdline {
    pub fn parse(text: &str) -> Self {
        let words = text
            .split_whitespace()
            .map(|w| match w.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (w.to_string(), String::new()),
            })
            .collect();
        KernelCmdline { words }
    }

    /// The last value given for `key` (the kernel's own rule for repeats).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.words.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("1" | "yes" | "true" | ""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_words() {
        let c = KernelCmdline::parse("console=ttyS0 quiet coffer.slot=a coffer.slot=b coffer.debug=1\n");
        assert_eq!(c.get("coffer.slot"), Some("b"));
        assert!(c.flag("quiet"));
        assert!(c.flag("coffer.debug"));
        assert!(!c.flag("coffer.other"));
        assert_eq!(c.get("console"), Some("ttyS0"));
    }

    #[test]
    fn mount_points_from_mountinfo() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc/self")).unwrap();
        std::fs::write(
            dir.path().join("proc/self/mountinfo"),
            "22 1 0:21 / /proc rw,nosuid - proc proc rw\n30 1 254:2 / /state rw,noatime - ext4 /dev/vda2 rw\n",
        )
        .unwrap();
        let root = SysRoot::at(dir.path());
        assert!(root.is_mounted(Path::new("/state")).unwrap());
        assert!(!root.is_mounted(Path::new("/data")).unwrap());
    }
}
