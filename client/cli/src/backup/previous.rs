//! The chain's last known state of every path, read from its signature
//! tars (the full set's, then each incremental's, oldest first) and merged
//! as duplicity's `combine_path_iters` does: one record per path in index
//! order, the newest set's record winning. Streams every sigtar at once, so
//! memory holds one record per sigtar, not the tree.

use std::io::Read;

use anyhow::{Context, Result};
use coffer_archive::{Index, Kind, TarReader};

use super::decide::Previous;

/// A signature larger than this is refused: a signature is 12 bytes plus
/// 12 per block of at least 512 bytes, so this covers files of tens of GB
/// with duplicity's 2048-byte cap… and stops a hostile sigtar.
const MAX_SIGNATURE: u64 = 1 << 30;

/// One path's record.
pub(super) struct Record {
    pub index: Index,
    pub previous: Previous,
    /// The librsync signature of a `Signature` record.
    pub signature: Option<Vec<u8>>,
}

struct Source<'k> {
    name: String,
    reader: TarReader<Box<dyn Read + 'k>>,
    next: Option<Record>,
}

impl Source<'_> {
    fn advance(&mut self) -> Result<()> {
        self.next = None;
        let Some(header) = self.reader.next_header().with_context(|| format!("reading {}", self.name))? else { return Ok(()) };
        let entry = header.entry_name().with_context(|| format!("reading {}", self.name))?;
        let signature = if entry.kind == Kind::Signature {
            anyhow::ensure!(header.size <= MAX_SIGNATURE, "{}: the signature of {:?} is {} bytes, more than any file needs", self.name, entry.index, header.size);
            let mut bytes = Vec::new();
            self.reader.data().read_to_end(&mut bytes).with_context(|| format!("reading {}", self.name))?;
            Some(bytes)
        } else {
            None
        };
        self.next = Some(Record { index: entry.index, previous: Previous { kind: entry.kind, meta: header.meta }, signature });
        Ok(())
    }
}

/// The merged records of a chain's sigtars.
pub(super) struct PreviousState<'k> {
    /// Oldest set first.
    sources: Vec<Source<'k>>,
}

impl<'k> PreviousState<'k> {
    /// `sigtars`: (file name for messages, plain sigtar bytes), oldest first.
    pub(super) fn new(sigtars: Vec<(String, Box<dyn Read + 'k>)>) -> Result<PreviousState<'k>> {
        let mut sources = Vec::new();
        for (name, reader) in sigtars {
            let mut source = Source { name, reader: TarReader::new(reader), next: None };
            source.advance()?;
            sources.push(source);
        }
        Ok(PreviousState { sources })
    }

    /// An empty state (a full backup).
    pub(super) fn empty() -> PreviousState<'k> {
        PreviousState { sources: Vec::new() }
    }

    /// The next path's record, in index order.
    pub(super) fn next_record(&mut self) -> Result<Option<Record>> {
        let Some(smallest) = self.sources.iter().filter_map(|s| s.next.as_ref().map(|r| r.index.clone())).min() else { return Ok(None) };
        let mut newest = None;
        for source in &mut self.sources {
            if source.next.as_ref().is_some_and(|r| r.index == smallest) {
                newest = source.next.take();
                source.advance()?;
            }
        }
        Ok(newest)
    }
}
