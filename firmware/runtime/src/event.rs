//! Machine-readable state-change lines, `coffer-event {json}`, one per
//! line, read by tests and people alike. Every event a Coffer process
//! prints is an [`Event`]: one variant per kind, so a kind or a field is
//! named once, here, and a typo is a compile error rather than a line no
//! test matches. Commands and services print on stderr ([`emit`]); the
//! supervisor writes [`line`] to the console and its log.
//!
//! The JSON object's keys come out sorted (the kind among them), because
//! the line is printed through `serde_json::Value`, whose map is ordered:
//! that is the format tests and scripts have always read.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// Every event a Coffer process prints. Fields are plain data (strings,
/// numbers, lists) so that this crate depends on no domain crate; a field
/// that is `None` prints as `null`, as it always has.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all_fields = "kebab-case")]
pub enum Event {
    // The supervisor: boot, state and data, network, services, shutdown.
    #[serde(rename = "boot.start")]
    BootStart { version: String, slot: String },
    #[serde(rename = "boot.modules")]
    BootModules { loaded: u64, failed: Vec<String>, ms: u64, slowest: Vec<(String, u64)> },
    #[serde(rename = "boot.host-keys")]
    BootHostKeys { fingerprints: Vec<String> },
    #[serde(rename = "boot.failed")]
    BootFailed { step: String, message: String },
    #[serde(rename = "boot.done")]
    BootDone { uptime_secs: f64, watchdog: bool },
    #[serde(rename = "state.mounted")]
    StateMounted { device: String, path: String },
    #[serde(rename = "state.admin-added")]
    StateAdminAdded { user: String },
    #[serde(rename = "fs.check-failed")]
    FsCheckFailed { device: String, detail: String },
    #[serde(rename = "data.disk-not-blank")]
    DataDiskNotBlank { disk: String, serial: Option<String> },
    #[serde(rename = "data.creating")]
    DataCreating { disks: Vec<String>, serials: Vec<Option<String>> },
    #[serde(rename = "data.created")]
    DataCreated { array: String },
    #[serde(rename = "data.mounted")]
    DataMounted { array: String, path: String },
    #[serde(rename = "network.no-interface")]
    NetworkNoInterface,
    /// `address` only for a static configuration.
    #[serde(rename = "network.up")]
    NetworkUp {
        interface: String,
        method: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        address: Option<String>,
    },
    #[serde(rename = "network.waiting")]
    NetworkWaiting { interface: String },
    #[serde(rename = "health")]
    Health { healthy: bool },
    #[serde(rename = "service.started")]
    ServiceStarted { service: String, pid: i32 },
    #[serde(rename = "service.ready")]
    ServiceReady { service: String },
    #[serde(rename = "service.exited")]
    ServiceExited { service: Option<String>, status: String, restart_in_secs: Option<f64> },
    #[serde(rename = "service.flapping")]
    ServiceFlapping { service: String },
    #[serde(rename = "service.stopped")]
    ServiceStopped { service: String, status: String },
    #[serde(rename = "service.killed")]
    ServiceKilled { service: String },
    #[serde(rename = "update.trial")]
    UpdateTrial { slot: String, mark_good_after_secs: u64 },
    #[serde(rename = "update.rolled-back")]
    UpdateRolledBack { slot: String, failed: String },
    #[serde(rename = "update.marked-good")]
    UpdateMarkedGood { slot: String },
    #[serde(rename = "update.trial-failed")]
    UpdateTrialFailed { slot: String, reason: String },
    #[serde(rename = "debug.kill")]
    DebugKill { service: String, pid: i32 },
    #[serde(rename = "debug.hang")]
    DebugHang,
    #[serde(rename = "shutdown.start")]
    ShutdownStart { reason: String, reboot: bool },
    #[serde(rename = "shutdown.done")]
    ShutdownDone { reboot: bool },

    // The endpoint (`coffer serve`).
    #[serde(rename = "server.listening")]
    ServerListening { address: String },
    #[serde(rename = "server.stopped")]
    ServerStopped,
    #[serde(rename = "login.banned")]
    LoginBanned { address: String, seconds: u64 },
    #[serde(rename = "session.revoked")]
    SessionRevoked { user: String, key: String, reason: String, address: String },
    #[serde(rename = "session.narrowed")]
    SessionNarrowed { user: String, key: String, profile: String, sessions: u64 },
    #[serde(rename = "quota.warning")]
    QuotaWarning { user: String, percent: u8, used: u64, limit: u64 },
    /// The one kind with snake_case names, kept as it was first printed.
    #[serde(rename = "quota.count_failed")]
    QuotaCountFailed {
        user: String,
        error: String,
        #[serde(rename = "retry_secs")]
        retry_secs: u64,
    },
    #[serde(rename = "retention.deleted")]
    RetentionDeleted { user: String, sets: u64, bytes: u64 },
    #[serde(rename = "retention.held")]
    RetentionHeld { user: String, would_delete: Vec<String> },
    #[serde(rename = "retention.adopted")]
    RetentionAdopted { user: String, sets: u64 },
    #[serde(rename = "backup.stale")]
    BackupStale { user: String, days: u64 },

    // The other services and commands.
    #[serde(rename = "alert.running")]
    AlertRunning { sinks: Vec<String> },
    #[serde(rename = "alert.sent")]
    AlertSent { key: String, sink: String, resolved: bool, reminder: bool },
    #[serde(rename = "alert.failed")]
    AlertFailed { key: String, sink: String, error: String },
    #[serde(rename = "time.running")]
    TimeRunning { servers: Vec<String> },
    #[serde(rename = "time.synced")]
    TimeSynced { server: String, offset_ms: i64, rtc: bool },
    #[serde(rename = "mdns.advertising")]
    MdnsAdvertising { name: String, address: String },
    #[serde(rename = "state.imported")]
    StateImported { files: u64 },
    #[serde(rename = "update.armed")]
    UpdateArmed { slot: String, version: String, from: String },
    #[serde(rename = "update.cancelled")]
    UpdateCancelled { slot: String },
    #[serde(rename = "update.rollback")]
    UpdateRollback { slot: String },

    // The mirror's watcher (`raid watch`) and `raid replace`.
    #[serde(rename = "raid.watching")]
    RaidWatching { status_led: Option<String> },
    #[serde(rename = "raid.replace-requested")]
    RaidReplaceRequested { serial: String, disk: String },
    #[serde(rename = "led.pattern")]
    LedPattern { pattern: String, led: Option<String> },
    #[serde(rename = "raid.action")]
    RaidAction { action: String, detail: String, ok: bool },
    /// What the mirror's monitor observed (`raid.degraded`, `disk.health-warning`, ...).
    #[serde(untagged)]
    Mirror(MirrorEvent),
}

/// An event of the mirror's monitor. `coffer-raid` types its kind (an enum,
/// which its alerts match on) and gives it here as the kind's text; its
/// fields stay a map because they differ between md and a 3ware controller
/// and between cases (a field absent is not a field that is `null`), and
/// this crate holds no RAID policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MirrorEvent {
    pub kind: &'static str,
    #[serde(flatten)]
    pub fields: BTreeMap<&'static str, Value>,
}

/// What every event line starts with; readers of logs find events by it.
pub const PREFIX: &str = "coffer-event ";

/// The event's line, `coffer-event {"kind":KIND, ...fields}`, without a newline.
pub fn line(event: &Event) -> String {
    // Every field is plain data, so turning it into JSON cannot fail.
    let json = serde_json::to_value(event).unwrap_or_else(|e| Value::String(format!("unprintable event {event:?}: {e}")));
    format!("{PREFIX}{json}")
}

/// Prints the event's [`line`] on stderr.
pub fn emit(event: &Event) {
    eprintln!("{}", line(event));
}

#[cfg(test)]
mod tests;
