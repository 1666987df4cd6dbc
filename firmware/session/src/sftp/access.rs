//! What the key's profile lets a session do to files that already exist.
//! An append-only key may change or delete only what this session created
//! (and restic's lock files, and Duplicity's unfinished volumes).

use coffer_storage::JailPath;

use super::session::Session;
use crate::profile::{Profile, is_incomplete_duplicity_file, is_restic_lock};

/// May this key change (overwrite, truncate, chmod) the existing file `p`?
/// For append-only keys `p` itself must be a regular file (not a symlink
/// that would lead the change to some other, older file).
pub(super) fn may_change_existing(s: &Session, p: &JailPath) -> bool {
    match s.profile {
        Profile::Full => true,
        Profile::ReadOnly => false,
        Profile::AppendOnly => {
            // One link only: a second name would let a change reach an older file.
            s.jail.lstat(p).is_ok_and(|m| m.is_dir() || (m.is_file() && m.nlink == 1))
                && (s.created_here(p) || is_incomplete_duplicity_file(&s.jail, p))
        }
    }
}

/// Append-only deletes: files this session created, and restic lock files.
pub(super) fn may_delete_append_only(s: &Session, p: &JailPath) -> bool {
    s.created_here(p) || (is_restic_lock(p) && s.jail.lstat(p).is_ok_and(|m| m.is_file()))
}
