//! What one tar entry of a duplicity archive says: which path (an [`Index`],
//! ordered the way duplicity walks a tree), what kind of entry (snapshot,
//! diff, deleted, signature, and the 64 KiB pieces of a multivolume file),
//! and the file's metadata. Also the mapping between these and tar names
//! (`snapshot/./`, `multivol_diff/a/b/3`, `signature/x`), both ways.

use std::cmp::Ordering;
use std::fmt;

use crate::error::{ReadError, WriteError};

/// A path relative to the backup root, as bytes: the components joined by
/// `/`, empty for the root itself. Names are bytes (any byte but `/` and
/// NUL in a component), so invalid UTF-8 and newlines survive untouched.
///
/// Ordered as duplicity orders its indexes (tuples of components): depth
/// first, each directory's entries bytewise, so `a/b` < `a.b` < `a0`.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Index(Vec<u8>);

impl Index {
    /// The backup root (`.` in manifests, `snapshot/./` in volumes).
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// The index of a relative path given as bytes (`a/b`); `.` and the
    /// empty string are the root. A trailing `/` is dropped.
    pub fn from_bytes(path: &[u8]) -> Self {
        let path = path.strip_suffix(b"/").unwrap_or(path);
        if path == b"." { Self::root() } else { Self(path.to_vec()) }
    }

    /// The index made of these components.
    pub fn from_components<I, C>(components: I) -> Self
    where
        I: IntoIterator<Item = C>,
        C: AsRef<[u8]>,
    {
        let mut path = Vec::new();
        for (n, c) in components.into_iter().enumerate() {
            if n > 0 {
                path.push(b'/');
            }
            path.extend_from_slice(c.as_ref());
        }
        Self(path)
    }

    /// The relative path's bytes, empty for the root.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// True for the backup root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The components, none for the root.
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        let empty = self.0.is_empty();
        self.0.split(|b| *b == b'/').filter(move |_| !empty)
    }

    /// True if `prefix`'s components start this index's components
    /// (the root is a prefix of everything).
    pub fn starts_with(&self, prefix: &Index) -> bool {
        let mut mine = self.components();
        prefix.components().all(|c| mine.next() == Some(c))
    }
}

impl Ord for Index {
    fn cmp(&self, other: &Self) -> Ordering {
        self.components().cmp(other.components())
    }
}

impl PartialOrd for Index {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() { f.write_str("\".\"") } else { write!(f, "\"{}\"", self.0.escape_ascii()) }
    }
}

/// What an entry stands for, by the prefix of its tar name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `snapshot/`: the whole file (or a directory, symlink, FIFO, device).
    Snapshot,
    /// `diff/`: a librsync delta against the previous signature.
    Diff,
    /// `deleted/`: the path no longer exists.
    Deleted,
    /// `signature/` (sigtars only): the file's librsync signature.
    Signature,
}

impl Kind {
    /// The tar name prefix without its slash (`snapshot`), also the kind's
    /// name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Snapshot => "snapshot",
            Kind::Diff => "diff",
            Kind::Deleted => "deleted",
            Kind::Signature => "signature",
        }
    }

    fn prefix(self) -> &'static [u8] {
        self.name().as_bytes()
    }
}

/// A parsed tar name: kind, path and, for a piece of a multivolume file
/// (`multivol_snapshot/PATH/N`, `multivol_diff/PATH/N`), the piece number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryName {
    pub kind: Kind,
    pub index: Index,
    /// `Some(n)` (n ≥ 1 when duplicity wrote it) for a multivolume piece.
    pub piece: Option<u64>,
}

/// Where a name is written: volumes call the root `./`, sigtars call it ``.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    Volume,
    SigTar,
}

impl EntryName {
    /// Parses a tar name the way duplicity's restore (`get_index_from_tarinfo`)
    /// and sigtar reader (`sigtar2path_iter`) do; `is_dir` is the entry's
    /// type, because duplicity sees directory names with one trailing `/`.
    /// A `..` component is refused, as duplicity refuses it.
    pub fn parse(name: &[u8], is_dir: bool) -> Result<Self, ReadError> {
        let mut owned;
        let mut name = name;
        if is_dir {
            // Python's tarfile strips every trailing slash of a directory,
            // duplicity adds one back.
            while let Some(rest) = name.strip_suffix(b"/") {
                name = rest;
            }
            owned = name.to_vec();
            owned.push(b'/');
            name = &owned;
        }
        let unrecognized = || ReadError::UnrecognizedName { name: name.escape_ascii().to_string() };
        let (kind, piece, rest): (Kind, Option<u64>, &[u8]) = if let Some(rest) = name.strip_prefix(b"multivol_") {
            let (kind, rest) = if let Some(r) = rest.strip_prefix(b"diff") {
                (Kind::Diff, r)
            } else if let Some(r) = rest.strip_prefix(b"snapshot") {
                (Kind::Snapshot, r)
            } else {
                return Err(unrecognized());
            };
            let rest = rest.strip_prefix(b"/").ok_or_else(unrecognized)?;
            let rest = rest.strip_prefix(b"/").unwrap_or(rest);
            let slash = rest.iter().rposition(|b| *b == b'/').ok_or_else(unrecognized)?;
            let digits = &rest[slash + 1..];
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err(unrecognized());
            }
            let piece = std::str::from_utf8(digits).ok().and_then(|d| d.parse().ok()).ok_or_else(unrecognized)?;
            (kind, Some(piece), &rest[..slash])
        } else {
            let mut found = None;
            for kind in [Kind::Snapshot, Kind::Diff, Kind::Deleted, Kind::Signature] {
                if let Some(r) = name.strip_prefix(kind.prefix()).and_then(|r| r.strip_prefix(b"/")) {
                    found = Some((kind, r.strip_suffix(b"/").unwrap_or(r)));
                    break;
                }
            }
            let (kind, rest) = found.ok_or_else(unrecognized)?;
            (kind, None, rest)
        };
        let index = if rest == b"." || rest.is_empty() { Index::root() } else { Index(rest.to_vec()) };
        if index.components().any(|c| c == b"..") {
            return Err(ReadError::DotDot { name: name.escape_ascii().to_string() });
        }
        Ok(Self { kind, index, piece })
    }

    /// The tar name duplicity writes for this entry; `is_dir` adds the
    /// trailing `/` Python's tarfile gives directories.
    pub(crate) fn tar_name(&self, is_dir: bool, flavor: Flavor) -> Result<Vec<u8>, WriteError> {
        let path = self.index.as_bytes();
        let mut name = Vec::with_capacity(path.len() + 24);
        match (flavor, self.kind, self.piece) {
            (Flavor::Volume, Kind::Signature, _) | (Flavor::SigTar, Kind::Diff, _) => {
                return Err(WriteError::WrongKind { kind: self.kind.name(), place: flavor.describe() });
            }
            (Flavor::SigTar, _, Some(_)) | (_, Kind::Deleted, Some(_)) => {
                return Err(WriteError::WrongKind { kind: self.kind.name(), place: "a multivolume piece" });
            }
            (Flavor::Volume, kind, Some(piece)) => {
                name.extend_from_slice(b"multivol_");
                name.extend_from_slice(kind.prefix());
                name.push(b'/');
                name.extend_from_slice(path);
                name.push(b'/');
                name.extend_from_slice(piece.to_string().as_bytes());
                return Ok(name);
            }
            (Flavor::Volume, kind, None) => {
                name.extend_from_slice(kind.prefix());
                name.push(b'/');
                // duplicity names the root `.`; `add_prefix` turns a bare
                // `.` into `prefix/` but leaves the directory's `./` as is.
                if path.is_empty() {
                    if is_dir {
                        name.extend_from_slice(b"./");
                    }
                    return Ok(name);
                }
                name.extend_from_slice(path);
            }
            (Flavor::SigTar, kind, None) => {
                name.extend_from_slice(kind.prefix());
                name.push(b'/');
                name.extend_from_slice(path);
            }
        }
        if is_dir && !name.ends_with(b"/") {
            name.push(b'/');
        }
        Ok(name)
    }
}

impl Flavor {
    fn describe(self) -> &'static str {
        match self {
            Flavor::Volume => "a volume",
            Flavor::SigTar => "a sigtar",
        }
    }
}

/// The PAX key Coffer's writer adds to the second and later paths of a
/// hard-link group: its value is the [`Index`] bytes of the group's first
/// path in walk order. The entry still carries the whole file, so stock
/// duplicity (which ignores unknown keys) restores a separate copy, while
/// Coffer's restore links it to the first path instead.
pub const HARDLINK_PAX_KEY: &[u8] = b"COFFER.hardlink";

/// The type of a file, with what the tar header carries for it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    Regular,
    Directory,
    /// The link's target, as bytes.
    Symlink(Vec<u8>),
    Fifo,
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
}

/// The metadata duplicity stores for a path. Sub-second times, atime,
/// ctime, xattrs and ACLs are not stored.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Meta {
    pub file_type: FileType,
    /// Permission bits (`& 0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Owner and group names (empty when the id has no name).
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    /// Whole seconds; duplicity stores a negative mtime as 0.
    pub mtime: u64,
    /// PAX keys duplicity neither writes nor reads (ignored by stock
    /// duplicity and GNU tar), e.g. Coffer's hard-link groups; written before
    /// the standard keys, as Python's `TarInfo.pax_headers` would be.
    pub extra_pax: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Meta {
    /// What duplicity writes for a `deleted/` entry: a regular file with
    /// mode 0, owner 0, no names, mtime 0.
    pub fn deleted() -> Self {
        Self {
            file_type: FileType::Regular,
            mode: 0,
            uid: 0,
            gid: 0,
            uname: Vec::new(),
            gname: Vec::new(),
            mtime: 0,
            extra_pax: Vec::new(),
        }
    }

    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.file_type == FileType::Directory
    }
}

/// One entry as the caller hands it to a writer: the kind, the path and the
/// metadata (for `Deleted`, use [`Meta::deleted`]). The size comes from the
/// data stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub index: Index,
    pub meta: Meta,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_sort_by_components_not_by_string() {
        let mut v: Vec<Index> = ["a.txt", "a/b", "a", "", "a0", "b", "a/b/c", "a b"]
            .iter()
            .map(|s| Index::from_bytes(s.as_bytes()))
            .collect();
        v.sort();
        let shown: Vec<&[u8]> = v.iter().map(Index::as_bytes).collect();
        assert_eq!(
            shown,
            [&b""[..], b"a", b"a/b", b"a/b/c", b"a b", b"a.txt", b"a0", b"b"],
            "root first, then depth first with bytewise siblings"
        );
    }

    #[test]
    fn names_parse_as_duplicity_parses_them() {
        type Row = (&'static [u8], bool, Kind, &'static [u8], Option<u64>);
        let table: &[Row] = &[
            (b"snapshot/./", true, Kind::Snapshot, b"", None),
            (b"snapshot/", true, Kind::Snapshot, b"", None),
            (b"snapshot/a/b/", true, Kind::Snapshot, b"a/b", None),
            (b"snapshot/a//", true, Kind::Snapshot, b"a", None),
            (b"snapshot/a", false, Kind::Snapshot, b"a", None),
            (b"diff/x\ny", false, Kind::Diff, b"x\ny", None),
            (b"deleted/d", false, Kind::Deleted, b"d", None),
            (b"signature/s\xff", false, Kind::Signature, b"s\xff", None),
            (b"multivol_snapshot/a/big/12", false, Kind::Snapshot, b"a/big", Some(12)),
            (b"multivol_diff/7/1", false, Kind::Diff, b"7", Some(1)),
        ];
        for (name, dir, kind, path, piece) in table {
            let parsed = EntryName::parse(name, *dir).unwrap();
            assert_eq!(parsed, EntryName { kind: *kind, index: Index(path.to_vec()), piece: *piece }, "{name:?}");
        }
    }

    #[test]
    fn bad_names_are_refused() {
        for name in [&b"other/x"[..], b"multivol_snapshot/x", b"multivol_snapshot/x/", b"multivol_x/a/1", b"snapshotx"]
        {
            assert!(matches!(EntryName::parse(name, false), Err(ReadError::UnrecognizedName { .. })), "{name:?}");
        }
        assert!(matches!(EntryName::parse(b"snapshot/a/../b", false), Err(ReadError::DotDot { .. })));
        assert!(matches!(EntryName::parse(b"multivol_diff/../1", false), Err(ReadError::DotDot { .. })));
    }

    #[test]
    fn names_are_written_as_duplicity_writes_them() {
        let n = |kind, path: &[u8], piece| EntryName { kind, index: Index::from_bytes(path), piece };
        let v = Flavor::Volume;
        let s = Flavor::SigTar;
        let table: &[(EntryName, bool, Flavor, &[u8])] = &[
            (n(Kind::Snapshot, b"", None), true, v, b"snapshot/./"),
            (n(Kind::Snapshot, b"", None), true, s, b"snapshot/"),
            (n(Kind::Snapshot, b"d", None), true, v, b"snapshot/d/"),
            (n(Kind::Snapshot, b"d", None), true, s, b"snapshot/d/"),
            (n(Kind::Deleted, b"d", None), false, v, b"deleted/d"),
            (n(Kind::Signature, b"f", None), false, s, b"signature/f"),
            (n(Kind::Diff, b"a/f", Some(3)), false, v, b"multivol_diff/a/f/3"),
        ];
        for (name, dir, flavor, want) in table {
            assert_eq!(name.tar_name(*dir, *flavor).unwrap(), *want, "{name:?}");
        }
        assert!(n(Kind::Signature, b"f", None).tar_name(false, v).is_err());
        assert!(n(Kind::Diff, b"f", None).tar_name(false, s).is_err());
    }
}
