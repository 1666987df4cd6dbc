//! Block devices as sysfs shows them: whole disks and partitions, with the
//! GPT partition name (how the appliance finds its state partition) and the
//! serial number (how it names disks, since kernel names move).

use crate::{HalError, SysRoot};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Disk,
    Partition,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDevice {
    /// Kernel name, for example `vda` or `vda2`.
    pub name: String,
    pub kind: DeviceKind,
    /// GPT partition name (PARTNAME), for partitions that have one.
    pub part_name: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// Serial number, when the device reports one.
    pub serial: Option<String>,
    /// The whole disk a partition belongs to.
    pub parent: Option<String>,
    pub read_only: bool,
}

impl SysRoot {
    /// Every block device, sorted by name. Virtual devices (loop, ram, md,
    /// device mapper) are left out: they are not disks in a bay.
    pub fn block_devices(&self) -> Result<Vec<BlockDevice>, HalError> {
        let dir = self.path("sys/class/block");
        let entries = std::fs::read_dir(&dir).map_err(|source| HalError::Read { path: dir.clone(), source })?;
        let mut out = Vec::new();
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if ["loop", "ram", "md", "dm-", "zram", "sr"].iter().any(|p| name.starts_with(p)) {
                continue;
            }
            let base = format!("sys/class/block/{name}");
            let Ok(uevent) = self.read(&format!("{base}/uevent")) else { continue };
            let field = |key: &str| {
                uevent.lines().find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('='))).map(str::to_string)
            };
            let kind = match field("DEVTYPE").as_deref() {
                Some("partition") => DeviceKind::Partition,
                _ => DeviceKind::Disk,
            };
            let sectors: u64 = self.read(&format!("{base}/size")).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
            let parent = match kind {
                DeviceKind::Partition => std::fs::read_link(self.path(&base))
                    .ok()
                    .and_then(|t| t.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned())),
                DeviceKind::Disk => None,
            };
            let serial = self.serial(parent.as_deref().unwrap_or(&name));
            let read_only = self.read(&format!("{base}/ro")).map(|s| s.trim() == "1").unwrap_or(false);
            out.push(BlockDevice { name, kind, part_name: field("PARTNAME"), size: sectors * 512, serial, parent, read_only });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// A disk's serial number: virtio's `serial`, SCSI's `device/serial`, or
    /// the unit serial number VPD page (`vpd_pg80`: 4 header bytes, then the
    /// serial) that SATA and SCSI disks report.
    fn serial(&self, disk: &str) -> Option<String> {
        let base = self.path(&format!("sys/class/block/{disk}"));
        let text = ["serial", "device/serial"]
            .iter()
            .find_map(|f| std::fs::read(base.join(f)).ok())
            .or_else(|| std::fs::read(base.join("device/vpd_pg80")).ok().map(|b| b.get(4..).unwrap_or_default().to_vec()))?;
        let s = String::from_utf8_lossy(&text).trim_matches(|c: char| c.is_whitespace() || c.is_control()).to_string();
        (!s.is_empty()).then_some(s)
    }

    /// Error counters of a SCSI/SATA disk (`device/ioerr_cnt`, `iotmo_cnt`,
    /// hex in sysfs) and its state (`running`, `offline`, ...). Virtio disks
    /// have none of these.
    pub fn disk_counters(&self, kname: &str) -> DiskCounters {
        let dev = format!("sys/class/block/{kname}/device");
        let hex = |f: &str| {
            self.read(&format!("{dev}/{f}")).ok().and_then(|t| u64::from_str_radix(t.trim().trim_start_matches("0x"), 16).ok())
        };
        let stats = self.read("proc/diskstats").ok().and_then(|t| parse_diskstats(&t, kname));
        DiskCounters {
            io_errors: hex("ioerr_cnt"),
            io_timeouts: hex("iotmo_cnt"),
            state: self.read(&format!("{dev}/state")).ok().map(|s| s.trim().to_string()),
            completed: stats.map(|(done, _)| done),
            in_flight: stats.map(|(_, busy)| busy),
        }
    }

    /// The partition with this GPT name, if exactly one has it.
    pub fn partition_named(&self, part_name: &str) -> Result<Option<BlockDevice>, HalError> {
        let mut found: Vec<BlockDevice> =
            self.block_devices()?.into_iter().filter(|d| d.part_name.as_deref() == Some(part_name)).collect();
        Ok(if found.len() == 1 { found.pop() } else { None })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskCounters {
    pub io_errors: Option<u64>,
    pub io_timeouts: Option<u64>,
    pub state: Option<String>,
    /// Reads and writes completed (`/proc/diskstats`).
    pub completed: Option<u64>,
    /// Requests in flight now (`/proc/diskstats`).
    pub in_flight: Option<u64>,
}

/// `(reads + writes completed, in flight)` of `kname` in `/proc/diskstats`
/// (`major minor name reads … writes … in_flight …`).
pub fn parse_diskstats(text: &str, kname: &str) -> Option<(u64, u64)> {
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(2) != Some(&kname) {
            return None;
        }
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
        Some((n(3)?.saturating_add(n(7)?), n(11)?))
    })
}

#[cfg(test)]
mod diskstats_tests {
    use super::parse_diskstats;

    #[test]
    fn completed_and_in_flight() {
        let text = " 252       0 vda 5161 1398 441554 1740 2339 1247 118394 2960 0 3756 5168 0 0 0 0 126 467\n 252      16 vdb 812 0 53210 355 1290 2 90120 7000 3 2100 7355\n";
        assert_eq!(parse_diskstats(text, "vdb"), Some((812 + 1290, 3)));
        assert_eq!(parse_diskstats(text, "vd"), None);
        assert_eq!(parse_diskstats(" 252 16 vdb 1 2\n", "vdb"), None, "short lines are not guessed at");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    fn device(root: &Path, devpath: &str, uevent: &str, size: u64) {
        let dir = root.join("sys/devices").join(devpath);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("uevent"), uevent).unwrap();
        fs::write(dir.join("size"), format!("{size}\n")).unwrap();
        let name = devpath.rsplit('/').next().unwrap();
        std::os::unix::fs::symlink(&dir, root.join("sys/class/block").join(name)).unwrap();
    }

    #[test]
    fn finds_the_state_partition_and_serials() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("sys/class/block")).unwrap();
        device(root, "pci/virtio1/block/vda", "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n", 94208);
        fs::write(root.join("sys/devices/pci/virtio1/block/vda/serial"), "boot0\n").unwrap();
        device(root, "pci/virtio1/block/vda/vda2", "DEVNAME=vda2\nDEVTYPE=partition\nPARTN=2\nPARTNAME=coffer-state\n", 20480);
        device(root, "pci/virtio2/block/vdb", "DEVNAME=vdb\nDEVTYPE=disk\n", 131072);
        device(root, "pci/ata1/host0/target0:0:0/0:0:0:0/block/sda", "DEVNAME=sda\nDEVTYPE=disk\n", 131072);
        let ata = root.join("sys/devices/pci/ata1/host0/target0:0:0/0:0:0:0/block/sda/device");
        fs::create_dir_all(&ata).unwrap();
        fs::write(ata.join("vpd_pg80"), b"\x00\x80\x00\x14QM00002            ").unwrap();
        device(root, "virtual/block/loop0", "DEVNAME=loop0\nDEVTYPE=disk\n", 0);
        let sys = SysRoot::at(root);
        let all = sys.block_devices().unwrap();
        assert_eq!(all.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["sda", "vda", "vda2", "vdb"]);
        assert_eq!(all[0].serial.as_deref(), Some("QM00002"), "SATA serial from VPD page 0x80");
        let state = sys.partition_named("coffer-state").unwrap().unwrap();
        assert_eq!(state.name, "vda2");
        assert_eq!(state.parent.as_deref(), Some("vda"));
        assert_eq!(state.serial.as_deref(), Some("boot0"));
        assert_eq!(state.size, 20480 * 512);
        assert_eq!(all[3].kind, DeviceKind::Disk);
        assert!(sys.partition_named("nothing").unwrap().is_none());
        fs::write(ata.join("ioerr_cnt"), "0x2\n").unwrap();
        fs::write(ata.join("state"), "running\n").unwrap();
        let c = sys.disk_counters("sda");
        assert_eq!((c.io_errors, c.io_timeouts, c.state.as_deref()), (Some(2), None, Some("running")));
        assert_eq!(sys.disk_counters("vdb"), DiskCounters::default());
    }
}
