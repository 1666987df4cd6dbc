//! Grouping of archive files into sets and chains, as duplicity does.

use std::collections::BTreeMap;

use crate::name::{ArchiveName, FileRole, SetKind, parse_name};
use crate::time::format_stamp;

/// A file in a backup directory, with what retention needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub name: String,
    /// Modification time, seconds since the epoch (the client can set it).
    pub mtime: i64,
    /// Status change time, seconds since the epoch: set by the kernel when
    /// the file was created, linked, renamed or changed, never chosen by a client.
    pub ctime: i64,
    pub size: u64,
}

/// A backup set: every file with the same kind and times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSet {
    pub kind: SetKind,
    pub start: Option<i64>,
    pub end: i64,
    pub manifest: Option<String>,
    pub volumes: BTreeMap<u32, String>,
    pub signatures: Vec<String>,
    /// Newest modification time among the set's files.
    pub newest_mtime: i64,
    /// Earliest status change time among the set's files: when the set
    /// began to arrive (a long upload's first volume), as far as the file
    /// system can tell.
    pub earliest_ctime: i64,
    pub bytes: u64,
}

impl BackupSet {
    /// The set's identity within its directory, as text: `full.STAMP` or
    /// `inc.STAMP.to.STAMP` (prefixes and file roles left out, as duplicity
    /// groups them).
    pub fn key(&self) -> String {
        match self.start {
            Some(s) if self.kind == SetKind::Incremental => format!("inc.{}.to.{}", format_stamp(s), format_stamp(self.end)),
            _ if self.kind == SetKind::Incremental => format!("inc.{}", format_stamp(self.end)),
            _ => format!("full.{}", format_stamp(self.end)),
        }
    }

    /// A set is complete (restorable) only once its manifest exists.
    pub fn is_complete(&self) -> bool {
        self.manifest.is_some()
    }

    /// Every file of the set, manifest first: the order to delete in, so an
    /// interruption leaves an incomplete set, never a set that looks whole.
    pub fn files_in_delete_order(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.manifest.iter().map(String::as_str).collect();
        out.extend(self.volumes.values().map(String::as_str));
        out.extend(self.signatures.iter().map(String::as_str));
        out
    }
}

/// A full set and the incrementals that follow it, oldest first (indices into `Collection::sets`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub sets: Vec<usize>,
}

/// One directory's duplicity files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collection {
    /// Every set, complete or not, sorted by end time.
    pub sets: Vec<BackupSet>,
    /// Chains of complete sets, oldest chain first.
    pub chains: Vec<Chain>,
    /// Complete sets that belong to no chain (an incremental whose base is missing).
    pub orphans: Vec<usize>,
    /// Incomplete sets (no manifest): an interrupted or running backup.
    pub incomplete: Vec<usize>,
    /// Files that are not duplicity archives.
    pub others: Vec<FileInfo>,
}

impl Collection {
    /// Groups the files of one directory.
    pub fn from_files(files: &[FileInfo]) -> Self {
        let mut by_key: BTreeMap<(i64, SetKind, Option<i64>), BackupSet> = BTreeMap::new();
        let mut others = Vec::new();
        for f in files {
            let Some(ArchiveName { kind, role, start, end, .. }) = parse_name(&f.name) else {
                others.push(f.clone());
                continue;
            };
            let set = by_key.entry((end, kind, start)).or_insert_with(|| BackupSet {
                kind,
                start,
                end,
                manifest: None,
                volumes: BTreeMap::new(),
                signatures: Vec::new(),
                newest_mtime: f.mtime,
                earliest_ctime: f.ctime,
                bytes: 0,
            });
            set.newest_mtime = set.newest_mtime.max(f.mtime);
            set.earliest_ctime = set.earliest_ctime.min(f.ctime);
            set.bytes += f.size;
            match role {
                // A second manifest for the same set (plain and .gpg) stays listed with the files.
                FileRole::Manifest if set.manifest.is_none() => set.manifest = Some(f.name.clone()),
                FileRole::Manifest => set.signatures.push(f.name.clone()),
                FileRole::Volume(n) => {
                    if let Some(dup) = set.volumes.insert(n, f.name.clone()) {
                        set.signatures.push(dup);
                    }
                }
                FileRole::Signatures => set.signatures.push(f.name.clone()),
            }
        }
        let sets: Vec<BackupSet> = by_key.into_values().collect();
        let mut chains: Vec<Chain> = Vec::new();
        let mut orphans = Vec::new();
        let mut incomplete = Vec::new();
        for (i, s) in sets.iter().enumerate() {
            if !s.is_complete() {
                // A set with only signature files is an orphaned signature, not a backup.
                incomplete.push(i);
                continue;
            }
            match s.kind {
                SetKind::Full => chains.push(Chain { sets: vec![i] }),
                SetKind::Incremental => {
                    let joined = chains.iter_mut().find(|c| c.sets.last().is_some_and(|&l| Some(sets[l].end) == s.start));
                    match joined {
                        Some(c) => c.sets.push(i),
                        None => orphans.push(i),
                    }
                }
            }
        }
        Collection { sets, chains, orphans, incomplete, others }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: String) -> FileInfo {
        FileInfo { name, mtime: 0, ctime: 7, size: 1 }
    }

    #[test]
    fn chains_and_incomplete() {
        let (a, b, c, d) = (1_000_000, 1_100_000, 1_200_000, 1_300_000);
        let s = format_stamp;
        let files = vec![
            f(format!("duplicity-full.{}.manifest.gpg", s(a))),
            f(format!("duplicity-full.{}.vol1.difftar.gpg", s(a))),
            f(format!("duplicity-full-signatures.{}.sigtar.gpg", s(a))),
            f(format!("duplicity-inc.{}.to.{}.manifest.gpg", s(a), s(b))),
            f(format!("duplicity-inc.{}.to.{}.vol1.difftar.gpg", s(a), s(b))),
            f(format!("duplicity-new-signatures.{}.to.{}.sigtar.gpg", s(a), s(b))),
            // An orphan: starts at c, which no set ends at.
            f(format!("duplicity-inc.{}.to.{}.manifest.gpg", s(c), s(d))),
            // An interrupted full at d.
            f(format!("duplicity-full.{}.vol1.difftar.gpg", s(d))),
            f("README".into()),
        ];
        let col = Collection::from_files(&files);
        assert_eq!(col.chains.len(), 1);
        assert_eq!(col.chains[0].sets.len(), 2);
        assert_eq!(col.orphans.len(), 1);
        assert_eq!(col.incomplete.len(), 1);
        assert_eq!(col.others.len(), 1);
        let full = &col.sets[col.chains[0].sets[0]];
        assert_eq!(full.files_in_delete_order()[0], format!("duplicity-full.{}.manifest.gpg", s(a)));
        assert_eq!(full.files_in_delete_order().len(), 3);
        assert_eq!(full.key(), format!("full.{}", s(a)));
        assert_eq!(col.sets[col.chains[0].sets[1]].key(), format!("inc.{}.to.{}", s(a), s(b)));
        assert_eq!(full.earliest_ctime, 7);
    }
}
