//! The retention engine: a pure function of (the files of one backup
//! directory, when each set arrived, a policy, now) to a plan that says, for
//! every duplicity set, keep (and which rule or which later restore point
//! needs it) or delete (and why), plus the files to delete in a safe order.
//!
//! Restore points are complete sets. The count rules follow Proxmox Backup
//! Server's prune (re-implemented from its description): keep-last,
//! -hourly, -daily, -weekly (ISO weeks), -monthly, -yearly in that order;
//! each keeps the newest point of each period, periods without points do not
//! count, and a point taken by one rule is not counted again by a later one.
//! `keep-within` keeps every point newer than the duration on top of that
//! (a union, so advancing time never brings a deleted set back). Periods are computed in UTC. Deletion is per chain: a
//! chain goes whole or not at all, a kept point keeps its full set and every
//! incremental before it, and the newest chain is never deleted.
//!
//! Names are chosen by clients, so a set counts only when its name fits when
//! it arrived ([`provenance`]), and [`review`] tells when newly arrived
//! points would push history out in a burst, so the run holds instead.

mod duration;
mod plan;
mod policy;
pub mod provenance;
mod review;

pub use duration::{DurationError, format_duration, parse_duration};
pub use plan::{DeleteReason, KeepReason, OtherDecision, Plan, SetDecision, plan};
pub use policy::{DEFAULT_INCOMPLETE_GRACE, RetentionPolicy, Rule};
pub use provenance::{Arrival, CLOCK_SKEW, MAX_ARRIVAL_LAG, Standing, plausible};
pub use review::{BURST_POINTS, BURST_WINDOW, Review, is_burst, review};
