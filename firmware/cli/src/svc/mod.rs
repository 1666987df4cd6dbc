//! The services: long-running jobs the supervisor starts and restarts
//! (`serve`, `raid watch`, `alert run`, `time sync`, `mdns`), and the
//! session worker `serve` starts for each channel. Each reads its inputs,
//! lets a pure step in a library crate decide, and applies the effects.
//! They never import `crate::cmd`; shared helpers sit at the top of the
//! crate.

pub(crate) mod alert_run;
pub(crate) mod mdns;
pub(crate) mod raid_watch;
pub(crate) mod retention_schedule;
pub(crate) mod serve;
pub(crate) mod session_worker;
pub(crate) mod stale_backups;
pub(crate) mod time_sync;
