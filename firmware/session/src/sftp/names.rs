//! The names in the user's area: REMOVE, MKDIR, RMDIR, RENAME (and
//! posix-rename), hard links and symlinks, under the key's profile and the
//! user's quota (a removed or replaced file frees what it took).

use coffer_sftp_proto::{Attrs, Reply};
use coffer_storage::NEW_DIR_BYTES;

use super::access::may_delete_append_only;
use super::reply::{err_reply, io_reply, parse_path, quota_reply, tri};
use super::session::Session;
use crate::profile::Profile;

pub(super) fn remove(s: &Session, id: u32, path: &[u8]) -> Reply {
    let p = tri!(parse_path(id, path));
    match s.profile {
        Profile::ReadOnly => return s.deny(id, "deleting files"),
        Profile::AppendOnly if !may_delete_append_only(s, &p) => {
            return s.deny(id, "deleting files");
        }
        _ => {}
    }
    let before = s.jail.lstat(&p);
    match s.jail.remove_file(&p) {
        Ok(()) => {
            if let Ok(m) = before {
                s.quota.free(if m.nlink <= 1 { m.size } else { 0 }, u64::from(m.nlink <= 1));
                s.created.forget(m.inode);
            }
            Reply::ok(id)
        }
        Err(e) => err_reply(id, &e),
    }
}

pub(super) fn mkdir(s: &Session, id: u32, path: &[u8], attrs: &Attrs) -> Reply {
    let p = tri!(parse_path(id, path));
    if s.profile == Profile::ReadOnly {
        return s.deny(id, "creating directories");
    }
    if let Err(q) = s.quota.charge(NEW_DIR_BYTES, 1) {
        return quota_reply(id, &q);
    }
    match s.jail.mkdir(&p, attrs.permissions.unwrap_or(0o777)) {
        Ok(()) => {
            s.mark_created(s.jail.identity(&p));
            // A directory is complete at once: usage now, not held credit.
            s.quota.settle();
            Reply::ok(id)
        }
        Err(e) => {
            s.quota.free(NEW_DIR_BYTES, 1);
            err_reply(id, &e)
        }
    }
}

pub(super) fn rmdir(s: &Session, id: u32, path: &[u8]) -> Reply {
    let p = tri!(parse_path(id, path));
    if s.profile != Profile::Full && !(s.profile == Profile::AppendOnly && s.created_here(&p)) {
        return s.deny(id, "deleting directories");
    }
    let before = s.jail.lstat(&p);
    match s.jail.rmdir(&p) {
        Ok(()) => {
            s.quota.free(before.as_ref().map_or(0, |m| m.size), 1);
            if let Ok(m) = before {
                s.created.forget(m.inode);
            }
            Reply::ok(id)
        }
        Err(e) => err_reply(id, &e),
    }
}

/// RENAME and posix-rename (`replace`), with the append-only rule and
/// quota for a replaced target.
pub(super) fn rename(s: &Session, id: u32, from: &[u8], to: &[u8], replace: bool) -> Reply {
    let (from, to) = (tri!(parse_path(id, from)), tri!(parse_path(id, to)));
    let target = s.jail.lstat(&to).ok();
    match s.profile {
        Profile::ReadOnly => return s.deny(id, "renaming files"),
        Profile::AppendOnly if !s.created_here(&from) || target.is_some() => {
            return s.deny(id, "renaming existing files or replacing files");
        }
        _ => {}
    }
    // Append-only renames never replace, even a target that appears meanwhile.
    let replace = replace && s.profile == Profile::Full;
    match s.jail.rename(&from, &to, replace) {
        Ok(()) => {
            if let Some(m) = target.filter(|m| !m.is_dir()) {
                s.quota.free(if m.nlink <= 1 { m.size } else { 0 }, u64::from(m.nlink <= 1));
            }
            Reply::ok(id)
        }
        Err(e) => err_reply(id, &e),
    }
}

pub(super) fn hardlink(s: &Session, id: u32, from: &[u8], to: &[u8]) -> Reply {
    let (from, to) = (tri!(parse_path(id, from)), tri!(parse_path(id, to)));
    // A second name for an old file would let later changes reach it.
    if s.profile != Profile::Full {
        return s.deny(id, "creating hard links");
    }
    io_reply(id, s.jail.hardlink(&from, &to))
}

pub(super) fn symlink(s: &Session, id: u32, target: &[u8], link: &[u8]) -> Reply {
    let l = tri!(parse_path(id, link));
    if s.profile == Profile::ReadOnly {
        return s.deny(id, "creating links");
    }
    let len = target.len() as u64;
    if let Err(q) = s.quota.charge(len, 1) {
        return quota_reply(id, &q);
    }
    // A link is not marked as created here: writing through it would
    // reach the (older) file it points to.
    match s.jail.symlink(target, &l) {
        Ok(()) => {
            s.quota.settle();
            Reply::ok(id)
        }
        Err(e) => {
            s.quota.free(len, 1);
            err_reply(id, &e)
        }
    }
}
