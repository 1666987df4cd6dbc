//! The data area: a RAID1 mirror over the two data disks, ext4 on top,
//! mounted where the endpoint keeps user data. Later boots assemble it;
//! the first boot makes it from two blank disks. A disk that holds anything
//! (a partition table, a file system, an md superblock) is never touched.
//! The mirror manager (health, hot-swap, rebuild) builds on this.

use std::io::Read;
use std::path::Path;

use coffer_hal::{BlockDevice, DeviceKind, SysRoot};
use serde_json::json;

use crate::SupervisorError;
use crate::boot::mount_ext4;
use crate::console::event;
use crate::reaper::Reaper;

/// The array's name; `/dev/md/data` on every boot, whatever md number it gets.
pub(crate) const ARRAY_NAME: &str = "data";
pub(crate) const ARRAY_DEVICE: &str = "/dev/md/data";

/// Disks that could hold user data: whole disks, writable, not the boot disk.
pub(crate) fn candidate_disks(devices: &[BlockDevice], boot_disk: &str) -> Vec<BlockDevice> {
    devices
        .iter()
        .filter(|d| d.kind == DeviceKind::Disk && d.name != boot_disk && !d.read_only && d.size >= 16 << 20)
        .cloned()
        .collect()
}

/// A disk is blank when its first and last MiB are zero: no partition
/// table (primary or backup GPT), no md superblock (1.2 sits at 4 KiB,
/// 0.90/1.0 at the end), no file system signature.
pub(crate) fn is_blank(first: &[u8], last: &[u8]) -> bool {
    first.iter().chain(last).all(|b| *b == 0)
}

fn read_edges(dev: &Path, size: u64) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::open(dev)?;
    let span = (1u64 << 20).min(size) as usize;
    let mut first = vec![0; span];
    f.read_exact(&mut first)?;
    f.seek(SeekFrom::Start(size - span as u64))?;
    let mut last = vec![0; span];
    f.read_exact(&mut last)?;
    Ok((first, last))
}

/// Assembles the mirror, or makes one from two blank disks, and mounts it on `target`.
pub(crate) fn prepare(sys: &SysRoot, reaper: &Reaper, boot_disk: &str, target: &Path) -> Result<(), SupervisorError> {
    let _ = reaper.run("/sbin/mdadm", &["--assemble", "--scan", "--run"]);
    if !Path::new(ARRAY_DEVICE).exists() {
        let devices = sys.block_devices().map_err(|e| SupervisorError::Boot(e.to_string()))?;
        let candidates = candidate_disks(&devices, boot_disk);
        let mut blank = Vec::new();
        for d in &candidates {
            match read_edges(&sys.dev_node(&d.name), d.size) {
                Ok((first, last)) if is_blank(&first, &last) => blank.push(d.clone()),
                Ok(_) => event("data.disk-not-blank", &[("disk", json!(d.name)), ("serial", json!(d.serial))]),
                Err(e) => log::warn!("reading {}: {e}", d.name),
            }
        }
        if blank.len() < 2 {
            return Err(SupervisorError::Boot(format!(
                "no data array and {} blank data disk(s) (of {} found): put two blank disks in the bays",
                blank.len(),
                candidates.len()
            )));
        }
        create(reaper, &blank[..2])?;
    }
    mount_ext4(reaper, Path::new(ARRAY_DEVICE), target)?;
    // The mount hides the directory's own mode; user homes below must stay unlistable.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(target, std::fs::Permissions::from_mode(0o711))
        .map_err(|e| SupervisorError::io(format!("setting the mode of {}", target.display()), e))?;
    event("data.mounted", &[("array", json!(ARRAY_DEVICE)), ("path", json!(target))]);
    Ok(())
}

fn create(reaper: &Reaper, disks: &[BlockDevice]) -> Result<(), SupervisorError> {
    let devs: Vec<String> = disks.iter().map(|d| format!("/dev/{}", d.name)).collect();
    event(
        "data.creating",
        &[("disks", json!(devs)), ("serials", json!(disks.iter().map(|d| d.serial.clone()).collect::<Vec<_>>()))],
    );
    let mut args = vec![
        "--create", ARRAY_DEVICE, "--level=1", "--raid-devices=2", "--metadata=1.2", "--bitmap=internal",
        "--homehost=coffer", "--name", ARRAY_NAME, "--run", "--force",
    ];
    args.extend(devs.iter().map(String::as_str));
    check(reaper, "/sbin/mdadm", &args)?;
    check(reaper, "/sbin/mke2fs", &["-q", "-t", "ext4", "-L", "coffer-data", "-E", "root_owner=0:0", ARRAY_DEVICE])?;
    event("data.created", &[("array", json!(ARRAY_DEVICE))]);
    Ok(())
}

fn check(reaper: &Reaper, program: &str, args: &[&str]) -> Result<(), SupervisorError> {
    let out = reaper.run(program, args).map_err(|e| SupervisorError::io(format!("running {program}"), e))?;
    if out.exit.success() {
        Ok(())
    } else {
        Err(SupervisorError::Boot(format!("{program} {} failed ({}): {}", args.join(" "), out.exit.describe(), out.stderr.trim())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(name: &str, size: u64) -> BlockDevice {
        BlockDevice { name: name.into(), kind: DeviceKind::Disk, part_name: None, size, serial: None, parent: None, read_only: false }
    }

    #[test]
    fn candidates_leave_out_the_boot_disk_and_tiny_or_readonly_ones() {
        let mut ro = disk("sr0x", 64 << 20);
        ro.read_only = true;
        let mut part = disk("vdb1", 64 << 20);
        part.kind = DeviceKind::Partition;
        let all = [disk("vda", 64 << 20), disk("vdb", 64 << 20), disk("vdc", 1 << 20), ro, part, disk("vdd", 1 << 30)];
        let names: Vec<_> = candidate_disks(&all, "vda").into_iter().map(|d| d.name).collect();
        assert_eq!(names, ["vdb", "vdd"]);
    }

    #[test]
    fn blank_means_both_edges_zero() {
        assert!(is_blank(&[0; 16], &[0; 16]));
        assert!(!is_blank(&[0, 0, 1], &[0; 3]));
        assert!(!is_blank(&[0; 3], &[0, 9, 0]));
    }
}
