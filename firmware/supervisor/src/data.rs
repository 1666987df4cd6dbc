//! The data area: a RAID1 mirror over the two data disks, ext4 on top,
//! mounted where the endpoint keeps user data. Later boots assemble it;
//! the first boot makes it from two blank disks. A disk that holds anything
//! (a partition table, a file system, an md superblock) is never touched.
//! The mirror manager (health, hot-swap, rebuild) builds on this.

use std::path::Path;

use coffer_hal::{BlockDevice, SysRoot};
use serde_json::json;

use crate::SupervisorError;
use crate::boot::mount_ext4;
use crate::console::event;
use crate::reaper::Reaper;

/// The array's name; `/dev/md/data` on every boot, whatever md number it gets.
pub(crate) const ARRAY_NAME: &str = "data";
/// Its node under `/dev` (mdadm makes the `md/NAME` link).
const ARRAY_NODE: &str = "md/data";
/// How long boot waits for both data disks to appear.
const DISK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Assembles the mirror, or makes one from two blank disks, and mounts it on `target`.
pub(crate) fn prepare(sys: &SysRoot, reaper: &Reaper, boot_disk: &str, target: &Path) -> Result<(), SupervisorError> {
    // Disks spin up at their own pace: assembling with one of two would
    // start the mirror degraded and resync it on every such boot.
    let deadline = std::time::Instant::now() + DISK_WAIT;
    while std::time::Instant::now() < deadline {
        let present = sys.block_devices().map(|d| coffer_raid::data_disk_candidates(&d, boot_disk).len()).unwrap_or(0);
        if present >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = reaper.run("/sbin/mdadm", &["--assemble", "--scan", "--run"]);
    let array = sys.dev_node(ARRAY_NODE);
    if !array.exists() {
        let devices = sys.block_devices().map_err(|e| SupervisorError::Boot(e.to_string()))?;
        let candidates = coffer_raid::data_disk_candidates(&devices, boot_disk);
        let mut blank = Vec::new();
        for d in &candidates {
            match sys.disk_is_blank(&d.name, d.size) {
                Ok(true) => blank.push(d.clone()),
                Ok(false) => event("data.disk-not-blank", &[("disk", json!(d.name)), ("serial", json!(d.serial))]),
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
        create(sys, reaper, &blank[..2], &array)?;
    }
    mount_ext4(reaper, &array, target)?;
    // The mount hides the directory's own mode; user homes below must stay unlistable.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(target, std::fs::Permissions::from_mode(0o711))
        .map_err(|e| SupervisorError::io(format!("setting the mode of {}", target.display()), e))?;
    event("data.mounted", &[("array", json!(array)), ("path", json!(target))]);
    Ok(())
}

fn create(sys: &SysRoot, reaper: &Reaper, disks: &[BlockDevice], array: &Path) -> Result<(), SupervisorError> {
    let devs: Vec<String> = disks.iter().map(|d| sys.dev_node(&d.name).to_string_lossy().into_owned()).collect();
    let array = array.to_string_lossy();
    event(
        "data.creating",
        &[("disks", json!(devs)), ("serials", json!(disks.iter().map(|d| d.serial.clone()).collect::<Vec<_>>()))],
    );
    let mut args = vec![
        "--create", &array, "--level=1", "--raid-devices=2", "--metadata=1.2", "--bitmap=internal",
        "--homehost=coffer", "--name", ARRAY_NAME, "--run", "--force",
    ];
    args.extend(devs.iter().map(String::as_str));
    check(reaper, "/sbin/mdadm", &args)?;
    check(reaper, "/sbin/mke2fs", &["-q", "-t", "ext4", "-L", "coffer-data", "-E", "root_owner=0:0", &array])?;
    event("data.created", &[("array", json!(array))]);
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
