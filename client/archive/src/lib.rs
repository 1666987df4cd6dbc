//! Duplicity's archive format, byte for byte: the tar volumes
//! (`duplicity-full.T.volN.difftar`), the signature tars (`…sigtar`) and the
//! text manifest, as duplicity 0.8 writes them with Python's `tarfile` (PAX
//! format) and as duplicity 0.8 and 3.x read them.
//!
//! Pure format code over `io::Read`/`io::Write`: no files, no compression, no
//! encryption. The caller walks the tree (in duplicity's order, see
//! [`Index`]), compresses or encrypts what [`VolumeWriter`] produces, and
//! tells it how many bytes a volume occupies so far, because duplicity cuts
//! volumes on the output size.
//!
//! Everything read back from a server goes through [`TarReader`] and
//! [`Manifest::parse`]: hostile bytes give an error naming the offset or the
//! line, never a panic, and no allocation follows a length field beyond a
//! fixed bound.

mod entry;
mod error;
mod header;
mod manifest;
mod read;
mod write;

pub use entry::{Entry, EntryName, FileType, HARDLINK_PAX_KEY, Index, Kind, Meta};
pub use error::{ManifestError, ReadError, WriteError};
pub use header::{MAX_EXTENDED_HEADER, RECORD_SIZE};
pub use manifest::{Change, FileChange, Manifest, VolumeInfo, quote, unquote};
pub use read::{EntryData, Header, TarReader};
pub use write::{Footer, PIECE_SIZE, Position, SigTarWriter, VolumeRange, VolumeWriter, Volumes, read_full};
