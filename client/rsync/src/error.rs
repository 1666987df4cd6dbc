//! Error policy: every error says what was being read or written and where
//! (the byte offset in the signature, delta, input or basis), so a report
//! about a damaged archive member can name the member and the spot. Bytes
//! from a server are never trusted: each way they can be wrong is an error
//! variant, never a panic.

use std::io;

use thiserror::Error;

use crate::{MAX_BLOCK_LEN, MD4_SUM_LEN};

/// Making or reading a signature failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The block length (asked for, or in a signature's header) is unusable.
    #[error("signature block length {found} is outside 1..={MAX_BLOCK_LEN}")]
    BlockLen { found: u32 },
    /// The strong sum length (asked for, or in a signature's header) is unusable.
    #[error("signature strong sum length {found} is outside 1..={MD4_SUM_LEN}")]
    StrongLen { found: u32 },
    /// The signature does not start with librsync's MD4 signature magic.
    #[error("signature magic {found:#010x} at offset 0 is not librsync's MD4 signature magic 0x72730136")]
    BadMagic { found: u32 },
    /// The signature ends inside its header or inside a block's sums.
    #[error("signature truncated at offset {offset}: {what}")]
    Truncated { offset: u64, what: &'static str },
    /// The signature is longer than the caller's limit.
    #[error("signature is longer than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// Reading the signature failed.
    #[error("reading the signature at offset {offset}: {source}")]
    ReadSignature { offset: u64, source: io::Error },
    /// Reading the file being signed failed.
    #[error("reading the input at offset {offset}: {source}")]
    ReadInput { offset: u64, source: io::Error },
    /// Writing the signature failed.
    #[error("writing the signature: {source}")]
    Write { source: io::Error },
}

/// Making a delta failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DeltaError {
    /// Reading the new file failed.
    #[error("reading the new file at offset {offset}: {source}")]
    ReadInput { offset: u64, source: io::Error },
    /// Writing the delta failed.
    #[error("writing the delta: {source}")]
    Write { source: io::Error },
}

/// Applying a delta failed. Offsets are in the delta unless named otherwise.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PatchError {
    /// The delta does not start with librsync's delta magic.
    #[error("delta magic {found:#010x} at offset 0 is not librsync's delta magic 0x72730236")]
    BadMagic { found: u32 },
    /// The delta ends inside a command, or without an END command.
    #[error("delta truncated at offset {offset}: {what}")]
    Truncated { offset: u64, what: &'static str },
    /// A command byte librsync does not define.
    #[error("delta command byte {op:#04x} at offset {offset} is not a librsync command")]
    UnknownCommand { op: u8, offset: u64 },
    /// A LITERAL or COPY with a length of zero or beyond 2^63 - 1, which librsync refuses.
    #[error("delta {command} at offset {offset} has invalid length {len}")]
    BadLength { command: &'static str, offset: u64, len: u64 },
    /// A COPY that reaches outside the basis.
    #[error("delta COPY at offset {offset} reads {len} bytes at {pos} from a basis of {basis_len} bytes")]
    CopyOutOfRange { offset: u64, pos: u64, len: u64, basis_len: u64 },
    /// The output would grow beyond the caller's limit.
    #[error("delta command at offset {offset} would make the output longer than the limit of {limit} bytes")]
    OutputLimit { offset: u64, limit: u64 },
    /// Reading the delta failed.
    #[error("reading the delta at offset {offset}: {source}")]
    ReadDelta { offset: u64, source: io::Error },
    /// Reading the basis failed (or it ended before its length said).
    #[error("reading the basis at offset {pos}: {source}")]
    ReadBasis { pos: u64, source: io::Error },
    /// Writing the output failed.
    #[error("writing the patched output: {source}")]
    Write { source: io::Error },
}
