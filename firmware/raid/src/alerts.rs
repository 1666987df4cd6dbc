//! The alerts the mirror's events raise, with their keys: one problem per
//! array (degraded, failed) resolved when the array is healthy again, a
//! disk the watcher would not add, a disk's health, a check that found
//! mismatches. The keys are what the alert dispatcher de-duplicates and
//! resolves by, so they stay stable across releases.

use coffer_alert::{Alert, Severity};
use crate::{HealthEvent, RaidEvent, RaidKind};

/// The alerts an event raises (`now`: seconds since the epoch).
pub fn alerts_for(e: &RaidEvent, now: u64) -> Vec<Alert> {
    let field = |k: &str| e.text(k).unwrap_or("").to_string();
    let array = field("array");
    let alert = |key: String, severity, title: String, body: String, resolved| Alert { key, severity, title, body, resolved, time: now };
    match e.kind {
        RaidKind::Degraded => vec![alert(
            format!("raid:{array}:degraded"),
            Severity::Critical,
            format!("mirror {array} is degraded: the {} disk is missing", field("bay")),
            format!("{}.\nThe data is safe on the other disk until it fails too.", field("guidance")),
            false,
        )],
        RaidKind::Failed => vec![alert(
            format!("raid:{array}:failed"),
            Severity::Critical,
            format!("mirror {array} has failed: no disk left"),
            format!("{}.", field("guidance")),
            false,
        )],
        // Also a healthy array at first sight: problems raised before a reboot are over.
        RaidKind::Healthy | RaidKind::State if e.kind == RaidKind::Healthy || field("health") == "healthy" => ["degraded", "failed"]
            .iter()
            .map(|p| {
                alert(format!("raid:{array}:{p}"), Severity::Info, format!("mirror {array} is healthy again"), "Both disks are in sync.".into(), true)
            })
            .collect(),
        RaidKind::DiskIgnored => vec![alert(
            format!("raid:disk:{}:ignored", field("disk")),
            Severity::Warning,
            format!("disk {} was not added to mirror {array}", field("disk")),
            format!("{}.", field("guidance")),
            false,
        )],
        // A 3ware controller's port reports its disk's health as an event.
        RaidKind::DiskHealthWarning | RaidKind::DiskHealthCritical => {
            let id = e.text("serial").map_or_else(|| field("disk"), str::to_string);
            vec![alert(format!("disk:{id}:{}", field("what")), health_severity(e.kind), format!("disk {id}: {}", field("what")), format!("{}.", field("guidance")), false)]
        }
        _ => Vec::new(),
    }
}

/// The alert for a change in a mirror disk's health, keyed by the disk's
/// serial (its kernel name when it has none) and what changed.
pub fn disk_health_alert(h: &HealthEvent, now: u64) -> Alert {
    let id = h.serial.clone().unwrap_or_else(|| h.disk.clone());
    Alert {
        key: format!("disk:{id}:{}", h.what),
        severity: health_severity(h.kind),
        title: format!("disk {id} ({}): {}", h.disk, h.what),
        body: format!("{}.", h.detail),
        resolved: false,
        time: now,
    }
}

/// The alert for a check of `array` that ended with mismatched sectors.
pub fn mismatch_alert(array: &str, mismatches: u64, now: u64) -> Alert {
    Alert {
        key: format!("raid:{array}:mismatches"),
        severity: Severity::Warning,
        title: format!("mirror {array}: the check found {mismatches} mismatched sectors"),
        body: "The two disks disagreed in places. Run `raid scrub` again; if mismatches remain, check the disks' health in `status`.".into(),
        resolved: false,
        time: now,
    }
}

fn health_severity(kind: RaidKind) -> Severity {
    if kind == RaidKind::DiskHealthCritical { Severity::Critical } else { Severity::Warning }
}
