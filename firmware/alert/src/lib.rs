//! Alerts. Producers (the mirror watcher, later disk health and backups)
//! drop an [`Alert`] into a spool directory; the alert service takes them
//! in, and a pure [`Dispatcher`] decides what goes out: one message per
//! problem (de-duplicated by key), a reminder while it stays open, a
//! "resolved" message when it clears, at most N per hour, and retries with
//! backoff per sink until each sink has it: nothing is dropped.

mod dispatch;
mod sinks;
mod spool;

use serde::{Deserialize, Serialize};

pub use dispatch::{Delivery, Dispatcher};
pub use sinks::{Sink, SinkError, configured_sinks};
pub use spool::{Spool, SpoolError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// One alert. `key` names the problem (`raid:data:degraded`): alerts with
/// the same key are one problem; `resolved` closes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub key: String,
    pub severity: Severity,
    pub title: String,
    pub body: String,
    #[serde(default)]
    pub resolved: bool,
    /// Seconds since the epoch when it was raised.
    pub time: u64,
}

impl Alert {
    /// The subject line as sinks show it.
    pub fn subject(&self, host: &str) -> String {
        let tag = match (self.resolved, self.severity) {
            (true, _) => "RESOLVED",
            (false, Severity::Critical) => "CRITICAL",
            (false, Severity::Warning) => "WARNING",
            (false, Severity::Info) => "INFO",
        };
        format!("[{host}] {tag}: {}", self.title)
    }
}
