//! The exclusion rules of one backup run: `--exclude GLOB` (relative
//! patterns are taken from the source directory), `--exclude-if-present
//! NAME` (a directory holding NAME is left out whole), and
//! `--exclude-caches` (a directory holding a valid `CACHEDIR.TAG`).

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::glob::{Glob, GlobError};

/// The name and the first bytes of a cache directory tag
/// (<https://bford.info/cachedir/>).
pub const CACHEDIR_TAG: (&str, &[u8]) = ("CACHEDIR.TAG", b"Signature: 8a477f597d28d172789f06886806bc55");

/// What one run leaves out.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    globs: Vec<Glob>,
    if_present: Vec<String>,
    caches: bool,
}

impl Selection {
    /// The rules from the command line; `source` is the absolute source
    /// directory that relative patterns start from.
    pub fn new(source: &Path, excludes: &[String], if_present: &[String], caches: bool) -> Result<Selection, GlobError> {
        let globs = excludes
            .iter()
            .map(|pattern| {
                if pattern.starts_with('/') || pattern.starts_with("**") {
                    Glob::new(pattern.as_bytes())
                } else if pattern.is_empty() {
                    Glob::new(b"")
                } else {
                    let mut absolute = source.as_os_str().as_bytes().to_vec();
                    if absolute.last() != Some(&b'/') {
                        absolute.push(b'/');
                    }
                    absolute.extend_from_slice(pattern.as_bytes());
                    Glob::new(&absolute)
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Selection { globs, if_present: if_present.to_vec(), caches })
    }

    /// Whether a glob leaves `path` out (absolute).
    pub fn excluded_by_glob(&self, path: &Path, is_dir: bool) -> bool {
        let bytes = path.as_os_str().as_bytes();
        self.globs.iter().any(|g| g.matches(bytes, is_dir))
    }

    /// Whether the directory `dir` is left out whole because of a marker
    /// file in it. Reads at most the tag's first bytes.
    pub fn excluded_by_marker(&self, dir: &Path) -> bool {
        if self.if_present.iter().any(|name| dir.join(name).symlink_metadata().is_ok()) {
            return true;
        }
        self.caches && is_cache_tag(&dir.join(CACHEDIR_TAG.0))
    }

    /// Whether any marker rule is set (a walk then checks every directory).
    pub fn has_markers(&self) -> bool {
        self.caches || !self.if_present.is_empty()
    }
}

/// A regular file that starts with the tag's signature.
fn is_cache_tag(path: &Path) -> bool {
    let Ok(meta) = path.symlink_metadata() else { return false };
    if !meta.is_file() {
        return false;
    }
    let mut head = Vec::with_capacity(CACHEDIR_TAG.1.len());
    std::fs::File::open(path).and_then(|f| f.take(CACHEDIR_TAG.1.len() as u64).read_to_end(&mut head)).is_ok_and(|_| head == CACHEDIR_TAG.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_patterns_start_at_the_source() {
        let s = Selection::new(Path::new("/home/anna"), &["Downloads".into(), "**/.cache".into(), "/home/anna/tmp".into()], &[], false).unwrap();
        assert!(s.excluded_by_glob(Path::new("/home/anna/Downloads/x.iso"), false));
        assert!(s.excluded_by_glob(Path::new("/home/anna/src/.cache"), true));
        assert!(s.excluded_by_glob(Path::new("/home/anna/tmp"), true));
        assert!(!s.excluded_by_glob(Path::new("/home/anna/Documents"), true));
    }

    #[test]
    fn markers_leave_out_their_directory() {
        let root = tempfile::tempdir().unwrap();
        let (tagged, fake, marked, plain) = (root.path().join("t"), root.path().join("f"), root.path().join("m"), root.path().join("p"));
        for d in [&tagged, &fake, &marked, &plain] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(tagged.join("CACHEDIR.TAG"), b"Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n").unwrap();
        std::fs::write(fake.join("CACHEDIR.TAG"), b"not a tag").unwrap();
        std::fs::write(marked.join(".nobackup"), b"").unwrap();
        let s = Selection::new(root.path(), &[], &[".nobackup".into()], true).unwrap();
        assert!(s.excluded_by_marker(&tagged));
        assert!(!s.excluded_by_marker(&fake));
        assert!(s.excluded_by_marker(&marked));
        assert!(!s.excluded_by_marker(&plain));
        let without_caches = Selection::new(root.path(), &[], &[], false).unwrap();
        assert!(!without_caches.excluded_by_marker(&tagged));
    }
}
