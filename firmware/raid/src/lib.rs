//! Watching a RAID1 mirror, as decisions over snapshots. [`Monitor::observe`]
//! takes what sysfs shows now (arrays, members, disks outside any array) and
//! returns the events to report and the actions to take; it remembers only
//! what it needs to see transitions (health, members by serial, rebuild
//! progress). Reading sysfs and running mdadm are the caller's job.

pub mod alerts;
mod event;
mod health;
pub mod scrub;
pub mod step;
pub mod threeware;

use std::collections::{BTreeMap, BTreeSet};

use coffer_hal::{BlockDevice, DeviceKind, MdArray, MdMember};
use serde::Serialize;

pub use event::{RaidEvent, RaidKind};
pub use health::{DiskReading, HOT_CELSIUS, HealthEvent, HealthTracker, kernel_io_error_disk, SmartReport, parse_smartctl_json};

/// What a disk outside every array holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskContent {
    /// First and last MiB zero: no partition table, superblock or file system.
    Blank,
    /// An md superblock of the array with this UUID (normalised hex).
    MemberOf(String),
    /// Anything else: never written without an admin command (unless the policy says so).
    Foreign,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeDisk {
    pub kname: String,
    pub serial: Option<String>,
    pub content: DiskContent,
}

/// Everything the monitor looks at, read at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub arrays: Vec<MdArray>,
    /// Whole disks in no array (the boot disk left out).
    pub free_disks: Vec<FreeDisk>,
    /// Serial numbers of disks by kernel name.
    pub serials: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaidPolicy {
    /// Add a blank disk to a degraded array by itself.
    pub auto_add_blank: bool,
    /// Add a disk holding foreign data (it is wiped).
    pub auto_add_foreign: bool,
    /// Bay names by slot (`left`, `right`).
    pub bays: Vec<String>,
}

impl Default for RaidPolicy {
    fn default() -> Self {
        RaidPolicy { auto_add_blank: true, auto_add_foreign: false, bays: vec!["left".into(), "right".into()] }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    Healthy,
    /// Initial sync of a new array: redundant once done, nothing to replace.
    Syncing,
    Degraded,
    Rebuilding,
    Failed,
}

/// What to do to md.
#[derive(Debug, Clone, PartialEq, Eq)]
/// Arrays and disks are named by kernel name (`md127`, `vdd`); the effect
/// layer finds their device nodes through `coffer-hal`.
pub enum RaidAction {
    /// Members whose device is gone: `--fail detached --remove detached`.
    FailDetached { array: String },
    /// Members marked faulty: `--remove failed`, freeing the slot.
    RemoveFailed { array: String },
    /// `--add` a disk (blank, or foreign when allowed).
    Add { array: String, disk: String },
    /// A former member comes back: `--re-add` (bitmap: only what changed).
    ReAdd { array: String, disk: String },
}

pub fn array_label(a: &MdArray) -> String {
    a.name.clone().unwrap_or_else(|| a.kname.clone())
}

/// What the status LED shows: the worst state of any array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LedPattern {
    /// Steady: everything is fine.
    Steady,
    /// Fast blink: a rebuild or initial sync is running.
    FastBlink,
    /// Slow blink: degraded, a disk needs replacing.
    SlowBlink,
    /// Very fast blink: the mirror has failed, or there is none.
    Alarm,
}

impl LedPattern {
    /// Milliseconds on and off; `None` for steady.
    pub fn timing(self) -> Option<(u32, u32)> {
        match self {
            LedPattern::Steady => None,
            LedPattern::FastBlink => Some((200, 200)),
            LedPattern::SlowBlink => Some((1000, 1000)),
            LedPattern::Alarm => Some((100, 100)),
        }
    }
}

/// The LED pattern for the arrays' health.
pub fn led_pattern(healths: &[Health]) -> LedPattern {
    if healths.is_empty() {
        return LedPattern::Alarm;
    }
    healths
        .iter()
        .map(|h| match h {
            Health::Healthy => LedPattern::Steady,
            Health::Syncing | Health::Rebuilding => LedPattern::FastBlink,
            Health::Degraded => LedPattern::SlowBlink,
            Health::Failed => LedPattern::Alarm,
        })
        .max()
        .unwrap_or(LedPattern::Alarm)
}

/// Disks that could hold user data: whole disks, writable, at least 16 MiB,
/// not the boot disk.
pub fn data_disk_candidates(devices: &[BlockDevice], boot_disk: &str) -> Vec<BlockDevice> {
    devices
        .iter()
        .filter(|d| d.kind == DeviceKind::Disk && d.name != boot_disk && !d.read_only && d.size >= 16 << 20)
        .cloned()
        .collect()
}

/// Hex digits of a UUID, lower case: sysfs and mdadm print them differently.
pub fn normalize_uuid(uuid: &str) -> String {
    uuid.chars().filter(char::is_ascii_hexdigit).map(|c| c.to_ascii_lowercase()).collect()
}

#[derive(Debug, Clone, Default)]
struct Remembered {
    health: Option<Health>,
    /// Members last seen in sync: kernel name → (serial, slot).
    members: BTreeMap<String, (Option<String>, Option<u32>)>,
    /// The serial last seen in sync in each slot, kept while the slot is
    /// empty, so "degraded" can name the disk to replace.
    slots: BTreeMap<u32, Option<String>>,
    /// Highest 10 % step of the running rebuild already reported.
    decile: Option<u64>,
    /// Members the running rebuild writes to (not in sync when it started).
    /// md may mark one in sync a look before the array stops being degraded,
    /// so "new since the last look" alone would miss the finished rebuild.
    rebuild_targets: BTreeSet<String>,
    /// Members last asked to be failed or removed: not asked again while
    /// nothing changes (md refuses to fail the last member of a mirror).
    asked: BTreeSet<String>,
    /// Disks already offered to this array (`/dev/vdd`), until they leave.
    tried: BTreeSet<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Monitor {
    policy: RaidPolicy,
    arrays: BTreeMap<String, Remembered>,
    ignored: BTreeSet<String>,
}

/// The health an array is in, from one snapshot.
pub fn health(a: &MdArray) -> Health {
    let in_sync = a.members.iter().filter(|m| m.has("in_sync") && !m.has("faulty") && m.present).count();
    if matches!(a.array_state.as_str(), "inactive" | "clear") || in_sync == 0 {
        Health::Failed
    } else if a.degraded > 0 {
        if a.sync_action == "recover" { Health::Rebuilding } else { Health::Degraded }
    } else if a.sync_action == "resync" {
        Health::Syncing
    } else {
        Health::Healthy
    }
}

impl Monitor {
    pub fn new(policy: RaidPolicy) -> Self {
        Monitor { policy, arrays: BTreeMap::new(), ignored: BTreeSet::new() }
    }

    fn bay(&self, slot: Option<u32>) -> String {
        match slot {
            Some(s) => self.policy.bays.get(s as usize).cloned().unwrap_or_else(|| format!("slot {s}")),
            None => "unknown".into(),
        }
    }

    fn guidance_replace(&self, serial: Option<&str>, slot: Option<u32>) -> String {
        let bay = self.bay(slot);
        match serial {
            Some(s) => format!("replace the disk with serial {s} in the {bay} bay with a blank disk; the mirror rebuilds by itself"),
            None => format!("replace the disk in the {bay} bay with a blank disk; the mirror rebuilds by itself"),
        }
    }

    /// The events and actions this snapshot calls for.
    pub fn observe(&mut self, snap: &Snapshot) -> (Vec<RaidEvent>, Vec<RaidAction>) {
        let mut events = Vec::new();
        let mut actions = Vec::new();
        let serial_of = |k: &str| snap.serials.get(k).cloned();
        for a in &snap.arrays {
            if a.level != "raid1" {
                continue;
            }
            let dev = a.kname.clone();
            let now = health(a);
            let mut mem = self.arrays.remove(&a.kname).unwrap_or_default();

            // Members that left since the last look, or turned faulty.
            for (kname, (serial, slot)) in &mem.members {
                let gone = a.members.iter().find(|m| &m.kname == kname).is_none_or(|m| m.has("faulty") || !m.present);
                if gone {
                    events.push(
                        RaidEvent::about(RaidKind::MemberFailed, a)
                            .with("member", kname.clone())
                            .with("serial", serial.clone())
                            .with("slot", *slot)
                            .with("bay", self.bay(*slot))
                            .with("guidance", self.guidance_replace(serial.as_deref(), *slot)),
                    );
                }
            }
            let detached: BTreeSet<String> = a.members.iter().filter(|m| !m.present && !m.has("faulty")).map(|m| format!("d:{}", m.kname)).collect();
            let faulty: BTreeSet<String> = a.members.iter().filter(|m| m.has("faulty")).map(|m| format!("f:{}", m.kname)).collect();
            if !detached.is_empty() && !detached.is_subset(&mem.asked) {
                actions.push(RaidAction::FailDetached { array: dev.clone() });
            }
            if !faulty.is_empty() && !faulty.is_subset(&mem.asked) {
                actions.push(RaidAction::RemoveFailed { array: dev.clone() });
            }
            mem.asked = detached.union(&faulty).cloned().collect();

            let before = mem.health;
            let joined = |m: &&MdMember| {
                m.has("in_sync") && m.present && (!mem.members.contains_key(&m.kname) || mem.rebuild_targets.contains(&m.kname))
            };
            let has_new_member = a.members.iter().any(|m| joined(&m));
            if before != Some(now) {
                let missing_slot = (0..a.raid_disks).find(|s| !a.members.iter().any(|m| m.slot == Some(*s) && m.has("in_sync")));
                let missing_serial = missing_slot.and_then(|s| mem.slots.get(&s).cloned().flatten());
                match now {
                    Health::Degraded => events.push(
                        RaidEvent::about(RaidKind::Degraded, a)
                            .with("missing", a.degraded)
                            .with("slot", missing_slot)
                            .with("bay", self.bay(missing_slot))
                            .with("serial", missing_serial.clone())
                            .with("guidance", self.guidance_replace(missing_serial.as_deref(), missing_slot)),
                    ),
                    Health::Failed => events.push(RaidEvent::about(RaidKind::Failed, a).with(
                        "guidance",
                        "both disks of the mirror are gone: backups are refused until a disk with the data returns; put the original disks back",
                    )),
                    Health::Rebuilding => {
                        let target = a.members.iter().find(|m| !m.has("in_sync") && m.present);
                        events.push(
                            RaidEvent::about(RaidKind::RebuildStarted, a)
                                .with("member", target.map(|m| m.kname.clone()))
                                .with("serial", target.and_then(|m| serial_of(&m.kname))),
                        );
                        mem.decile = Some(0);
                        mem.rebuild_targets = a.members.iter().filter(|m| !m.has("in_sync") && m.present).map(|m| m.kname.clone()).collect();
                    }
                    Health::Healthy if before == Some(Health::Rebuilding) || (before == Some(Health::Degraded) && has_new_member) => {
                        if before == Some(Health::Degraded) {
                            // The whole rebuild ran between two looks.
                            events.push(RaidEvent::about(RaidKind::RebuildStarted, a).with("between-looks", true));
                        }
                        events.push(RaidEvent::about(RaidKind::RebuildFinished, a));
                        for m in a.members.iter().filter(joined) {
                            events.push(
                                RaidEvent::about(RaidKind::SpareActive, a)
                                    .with("member", m.kname.clone())
                                    .with("serial", serial_of(&m.kname))
                                    .with("slot", m.slot)
                                    .with("bay", self.bay(m.slot)),
                            );
                        }
                        events.push(RaidEvent::about(RaidKind::Healthy, a).with("resolved", true));
                    }
                    Health::Healthy if matches!(before, Some(Health::Degraded | Health::Failed)) => {
                        events.push(RaidEvent::about(RaidKind::Healthy, a).with("resolved", true));
                    }
                    Health::Healthy | Health::Syncing => {
                        events.push(RaidEvent::about(RaidKind::State, a).with("health", serde_json::to_value(now).unwrap_or_default()));
                    }
                }
            }
            if now == Health::Rebuilding
                && let Some((done, total)) = a.sync_completed.filter(|(_, t)| *t > 0) {
                    let decile = done.saturating_mul(10) / total;
                    if mem.decile.is_none_or(|d| decile > d) && decile > 0 && decile < 10 {
                        events.push(RaidEvent::about(RaidKind::RebuildProgress, a).with("percent", decile * 10));
                        mem.decile = Some(decile);
                    }
                }

            // A degraded array takes a disk by itself, as the policy allows.
            if now == Health::Degraded {
                let uuid = a.uuid.as_deref().map(normalize_uuid);
                let pick = snap.free_disks.iter().find_map(|d| match &d.content {
                    DiskContent::MemberOf(u) if Some(u) == uuid.as_ref() => {
                        Some(RaidAction::ReAdd { array: dev.clone(), disk: d.kname.clone() })
                    }
                    DiskContent::Blank if self.policy.auto_add_blank => {
                        Some(RaidAction::Add { array: dev.clone(), disk: d.kname.clone() })
                    }
                    DiskContent::Foreign | DiskContent::MemberOf(_) if self.policy.auto_add_foreign => {
                        Some(RaidAction::Add { array: dev.clone(), disk: d.kname.clone() })
                    }
                    _ => None,
                });
                // A disk already tried is not tried again while it stays (md may refuse it: too small, ...).
                let pick = pick.filter(|action| match action {
                    RaidAction::Add { disk, .. } | RaidAction::ReAdd { disk, .. } => !mem.tried.contains(disk),
                    _ => true,
                });
                match pick {
                    Some(action) => {
                        if let RaidAction::Add { disk, .. } | RaidAction::ReAdd { disk, .. } = &action {
                            mem.tried.insert(disk.clone());
                        }
                        actions.push(action)
                    }
                    None => {
                        for d in &snap.free_disks {
                            if self.ignored.insert(d.kname.clone()) {
                                events.push(
                                    RaidEvent::about(RaidKind::DiskIgnored, a)
                                        .with("disk", d.kname.clone())
                                        .with("serial", d.serial.clone())
                                        .with(
                                            "guidance",
                                            "this disk holds data, so it is not added; wipe it or add it with an admin command",
                                        ),
                                );
                            }
                        }
                    }
                }
            }

            mem.tried.retain(|disk| snap.free_disks.iter().any(|d| d.kname == *disk));
            mem.members = a
                .members
                .iter()
                .filter(|m| m.has("in_sync") && !m.has("faulty") && m.present)
                .map(|m| (m.kname.clone(), (serial_of(&m.kname), m.slot)))
                .collect();
            for (serial, slot) in mem.members.values() {
                if let Some(slot) = slot {
                    mem.slots.insert(*slot, serial.clone());
                }
            }
            if now != Health::Rebuilding {
                mem.rebuild_targets.clear();
            }
            mem.health = Some(now);
            self.arrays.insert(a.kname.clone(), mem);
        }
        self.ignored.retain(|k| snap.free_disks.iter().any(|d| &d.kname == k));
        (events, actions)
    }
}

#[cfg(test)]
mod tests;
