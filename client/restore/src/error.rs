//! Errors of reading a chain back. Policy: only what stops the whole run
//! (a manifest that does not parse, a destination that cannot be opened, a
//! sigtar that cannot be read for `list`) is an `Err`; everything that
//! concerns one volume or one path is recorded in the report and the run
//! goes on, so one damaged volume costs only the files in it. Each error
//! names its place: the set (0 = the full) and volume with the caller's file
//! name, the offset in the tar stream, or the path.

use std::io;

use coffer_archive::{ManifestError, ReadError};
use coffer_rsync::PatchError;
use thiserror::Error;

/// The run could not start or could not go on at all.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RestoreError {
    #[error("manifest of set {set}: {source}")]
    Manifest { set: usize, source: ManifestError },
    #[error("the chain has no sets")]
    EmptyChain,
    #[error("destination {path}: {source}")]
    Destination { path: String, source: io::Error },
}

/// Why one volume (or the rest of it) could not be read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VolumeError {
    #[error("could not be opened: {0}")]
    Open(io::Error),
    #[error("is damaged: {0}")]
    Read(ReadError),
}

/// Why one path could not be restored, verified or listed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EntryError {
    #[error("entry at offset {offset} of set {set} volume {volume}: {source}")]
    Name { set: usize, volume: u32, offset: u64, source: ReadError },
    #[error("a diff with no file to apply it to (the earlier version is missing)")]
    NoBasis,
    #[error("a diff follows a {what}, which cannot be patched")]
    DiffAfter { what: &'static str },
    #[error("part of the file was in a volume that could not be read")]
    Incomplete,
    #[error("multivolume piece {got} follows piece {previous}")]
    PieceOrder { previous: u64, got: u64 },
    #[error("the file is longer than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("reading its data: {0}")]
    Data(io::Error),
    #[error("applying the diff of set {set}: {source}")]
    Patch { set: usize, source: PatchError },
    #[error("the name has an empty or '.' component")]
    BadName,
    #[error("deeper than {limit} directories")]
    TooDeep { limit: usize },
    #[error("{what}: {source}")]
    Io { what: &'static str, source: io::Error },
    #[error("devices are restored only when running as root")]
    DeviceNotRoot,
}

impl EntryError {
    pub(crate) fn io(what: &'static str) -> impl FnOnce(io::Error) -> EntryError {
        move |source| EntryError::Io { what, source }
    }
}

/// `list` could not read a sigtar.
#[derive(Debug, Error)]
#[error("sigtar {sigtar} of the chain: {source}")]
pub struct ListError {
    pub sigtar: usize,
    pub source: ReadError,
}
