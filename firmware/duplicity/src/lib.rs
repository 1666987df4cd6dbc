//! Duplicity's remote files understood by name alone, the way duplicity
//! itself groups them: backup sets (a full, or an incremental from one time
//! to another), complete only when their manifest exists; chains of a full
//! and the incrementals that follow it; signature files that belong to sets.
//!
//! Every naming variant of duplicity 0.8 is accepted: long names
//! (`duplicity-full.20261127T052936Z.vol1.difftar.gpg`), `--file-prefix*`
//! prefixes, `--short-filenames` (`df.<base36>.…`), `--old-filenames` (W3
//! times with offsets, any `--time-separator`), compressed, encrypted, plain,
//! and the `.part` infix. Times are seconds since the epoch, UTC.
//!
//! [`parse_time_spec`] reads times as duplicity's command line takes them.

mod collection;
mod name;
mod time;
mod time_spec;

pub use collection::{BackupSet, Chain, Collection, FileInfo};
pub use name::{ArchiveName, FileRole, SetKind, parse_name};
pub use time::{civil_from_unix, format_stamp, parse_stamp, unix_from_civil};
pub use time_spec::{TimeSpecError, parse_age, parse_time_spec};
