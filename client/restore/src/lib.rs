//! Reading a duplicity chain back: [`restore`] (the tree at the chain's
//! end, or one path of it, with Coffer's hard links made again), [`list`]
//! (the files at the chain's end, from the sigtars) and [`verify`] (the
//! chain's end against a directory, as duplicity's `verify` reports it).
//!
//! The caller fetches, checks, decrypts and gunzips: it gives each set's
//! manifest ([`Chain`]) and a [`VolumeSource`] that opens any volume as
//! plain tar bytes. Everything read from those is untrusted: a damaged or
//! missing volume costs only the files in it (named in the report with the
//! set, volume and file name), nothing is written outside the destination,
//! and no length field sizes an allocation or a file beyond [`Limits`].

mod chain;
mod error;
mod list;
mod merge;
mod restore;
mod stream;
mod verify;

pub use chain::{Chain, VolumeSource};
pub use error::{EntryError, ListError, RestoreError, VolumeError};
pub use list::list;
pub use merge::Limits;
pub use restore::{MAX_DEPTH, RestoreReport, restore};
pub use stream::{PathProblem, VolumeProblem};
pub use verify::{Difference, VerifyReport, verify};
