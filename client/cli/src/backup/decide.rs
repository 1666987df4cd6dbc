//! What a path's entry in an incremental is, decided as duplicity decides
//! it (`get_delta_iter`, `ROPath.__eq__`): unchanged when type, permission
//! bits, owner and whole-second mtime match (a link: its target; a device:
//! its numbers), never by size; otherwise a librsync delta when both the new
//! and the previous version are regular files with a signature, else the
//! whole thing again.

use coffer_archive::{FileType, Kind, Meta};

/// What the previous sets say about a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Previous {
    /// `Signature` (a regular file), `Snapshot` (anything else) or `Deleted`.
    pub kind: Kind,
    pub meta: Meta,
}

/// What this run writes for a path that exists now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Unchanged,
    /// The whole file (or directory, link, …): new, or no signature to diff against.
    Snapshot,
    /// A delta against the previous version's signature.
    Diff,
}

/// The decision for a path that exists now, given its previous record.
pub(super) fn decide(now: &Meta, previous: Option<&Previous>) -> Action {
    let Some(previous) = previous.filter(|p| p.kind != Kind::Deleted) else { return Action::Snapshot };
    if same(now, &previous.meta) {
        return Action::Unchanged;
    }
    if now.file_type == FileType::Regular && previous.kind == Kind::Signature && previous.meta.file_type == FileType::Regular {
        Action::Diff
    } else {
        Action::Snapshot
    }
}

fn same(a: &Meta, b: &Meta) -> bool {
    let perms = a.mode == b.mode && a.uid == b.uid && a.gid == b.gid;
    match (&a.file_type, &b.file_type) {
        (FileType::Regular, FileType::Regular) | (FileType::Directory, FileType::Directory) | (FileType::Fifo, FileType::Fifo) => {
            perms && a.mtime == b.mtime
        }
        (FileType::Symlink(x), FileType::Symlink(y)) => x == y,
        (FileType::CharDevice { major: a1, minor: a2 }, FileType::CharDevice { major: b1, minor: b2 })
        | (FileType::BlockDevice { major: a1, minor: a2 }, FileType::BlockDevice { major: b1, minor: b2 }) => perms && (a1, a2) == (b1, b2),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(file_type: FileType, mode: u32, mtime: u64) -> Meta {
        Meta { file_type, mode, uid: 1000, gid: 1000, uname: b"anna".to_vec(), gname: b"anna".to_vec(), mtime, extra_pax: Vec::new() }
    }

    fn prev(kind: Kind, m: Meta) -> Option<Previous> {
        Some(Previous { kind, meta: m })
    }

    #[test]
    fn decisions() {
        let reg = |mode, mtime| meta(FileType::Regular, mode, mtime);
        let link = |t: &str| meta(FileType::Symlink(t.as_bytes().to_vec()), 0o777, 5);
        let mut other_owner = reg(0o644, 10);
        other_owner.uid = 0;
        let mut renamed_owner = reg(0o644, 10);
        renamed_owner.uname = b"someone".to_vec();
        let table: Vec<(Meta, Option<Previous>, Action)> = vec![
            (reg(0o644, 10), None, Action::Snapshot),
            (reg(0o644, 10), prev(Kind::Deleted, Meta::deleted()), Action::Snapshot),
            (reg(0o644, 10), prev(Kind::Signature, reg(0o644, 10)), Action::Unchanged),
            // Names are not compared, only numbers.
            (renamed_owner, prev(Kind::Signature, reg(0o644, 10)), Action::Unchanged),
            (reg(0o644, 11), prev(Kind::Signature, reg(0o644, 10)), Action::Diff),
            (reg(0o600, 10), prev(Kind::Signature, reg(0o644, 10)), Action::Diff),
            (other_owner, prev(Kind::Signature, reg(0o644, 10)), Action::Diff),
            (reg(0o644, 10), prev(Kind::Snapshot, meta(FileType::Directory, 0o755, 10)), Action::Snapshot),
            (meta(FileType::Directory, 0o755, 10), prev(Kind::Signature, reg(0o755, 10)), Action::Snapshot),
            (meta(FileType::Directory, 0o755, 10), prev(Kind::Snapshot, meta(FileType::Directory, 0o755, 10)), Action::Unchanged),
            (link("a"), prev(Kind::Snapshot, link("a")), Action::Unchanged),
            (link("b"), prev(Kind::Snapshot, link("a")), Action::Snapshot),
            (
                meta(FileType::CharDevice { major: 1, minor: 3 }, 0o666, 1),
                prev(Kind::Snapshot, meta(FileType::CharDevice { major: 1, minor: 5 }, 0o666, 1)),
                Action::Snapshot,
            ),
        ];
        for (i, (now, previous, expected)) in table.iter().enumerate() {
            assert_eq!(decide(now, previous.as_ref()), *expected, "case {i}");
        }
    }
}
