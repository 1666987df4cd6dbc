//! Reading the mirror and changing it with mdadm, shared by `raid watch`
//! and the `raid` commands: the snapshot the watcher's step decides on, and
//! the one way mdadm is run.

use std::process::Command;

use anyhow::Result;
use coffer_hal::{DeviceKind, SysRoot};
use coffer_raid::{DiskContent, FreeDisk, Health, Snapshot, normalize_uuid};
use coffer_runtime::Paths;

/// The partition label of the boot disk's state partition: that disk never
/// joins a mirror.
const BOOT_PARTITION: &str = "coffer-state";

/// What the mirror looks like now: md's arrays, the disks' serials, and
/// (only while an array is degraded) the free disks that could join it.
pub(crate) fn snapshot(sys: &SysRoot) -> Result<Snapshot> {
    let arrays = sys.md_arrays()?;
    let devices = sys.block_devices()?;
    let boot_disk = devices.iter().find(|d| d.part_name.as_deref() == Some(BOOT_PARTITION)).and_then(|d| d.parent.clone()).unwrap_or_default();
    let serials = devices.iter().filter(|d| d.kind == DeviceKind::Disk).filter_map(|d| Some((d.name.clone(), d.serial.clone()?))).collect();
    let in_array = |name: &str| arrays.iter().any(|a| a.members.iter().any(|m| m.kname == name));
    let degraded = arrays.iter().any(|a| coffer_raid::health(a) == Health::Degraded);
    let mut free_disks = Vec::new();
    // Looking inside disks costs I/O: only when an array wants one.
    if degraded {
        let replacing: Vec<String> = std::fs::read_to_string(Paths::appliance().raid_replacing()).unwrap_or_default().lines().map(str::to_string).collect();
        for d in coffer_raid::data_disk_candidates(&devices, &boot_disk) {
            if in_array(&d.name) {
                continue;
            }
            let content = match sys.disk_is_blank(&d.name, d.size) {
                Ok(true) => DiskContent::Blank,
                Ok(false) => examine(sys, &d.name),
                Err(e) => {
                    log::warn!("reading {}: {e}", d.name);
                    continue;
                }
            };
            if d.serial.as_ref().is_some_and(|s| replacing.iter().any(|r| r == s)) {
                continue;
            }
            free_disks.push(FreeDisk { kname: d.name.clone(), serial: d.serial.clone(), content });
        }
    }
    Ok(Snapshot { arrays, free_disks, serials })
}

/// What md superblock, if any, a disk carries.
fn examine(sys: &SysRoot, kname: &str) -> DiskContent {
    let out = Command::new("/sbin/mdadm").args(["--examine", "--export"]).arg(sys.dev_node(kname)).output();
    let uuid = out.ok().filter(|o| o.status.success()).and_then(|o| {
        String::from_utf8_lossy(&o.stdout).lines().find_map(|l| l.strip_prefix("MD_UUID=").map(normalize_uuid))
    });
    uuid.map_or(DiskContent::Foreign, DiskContent::MemberOf)
}

/// Runs mdadm; a failure is logged and returns false.
pub(crate) fn mdadm(args: &[&str]) -> bool {
    match Command::new("/sbin/mdadm").args(args).output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            log::warn!("mdadm {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
            false
        }
        Err(e) => {
            log::warn!("mdadm {}: {e}", args.join(" "));
            false
        }
    }
}
