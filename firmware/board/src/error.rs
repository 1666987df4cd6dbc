//! Error policy: every error names the board file and the key that is
//! wrong, and says what would be right, because the person who reads it is
//! editing `board/*/` and the image build stops on it.

use std::path::PathBuf;

use thiserror::Error;

/// Why a board file was not accepted.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BoardError {
    /// The cause is in the message, not a `source`: callers print errors
    /// with their chain, which would say it twice.
    #[error("cannot read {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    /// Not TOML, or a key the board type does not have (the message
    /// names the key and its line).
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: {}", list(problems))]
    Invalid { path: PathBuf, problems: Vec<Problem> },
}

fn list(problems: &[Problem]) -> String {
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// One value that parses but cannot be right, by the key it is at.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Problem {
    #[error("name: {0:?} is not a board name (letters, digits, '.', '_' and '-')")]
    BadName(String),
    #[error("rust-target: {target:?} is not a musl target of arch {arch:?} (expected {arch}-…-musl)")]
    TargetNotOfArch { target: String, arch: String },
    #[error("rust-cpu: {0:?} needs c-compiler, the C compiler for that CPU")]
    CpuWithoutCompiler(String),
    #[error("bios, uefi: both false; the image would boot from neither")]
    NoFirmware,
    #[error("disks.bays: {0} bays; the data mirror has exactly two members, one per bay")]
    BayCount(usize),
    #[error("disks.bays: {0:?} is not a bay name (not empty, no surrounding spaces, no control characters)")]
    BadBay(String),
    #[error("disks.bays: {0:?} is named twice")]
    DuplicateBay(String),
    #[error("leds.status: {0:?} is not a kernel LED name or `*suffix` (no '/', spaces or other '*'; empty for no LED)")]
    BadLed(String),
}
