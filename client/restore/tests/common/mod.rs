//! Helpers shared by the integration tests: chains held in memory, and
//! tree snapshots to compare a restore with.

#![allow(dead_code, reason = "each test binary uses a part of the helpers")]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Cursor, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use coffer_archive::{Entry, Footer, Manifest, VolumeInfo, VolumeRange, VolumeWriter, Volumes};
use coffer_restore::VolumeSource;

/// Volumes kept in memory.
#[derive(Default)]
pub(crate) struct MemVolumes {
    pub(crate) done: Vec<(Vec<u8>, VolumeRange)>,
}

impl Volumes for MemVolumes {
    type Sink = Vec<u8>;
    fn open(&mut self, _: u32) -> io::Result<Vec<u8>> {
        Ok(Vec::new())
    }
    fn output_len(&self, sink: &Vec<u8>) -> u64 {
        sink.len() as u64
    }
    fn close(&mut self, sink: Vec<u8>, range: VolumeRange) -> io::Result<()> {
        self.done.push((sink, range));
        Ok(())
    }
}

/// One set written by coffer-archive's writer: its manifest and volumes.
pub(crate) struct MemSet {
    pub(crate) manifest: Vec<u8>,
    pub(crate) volumes: BTreeMap<u32, Vec<u8>>,
}

pub(crate) fn write_set(entries: &[(Entry, Vec<u8>)], volsize: u64) -> MemSet {
    let mut writer = VolumeWriter::new(MemVolumes::default(), volsize, Footer::None);
    for (entry, data) in entries {
        writer.push(entry, &mut data.as_slice()).unwrap();
    }
    let done = writer.finish().unwrap().done;
    let mut manifest = Manifest::default();
    let mut volumes = BTreeMap::new();
    for (bytes, range) in done {
        manifest.volumes.push(VolumeInfo::new(range.clone(), "00"));
        volumes.insert(range.number, bytes);
    }
    MemSet { manifest: manifest.to_bytes(), volumes }
}

/// A source over sets in memory that records what was opened.
pub(crate) struct MemSource {
    pub(crate) sets: Vec<BTreeMap<u32, Vec<u8>>>,
    pub(crate) opened: Vec<(usize, u32)>,
}

impl VolumeSource for MemSource {
    fn name(&self, set: usize, volume: u32) -> String {
        format!("set{set}.vol{volume}")
    }
    fn open(&mut self, set: usize, volume: u32) -> io::Result<Box<dyn Read>> {
        self.opened.push((set, volume));
        let bytes = self.sets.get(set).and_then(|s| s.get(&volume)).ok_or(io::ErrorKind::NotFound)?;
        Ok(Box::new(Cursor::new(bytes.clone())))
    }
}

/// What a tree holds, path by path: type, mode, owner, mtime, content or
/// link target, and which paths share an inode.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) kind: &'static str,
    pub(crate) mode: u32,
    pub(crate) owner: (u32, u32),
    pub(crate) mtime: Option<i64>,
    pub(crate) content: Vec<u8>,
}

pub(crate) fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, Node> {
    let mut out = BTreeMap::new();
    walk(root, Vec::new(), &mut out);
    out
}

fn walk(path: &Path, relative: Vec<u8>, out: &mut BTreeMap<Vec<u8>, Node>) {
    let meta = fs::symlink_metadata(path).unwrap();
    let t = meta.file_type();
    let (kind, content) = if t.is_file() {
        ("reg", fs::read(path).unwrap())
    } else if t.is_dir() {
        ("dir", Vec::new())
    } else if t.is_symlink() {
        ("sym", fs::read_link(path).unwrap().as_os_str().as_bytes().to_vec())
    } else if t.is_fifo() {
        ("fifo", Vec::new())
    } else {
        ("other", Vec::new())
    };
    out.insert(
        relative.clone(),
        Node {
            kind,
            mode: if kind == "sym" { 0 } else { meta.mode() & 0o7777 },
            owner: (meta.uid(), meta.gid()),
            mtime: (kind != "sym").then_some(meta.mtime()),
            content,
        },
    );
    if t.is_dir() {
        for item in fs::read_dir(path).unwrap() {
            let item = item.unwrap();
            let mut child = relative.clone();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(item.file_name().as_bytes());
            walk(&item.path(), child, out);
        }
    }
}

/// Paths that differ between two snapshots, for a readable failure.
pub(crate) fn differences(want: &BTreeMap<Vec<u8>, Node>, got: &BTreeMap<Vec<u8>, Node>) -> Vec<String> {
    let keys: BTreeSet<&Vec<u8>> = want.keys().chain(got.keys()).collect();
    keys.into_iter()
        .filter(|k| want.get(*k) != got.get(*k))
        .map(|k| {
            let show = |n: Option<&Node>| {
                n.map(|n| format!("{} {:o} {:?} {:?} {} bytes", n.kind, n.mode, n.owner, n.mtime, n.content.len()))
            };
            format!("{}: want {:?}, got {:?}", k.escape_ascii(), show(want.get(k)), show(got.get(k)))
        })
        .collect()
}

/// No file anywhere under `root` has a name of a restore's temporary.
pub(crate) fn no_temporaries(root: &Path) -> bool {
    snapshot(root).keys().all(|k| !k.windows(15).any(|w| w == b".coffer-restore"))
}
