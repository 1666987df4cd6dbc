//! Linux md arrays as `/sys/block/mdX/md/` shows them: array state, degraded
//! count, sync action and progress, mismatch count, and each member's state
//! and slot. Unknown values are kept as text, never dropped.

use crate::{HalError, SysRoot};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdArray {
    /// Kernel name, `md127`.
    pub kname: String,
    /// The array's name from its superblock (`data` of `coffer:data`), if any.
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub level: String,
    pub array_state: String,
    pub raid_disks: u32,
    pub degraded: u32,
    pub sync_action: String,
    /// Sectors done and total of the running sync, when one runs.
    pub sync_completed: Option<(u64, u64)>,
    pub mismatch_cnt: u64,
    pub members: Vec<MdMember>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdMember {
    /// Kernel name of the member device, `vdb` (from `dev-vdb`).
    pub kname: String,
    pub slot: Option<u32>,
    /// `state` tokens: `in_sync`, `faulty`, `spare`, `write_error`, ...
    pub state: Vec<String>,
    /// Whether the member's block device still exists.
    pub present: bool,
    /// Read errors md corrected from the other mirror (kept in the superblock).
    pub errors: u64,
}

impl MdMember {
    pub fn has(&self, token: &str) -> bool {
        self.state.iter().any(|t| t == token)
    }
}

/// `done / total` or `none`.
pub fn parse_sync_completed(text: &str) -> Option<(u64, u64)> {
    let (done, total) = text.trim().split_once('/')?;
    Some((done.trim().parse().ok()?, total.trim().parse().ok()?))
}

/// What a caller may ask md to do with a running array's sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MdSync {
    /// Start a read-and-compare of all members from `from_sector` (a scrub).
    Check { from_sector: u64 },
    /// Stop whatever check or repair runs.
    Idle,
}

impl SysRoot {
    /// Starts or stops an md check (`sync_min`, `sync_action`).
    pub fn set_md_sync(&self, kname: &str, sync: MdSync) -> std::io::Result<()> {
        let dir = self.path("sys/block").join(kname).join("md");
        match sync {
            MdSync::Check { from_sector } => {
                std::fs::write(dir.join("sync_min"), format!("{from_sector}\n"))?;
                std::fs::write(dir.join("sync_action"), "check\n")
            }
            MdSync::Idle => {
                std::fs::write(dir.join("sync_action"), "idle\n")?;
                std::fs::write(dir.join("sync_min"), "0\n")
            }
        }
    }

    /// Seconds since boot (`/proc/uptime`).
    pub fn uptime_secs(&self) -> Result<u64, HalError> {
        let text = self.read("proc/uptime")?;
        Ok(text.split('.').next().and_then(|s| s.trim().parse().ok()).unwrap_or(0))
    }

    /// Every md array with an `md/` directory, sorted by kernel name.
    pub fn md_arrays(&self) -> Result<Vec<MdArray>, HalError> {
        let dir = self.path("sys/block");
        let entries = std::fs::read_dir(&dir).map_err(|source| HalError::Read { path: dir.clone(), source })?;
        let mut arrays = Vec::new();
        for entry in entries.filter_map(|e| e.ok()) {
            let kname = entry.file_name().to_string_lossy().into_owned();
            if !kname.starts_with("md") || !entry.path().join("md").is_dir() {
                continue;
            }
            arrays.push(self.md_array(&kname));
        }
        arrays.sort_by(|a, b| a.kname.cmp(&b.kname));
        Ok(arrays)
    }

    fn md_array(&self, kname: &str) -> MdArray {
        let md = format!("sys/block/{kname}/md");
        let attr = |a: &str| self.read(&format!("{md}/{a}")).map(|s| s.trim().to_string()).unwrap_or_default();
        let num = |a: &str| attr(a).parse().unwrap_or(0);
        let mut members = Vec::new();
        if let Ok(entries) = std::fs::read_dir(self.path(&md)) {
            for e in entries.filter_map(|e| e.ok()) {
                let file = e.file_name().to_string_lossy().into_owned();
                let Some(dev) = file.strip_prefix("dev-") else { continue };
                let state = attr(&format!("{file}/state"));
                members.push(MdMember {
                    kname: dev.to_string(),
                    slot: attr(&format!("{file}/slot")).parse().ok(),
                    state: state.split(',').filter(|t| !t.is_empty()).map(str::to_string).collect(),
                    present: e.path().join("block").exists(),
                    errors: attr(&format!("{file}/errors")).parse().unwrap_or(0),
                });
            }
        }
        members.sort_by(|a, b| (a.slot.is_none(), a.slot, &a.kname).cmp(&(b.slot.is_none(), b.slot, &b.kname)));
        // mdadm names arrays by links in /dev/md/ (`data -> ../md127`).
        let name = std::fs::read_dir(self.path("dev/md")).ok().and_then(|entries| {
            entries.filter_map(|e| e.ok()).find_map(|e| {
                let target = std::fs::read_link(e.path()).ok()?;
                (target.file_name()?.to_str()? == kname).then(|| e.file_name().to_string_lossy().into_owned())
            })
        });
        MdArray {
            kname: kname.to_string(),
            name,
            uuid: Some(attr("uuid")).filter(|u| !u.is_empty()),
            level: attr("level"),
            array_state: attr("array_state"),
            raid_disks: num("raid_disks") as u32,
            degraded: num("degraded") as u32,
            sync_action: attr("sync_action"),
            sync_completed: parse_sync_completed(&attr("sync_completed")),
            mismatch_cnt: num("mismatch_cnt"),
            members,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line per array: kernel name, name, state, degraded count, sync
    /// action, progress (`~` part done, `-` none), then each member as
    /// `kname@slot=state`, with `!gone` when its device has left.
    fn describe(a: &MdArray) -> String {
        let progress = match a.sync_completed {
            Some((done, total)) if done < total => "~",
            Some(_) => "done",
            None => "-",
        };
        let members: Vec<String> = a
            .members
            .iter()
            .map(|m| {
                let slot = m.slot.map_or("-".to_string(), |s| s.to_string());
                format!("{}@{slot}={}{}", m.kname, m.state.join(","), if m.present { "" } else { "!gone" })
            })
            .collect();
        let name = a.name.as_deref().unwrap_or("-");
        format!("{} {name} {} d{} {} {progress} | {}", a.kname, a.array_state, a.degraded, a.sync_action, members.join(" "))
    }

    #[test]
    fn captured_states_read_as_the_kernel_showed_them() {
        let expected: &[(&str, &[&str])] = &[
            ("resync", &["md127 data clean d0 resync ~ | vdb@0=in_sync vdc@1=in_sync"]),
            ("clean", &["md127 data clean d0 idle - | vdb@0=in_sync vdc@1=in_sync"]),
            ("clean-with-spare", &["md127 data clean d0 idle - | vdb@0=in_sync vdc@1=in_sync vdd@-=spare"]),
            ("faulty-recovering-onto-spare", &["md127 data clean d1 recover ~ | vdb@0=in_sync vdd@1=spare vdc@-=faulty"]),
            ("faulty-member", &["md127 data clean d0 idle - | vdb@0=in_sync vdd@1=in_sync vdc@-=faulty"]),
            // md has not noticed the pulled disk: only its missing device tells.
            ("disk-pulled-idle", &["md127 data clean d0 idle - | vdb@0=in_sync vdd@1=in_sync!gone"]),
            ("degraded", &["md127 data clean d1 idle - | vdb@0=in_sync"]),
            ("recovering", &["md127 data clean d1 recover ~ | vdb@0=in_sync vdc@1=spare"]),
            // An inactive array shows no level, size or UUID; its stale /dev/md link names md127.
            ("inactive", &["md126 - inactive d0  - | vdb@-=spare"]),
            // The second array on the same disks waits: `sync_completed` says `delayed`.
            (
                "resync-delayed",
                &["md125 two clean d0 resync - | vde2@0=in_sync vdf2@1=in_sync", "md126 one clean d0 resync ~ | vde1@0=in_sync vdf1@1=in_sync"],
            ),
        ];
        assert_eq!(expected.iter().map(|(s, _)| *s).collect::<Vec<_>>(), crate::fixture::MD_STATES);
        for (state, arrays) in expected {
            let dir = tempfile::tempdir().unwrap();
            let root = crate::fixture::md_state(state, dir.path()).unwrap();
            let got: Vec<String> = root.md_arrays().unwrap().iter().map(describe).collect();
            assert_eq!(got, *arrays, "{state}");
        }
    }

    #[test]
    fn captured_disks_carry_their_serials() {
        let dir = tempfile::tempdir().unwrap();
        let root = crate::fixture::md_state("clean", dir.path()).unwrap();
        let disks: Vec<(String, Option<String>, u64)> = root
            .block_devices()
            .unwrap()
            .into_iter()
            .filter(|d| d.kind == crate::DeviceKind::Disk)
            .map(|d| (d.name, d.serial, d.size >> 20))
            .collect();
        let want = |n: &str, s: &str, mib: u64| (n.to_string(), Some(s.to_string()), mib);
        assert_eq!(
            disks,
            [want("vda", "boot", 1), want("vdb", "disk0", 64), want("vdc", "disk1", 64), want("vdd", "disk2", 64), want("vde", "disk3", 64), want("vdf", "disk4", 64)]
        );
        let parts: Vec<(String, Option<String>)> =
            root.block_devices().unwrap().into_iter().filter(|d| d.kind == crate::DeviceKind::Partition).map(|d| (d.name, d.parent)).collect();
        assert_eq!(parts[0], ("vde1".to_string(), Some("vde".to_string())));
        assert!(root.disk_counters("vdb").completed.is_some_and(|n| n > 0), "diskstats counts the member's I/O");
    }

    #[test]
    fn sync_completed_forms() {
        assert_eq!(parse_sync_completed("none"), None);
        assert_eq!(parse_sync_completed("10/20"), Some((10, 20)));
        assert_eq!(parse_sync_completed("x / 2"), None);
    }
}
