//! The source tree in duplicity's order: the source directory first, then
//! each directory's entries sorted bytewise, depth first, a directory
//! before its contents (so `a/b` comes before `a.b`, which a sort of whole
//! paths would get wrong). Symbolic links are entries, never followed.
//! Memory holds one sorted listing per directory on the current path.

use std::ffi::OsString;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::selection::Selection;

/// One file, directory, link or special file of the tree.
#[derive(Debug)]
pub struct Entry {
    /// The path's components below the source, joined by `/`; empty for the
    /// source directory itself (duplicity's index `()`).
    pub relative: Vec<u8>,
    /// Where it is on this machine.
    pub path: PathBuf,
    /// Its `lstat`.
    pub meta: Metadata,
}

/// A part of the tree that could not be read; the walk goes on without it.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct WalkError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

struct Frame {
    dir: PathBuf,
    relative: Vec<u8>,
    /// Names still to visit, in reverse order (popped from the end).
    names: Vec<OsString>,
}

/// An iterator over the selected entries of a tree.
pub struct Walk {
    selection: Selection,
    root: Option<PathBuf>,
    stack: Vec<Frame>,
}

impl Walk {
    /// A walk of `source` (an absolute directory path) under `selection`.
    pub fn new(source: &Path, selection: Selection) -> Walk {
        Walk { selection, root: Some(source.to_path_buf()), stack: Vec::new() }
    }

    /// Enters a directory just yielded: its names, sorted, become a frame.
    fn enter(&mut self, dir: &Path, relative: &[u8]) -> Option<WalkError> {
        let listing = match std::fs::read_dir(dir) {
            Ok(l) => l,
            Err(source) => return Some(WalkError { path: dir.to_path_buf(), source }),
        };
        let mut names = Vec::new();
        for item in listing {
            match item {
                Ok(e) => names.push(e.file_name()),
                Err(source) => return Some(WalkError { path: dir.to_path_buf(), source }),
            }
        }
        names.sort_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
        self.stack.push(Frame { dir: dir.to_path_buf(), relative: relative.to_vec(), names });
        None
    }

    /// The entry for `path`, entering it when it is a directory to walk.
    fn visit(&mut self, path: PathBuf, relative: Vec<u8>) -> Option<Result<Entry, WalkError>> {
        let meta = match path.symlink_metadata() {
            Ok(m) => m,
            // Gone between the listing and now: nothing to back up.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(source) => return Some(Err(WalkError { path, source })),
        };
        let is_dir = meta.is_dir();
        if self.selection.excluded_by_glob(&path, is_dir) {
            return None;
        }
        if is_dir && self.selection.has_markers() && self.selection.excluded_by_marker(&path) {
            return None;
        }
        if is_dir && let Some(e) = self.enter(&path, &relative) {
            return Some(Err(e));
        }
        Some(Ok(Entry { relative, path, meta }))
    }
}

impl Iterator for Walk {
    type Item = Result<Entry, WalkError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(root) = self.root.take() {
            return match root.symlink_metadata() {
                Ok(meta) if meta.is_dir() => match self.enter(&root, b"") {
                    Some(e) => Some(Err(e)),
                    None => Some(Ok(Entry { relative: Vec::new(), path: root, meta })),
                },
                Ok(_) => Some(Err(WalkError {
                    path: root,
                    source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "the source must be a directory"),
                })),
                Err(source) => Some(Err(WalkError { path: root, source })),
            };
        }
        loop {
            let frame = self.stack.last_mut()?;
            let Some(name) = frame.names.pop() else {
                self.stack.pop();
                continue;
            };
            let path = frame.dir.join(&name);
            let mut relative = frame.relative.clone();
            if !relative.is_empty() {
                relative.push(b'/');
            }
            relative.extend_from_slice(name.as_bytes());
            if let Some(item) = self.visit(path, relative) {
                return Some(item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    fn names(source: &Path, selection: Selection) -> Vec<String> {
        Walk::new(source, selection).map(|e| String::from_utf8_lossy(&e.unwrap().relative).into_owned()).collect()
    }

    #[test]
    fn duplicity_order_directory_before_contents_sorted_by_bytes() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for d in ["a", "a/b", "B", "a.b"] {
            std::fs::create_dir(r.join(d)).unwrap();
        }
        for f in ["a/b/z", "a/c", "a.b/x", "Z", "B/y", "a0"] {
            std::fs::write(r.join(f), b"x").unwrap();
        }
        std::os::unix::fs::symlink("/etc", r.join("link")).unwrap();
        assert_eq!(names(r, Selection::default()), ["", "B", "B/y", "Z", "a", "a/b", "a/b/z", "a/c", "a.b", "a.b/x", "a0", "link"]);
    }

    #[test]
    fn exclusions_leave_out_whole_subtrees() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for d in ["keep", "skip", "cache", "marked"] {
            std::fs::create_dir(r.join(d)).unwrap();
            std::fs::write(r.join(d).join("f"), b"x").unwrap();
        }
        std::fs::write(r.join("cache/CACHEDIR.TAG"), b"Signature: 8a477f597d28d172789f06886806bc55").unwrap();
        std::fs::write(r.join("marked/.nobackup"), b"").unwrap();
        let s = Selection::new(r, &["skip".into()], &[".nobackup".into()], true).unwrap();
        assert_eq!(names(r, s), ["", "keep", "keep/f"]);
    }

    #[test]
    fn names_that_are_not_utf8_are_kept_as_bytes() {
        let root = tempfile::tempdir().unwrap();
        let name = std::ffi::OsStr::from_bytes(b"caf\xe9\nnew");
        std::fs::write(root.path().join(name), b"x").unwrap();
        let entries: Vec<Vec<u8>> = Walk::new(root.path(), Selection::default()).map(|e| e.unwrap().relative).collect();
        assert_eq!(entries, [b"".to_vec(), b"caf\xe9\nnew".to_vec()]);
    }
}
