//! The chain's last state, path by path: every set is read at once and
//! the entries are collated by path (duplicity's `integrate_patch_iters`),
//! so each path is produced once, in walk order, with the newest snapshot
//! and the diffs after it applied. That is faster than restoring the full
//! and patching the tree once per incremental (no file is written twice,
//! none written only to be deleted) and gives the same result.
//!
//! For each path the entries of all sets are cut back to the last one that
//! is not a diff (`normalize_ps`); a diff with nothing before it, or after a
//! non-file, is an error for that path. What to do with the result is the
//! [`Sink`]'s: restore writes it under the destination, verify compares it.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::os::fd::OwnedFd;

use coffer_archive::{FileType, Index, Kind, Meta};
use coffer_rsync::{PatchLimits, apply_patch};

use crate::chain::{Chain, VolumeSource};
use crate::error::EntryError;
use crate::stream::{PathProblem, SetStream, VolumeProblem, entry_error};

/// Bounds on what a hostile chain can make the run write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest file accepted, snapshot or patched: a few bytes of delta
    /// can ask for terabytes, and multivolume pieces have no total.
    pub max_file_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_file_size: 1 << 40 }
    }
}

/// A file a regular file's versions are built in.
pub(crate) struct Scratch {
    pub(crate) file: File,
    /// The directory it was made in and its name there, if it has one.
    pub(crate) place: Option<(OwnedFd, Vec<u8>)>,
}

/// A regular file's final bytes.
pub(crate) enum Content<'a> {
    /// Straight from the archive (a snapshot with no diff after it).
    Stream(&'a mut dyn Read),
    /// Built by patching, rewound to its start.
    Patched(Scratch),
}

/// What to do with each path of the last state, in walk order. `index` is
/// relative to the selection (the root is the selected path).
pub(crate) trait Sink {
    /// Takes a regular file without its data (a hard link); false to get the data.
    fn shortcut(&mut self, index: &Index, meta: &Meta) -> bool;
    fn scratch(&mut self, index: &Index) -> Result<Scratch, EntryError>;
    fn discard(&mut self, scratch: Scratch);
    fn file(&mut self, index: &Index, meta: &Meta, content: Content<'_>) -> Result<(), EntryError>;
    fn other(&mut self, index: &Index, meta: &Meta) -> Result<(), EntryError>;
    fn failed(&mut self, index: &Index, error: EntryError);
    /// The path was produced but a volume that may have changed it was lost.
    fn uncertain(&mut self, index: &Index);
}

/// What the run could not read.
pub(crate) struct Damage {
    pub(crate) volumes: Vec<VolumeProblem>,
    pub(crate) names: Vec<PathProblem>,
}

/// Copies at most `limit` bytes; more is an error.
pub(crate) fn copy_limited(from: &mut dyn Read, to: &mut dyn Write, limit: u64) -> Result<u64, EntryError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(entry_error(e)),
        };
        total += n as u64;
        if total > limit {
            return Err(EntryError::TooLarge { limit });
        }
        to.write_all(&buf[..n]).map_err(EntryError::io("writing the file"))?;
    }
}

/// Runs the chain (the sets of `chain`, their volumes from `source`)
/// through `sink`, restricted to `selection` and everything under it.
pub(crate) fn run(
    chain: &Chain,
    source: &mut dyn VolumeSource,
    selection: Option<&Index>,
    limits: &Limits,
    sink: &mut dyn Sink,
) -> Damage {
    let mut streams: Vec<SetStream> =
        (0..chain.manifests.len()).map(|set| SetStream::new(set, chain.volumes(set, selection))).collect();
    loop {
        let mut least: Option<Index> = None;
        for stream in &mut streams {
            if let Some(head) = stream.peek(source)
                && least.as_ref().is_none_or(|l| head.name.index < *l)
            {
                least = Some(head.name.index.clone());
            }
        }
        let Some(index) = least else { break };
        let members: Vec<usize> =
            (0..streams.len()).filter(|&i| streams[i].peek(source).is_some_and(|h| h.name.index == index)).collect();
        if let Some(relative) = relative_to(&index, selection) {
            // A lost volume of a later set whose range covers the path may
            // have held a change to it that is now missing.
            if let Some(base_set) = produce(&mut streams, &members, source, &relative, limits, sink)
                && streams
                    .iter()
                    .flat_map(|s| &s.problems)
                    .any(|p| p.set > base_set && p.start.index <= index && index <= p.end.index)
            {
                sink.uncertain(&relative);
            }
        }
        for &m in &members {
            streams[m].advance(source);
        }
    }
    let mut damage = Damage { volumes: Vec::new(), names: Vec::new() };
    for stream in streams {
        damage.volumes.extend(stream.problems);
        damage.names.extend(stream.bad_names);
    }
    damage
}

/// `index` below `selection`, or `None` when it is outside.
pub(crate) fn relative_to(index: &Index, selection: Option<&Index>) -> Option<Index> {
    let Some(selection) = selection else { return Some(index.clone()) };
    if !index.starts_with(selection) {
        return None;
    }
    Some(Index::from_components(index.components().skip(selection.components().count())))
}

fn type_name(file_type: &FileType) -> &'static str {
    match file_type {
        FileType::Regular => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink(_) => "symbolic link",
        FileType::Fifo => "FIFO",
        FileType::CharDevice { .. } | FileType::BlockDevice { .. } => "device",
    }
}

/// Produces one path from the entries the sets `members` hold for it;
/// the set its newest snapshot came from if the sink got it.
fn produce(
    streams: &mut [SetStream],
    members: &[usize],
    source: &mut dyn VolumeSource,
    index: &Index,
    limits: &Limits,
    sink: &mut dyn Sink,
) -> Option<usize> {
    let kind = |streams: &mut [SetStream], source: &mut dyn VolumeSource, m: usize| {
        streams[m].peek(source).map(|h| h.name.kind)
    };
    let start = members.iter().rposition(|&m| kind(streams, source, m) != Some(Kind::Diff)).unwrap_or(0);
    let sequence = &members[start..];
    let &first = sequence.first()?;
    if let Some(error) = sequence.iter().find_map(|&m| streams[m].damage()) {
        sink.failed(index, error);
        return None;
    }
    let head = streams[first].peek(source)?;
    let base_kind = head.name.kind;
    let base_type = head.meta.file_type.clone();
    let base_meta = head.meta.clone();
    match base_kind {
        Kind::Diff => {
            sink.failed(index, EntryError::NoBasis);
            return None;
        }
        Kind::Deleted if sequence.len() == 1 => return None,
        Kind::Deleted => {
            sink.failed(index, EntryError::DiffAfter { what: "deleted entry" });
            return None;
        }
        _ => {}
    }
    if base_type != FileType::Regular {
        if sequence.len() > 1 {
            sink.failed(index, EntryError::DiffAfter { what: type_name(&base_type) });
            return None;
        }
        return match sink.other(index, &base_meta) {
            Ok(()) => Some(streams[first].set),
            Err(e) => {
                sink.failed(index, e);
                None
            }
        };
    }
    let last = sequence[sequence.len() - 1];
    let meta = streams[last].peek(source).map(|h| h.meta.clone())?;
    if sink.shortcut(index, &meta) {
        return Some(streams[first].set);
    }
    let result = if sequence.len() == 1 {
        let mut reader = streams[first].reader(source);
        sink.file(index, &meta, Content::Stream(&mut reader))
    } else {
        patched(streams, sequence, source, index, limits, sink)
            .and_then(|scratch| sink.file(index, &meta, Content::Patched(scratch)))
    };
    match result {
        Ok(()) => Some(streams[first].set),
        Err(e) => {
            sink.failed(index, e);
            None
        }
    }
}

/// The snapshot of `sequence[0]` with the diffs of the others applied, in a
/// scratch file of the sink's.
fn patched(
    streams: &mut [SetStream],
    sequence: &[usize],
    source: &mut dyn VolumeSource,
    index: &Index,
    limits: &Limits,
    sink: &mut dyn Sink,
) -> Result<Scratch, EntryError> {
    let mut basis = sink.scratch(index)?;
    let copied = {
        let mut writer = BufWriter::new(&mut basis.file);
        let copied = copy_limited(&mut streams[sequence[0]].reader(source), &mut writer, limits.max_file_size);
        copied.and_then(|n| writer.flush().map(|()| n).map_err(EntryError::io("writing the file")))
    };
    if let Err(e) = copied {
        sink.discard(basis);
        return Err(e);
    }
    for &m in &sequence[1..] {
        let mut out = match sink.scratch(index) {
            Ok(out) => out,
            Err(e) => {
                sink.discard(basis);
                return Err(e);
            }
        };
        let set = streams[m].set;
        let applied = (|| {
            basis.file.rewind().map_err(EntryError::io("rewinding the basis"))?;
            let mut writer = BufWriter::new(&mut out.file);
            let delta = streams[m].reader(source);
            apply_patch(&mut basis.file, delta, &mut writer, PatchLimits { max_output: limits.max_file_size })
                .map_err(|source| EntryError::Patch { set, source })?;
            writer.flush().map_err(EntryError::io("writing the file"))
        })();
        sink.discard(basis);
        if let Err(e) = applied {
            sink.discard(out);
            return Err(e);
        }
        basis = out;
    }
    if let Err(e) = basis.file.rewind() {
        sink.discard(basis);
        return Err(EntryError::io("rewinding the file")(e));
    }
    Ok(basis)
}
