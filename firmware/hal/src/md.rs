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
    use std::fs;

    fn write(root: &std::path::Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn degraded_recovering_array() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for (a, v) in [
            ("level", "raid1\n"),
            ("array_state", "clean\n"),
            ("raid_disks", "2\n"),
            ("degraded", "1\n"),
            ("sync_action", "recover\n"),
            ("sync_completed", "37384 / 129024\n"),
            ("mismatch_cnt", "0\n"),
            ("uuid", "1d6f7e2a-0000\n"),
            ("dev-vda/state", "in_sync\n"),
            ("dev-vda/slot", "0\n"),
            ("dev-vdc/state", "spare\n"),
            ("dev-vdc/slot", "none\n"),
        ] {
            write(r, &format!("sys/block/md127/md/{a}"), v);
        }
        fs::create_dir_all(r.join("sys/block/vda")).unwrap();
        std::os::unix::fs::symlink(r.join("sys/block/vda"), r.join("sys/block/md127/md/dev-vda/block")).unwrap();
        std::os::unix::fs::symlink(r.join("sys/block/gone"), r.join("sys/block/md127/md/dev-vdc/block")).unwrap();
        fs::create_dir_all(r.join("sys/block/vdb")).unwrap();
        fs::create_dir_all(r.join("dev/md")).unwrap();
        std::os::unix::fs::symlink("../md127", r.join("dev/md/data")).unwrap();
        let arrays = SysRoot::at(r).md_arrays().unwrap();
        assert_eq!(arrays.len(), 1);
        let a = &arrays[0];
        assert_eq!((a.degraded, a.raid_disks, a.sync_action.as_str()), (1, 2, "recover"));
        assert_eq!(a.sync_completed, Some((37384, 129024)));
        assert_eq!(a.name.as_deref(), Some("data"));
        assert_eq!(a.members.len(), 2);
        assert_eq!((a.members[0].kname.as_str(), a.members[0].slot, a.members[0].present), ("vda", Some(0), true));
        assert!(a.members[0].has("in_sync"));
        assert_eq!((a.members[1].slot, a.members[1].present), (None, false));
    }

    #[test]
    fn sync_completed_forms() {
        assert_eq!(parse_sync_completed("none"), None);
        assert_eq!(parse_sync_completed("10/20"), Some((10, 20)));
        assert_eq!(parse_sync_completed("x / 2"), None);
    }
}
