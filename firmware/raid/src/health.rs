//! Disk health: warnings before a disk dies. Counters are tracked for
//! change, not value (a disk may come with a few old errors): any rise in
//! I/O errors, timeouts, errors md corrected, or SMART's reallocated,
//! pending and uncorrectable sectors is a warning; SMART saying the disk is
//! failing, a disk going offline, or overheating is critical.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::RaidKind;

/// What `smartctl -j -a` says, the parts that predict failure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmartReport {
    /// `smart_status.passed`.
    pub passed: Option<bool>,
    pub temperature: Option<u64>,
    /// Counters by name: `reallocated-sectors` (ATA 5), `pending-sectors`
    /// (197), `offline-uncorrectable` (198), `nvme-media-errors`.
    pub counters: BTreeMap<&'static str, u64>,
    /// The self-test log has errors (exit status bit 7).
    pub self_test_errors: bool,
}

/// Parses `smartctl -j` output; `None` when it is not smartctl JSON or the
/// device could not be opened or asked (exit status bits 1 and 2).
pub fn parse_smartctl_json(text: &str) -> Option<SmartReport> {
    let v: Value = serde_json::from_str(text).ok()?;
    let exit = v["smartctl"]["exit_status"].as_u64()?;
    if exit & 0b110 != 0 {
        return None;
    }
    let mut report = SmartReport {
        passed: v["smart_status"]["passed"].as_bool(),
        temperature: v["temperature"]["current"].as_u64(),
        self_test_errors: exit & 0x80 != 0,
        ..SmartReport::default()
    };
    if let Some(table) = v["ata_smart_attributes"]["table"].as_array() {
        for attr in table {
            let name = match attr["id"].as_u64() {
                Some(5) => "reallocated-sectors",
                Some(197) => "pending-sectors",
                Some(198) => "offline-uncorrectable",
                _ => continue,
            };
            if let Some(raw) = attr["raw"]["value"].as_u64() {
                report.counters.insert(name, raw);
            }
        }
    }
    if let Some(n) = v["nvme_smart_health_information_log"]["media_errors"].as_u64() {
        report.counters.insert("nvme-media-errors", n);
    }
    Some(report)
}

/// One disk's readings at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskReading {
    pub kname: String,
    pub serial: Option<String>,
    /// Counters from sysfs and md: `io-errors`, `io-timeouts`, `md-corrected-errors`.
    pub counters: BTreeMap<&'static str, u64>,
    /// SCSI device state (`running`, `offline`, ...).
    pub state: Option<String>,
    pub smart: Option<SmartReport>,
    /// Reads and writes completed, and requests in flight (`/proc/diskstats`).
    pub completed: Option<u64>,
    pub in_flight: Option<u64>,
}

/// Looks in a row with requests waiting and none completed before a disk
/// counts as hanging (30 s at the watcher's quiet pace).
pub(crate) const STALL_LOOKS: u32 = 6;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    /// [`RaidKind::DiskHealthWarning`] or [`RaidKind::DiskHealthCritical`].
    pub kind: RaidKind,
    pub disk: String,
    pub serial: Option<String>,
    pub what: String,
    pub detail: String,
}

/// The disk a kernel block-layer error names (`I/O error, dev vdb, sector
/// 64512 op 0x0:(READ) …`, also `critical medium error, dev sda, …`), from a
/// `/dev/kmsg` record or a plain log line. Disks without error counters in
/// sysfs (virtio, NVMe) are only seen failing here.
pub fn kernel_io_error_disk(record: &str) -> Option<String> {
    let message = record.split_once(';').map_or(record, |(_, m)| m);
    let at = message.find(" error, dev ")?;
    let rest = &message[at + " error, dev ".len()..];
    let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
    (!name.is_empty() && rest[name.len()..].starts_with(", sector")).then_some(name)
}

/// Counters that start at zero each boot and count only real failures: the
/// kernel log's "I/O error, dev X" lines. (The SCSI layer's `ioerr_cnt` also
/// counts harmless check conditions during a disk's probe, so it is judged
/// by change from the first look, like SMART's counters.)
const SINCE_BOOT: [&str; 1] = ["kernel-io-errors"];

/// Above this many °C a disk is too hot.
pub const HOT_CELSIUS: u64 = 55;

#[derive(Debug, Clone, Default)]
pub struct HealthTracker {
    last: BTreeMap<String, BTreeMap<&'static str, u64>>,
    /// Conditions already reported (disk, what), so each is said once while it lasts.
    raised: BTreeSet<(String, &'static str)>,
    /// Per disk: completed I/Os at the last look, and looks since they last moved while busy.
    stall: BTreeMap<String, (u64, u32)>,
}

impl HealthTracker {
    pub fn observe(&mut self, readings: &[DiskReading]) -> Vec<HealthEvent> {
        let mut out = Vec::new();
        for r in readings {
            let id = r.serial.clone().unwrap_or_else(|| r.kname.clone());
            let mut now = r.counters.clone();
            if let Some(s) = &r.smart {
                now.extend(s.counters.iter().map(|(k, v)| (*k, *v)));
            }
            let event = |kind, what: String, detail: String| HealthEvent { kind, disk: r.kname.clone(), serial: r.serial.clone(), what, detail };
            // At first sight, the kernel log's I/O errors start from 0: errors
            // during boot (assembly, a resync) come before the first look.
            // Other counters (SMART's, md's corrected reads, which a disk
            // keeps for life) start from what they say then.
            let first_look = || SINCE_BOOT.iter().map(|name| (*name, 0)).collect();
            let before = self.last.get(&id).cloned().unwrap_or_else(first_look);
            for (name, value) in &now {
                if let Some(old) = before.get(name).filter(|old| value > old) {
                    out.push(event(
                        RaidKind::DiskHealthWarning,
                        (*name).to_string(),
                        format!("{name} rose from {old} to {value}: this disk may be failing; make sure backups are current and plan to replace it"),
                    ));
                }
            }
            self.last.insert(id.clone(), now);

            let stalled = match (r.completed, r.in_flight) {
                (Some(done), Some(busy)) => {
                    let entry = self.stall.entry(id.clone()).or_insert((done, 0));
                    entry.1 = if busy > 0 && done == entry.0 { entry.1 + 1 } else { 0 };
                    entry.0 = done;
                    entry.1 >= STALL_LOOKS
                }
                _ => false,
            };
            let conditions: [(&'static str, bool, String); 5] = [
                ("smart-failing", r.smart.as_ref().and_then(|s| s.passed) == Some(false), "SMART says the disk is failing: replace it now".into()),
                ("offline", r.state.as_deref() == Some("offline"), "the disk stopped answering (offline): replace it".into()),
                (
                    "too-hot",
                    r.smart.as_ref().and_then(|s| s.temperature).is_some_and(|t| t > HOT_CELSIUS),
                    format!("the disk is hotter than {HOT_CELSIUS} °C: check the fan and the air flow"),
                ),
                ("self-test-errors", r.smart.as_ref().is_some_and(|s| s.self_test_errors), "the disk's own self-test found errors: plan to replace it".into()),
                (
                    "stalled",
                    stalled,
                    "the disk has requests waiting and completed none for a while: it may be hanging; check its cable and plan to replace it".into(),
                ),
            ];
            for (what, active, detail) in conditions {
                let key = (id.clone(), what);
                if active && self.raised.insert(key.clone()) {
                    let kind = if matches!(what, "too-hot" | "self-test-errors" | "stalled") { RaidKind::DiskHealthWarning } else { RaidKind::DiskHealthCritical };
                    out.push(event(kind, what.to_string(), detail));
                } else if !active {
                    self.raised.remove(&key);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod stall_tests {
    use super::*;

    #[test]
    fn errors_since_boot_warn_at_first_sight_lifetime_counters_do_not() {
        let first = |name: &'static str, n: u64| DiskReading {
            kname: "vdb".into(),
            serial: Some("disk0".into()),
            counters: [(name, n)].into_iter().collect(),
            state: None,
            smart: None,
            completed: None,
            in_flight: None,
        };
        for (name, warns) in [("kernel-io-errors", true), ("io-errors", false), ("io-timeouts", false), ("md-corrected-errors", false)] {
            let events = HealthTracker::default().observe(&[first(name, 2)]);
            assert_eq!(events.iter().any(|e| e.what == name), warns, "{name}: {events:?}");
            assert!(HealthTracker::default().observe(&[first(name, 0)]).is_empty(), "{name} at 0");
        }
    }

    fn reading(done: u64, busy: u64) -> DiskReading {
        DiskReading { kname: "vdb".into(), serial: Some("disk0".into()), completed: Some(done), in_flight: Some(busy), ..DiskReading::default() }
    }

    #[test]
    fn a_disk_that_stops_completing_requests_is_warned_about_once() {
        let mut t = HealthTracker::default();
        for i in 0..20 {
            assert!(t.observe(&[reading(100 + i, 2)]).is_empty(), "busy but moving");
        }
        assert!(t.observe(&[reading(500, 0)]).is_empty());
        for _ in 0..STALL_LOOKS + 5 {
            assert!(t.observe(&[reading(500, 0)]).is_empty(), "idle is not stalled");
        }
        let mut said = Vec::new();
        for _ in 0..STALL_LOOKS + 3 {
            said.extend(t.observe(&[reading(500, 4)]));
        }
        assert_eq!(said.len(), 1, "{said:?}");
        assert_eq!((said[0].kind.code(), said[0].what.as_str()), ("disk.health-warning", "stalled"));
    }
}

#[cfg(test)]
mod kernel_log_tests {
    use super::kernel_io_error_disk;

    #[test]
    fn block_errors_name_their_disk() {
        for (line, disk) in [
            ("3,812,17899127,-;I/O error, dev vdb, sector 64512 op 0x0:(READ) flags 0x4000 phys_seg 108 prio class 0", Some("vdb")),
            ("[   17.899127] blk_update_request: I/O error, dev sda, sector 2048", Some("sda")),
            ("3,1,2,-;critical medium error, dev nvme0n1, sector 77 op 0x0:(READ)", Some("nvme0n1")),
            ("6,5,6,-;md/raid1:md127: active with 2 out of 2 mirrors", None),
            ("I/O error, dev , sector 1", None),
            ("Buffer I/O error on dev md127, logical block 5", None),
        ] {
            assert_eq!(kernel_io_error_disk(line).as_deref(), disk, "{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ATA: &str = r#"{"json_format_version":[1,0],"smartctl":{"exit_status":0},"device":{"name":"/dev/sda"},
        "serial_number":"WD-1","smart_status":{"passed":true},"temperature":{"current":38},
        "ata_smart_attributes":{"table":[
          {"id":5,"name":"Reallocated_Sector_Ct","raw":{"value":0}},
          {"id":9,"name":"Power_On_Hours","raw":{"value":20000}},
          {"id":197,"name":"Current_Pending_Sector","raw":{"value":2}},
          {"id":198,"name":"Offline_Uncorrectable","raw":{"value":0}}]}}"#;

    #[test]
    fn smartctl_json() {
        let r = parse_smartctl_json(ATA).unwrap();
        assert_eq!(r.passed, Some(true));
        assert_eq!(r.temperature, Some(38));
        assert_eq!(r.counters["pending-sectors"], 2);
        assert_eq!(r.counters.len(), 3);
        assert_eq!(parse_smartctl_json(r#"{"smartctl":{"exit_status":2}}"#), None, "device could not be opened");
        assert_eq!(parse_smartctl_json("not json"), None);
        let nvme = parse_smartctl_json(r#"{"smartctl":{"exit_status":128},"smart_status":{"passed":true},"nvme_smart_health_information_log":{"media_errors":3}}"#).unwrap();
        assert!(nvme.self_test_errors);
        assert_eq!(nvme.counters["nvme-media-errors"], 3);
    }

    fn reading(errors: u64, smart: Option<SmartReport>) -> DiskReading {
        DiskReading {
            kname: "sdb".into(),
            serial: Some("WD-1".into()),
            counters: [("md-corrected-errors", errors)].into_iter().collect(),
            state: Some("running".into()),
            smart,
            completed: None,
            in_flight: None,
        }
    }

    #[test]
    fn rising_counters_warn_old_values_do_not() {
        let mut t = HealthTracker::default();
        assert!(t.observe(&[reading(7, None)]).is_empty(), "7 old errors: a baseline, not a warning");
        assert!(t.observe(&[reading(7, None)]).is_empty());
        let e = t.observe(&[reading(9, None)]);
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].kind.code(), e[0].what.as_str()), ("disk.health-warning", "md-corrected-errors"));
        assert!(e[0].detail.contains("from 7 to 9"));
        let mut smart = parse_smartctl_json(ATA).unwrap();
        assert!(t.observe(&[reading(9, Some(smart.clone()))]).is_empty());
        smart.counters.insert("pending-sectors", 8);
        smart.passed = Some(false);
        let e = t.observe(&[reading(9, Some(smart.clone()))]);
        let whats: Vec<_> = e.iter().map(|e| (e.kind.code(), e.what.as_str())).collect();
        assert_eq!(whats, [("disk.health-warning", "pending-sectors"), ("disk.health-critical", "smart-failing")]);
        assert!(t.observe(&[reading(9, Some(smart))]).is_empty(), "said once while it lasts");
    }
}
