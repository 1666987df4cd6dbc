//! librsync's file formats, as duplicity stores them, in pure Rust:
//! signatures (MD4 strong sums, librsync's rollsum as the weak sum), deltas
//! against a signature, and patching a basis with a delta.
//!
//! Duplicity keeps a signature of every regular file in the sigtar and an
//! rdiff delta of every changed file in the difftar, so these bytes must be
//! exactly what librsync reads and writes: signatures are byte for byte those
//! of `rdiff signature -H md4 -R rollsum -S 8 -b BLOCK`, deltas follow
//! librsync 2.x's matching rules (so they equal `rdiff delta`'s output except
//! for an empty signature, see [`DeltaWriter`]), and [`apply_patch`] applies
//! what `rdiff delta` writes.
//!
//! Everything streams: a signature or delta is produced from input pushed in
//! chunks ([`SignatureWriter`], [`DeltaWriter`], both `io::Write`) or pulled
//! from a reader ([`write_signature`], [`write_delta`]), with memory bounded
//! by the block length, not the file length. Bytes read back from a server
//! ([`Signature::read_from`], [`apply_patch`]) are validated as they are read:
//! they never panic, never size an allocation from a length field, and stay
//! under limits the caller sets. The crate opens no file and no socket.

mod delta;
mod error;
mod index;
mod patch;
mod rollsum;
mod signature;

pub use delta::{DeltaStats, DeltaWriter, write_delta};
pub use error::{DeltaError, PatchError, SignatureError};
pub use patch::{PatchLimits, apply_patch};
pub use signature::{
    DUPLICITY_MAX_BLOCK_LEN, DUPLICITY_STRONG_LEN, Signature, SignatureParams, SignatureWriter, duplicity_block_len,
    write_signature,
};

/// librsync's `RS_MD4_SIG_MAGIC`: a signature with MD4 strong sums and the
/// rollsum weak sum, the only kind duplicity writes.
pub const MD4_SIG_MAGIC: u32 = 0x7273_0136;

/// librsync's `RS_DELTA_MAGIC`, the first four bytes of every delta.
pub const DELTA_MAGIC: u32 = 0x7273_0236;

/// Length of a whole MD4 digest, the longest strong sum an MD4 signature holds.
pub const MD4_SUM_LEN: usize = 16;

/// The longest block accepted in a signature. librsync has no such limit, but
/// delta generation buffers a few blocks, so a hostile signature must not
/// choose the size of that buffer; duplicity uses at most 2048 by default.
pub const MAX_BLOCK_LEN: u32 = 1 << 24;
