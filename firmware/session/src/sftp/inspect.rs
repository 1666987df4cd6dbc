//! Requests that look without changing anything: REALPATH, STAT, LSTAT,
//! FSTAT, READLINK, STATVFS and LIMITS; and file metadata as SFTP attributes.

use coffer_sftp_proto::{Attrs, Limits, MAX_IO, MAX_PACKET, NameEntry, Reply, StatVfs};
use coffer_storage::Meta;

use super::handles::MAX_HANDLES;
use super::reply::{err_reply, parse_path, tri};
use super::session::Session;
use crate::quota::QuotaUsage;

pub(super) fn realpath(id: u32, path: &[u8]) -> Reply {
    let p = tri!(parse_path(id, path));
    let name = p.display();
    Reply::Name { id, entries: vec![NameEntry { longname: name.clone(), filename: name, attrs: Attrs::default() }] }
}

pub(super) fn stat(s: &Session, id: u32, path: &[u8]) -> Reply {
    let p = tri!(parse_path(id, path));
    match s.jail.stat(&p) {
        Ok(m) => Reply::Attrs { id, attrs: attrs_of(&m) },
        Err(e) => err_reply(id, &e),
    }
}

pub(super) fn lstat(s: &Session, id: u32, path: &[u8]) -> Reply {
    let p = tri!(parse_path(id, path));
    match s.jail.lstat(&p) {
        Ok(m) => Reply::Attrs { id, attrs: attrs_of(&m) },
        Err(e) => err_reply(id, &e),
    }
}

pub(super) fn fstat(s: &Session, id: u32, handle: &[u8]) -> Reply {
    let h = tri!(s.handles.get(id, handle));
    let meta = match h.file() {
        Some(f) => f.with(|f| f.metadata()).map(|m| meta_from_std(&m)),
        None => s.jail.stat(&h.path),
    };
    match meta {
        Ok(m) => Reply::Attrs { id, attrs: attrs_of(&m) },
        Err(e) => err_reply(id, &e),
    }
}

pub(super) fn readlink(s: &Session, id: u32, path: &[u8]) -> Reply {
    let p = tri!(parse_path(id, path));
    match s.jail.readlink(&p) {
        Ok(target) => Reply::Name {
            id,
            entries: vec![NameEntry { longname: target.clone(), filename: target, attrs: Attrs::default() }],
        },
        Err(e) => err_reply(id, &e),
    }
}

/// STATVFS and FSTATVFS: the user's area, whichever path or handle is named.
pub(super) fn statvfs(s: &Session, id: u32) -> Reply {
    match s.jail.statvfs() {
        Ok(v) => Reply::StatVfs { id, vfs: limited_by_quota(&v, s.quota.usage()) },
        Err(e) => err_reply(id, &e),
    }
}

pub(super) fn limits(id: u32) -> Reply {
    Reply::Limits {
        id,
        limits: Limits {
            max_packet: u64::from(MAX_PACKET),
            max_read: u64::from(MAX_IO),
            max_write: u64::from(MAX_IO),
            max_open_handles: MAX_HANDLES as u64,
        },
    }
}

/// statvfs: the file system's numbers, limited by the user's quota.
fn limited_by_quota(v: &rustix::fs::StatVfs, quota: Option<QuotaUsage>) -> StatVfs {
    let mut out = StatVfs {
        bsize: v.f_bsize,
        frsize: v.f_frsize,
        blocks: v.f_blocks,
        bfree: v.f_bfree,
        bavail: v.f_bavail,
        files: v.f_files,
        ffree: v.f_ffree,
        favail: v.f_favail,
        fsid: v.f_fsid,
        flag: v.f_flag.bits(),
        namemax: v.f_namemax,
    };
    if let Some(q) = quota {
        let frsize = out.frsize.max(1);
        if let Some(limit) = q.limit_bytes {
            let free_blocks = limit.saturating_sub(q.used_bytes) / frsize;
            out.blocks = limit / frsize;
            out.bfree = out.bfree.min(free_blocks);
            out.bavail = out.bavail.min(free_blocks);
        }
        if let Some(limit) = q.limit_files {
            let free = limit.saturating_sub(q.used_files);
            out.files = limit;
            out.ffree = out.ffree.min(free);
            out.favail = out.favail.min(free);
        }
    }
    out
}

pub(super) fn attrs_of(meta: &Meta) -> Attrs {
    Attrs {
        size: Some(meta.size),
        uid_gid: Some((meta.uid, meta.gid)),
        permissions: Some(meta.mode),
        times: Some((clamp_time(meta.atime), clamp_time(meta.mtime))),
    }
}

fn clamp_time(t: i64) -> u32 {
    u32::try_from(t.max(0)).unwrap_or(u32::MAX)
}

/// The metadata of an open file, as the jail reports a path's.
pub(super) fn meta_from_std(m: &std::fs::Metadata) -> Meta {
    use std::os::unix::fs::MetadataExt;
    Meta {
        mode: m.mode(),
        size: m.size(),
        uid: m.uid(),
        gid: m.gid(),
        nlink: m.nlink(),
        atime: m.atime(),
        mtime: m.mtime(),
        ctime: m.ctime(),
        inode: (m.dev(), m.ino()),
    }
}
