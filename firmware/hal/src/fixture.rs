//! Fixture trees for tests: a text file that `scripts/capture-md-fixtures`
//! captured from a real kernel is unpacked into a directory laid out like
//! `/`, which [`SysRoot::at`](crate::SysRoot::at) then reads like the
//! running system. Symlinks keep their captured targets, so sysfs's links
//! (`/sys/class/block/vdb`, `md/dev-vdb/block`) resolve, or dangle where the
//! device was gone, exactly as they did in the guest.
//!
//! Format, one entry per header line (`#` lines are comments):
//! `file PATH N` followed by the file's N lines, each indented two spaces;
//! `link PATH -> TARGET`.

use std::path::{Path, PathBuf};

use crate::SysRoot;

/// The md trees in `firmware/hal/fixtures/md/`, in the order they were
/// captured (each step starts from the one before).
pub const MD_STATES: &[&str] = &[
    "resync",
    "clean",
    "clean-with-spare",
    "faulty-recovering-onto-spare",
    "faulty-member",
    "disk-pulled-idle",
    "degraded",
    "recovering",
    "inactive",
    "resync-delayed",
];

/// Unpacks the captured md tree `state` (one of [`MD_STATES`]) under `root`
/// and returns the [`SysRoot`] that reads it.
pub fn md_state(state: &str, root: &Path) -> Result<SysRoot, FixtureError> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/md").join(format!("{state}.tree"));
    let text = std::fs::read_to_string(&path).map_err(|source| FixtureError::Read { path, source })?;
    unpack(&text, root)?;
    Ok(SysRoot::at(root))
}

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("reading the fixture {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("fixture line {line}: {what}")]
    Format { line: usize, what: String },
    #[error("writing the fixture tree at {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Writes the tree that `text` describes under `root`.
pub fn unpack(text: &str, root: &Path) -> Result<(), FixtureError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l)).peekable();
    while let Some((n, line)) = lines.next() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| FixtureError::Format { line: n, what: format!("{what}: {line:?}") };
        let (path, body) = if let Some(rest) = line.strip_prefix("link ") {
            let (path, target) = rest.split_once(" -> ").ok_or_else(|| bad("a link needs `PATH -> TARGET`"))?;
            (path, Entry::Link(target))
        } else if let Some(rest) = line.strip_prefix("file ") {
            let (path, count) = rest.rsplit_once(' ').ok_or_else(|| bad("a file needs `PATH LINES`"))?;
            let count: usize = count.parse().map_err(|_| bad("the line count is not a number"))?;
            let mut content = String::new();
            for _ in 0..count {
                let (_, l) = lines.next().ok_or_else(|| bad("the file's lines end early"))?;
                content.push_str(l.strip_prefix("  ").ok_or_else(|| bad("file lines are indented two spaces"))?);
                content.push('\n');
            }
            (path, Entry::File(content))
        } else {
            return Err(bad("expected `file` or `link`"));
        };
        let rel = path.trim_start_matches('/');
        if rel.split('/').any(|part| part == "..") {
            return Err(bad("paths stay inside the tree"));
        }
        let dest = root.join(rel);
        // A link earlier in the fixture must not carry a later entry out of the tree.
        let mut ancestor = root.to_path_buf();
        for part in Path::new(rel).parent().into_iter().flat_map(Path::components) {
            ancestor.push(part);
            if ancestor.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(bad("paths do not pass through a link"));
            }
        }
        let write = |source| FixtureError::Write { path: dest.clone(), source };
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(write)?;
        }
        match body {
            Entry::File(content) => std::fs::write(&dest, content).map_err(write)?,
            Entry::Link(target) => std::os::unix::fs::symlink(target, &dest).map_err(write)?,
        }
    }
    Ok(())
}

enum Entry<'a> {
    File(String),
    Link(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_links_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let text = "# comment\nfile /sys/devices/x/block/vdb/size 1\n  131072\nfile /sys/devices/x/block/vdb/serial 0\nlink /sys/class/block/vdb -> ../../devices/x/block/vdb\n";
        unpack(text, dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("sys/class/block/vdb/size")).unwrap(), "131072\n");
        assert_eq!(std::fs::read_to_string(dir.path().join("sys/class/block/vdb/serial")).unwrap(), "");
    }

    #[test]
    fn malformed_fixtures_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        for (text, line) in [
            ("file /a 2\n  one\n", 1),
            ("\nlink /a\n", 2),
            ("file /a x\n", 1),
            ("file /a 1\nno indent\n", 1),
            ("link /../etc -> x\n", 1),
            ("link /a -> /etc\nfile /a/passwd 0\n", 2),
            ("mkdir /a\n", 1),
        ] {
            match unpack(text, dir.path()) {
                Err(FixtureError::Format { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }
}
