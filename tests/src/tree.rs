//! Deterministic test trees and byte-for-byte tree comparison.

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

/// Pseudo-random bytes from a seed (xorshift), so trees are reproducible.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The standard source tree: odd names, modes, a symlink, an empty
/// directory, a 3 MiB file and small files.
pub fn make_source(dir: &Path) {
    std::fs::create_dir_all(dir.join("docs/empty")).expect("mkdir");
    std::fs::create_dir_all(dir.join("ünïcødé")).expect("mkdir");
    std::fs::write(dir.join("docs/a.txt"), b"version 1 of a\n").expect("write");
    std::fs::write(dir.join("ünïcødé/файл-данных.txt"), bytes(1, 5000)).expect("write");
    std::fs::write(dir.join("日本語 ファイル.txt"), bytes(2, 777)).expect("write");
    std::fs::write(dir.join("emoji-🎉 party.txt"), bytes(3, 100)).expect("write");
    std::fs::write(dir.join("quote'single and space.txt"), bytes(4, 10)).expect("write");
    std::fs::write(dir.join("big.bin"), bytes(5, 3 * 1024 * 1024 + 17)).expect("write");
    std::fs::write(dir.join("script.sh"), b"#!/bin/sh\necho hi\n").expect("write");
    std::fs::set_permissions(dir.join("script.sh"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(dir.join("private"), b"secret\n").expect("write");
    std::fs::set_permissions(dir.join("private"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    for i in 0..40 {
        std::fs::write(dir.join(format!("docs/small-{i:03}.dat")), bytes(100 + i, (i as usize * 397) % 5000)).expect("write");
    }
    symlink("docs/a.txt", dir.join("link-to-a")).expect("symlink");
}

/// A change for an incremental backup: rewrite, append, add, delete.
pub fn modify_source(dir: &Path) {
    std::fs::write(dir.join("docs/a.txt"), b"version 2 of a\n").expect("write");
    let mut big = std::fs::read(dir.join("big.bin")).expect("read");
    big[1_000_000..1_100_000].copy_from_slice(&bytes(6, 100_000));
    std::fs::write(dir.join("big.bin"), big).expect("write");
    std::fs::write(dir.join("docs/new.txt"), b"added later\n").expect("write");
    std::fs::remove_file(dir.join("docs/small-007.dat")).expect("rm");
    // duplicity sees a change by whole-second mtime (not size or content):
    // make sure the rewritten files do not share the backup's second.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
    for f in ["docs/a.txt", "big.bin"] {
        let file = std::fs::OpenOptions::new().write(true).open(dir.join(f)).expect("open");
        file.set_modified(later).expect("set mtime");
    }
}

#[derive(PartialEq, Eq)]
pub enum Entry {
    File { mode: u32, content: Vec<u8> },
    Dir,
    Symlink(std::path::PathBuf),
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Entry::File { mode, content } => write!(f, "file mode {mode:o}, {} bytes", content.len()),
            Entry::Dir => write!(f, "directory"),
            Entry::Symlink(t) => write!(f, "symlink to {}", t.display()),
        }
    }
}

/// Everything under `dir`, by relative path.
pub fn snapshot(dir: &Path, modes: bool) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    walk(dir, dir, modes, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, modes: bool, out: &mut BTreeMap<String, Entry>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = e.path();
        let rel = path.strip_prefix(root).expect("prefix").to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(&path).expect("lstat");
        if meta.file_type().is_symlink() {
            out.insert(rel, Entry::Symlink(std::fs::read_link(&path).expect("readlink")));
        } else if meta.is_dir() {
            out.insert(rel, Entry::Dir);
            walk(root, &path, modes, out);
        } else {
            let mode = if modes { meta.permissions().mode() & 0o777 } else { 0 };
            out.insert(rel, Entry::File { mode, content: std::fs::read(&path).expect("read") });
        }
    }
}

/// Asserts two trees hold the same names, types, contents (and modes).
pub fn assert_same(a: &Path, b: &Path, modes: bool) {
    let (sa, sb) = (snapshot(a, modes), snapshot(b, modes));
    let ka: Vec<_> = sa.keys().collect();
    let kb: Vec<_> = sb.keys().collect();
    assert_eq!(ka, kb, "different names in {} and {}", a.display(), b.display());
    for (k, v) in &sa {
        if sb[k] != *v {
            let detail = match (v, &sb[k]) {
                (Entry::File { content: x, mode: mx }, Entry::File { content: y, mode: my }) => {
                    let first = x.iter().zip(y.iter()).position(|(p, q)| p != q);
                    format!("sizes {} vs {}, modes {mx:o} vs {my:o}, first difference at {first:?}", x.len(), y.len())
                }
                (x, y) => format!("{x:?} vs {y:?}"),
            };
            panic!("{k} differs between {} and {}: {detail}", a.display(), b.display());
        }
    }
}
