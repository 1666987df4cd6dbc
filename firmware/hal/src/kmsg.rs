//! The kernel log (`/dev/kmsg`), for drivers that report only there (the
//! 3ware 3w-xxxx driver's AEN messages). Reading starts at the oldest record
//! the kernel kept, so events from before the watcher started are seen.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

use crate::{HalError, SysRoot};

/// Non-blocking reader of kernel log records.
#[derive(Debug)]
pub struct KmsgReader {
    file: File,
    pending: String,
}

impl SysRoot {
    /// Opens `/dev/kmsg` for reading without blocking.
    pub fn kmsg(&self) -> Result<KmsgReader, HalError> {
        let path = self.path("dev/kmsg");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(&path)
            .map_err(|source| HalError::Read { path, source })?;
        Ok(KmsgReader { file, pending: String::new() })
    }

    /// Whether a PCI driver drives a device (`/sys/bus/pci/drivers/NAME/0000:…`):
    /// a board's image loads its controller's module whether or not the card is in.
    pub fn pci_driver_bound(&self, driver: &str) -> bool {
        !self.pci_devices_of(driver).is_empty()
    }

    /// Whether a block device sits behind a device the PCI driver drives
    /// (a 3ware unit: `/sys/class/block/sda` → `…/0000:00:0b.0/host0/…/block/sda`).
    pub fn disk_behind_driver(&self, kname: &str, driver: &str) -> bool {
        let Ok(target) = std::fs::read_link(self.path("sys/class/block").join(kname)) else { return false };
        let devices = self.pci_devices_of(driver);
        target.components().any(|c| devices.iter().any(|d| c.as_os_str() == d.as_str()))
    }

    fn pci_devices_of(&self, driver: &str) -> Vec<String> {
        std::fs::read_dir(self.path("sys/bus/pci/drivers").join(driver))
            .map(|entries| {
                entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("0000:")).collect()
            })
            .unwrap_or_default()
    }
}

impl KmsgReader {
    /// Every whole record available now. `/dev/kmsg` gives one record per
    /// read; a plain file (a fixture) gives many lines at once: both work.
    pub fn records(&mut self) -> Vec<String> {
        let mut buf = vec![0u8; 8192];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.pending.push_str(&String::from_utf8_lossy(&buf[..n])),
                // EPIPE: records were overwritten before we read them; go on with the next.
                Err(e) if e.raw_os_error() == Some(32) => continue,
                Err(_) => break,
            }
        }
        let mut out = Vec::new();
        while let Some(end) = self.pending.find('\n') {
            let line: String = self.pending.drain(..=end).collect();
            // Continuation lines (" KEY=value") carry no message of their own.
            if !line.starts_with(' ') {
                out.push(line.trim_end().to_string());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_from_a_fixture_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("dev")).unwrap();
        std::fs::write(
            dir.path().join("dev/kmsg"),
            "4,512,1000,-;3w-xxxx: scsi0: AEN: ERROR: Unit degraded: Unit #0.\n SUBSYSTEM=scsi\n6,513,2000,-;other\n",
        )
        .unwrap();
        let sys = SysRoot::at(dir.path());
        // Loaded, but no card: the driver's directory holds only its attributes.
        let driver = dir.path().join("sys/bus/pci/drivers/3w-xxxx");
        std::fs::create_dir_all(&driver).unwrap();
        std::fs::write(driver.join("bind"), "").unwrap();
        assert!(!sys.pci_driver_bound("3w-xxxx") && !sys.pci_driver_bound("3w-9xxx"));
        let block = dir.path().join("sys/class/block");
        std::fs::create_dir_all(&block).unwrap();
        std::os::unix::fs::symlink("../../devices/pci0000:00/0000:00:0b.0/host0/target0:0:0/0:0:0:0/block/sda", block.join("sda")).unwrap();
        std::os::unix::fs::symlink("../../devices/pci0000:00/0000:00:0f.1/ata1/host1/target1:0:0/1:0:0:0/block/sdb", block.join("sdb")).unwrap();
        assert!(!sys.disk_behind_driver("sda", "3w-xxxx"));
        std::os::unix::fs::symlink("../../../../devices/pci0000:00/0000:00:0b.0", driver.join("0000:00:0b.0")).unwrap();
        assert!(sys.pci_driver_bound("3w-xxxx"));
        assert!(sys.disk_behind_driver("sda", "3w-xxxx") && !sys.disk_behind_driver("sdb", "3w-xxxx"));
        assert!(!sys.disk_behind_driver("sdz", "3w-xxxx"));
        let mut k = sys.kmsg().unwrap();
        assert_eq!(k.records(), ["4,512,1000,-;3w-xxxx: scsi0: AEN: ERROR: Unit degraded: Unit #0.", "6,513,2000,-;other"]);
        assert!(k.records().is_empty());
    }
}
