//! The data area: a RAID1 mirror over the two data disks, ext4 on top,
//! mounted where the endpoint keeps user data. Later boots assemble it;
//! the first boot makes it from two blank disks. A disk that holds anything
//! (a partition table, a file system, an md superblock) is never touched.
//! The mirror manager (health, hot-swap, rebuild) builds on this.
//!
//! With a 3ware card (board epia-ml8000a) the controller mirrors: its RAID1
//! unit is one disk to us, formatted whole when blank.

use std::path::Path;

use coffer_hal::{BlockDevice, SysRoot};
use coffer_runtime::event::Event;

use crate::SupervisorError;
use crate::boot::{Fsck, mount_ext4};
use crate::console::event;
use crate::reaper::Reaper;

/// The array's name; `/dev/md/data` on every boot, whatever md number it gets.
pub(crate) const ARRAY_NAME: &str = "data";
/// Its node under `/dev` (mdadm makes the `md/NAME` link).
const ARRAY_NODE: &str = "md/data";
/// How long boot waits for both data disks to appear.
const DISK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The 3ware 7000/8000 driver; its units are SCSI disks.
const THREEWARE_DRIVER: &str = "3w-xxxx";
/// How long the list of 3ware units must stay the same before one is chosen.
const UNITS_SETTLE: std::time::Duration = std::time::Duration::from_secs(2);
/// The data file system's label, on an md array or a 3ware unit.
const DATA_LABEL: &str = "coffer-data";

/// Assembles the mirror, or makes one from two blank disks, and mounts it on `target`.
pub(crate) fn prepare(sys: &SysRoot, reaper: &Reaper, boot_disk: &str, target: &Path) -> Result<(), SupervisorError> {
    if sys.pci_driver_bound(THREEWARE_DRIVER) {
        return prepare_unit(sys, reaper, boot_disk, target);
    }
    // Disks spin up at their own pace: assembling with one of two would
    // start the mirror degraded and resync it on every such boot.
    let deadline = std::time::Instant::now() + DISK_WAIT;
    let mut present = Vec::new();
    while std::time::Instant::now() < deadline {
        present = sys.block_devices().map(|d| coffer_raid::data_disk_candidates(&d, boot_disk)).unwrap_or_default();
        if present.len() >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Blank disks hold no array: the first boot need not ask mdadm.
    if !present.iter().all(|d| sys.disk_is_blank(&d.name, d.size).unwrap_or(false)) {
        let _ = reaper.run("/sbin/mdadm", &["--assemble", "--scan", "--run"]);
    }
    let array = sys.dev_node(ARRAY_NODE);
    let mut fsck = Fsck::Check;
    if !array.exists() {
        let devices = sys.block_devices().map_err(|e| SupervisorError::Boot(e.to_string()))?;
        let candidates = coffer_raid::data_disk_candidates(&devices, boot_disk);
        let mut blank = Vec::new();
        for d in &candidates {
            match sys.disk_is_blank(&d.name, d.size) {
                Ok(true) => blank.push(d.clone()),
                Ok(false) => event(&Event::DataDiskNotBlank { disk: d.name.clone(), serial: d.serial.clone() }),
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
        fsck = Fsck::JustMade;
    }
    mount(reaper, &array, target, fsck)
}

fn mount(reaper: &Reaper, device: &Path, target: &Path, fsck: Fsck) -> Result<(), SupervisorError> {
    mount_ext4(reaper, device, target, fsck)?;
    // The mount hides the directory's own mode; user homes below must stay unlistable.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(target, std::fs::Permissions::from_mode(0o711))
        .map_err(|e| SupervisorError::io(format!("setting the mode of {}", target.display()), e))?;
    event(&Event::DataMounted { array: device.to_string_lossy().into_owned(), path: target.to_string_lossy().into_owned() });
    Ok(())
}

/// What a disk holds, as far as choosing a 3ware unit goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnitContent {
    Blank,
    /// An ext4 file system labelled `coffer-data`: ours, from an earlier boot.
    DataArea,
    Other,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum UnitPlan {
    Mount(String),
    Format(String),
    Refuse(String),
}

/// Picks the 3ware unit to use: the one data area, else the one blank
/// unit. Several candidates, or a unit holding something else, are refused:
/// guessing could format someone's disk.
pub(crate) fn plan_unit(units: &[(String, UnitContent)]) -> UnitPlan {
    let of = |want: UnitContent| units.iter().filter(|(_, c)| *c == want).map(|(n, _)| n.clone()).collect::<Vec<_>>();
    match (of(UnitContent::DataArea).as_slice(), of(UnitContent::Blank).as_slice(), units.len()) {
        (_, _, 0) => UnitPlan::Refuse(
            "the 3ware controller shows no unit: make one RAID1 unit of the two disks in its BIOS (Alt-3 at power-on)".into(),
        ),
        ([one], _, _) => UnitPlan::Mount(one.clone()),
        ([], [one], 1) => UnitPlan::Format(one.clone()),
        ([_, _, ..], _, _) => UnitPlan::Refuse(format!(
            "more than one 3ware unit holds a Coffer data area ({}): keep one unit in the controller's BIOS",
            of(UnitContent::DataArea).join(", ")
        )),
        _ => UnitPlan::Refuse(format!(
            "the 3ware units ({}) are not one blank unit: Coffer uses a single RAID1 unit and formats it only when blank",
            units.iter().map(|(n, c)| format!("{n}: {c:?}")).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Reads the ext4 superblock (1 KiB in: magic 0xEF53 at 56, volume name at 120).
pub(crate) fn unit_content(sys: &SysRoot, disk: &BlockDevice) -> std::io::Result<UnitContent> {
    if sys.disk_is_blank(&disk.name, disk.size)? {
        return Ok(UnitContent::Blank);
    }
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(sys.dev_node(&disk.name))?;
    let mut sb = [0u8; 1024];
    f.seek(SeekFrom::Start(1024))?;
    f.read_exact(&mut sb)?;
    let label = sb[120..136].split(|b| *b == 0).next().unwrap_or_default();
    Ok(if sb[56..58] == [0x53, 0xEF] && label == DATA_LABEL.as_bytes() { UnitContent::DataArea } else { UnitContent::Other })
}

/// The data area on the controller's RAID1 unit.
fn prepare_unit(sys: &SysRoot, reaper: &Reaper, boot_disk: &str, target: &Path) -> Result<(), SupervisorError> {
    // The controller's units appear one by one: the choice waits until the
    // list has held still for a while, so a blank unit seen first is not
    // formatted while the data area's unit is still being found.
    let deadline = std::time::Instant::now() + DISK_WAIT;
    let mut last: Option<(Vec<String>, std::time::Instant)> = None;
    let units = loop {
        let units: Vec<BlockDevice> = sys
            .block_devices()
            .map(|d| coffer_raid::data_disk_candidates(&d, boot_disk))
            .unwrap_or_default()
            .into_iter()
            .filter(|d| sys.disk_behind_driver(&d.name, THREEWARE_DRIVER))
            .collect();
        let names: Vec<String> = units.iter().map(|u| u.name.clone()).collect();
        let now = std::time::Instant::now();
        let since = match &last {
            Some((seen, since)) if *seen == names => *since,
            _ => now,
        };
        if (!units.is_empty() && now.duration_since(since) >= UNITS_SETTLE) || now >= deadline {
            break units;
        }
        last = Some((names, since));
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut contents = Vec::new();
    for u in &units {
        let content = unit_content(sys, u).map_err(|e| SupervisorError::io(format!("reading 3ware unit {}", u.name), e))?;
        contents.push((u.name.clone(), content));
    }
    match plan_unit(&contents) {
        UnitPlan::Mount(name) => mount(reaper, &sys.dev_node(&name), target, Fsck::Check),
        UnitPlan::Format(name) => {
            let dev = sys.dev_node(&name);
            event(&Event::DataCreating { disks: vec![dev.to_string_lossy().into_owned()], serials: Vec::new() });
            check(reaper, "/sbin/mke2fs", &["-q", "-t", "ext4", "-L", DATA_LABEL, "-E", "root_owner=0:0", &dev.to_string_lossy()])?;
            event(&Event::DataCreated { array: dev.to_string_lossy().into_owned() });
            mount(reaper, &dev, target, Fsck::JustMade)
        }
        UnitPlan::Refuse(why) => {
            for (name, _) in contents.iter().filter(|(_, c)| *c == UnitContent::Other) {
                event(&Event::DataDiskNotBlank { disk: name.clone(), serial: None });
            }
            Err(SupervisorError::Boot(why))
        }
    }
}

fn create(sys: &SysRoot, reaper: &Reaper, disks: &[BlockDevice], array: &Path) -> Result<(), SupervisorError> {
    let devs: Vec<String> = disks.iter().map(|d| sys.dev_node(&d.name).to_string_lossy().into_owned()).collect();
    let array = array.to_string_lossy();
    event(&Event::DataCreating { disks: devs.clone(), serials: disks.iter().map(|d| d.serial.clone()).collect() });
    let mut args = vec![
        "--create", &array, "--level=1", "--raid-devices=2", "--metadata=1.2", "--bitmap=internal",
        "--homehost=coffer", "--name", ARRAY_NAME, "--run", "--force",
    ];
    args.extend(devs.iter().map(String::as_str));
    check(reaper, "/sbin/mdadm", &args)?;
    check(reaper, "/sbin/mke2fs", &["-q", "-t", "ext4", "-L", DATA_LABEL, "-E", "root_owner=0:0", &array])?;
    event(&Event::DataCreated { array: array.to_string() });
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
    use UnitContent::*;

    fn units(list: &[(&str, UnitContent)]) -> Vec<(String, UnitContent)> {
        list.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }

    #[test]
    fn a_unit_is_mounted_formatted_or_refused() {
        assert_eq!(plan_unit(&units(&[("sda", DataArea)])), UnitPlan::Mount("sda".into()));
        assert_eq!(plan_unit(&units(&[("sda", Blank)])), UnitPlan::Format("sda".into()));
        // The data area wins over a blank unit next to it; nothing is formatted.
        assert_eq!(plan_unit(&units(&[("sda", Blank), ("sdb", DataArea)])), UnitPlan::Mount("sdb".into()));
        for refused in [
            units(&[]),
            units(&[("sda", Other)]),
            units(&[("sda", Blank), ("sdb", Blank)]),
            units(&[("sda", Blank), ("sdb", Other)]),
            units(&[("sda", DataArea), ("sdb", DataArea)]),
        ] {
            assert!(matches!(plan_unit(&refused), UnitPlan::Refuse(_)), "{refused:?}");
        }
    }

    #[test]
    fn unit_content_reads_the_ext4_label() {
        let dir = tempfile::tempdir().unwrap();
        let sys = SysRoot::at(dir.path());
        std::fs::create_dir_all(dir.path().join("dev")).unwrap();
        let disk = |name: &str| BlockDevice {
            name: name.into(),
            kind: coffer_hal::DeviceKind::Disk,
            part_name: None,
            size: 16 << 20,
            serial: None,
            parent: None,
            read_only: false,
        };
        for (name, label) in [("blank", None), ("ours", Some(DATA_LABEL)), ("theirs", Some("photos"))] {
            let path = dir.path().join("dev").join(name);
            std::fs::File::create(&path).unwrap().set_len(16 << 20).unwrap();
            if let Some(label) = label {
                let out = std::process::Command::new("/sbin/mke2fs").args(["-q", "-F", "-t", "ext4", "-L", label]).arg(&path).output().unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            }
        }
        assert_eq!(unit_content(&sys, &disk("blank")).unwrap(), Blank);
        assert_eq!(unit_content(&sys, &disk("ours")).unwrap(), DataArea);
        assert_eq!(unit_content(&sys, &disk("theirs")).unwrap(), Other);
    }
}
