//! A file's contents: OPEN, WRITE, CLOSE (an upload's commit), FSYNC,
//! SETSTAT and FSETSTAT, under the key's profile and the user's quota.
//!
//! A new or truncated file is written under a hidden temporary name and
//! appears under its own only when CLOSE commits it; growth is charged to
//! the quota before the bytes are written, and a refused upload is
//! discarded.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use coffer_sftp_proto::{Attrs, OpenFlags, Reply, StatusCode};
use coffer_storage::{JailPath, Upload};

use super::access::may_change_existing;
use super::handles::{Handle, HandleKind};
use super::inspect::meta_from_std;
use super::reply::{err_reply, io_reply, parse_path, quota_reply, tri};
use super::session::Session;
use crate::profile::Profile;
use crate::quota::QuotaExceeded;

pub(super) fn open(s: &Session, id: u32, path: &[u8], flags: OpenFlags, attrs: &Attrs) -> Reply {
    let p = tri!(parse_path(id, path));
    // Before anything is opened or charged: a refused OPEN leaves nothing behind.
    tri!(s.handles.room(&s.user, id, &p));
    let mode = attrs.permissions.map_or(0o666, |m| m & 0o777);
    let writes = [OpenFlags::WRITE, OpenFlags::APPEND, OpenFlags::CREAT, OpenFlags::TRUNC];
    if writes.iter().any(|&f| flags.has(f)) && s.profile == Profile::ReadOnly {
        return s.deny(id, "writing files");
    }
    if !writes.iter().any(|&f| flags.has(f)) {
        return match s.jail.open_read(&p) {
            Ok(f) => s.handles.insert(&s.user, id, p, HandleKind::Read(f), 0),
            Err(e) => err_reply(id, &e),
        };
    }
    let exists = match s.jail.stat(&p) {
        Ok(m) if m.is_dir() => return Reply::status(id, StatusCode::Failure, "Is a directory"),
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return err_reply(id, &e),
    };
    if exists && flags.has(OpenFlags::EXCL) && flags.has(OpenFlags::CREAT) {
        return Reply::status(id, StatusCode::Failure, "File exists");
    }
    if !exists && !flags.has(OpenFlags::CREAT) {
        return Reply::status(id, StatusCode::NoSuchFile, "No such file");
    }
    if exists && !may_change_existing(s, &p) {
        return s.deny(id, "overwriting or changing an existing file");
    }
    if exists && !flags.has(OpenFlags::TRUNC) {
        // Append (sftp reput) or a write without truncation (scp): the client
        // asks to change the existing file, so it is changed in place.
        return match s.jail.open_write_in_place(&p, flags.has(OpenFlags::APPEND), flags.has(OpenFlags::READ)) {
            Ok(f) => {
                let size = f.metadata().map(|m| m.len()).unwrap_or(0);
                s.handles.insert(&s.user, id, p, HandleKind::InPlace(f), size)
            }
            Err(e) => err_reply(id, &e),
        };
    }
    // The temporary file is a new inode until it replaces the old one.
    if let Err(q) = s.quota.charge(0, 1) {
        return quota_reply(id, &q);
    }
    // An append-only key never replaces a file that appears meanwhile.
    let no_replace = flags.has(OpenFlags::EXCL) || (s.profile == Profile::AppendOnly && !exists);
    match s.jail.create_upload(&p, mode, no_replace) {
        Ok(up) => s.handles.insert(&s.user, id, p, HandleKind::Upload(Mutex::new(Some(up))), 0),
        Err(e) => {
            s.quota.free(0, 1);
            err_reply(id, &e)
        }
    }
}

/// WRITE: charge the growth, then write; a refused upload is discarded.
pub(super) fn write(s: &Session, id: u32, handle: &[u8], offset: u64, data: &[u8]) -> Reply {
    let h = tri!(s.handles.get(id, handle));
    if let Some(msg) = h.refused.get() {
        return Reply::status(id, StatusCode::Failure, msg.clone());
    }
    let Some(file) = h.file() else { return Reply::status(id, StatusCode::Failure, "handle is a directory") };
    if matches!(h.kind, HandleKind::Read(_)) {
        return Reply::status(id, StatusCode::PermissionDenied, "file was opened read-only");
    }
    // The file's real size: another handle or a SETSTAT may have changed it.
    let size = match file.with(|f| f.metadata()) {
        Ok(m) => m.len(),
        Err(e) => return err_reply(id, &e),
    };
    h.size.store(size, Ordering::Relaxed);
    let append = matches!(&h.kind, HandleKind::InPlace(f) if is_append(f));
    let end = if append { size + data.len() as u64 } else { offset.saturating_add(data.len() as u64) };
    let growth = end.saturating_sub(size);
    if growth > 0
        && let Err(q) = s.quota.charge(growth, 0)
    {
        let msg = q.to_string();
        log::warn!("{msg} (upload of {})", String::from_utf8_lossy(&h.path.display()));
        if let HandleKind::Upload(u) = &h.kind {
            // The partial upload is removed and never appears under its name.
            if u.lock().ok().and_then(|mut g| g.take()).is_some() {
                s.quota.free(size, 1);
            }
            let _ = h.refused.set(msg.clone());
        }
        return Reply::status(id, StatusCode::Failure, msg);
    }
    // For an O_APPEND file the kernel ignores the offset, which is what APPEND asks for.
    match file.with(|f| f.write_all_at(data, offset)) {
        Ok(()) => {
            h.size.fetch_max(end, Ordering::Relaxed);
            Reply::ok(id)
        }
        Err(e) => {
            s.quota.free(growth, 0);
            err_reply(id, &e)
        }
    }
}

fn is_append(f: &File) -> bool {
    rustix::fs::fcntl_getfl(f).is_ok_and(|fl| fl.contains(rustix::fs::OFlags::APPEND))
}

/// CLOSE, then settle: what the file took becomes usage and unused credit
/// goes back, since an open session must not hold the user's room.
pub(super) fn close(s: &Session, id: u32, handle: &[u8]) -> Reply {
    let reply = close_handle(s, id, handle);
    s.quota.settle();
    reply
}

/// Closes a handle; an upload is committed under its name (and replaces
/// what was there) only now.
fn close_handle(s: &Session, id: u32, handle: &[u8]) -> Reply {
    let Some(h) = s.handles.remove(handle) else { return Reply::status(id, StatusCode::Failure, "invalid handle") };
    if let Some(msg) = h.refused.get() {
        return Reply::status(id, StatusCode::Failure, msg.clone());
    }
    match &h.kind {
        HandleKind::Upload(u) => {
            let up = u.lock().ok().and_then(|mut g| g.take());
            let identity = up.as_ref().map(Upload::identity);
            match up.map(Upload::commit) {
                Some(Ok(replaced)) => {
                    if let Some(m) = replaced.filter(|m| !m.is_dir()) {
                        s.quota.free(if m.nlink <= 1 { m.size } else { 0 }, u64::from(m.nlink <= 1));
                        s.created.forget(m.inode);
                    }
                    if let Some(identity) = identity {
                        s.mark_created(identity);
                    }
                    Reply::ok(id)
                }
                None => Reply::ok(id),
                Some(Err(e)) => {
                    s.quota.free(h.size.load(Ordering::Relaxed), 1);
                    log::warn!("user {}: could not complete upload of {}: {e}", s.user, String::from_utf8_lossy(&h.path.display()));
                    err_reply(id, &e)
                }
            }
        }
        HandleKind::InPlace(f) => match f.sync_data() {
            Ok(()) => Reply::ok(id),
            Err(e) => err_reply(id, &e),
        },
        HandleKind::Read(_) | HandleKind::Dir(_) => Reply::ok(id),
    }
}

/// Drops every handle the client never closed, which discards unfinished
/// uploads and frees what they were charged. Returns how many there were.
pub(super) fn discard_unclosed(s: &Session) -> usize {
    let leftover = s.handles.drain();
    for h in &leftover {
        if let HandleKind::Upload(u) = &h.kind
            && u.lock().is_ok_and(|g| g.is_some())
        {
            s.quota.free(h.size.load(Ordering::Relaxed), 1);
        }
    }
    leftover.len()
}

pub(super) fn fsync(s: &Session, id: u32, handle: &[u8]) -> Reply {
    let h = tri!(s.handles.get(id, handle));
    match &h.kind {
        HandleKind::Upload(u) => match u.lock() {
            Ok(g) => io_reply(id, g.as_ref().map_or(Ok(()), Upload::sync)),
            Err(_) => Reply::status(id, StatusCode::Failure, "lock poisoned"),
        },
        HandleKind::InPlace(f) | HandleKind::Read(f) => io_reply(id, f.sync_data()),
        HandleKind::Dir(_) => Reply::ok(id),
    }
}

pub(super) fn setstat(s: &Session, id: u32, path: &[u8], attrs: &Attrs) -> Reply {
    let p = tri!(parse_path(id, path));
    if !may_change_existing(s, &p) {
        return s.deny(id, "changing an existing file");
    }
    match set_path_attrs(s, &p, attrs) {
        Ok(Ok(())) => Reply::ok(id),
        Ok(Err(q)) => quota_reply(id, &q),
        Err(e) => err_reply(id, &e),
    }
}

pub(super) fn fsetstat(s: &Session, id: u32, handle: &[u8], attrs: &Attrs) -> Reply {
    let h = tri!(s.handles.get(id, handle));
    if let Some(msg) = h.refused.get() {
        return Reply::status(id, StatusCode::Failure, msg.clone());
    }
    // A read handle stays on the inode it opened, whatever the path names now.
    let writable = matches!(h.kind, HandleKind::Upload(_) | HandleKind::InPlace(_));
    if !writable && s.profile != Profile::Full {
        return s.deny(id, "changing an existing file");
    }
    match h.file() {
        Some(f) => match f.with(|f| Ok(set_file_attrs(s, &h, f, attrs))) {
            Ok(Ok(Ok(()))) => Reply::ok(id),
            Ok(Ok(Err(q))) => quota_reply(id, &q),
            Ok(Err(e)) | Err(e) => err_reply(id, &e),
        },
        None => match set_path_attrs(s, &h.path, attrs) {
            Ok(Ok(())) => Reply::ok(id),
            Ok(Err(q)) => quota_reply(id, &q),
            Err(e) => err_reply(id, &e),
        },
    }
}

/// SETSTAT on a path. The outer error is the file system's, the inner one a quota refusal.
fn set_path_attrs(s: &Session, p: &JailPath, attrs: &Attrs) -> io::Result<Result<(), QuotaExceeded>> {
    if let Some((uid, gid)) = attrs.uid_gid {
        let m = s.jail.stat(p)?;
        if (uid, gid) != (m.uid, m.gid) {
            return Err(io::Error::from(io::ErrorKind::PermissionDenied));
        }
    }
    if let Some(size) = attrs.size {
        let old = s.jail.stat(p)?.size;
        if size > old
            && let Err(q) = s.quota.charge(size - old, 0)
        {
            return Ok(Err(q));
        }
        if let Err(e) = s.jail.set_size(p, size) {
            if size > old {
                s.quota.free(size - old, 0);
            }
            return Err(e);
        }
        if size < old {
            s.quota.free(old - size, 0);
        }
    }
    if let Some(mode) = attrs.permissions {
        s.jail.set_mode(p, mode)?;
    }
    if let Some((atime, mtime)) = attrs.times {
        s.jail.set_times(p, i64::from(atime), i64::from(mtime))?;
    }
    Ok(Ok(()))
}

/// SETSTAT on an open file, as [`set_path_attrs`].
fn set_file_attrs(s: &Session, h: &Handle, f: &File, attrs: &Attrs) -> io::Result<Result<(), QuotaExceeded>> {
    if let Some((uid, gid)) = attrs.uid_gid {
        let m = meta_from_std(&f.metadata()?);
        if (uid, gid) != (m.uid, m.gid) {
            return Err(io::Error::from(io::ErrorKind::PermissionDenied));
        }
    }
    if let Some(size) = attrs.size {
        let old = f.metadata()?.len();
        if size > old
            && let Err(q) = s.quota.charge(size - old, 0)
        {
            return Ok(Err(q));
        }
        f.set_len(size)?;
        if size < old {
            s.quota.free(old - size, 0);
        }
        h.size.store(size, Ordering::Relaxed);
    }
    if let Some(mode) = attrs.permissions {
        rustix::fs::fchmod(f, rustix::fs::Mode::from_raw_mode(mode & 0o777))?;
    }
    if let Some((atime, mtime)) = attrs.times {
        let ts = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec { tv_sec: i64::from(atime), tv_nsec: 0 },
            last_modification: rustix::fs::Timespec { tv_sec: i64::from(mtime), tv_nsec: 0 },
        };
        rustix::fs::futimens(f, &ts)?;
    }
    Ok(Ok(()))
}
