//! The mirror's events: what kind of thing happened ([`RaidKind`], which
//! the alerts match on) and the fields printed with it ([`RaidEvent`]). The
//! fields stay a map because md and a 3ware controller say different things
//! of the same kind, and some fields appear only in some cases; the kind is
//! a type, so no decision hangs on a string.

use std::collections::BTreeMap;

use coffer_hal::MdArray;
use serde_json::Value;

use crate::array_label;

/// Every kind of event the mirror's monitor reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum RaidKind {
    MemberFailed,
    Degraded,
    Failed,
    RebuildStarted,
    RebuildProgress,
    RebuildFinished,
    SpareActive,
    /// Healthy again after a problem (resolves its alerts).
    Healthy,
    /// The health at first sight, or a change that is no problem (syncing).
    State,
    DiskIgnored,
    ScrubStarted,
    ScrubFinished,
    ScrubStopped,
    ScrubInterrupted,
    DiskHealthWarning,
    DiskHealthCritical,
}

impl RaidKind {
    /// The kind as printed in the `coffer-event` line (documented, read by tests).
    pub fn code(self) -> &'static str {
        match self {
            RaidKind::MemberFailed => "raid.member-failed",
            RaidKind::Degraded => "raid.degraded",
            RaidKind::Failed => "raid.failed",
            RaidKind::RebuildStarted => "raid.rebuild-started",
            RaidKind::RebuildProgress => "raid.rebuild-progress",
            RaidKind::RebuildFinished => "raid.rebuild-finished",
            RaidKind::SpareActive => "raid.spare-active",
            RaidKind::Healthy => "raid.healthy",
            RaidKind::State => "raid.state",
            RaidKind::DiskIgnored => "raid.disk-ignored",
            RaidKind::ScrubStarted => "raid.scrub-started",
            RaidKind::ScrubFinished => "raid.scrub-finished",
            RaidKind::ScrubStopped => "raid.scrub-stopped",
            RaidKind::ScrubInterrupted => "raid.scrub-interrupted",
            RaidKind::DiskHealthWarning => "disk.health-warning",
            RaidKind::DiskHealthCritical => "disk.health-critical",
        }
    }
}

/// One event of a kind, with its fields, ready to print as `coffer-event`.
#[derive(Debug, Clone, PartialEq)]
pub struct RaidEvent {
    pub kind: RaidKind,
    pub fields: BTreeMap<&'static str, Value>,
}

impl RaidEvent {
    /// An event with no fields yet.
    pub fn of(kind: RaidKind) -> Self {
        RaidEvent { kind, fields: BTreeMap::new() }
    }

    /// An event about an md array, named as events name it.
    pub(crate) fn about(kind: RaidKind, array: &MdArray) -> Self {
        RaidEvent::of(kind).with("array", array_label(array))
    }

    /// The event with one more field (`None` prints as `null`).
    pub fn with(mut self, key: &'static str, value: impl Into<Value>) -> Self {
        self.fields.insert(key, value.into());
        self
    }

    /// A field's text, if it is one.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_own_code() {
        let all = [
            RaidKind::MemberFailed,
            RaidKind::Degraded,
            RaidKind::Failed,
            RaidKind::RebuildStarted,
            RaidKind::RebuildProgress,
            RaidKind::RebuildFinished,
            RaidKind::SpareActive,
            RaidKind::Healthy,
            RaidKind::State,
            RaidKind::DiskIgnored,
            RaidKind::ScrubStarted,
            RaidKind::ScrubFinished,
            RaidKind::ScrubStopped,
            RaidKind::ScrubInterrupted,
            RaidKind::DiskHealthWarning,
            RaidKind::DiskHealthCritical,
        ];
        let codes: std::collections::BTreeSet<&str> = all.iter().map(|k| k.code()).collect();
        assert_eq!(codes.len(), all.len());
        assert!(codes.iter().all(|c| c.starts_with("raid.") || c.starts_with("disk.health-")), "{codes:?}");
    }
}
