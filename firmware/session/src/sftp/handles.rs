//! The session's open handles: what each one refers to, and the table that
//! numbers them and caps how many are open.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use coffer_sftp_proto::{Reply, StatusCode};
use coffer_storage::{DirStream, JailPath, Upload};

/// Open handles per session (files and directories). Clients keep a few
/// open at once (rclone and restic about ten, OpenSSH's sftp one or two);
/// an upload holds two descriptors, and workers run under the appliance's
/// 1024-descriptor limit.
pub(super) const MAX_HANDLES: usize = 128;

/// What a handle refers to.
pub(super) enum HandleKind {
    Read(File),
    /// A new or truncated file, under a temporary name until CLOSE.
    Upload(Mutex<Option<Upload>>),
    /// An existing file written in place (APPEND, or no TRUNC).
    InPlace(File),
    Dir(Mutex<DirStream>),
}

pub(super) struct Handle {
    pub(super) path: JailPath,
    pub(super) kind: HandleKind,
    /// Current size of a written file, to charge growth against the quota.
    pub(super) size: AtomicU64,
    /// Set when a quota refusal discarded the upload; later requests repeat it.
    pub(super) refused: OnceLock<String>,
}

impl Handle {
    pub(super) fn file(&self) -> Option<FileRef<'_>> {
        match &self.kind {
            HandleKind::Read(f) | HandleKind::InPlace(f) => Some(FileRef::Plain(f)),
            HandleKind::Upload(u) => Some(FileRef::Upload(u)),
            HandleKind::Dir(_) => None,
        }
    }
}

/// The open file behind a handle, whichever kind it is.
pub(super) enum FileRef<'a> {
    Plain(&'a File),
    Upload(&'a Mutex<Option<Upload>>),
}

impl FileRef<'_> {
    pub(super) fn with<T>(&self, f: impl FnOnce(&File) -> io::Result<T>) -> io::Result<T> {
        match self {
            FileRef::Plain(file) => f(file),
            FileRef::Upload(m) => {
                let guard = m.lock().map_err(|_| io::Error::other("upload lock poisoned"))?;
                match guard.as_ref() {
                    Some(up) => f(up.file()),
                    None => Err(io::Error::other("upload already closed")),
                }
            }
        }
    }
}

/// The handles a session holds, by the number the client names them with.
pub(super) struct Handles {
    open: Mutex<HashMap<u32, Arc<Handle>>>,
    next: AtomicU32,
}

impl Handles {
    pub(super) fn new() -> Self {
        Handles { open: Mutex::new(HashMap::new()), next: AtomicU32::new(1) }
    }

    /// Refuses to open `path` when `user`'s session holds [`MAX_HANDLES`] handles.
    pub(super) fn room(&self, user: &str, id: u32, path: &JailPath) -> Result<(), Reply> {
        let open = self.open.lock().map_or(MAX_HANDLES, |h| h.len());
        if open < MAX_HANDLES {
            return Ok(());
        }
        log::warn!("user {user}: refused to open {}: {MAX_HANDLES} handles open", String::from_utf8_lossy(&path.display()));
        Err(Reply::status(
            id,
            StatusCode::Failure,
            format!(
                "cannot open {}: this session already has {MAX_HANDLES} open handles, the limit; close some first",
                String::from_utf8_lossy(&path.display())
            ),
        ))
    }

    /// Files a newly opened `kind` and answers with its handle.
    pub(super) fn insert(&self, user: &str, id: u32, path: JailPath, kind: HandleKind, size: u64) -> Reply {
        if let Err(refused) = self.room(user, id, &path) {
            return refused;
        }
        let Ok(mut handles) = self.open.lock() else { return Reply::status(id, StatusCode::Failure, "lock poisoned") };
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        handles.insert(n, Arc::new(Handle { path, kind, size: AtomicU64::new(size), refused: OnceLock::new() }));
        Reply::Handle { id, handle: n.to_string().into_bytes() }
    }

    pub(super) fn get(&self, id: u32, handle: &[u8]) -> Result<Arc<Handle>, Reply> {
        parse_handle(handle)
            .and_then(|n| self.open.lock().ok()?.get(&n).cloned())
            .ok_or_else(|| Reply::status(id, StatusCode::Failure, "invalid handle"))
    }

    /// Takes `handle` out of the table (CLOSE).
    pub(super) fn remove(&self, handle: &[u8]) -> Option<Arc<Handle>> {
        let n = parse_handle(handle)?;
        self.open.lock().ok().and_then(|mut h| h.remove(&n))
    }

    /// Takes every handle still open.
    pub(super) fn drain(&self) -> Vec<Arc<Handle>> {
        self.open.lock().map(|mut h| h.drain().map(|(_, v)| v).collect()).unwrap_or_default()
    }
}

/// The number a handle string names.
pub(super) fn parse_handle(h: &[u8]) -> Option<u32> {
    std::str::from_utf8(h).ok()?.parse().ok()
}
