//! Wall-clock time for the box. The appliance has no trustworthy clock at
//! boot (the RTC battery may be flat), and retention and alerts reason about
//! ages, so the clock is set from SNTP and its provenance is recorded.
//!
//! - [`packet`]: the SNTPv4 codec and offset/delay arithmetic, pure and
//!   fuzzed ([`request`], [`parse_reply`], [`Sample`]).
//! - [`query`], [`query_any`]: the client over UDP.
//! - [`ClockState`]: whether the clock is trusted, as a JSON record.
//! - [`SyncLoop`]: the clock service's decisions after each round (step
//!   the clock or not, announce or not, how long to wait), a pure step.
//! - [`set_system_clock`], [`write_rtc`]: the effects, kept apart so the
//!   rest can be tested without privileges.
//!
//! Never applies a sample by itself: the caller decides whether to step the
//! clock.

mod client;
mod clock;
pub mod packet;
mod sync;
mod trust;

pub use client::{DEFAULT_PORT, TimeError, query, query_any};
pub use clock::{set_system_clock, write_rtc};
pub use packet::{Leap, NtpTimestamp, Reply, ReplyError, Sample, parse_reply, request};
pub use sync::{MIN_INTERVAL, RETRY, STEP_MS, SyncLoop, SyncStep};
pub use trust::ClockState;
