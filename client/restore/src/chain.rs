//! What the caller hands in: the chain's manifests, in order (the full,
//! then each incremental up to the chosen time), and a [`VolumeSource`]
//! that opens any volume of any set as plain tar bytes. Fetching, hash
//! checks against the manifest, decryption and gunzip are the caller's.

use std::io::{self, Read};

use coffer_archive::{Index, Manifest, VolumeInfo};

use crate::error::RestoreError;

/// Opens the volumes of a chain.
///
/// Restore reads every set at once (as duplicity does, one open volume per
/// set), so `open` may be called for another set before an earlier reader
/// is dropped.
pub trait VolumeSource {
    /// The name a volume is reported by (its file name on the server).
    fn name(&self, set: usize, volume: u32) -> String;
    /// The volume's plain tar bytes (decrypted, gunzipped).
    fn open(&mut self, set: usize, volume: u32) -> io::Result<Box<dyn Read>>;
    /// The volume of `set` that `open` will be asked for next, said as soon
    /// as its predecessor is open: a source may start fetching and
    /// decrypting it on another core.
    fn prefetch(&mut self, _set: usize, _volume: u32) {}
}

/// The sets of one chain, oldest first (set 0 is the full).
#[derive(Clone, Debug)]
pub struct Chain {
    pub manifests: Vec<Manifest>,
}

impl Chain {
    /// Parses each set's manifest (already decrypted).
    pub fn parse<B: AsRef<[u8]>>(manifests: &[B]) -> Result<Chain, RestoreError> {
        if manifests.is_empty() {
            return Err(RestoreError::EmptyChain);
        }
        let manifests = manifests
            .iter()
            .enumerate()
            .map(|(set, m)| Manifest::parse(m.as_ref()).map_err(|source| RestoreError::Manifest { set, source }))
            .collect::<Result<_, _>>()?;
        Ok(Chain { manifests })
    }

    /// The volumes of `set` to read: all of them, or those whose ranges may
    /// hold `selection` (duplicity's `--file-to-restore` rule).
    pub(crate) fn volumes(&self, set: usize, selection: Option<&Index>) -> Vec<VolumeInfo> {
        self.manifests
            .get(set)
            .map(|m| m.volumes.iter().filter(|v| selection.is_none_or(|s| v.may_contain(s))).cloned().collect())
            .unwrap_or_default()
    }
}
