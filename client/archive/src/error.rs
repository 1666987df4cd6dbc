//! Errors of the archive format. Policy: every read error names the byte
//! offset in the tar stream (or the manifest line) and, once known, the
//! entry's name, so a damaged volume can be reported precisely; write errors
//! name the entry being written. I/O errors of the caller's streams are
//! passed through with the same context.

use std::io;

use thiserror::Error;

/// Reading a tar stream (volume or sigtar) failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error("reading the tar stream at offset {offset}: {source}")]
    Io { offset: u64, source: io::Error },
    #[error("the tar stream ends inside {what} at offset {offset}")]
    Truncated { offset: u64, what: &'static str },
    #[error("tar header at offset {offset}: checksum {stored} but the header sums to {computed}")]
    Checksum { offset: u64, stored: u64, computed: u64 },
    #[error("tar header at offset {offset}: field {field} is not a number")]
    BadNumber { offset: u64, field: &'static str },
    #[error("tar header at offset {offset}: unsupported entry type {kind:?} for {name}")]
    UnsupportedType { offset: u64, kind: char, name: String },
    #[error("tar header at offset {offset}: extended header of {size} bytes is over the limit of {limit}")]
    ExtendedTooLong { offset: u64, size: u64, limit: u64 },
    #[error("tar header at offset {offset}: malformed PAX record: {why}")]
    BadPax { offset: u64, why: &'static str },
    #[error("tar header at offset {offset}: an empty name")]
    EmptyName { offset: u64 },
    #[error("unrecognized duplicity entry {name}")]
    UnrecognizedName { name: String },
    #[error("duplicity entry {name} contains '..' (security violation)")]
    DotDot { name: String },
    #[error("entry {name} at offset {offset}: {source}")]
    Entry { offset: u64, name: String, source: Box<ReadError> },
}

/// Writing a volume or sigtar failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum WriteError {
    #[error("writing {name}: {source}")]
    Io { name: String, source: io::Error },
    #[error("reading the data of {name}: {source}")]
    Source { name: String, source: io::Error },
    #[error("{kind} entries do not belong in {place}")]
    WrongKind { kind: &'static str, place: &'static str },
    #[error("{name}: a {field} of {value} cannot be stored")]
    Overflow { name: String, field: &'static str, value: u64 },
    #[error("{name}: the data stream gave {got} bytes, the header promised {want}")]
    SizeMismatch { name: String, want: u64, got: u64 },
    #[error("{name}: a name, link target or owner contains a NUL byte")]
    Nul { name: String },
    #[error("volume size {volsize} leaves no room for a 64 KiB piece after {used} bytes of a fresh volume")]
    VolumeTooSmall { volsize: u64, used: u64 },
    #[error("{name} comes after {previous}: entries must arrive in duplicity's order")]
    OutOfOrder { name: String, previous: String },
}

/// Parsing a manifest failed.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("manifest line {line}: {why}")]
    Line { line: usize, why: String },
    #[error("manifest volume {volume} (line {line}) has no {field}")]
    Missing { volume: u32, line: usize, field: &'static str },
}
