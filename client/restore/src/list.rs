//! The files at the end of a chain, as `duplicity list-current-files`
//! lists them: read from the sigtars alone (the full signatures, then each
//! set's new signatures), later entries replacing earlier ones and
//! `deleted/` entries removing them. Sigtars are small next to volumes, so
//! this never touches the data.

use std::collections::BTreeMap;
use std::io::Read;

use coffer_archive::{Index, Kind, Meta, TarReader};

use crate::error::ListError;

/// Every path present after the last sigtar, in walk order, with its
/// metadata (regular files are `signature/` entries in sigtars: their
/// type is regular, their size is not recorded).
pub fn list<R: Read>(sigtars: impl IntoIterator<Item = R>) -> Result<Vec<(Index, Meta)>, ListError> {
    let mut files: BTreeMap<Index, Meta> = BTreeMap::new();
    for (sigtar, input) in sigtars.into_iter().enumerate() {
        let mut reader = TarReader::new(input);
        while let Some(header) = reader.next_header().map_err(|source| ListError { sigtar, source })? {
            let name = header.entry_name().map_err(|source| ListError { sigtar, source })?;
            match name.kind {
                Kind::Deleted => {
                    files.remove(&name.index);
                }
                Kind::Signature | Kind::Snapshot => {
                    files.insert(name.index, header.meta);
                }
                // Not written in sigtars; duplicity would not list them either.
                Kind::Diff => {}
            }
        }
    }
    Ok(files.into_iter().collect())
}
