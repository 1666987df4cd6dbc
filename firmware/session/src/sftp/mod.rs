//! The SFTP server of one channel.
//!
//! Threads, not tasks: one reader splits packets off the input, lanes do the
//! file work, one writer sends replies. Requests on one handle always go to
//! the same lane, so they run in the order the client sent them (a CLOSE
//! never overtakes the WRITEs before it), while different handles (restic
//! and rclone keep several busy) proceed in parallel. Path requests share
//! lane 0. Bounded queues carry back-pressure from the disk to the SSH window.
//!
//! When the output is a pipe (the worker's stdout), READ moves file pages
//! into a pipe of its own with splice(2) and the writer moves them on to the
//! output: a download's bytes are never copied through this process.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Mutex};

use coffer_sftp_proto::{
    Attrs, Limits, MAX_IO, MAX_PACKET, NameEntry, OpenFlags, Reply, Request, RequestKind, StatVfs, StatusCode,
    encode_data, split_packet,
};
use coffer_storage::{DirStream, FileId, JailPath, Meta, NEW_DIR_BYTES, Upload, UserJail};

use crate::profile::{Profile, is_incomplete_duplicity_file, is_restic_lock};
use crate::quota::{QuotaExceeded, QuotaGate};
use crate::status::io_status;

/// Everything a session worker is given: whose area, under which key
/// profile, accounted against which ledger.
pub struct SessionContext {
    pub jail: UserJail,
    pub user: String,
    pub profile: Profile,
    pub quota: Box<dyn QuotaGate>,
}

/// Lanes that do file work; lane 0 takes every path request.
const LANES: usize = 4;
/// Requests queued per lane before the reader stops reading the channel.
const LANE_QUEUE: usize = 64;
/// Open handles per session (files and directories). Clients keep a few
/// open at once (rclone and restic about ten, OpenSSH's sftp one or two);
/// an upload holds two descriptors, and workers run under the appliance's
/// 1024-descriptor limit.
const MAX_HANDLES: usize = 128;
/// Directory entries per READDIR reply, read from the directory as they
/// are asked for (OpenSSH's sftp-server sends 100).
const READDIR_BATCH: usize = 100;

/// What a handle refers to.
enum HandleKind {
    Read(File),
    /// A new or truncated file, under a temporary name until CLOSE.
    Upload(Mutex<Option<Upload>>),
    /// An existing file written in place (APPEND, or no TRUNC).
    InPlace(File),
    Dir(Mutex<DirStream>),
}

struct Handle {
    path: JailPath,
    kind: HandleKind,
    /// Current size of a written file, to charge growth against the quota.
    size: AtomicU64,
    /// Set when a quota refusal discarded the upload; later requests repeat it.
    refused: std::sync::OnceLock<String>,
}

impl Handle {
    fn file(&self) -> Option<FileRef<'_>> {
        match &self.kind {
            HandleKind::Read(f) | HandleKind::InPlace(f) => Some(FileRef::Plain(f)),
            HandleKind::Upload(u) => Some(FileRef::Upload(u)),
            HandleKind::Dir(_) => None,
        }
    }
}

enum FileRef<'a> {
    Plain(&'a File),
    Upload(&'a Mutex<Option<Upload>>),
}

impl FileRef<'_> {
    fn with<T>(&self, f: impl FnOnce(&File) -> io::Result<T>) -> io::Result<T> {
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

/// Reused packet buffers. Requests and replies of up to 256 KiB would
/// otherwise each cost a fresh mapping and its page faults.
#[derive(Default)]
struct BufferPool(Mutex<Vec<Vec<u8>>>);

/// Buffers kept for reuse; enough for every lane queue to be full.
const POOL_SIZE: usize = LANE_QUEUE * LANES;

impl BufferPool {
    fn take(&self) -> Vec<u8> {
        self.0.lock().ok().and_then(|mut v| v.pop()).unwrap_or_default()
    }

    fn give(&self, mut buf: Vec<u8>) {
        buf.clear();
        if let Ok(mut v) = self.0.lock()
            && v.len() < POOL_SIZE
        {
            v.push(buf);
        }
    }
}

/// A DATA reply waits in the pipe it was spliced into, never in memory.
struct SplicePipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

/// Pipes for spliced READs, made on demand and reused. Bounded, because
/// every pipe holds two descriptors and counts against the user's pipe
/// pages (16 pipes of 256 KiB are 1024 of the default 16384 per user); a
/// READ that finds none free is copied instead.
#[derive(Default)]
struct PipePool {
    free: Mutex<Vec<SplicePipe>>,
    made: AtomicUsize,
    /// Cleared when the file system cannot splice: every READ copies then.
    works: AtomicBool,
    /// Bytes a pipe may grow to (the kernel's pipe-max-size for unprivileged users).
    grow_limit: usize,
}

const MAX_PIPES: usize = 16;
const PIPE_GROW_LIMIT: usize = 1 << 20;

impl PipePool {
    fn new(grow_limit: usize) -> Self {
        PipePool { works: AtomicBool::new(true), grow_limit, ..PipePool::default() }
    }

    fn take(&self) -> Option<SplicePipe> {
        if !self.works.load(Ordering::Relaxed) {
            return None;
        }
        if let Some(p) = self.free.lock().ok().and_then(|mut v| v.pop()) {
            return Some(p);
        }
        if self.made.fetch_add(1, Ordering::Relaxed) >= MAX_PIPES {
            self.made.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        match rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) {
            Ok((read, write)) => {
                let capacity = rustix::pipe::fcntl_getpipe_size(&write).unwrap_or(4096);
                Some(SplicePipe { read, write, capacity })
            }
            Err(_) => {
                self.made.fetch_sub(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Returns an empty pipe for reuse.
    fn give(&self, pipe: SplicePipe) {
        if let Ok(mut v) = self.free.lock() {
            v.push(pipe);
        }
    }

    /// Closes a pipe that may still hold bytes, making room for a new one.
    fn discard(&self, pipe: SplicePipe) {
        drop(pipe);
        self.made.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the writer sends: an encoded packet, or a DATA header whose
/// payload waits in a pipe.
enum Outgoing {
    Packet(Vec<u8>),
    /// `spliced` bytes wait in the pipe; `tail` follows them (the part a
    /// pipe too small to grow could not take).
    Spliced { header: [u8; DATA_HEADER], pipe: SplicePipe, spliced: usize, tail: Vec<u8> },
}

/// A DATA packet's length(4) type(1) id(4) data-length(4), then the data.
const DATA_HEADER: usize = 13;

fn data_header(id: u32, len: usize) -> [u8; DATA_HEADER] {
    let n = u32::try_from(len).unwrap_or(u32::MAX);
    let mut h = [0u8; DATA_HEADER];
    h[..4].copy_from_slice(&(n.saturating_add(9)).to_be_bytes());
    h[4] = coffer_sftp_proto::packet_type::DATA;
    h[5..9].copy_from_slice(&id.to_be_bytes());
    h[9..13].copy_from_slice(&n.to_be_bytes());
    h
}

/// State shared by the lanes of one session.
struct Session {
    jail: UserJail,
    user: String,
    profile: Profile,
    quota: Box<dyn QuotaGate>,
    /// What an append-only session created and may still change, filed by
    /// (device, inode number). Entries go when the session unlinks or
    /// replaces the file; one that another session removed stays, but the
    /// full identity of a later file with that number never matches it.
    created: Mutex<HashMap<(u64, u64), FileId>>,
    handles: Mutex<HashMap<u32, Arc<Handle>>>,
    next_handle: AtomicU32,
    buffers: BufferPool,
    /// Present when the output is a pipe that READ can splice into.
    pipes: Option<PipePool>,
}

impl Session {
    /// Did this session create the inode that `p` names (not following a final link)?
    fn created_here(&self, p: &JailPath) -> bool {
        let Ok(id) = self.jail.identity(p) else { return false };
        self.created.lock().is_ok_and(|c| c.get(&id.key()) == Some(&id))
    }

    /// Records a file or directory this session made. Only append-only
    /// sessions ask later; the others keep nothing.
    fn mark_created(&self, id: io::Result<FileId>) {
        if self.profile != Profile::AppendOnly {
            return;
        }
        match (id, self.created.lock()) {
            (Ok(id), Ok(mut c)) => {
                c.insert(id.key(), id);
            }
            (Err(e), _) => log::warn!("user {}: cannot record a file this session created ({e}); it cannot be changed later", self.user),
            (_, Err(_)) => {}
        }
    }

    /// Forgets the inode `key` named before it was unlinked or replaced.
    fn forget_created(&self, key: (u64, u64)) {
        if let Ok(mut c) = self.created.lock() {
            c.remove(&key);
        }
    }

    /// May this key change (overwrite, truncate, chmod) the existing file `p`?
    /// For append-only keys `p` itself must be a regular file (not a symlink
    /// that would lead the change to some other, older file).
    fn may_change_existing(&self, p: &JailPath) -> bool {
        match self.profile {
            Profile::Full => true,
            Profile::ReadOnly => false,
            Profile::AppendOnly => {
                // One link only: a second name would let a change reach an older file.
                self.jail.lstat(p).is_ok_and(|m| m.is_dir() || (m.is_file() && m.nlink == 1))
                    && (self.created_here(p) || is_incomplete_duplicity_file(&self.jail, p))
            }
        }
    }

    fn deny(&self, id: u32, what: &str) -> Reply {
        Reply::status(id, StatusCode::PermissionDenied, self.profile.denied(what))
    }
}

/// Append-only deletes: files this session created, and restic lock files.
fn may_delete_append_only(s: &Session, p: &JailPath) -> bool {
    s.created_here(p) || (is_restic_lock(p) && s.jail.lstat(p).is_ok_and(|m| m.is_file()))
}

fn quota_reply(id: u32, e: &QuotaExceeded) -> Reply {
    Reply::status(id, StatusCode::Failure, e.to_string())
}

/// Serves SFTP on `input`/`output` until the client closes its side.
/// Uploads that were never closed are discarded, never left looking complete.
pub fn serve(ctx: SessionContext, input: impl Read, output: impl Write + Send + 'static) -> io::Result<()> {
    serve_with(ctx, input, output, None, 0)
}

/// [`serve`] onto a file descriptor; when it is a pipe, downloads are
/// spliced into it rather than copied.
pub fn serve_fd(ctx: SessionContext, input: impl Read, output: File) -> io::Result<()> {
    let is_pipe = rustix::fs::fstat(&output).is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Fifo);
    let splice_to = if is_pipe { Some(OwnedFd::from(output.try_clone()?)) } else { None };
    serve_with(ctx, input, output, splice_to, PIPE_GROW_LIMIT)
}

fn serve_with(
    ctx: SessionContext,
    input: impl Read,
    output: impl Write + Send + 'static,
    splice_to: Option<OwnedFd>,
    pipe_grow_limit: usize,
) -> io::Result<()> {
    let session = Arc::new(Session {
        jail: ctx.jail,
        user: ctx.user,
        profile: ctx.profile,
        quota: ctx.quota,
        created: Mutex::new(HashMap::new()),
        handles: Mutex::new(HashMap::new()),
        next_handle: AtomicU32::new(1),
        buffers: BufferPool::default(),
        pipes: splice_to.as_ref().map(|_| PipePool::new(pipe_grow_limit)),
    });
    let (reply_tx, reply_rx) = sync_channel::<Outgoing>(LANE_QUEUE * LANES);
    let writer_session = Arc::clone(&session);
    let writer = std::thread::Builder::new()
        .name("sftp-writer".into())
        .spawn(move || write_replies(reply_rx, output, splice_to, &writer_session))?;

    let mut lanes: Vec<SyncSender<Vec<u8>>> = Vec::with_capacity(LANES);
    let mut workers = Vec::with_capacity(LANES);
    for lane in 0..LANES {
        let (tx, rx) = sync_channel::<Vec<u8>>(LANE_QUEUE);
        let session = Arc::clone(&session);
        let replies = reply_tx.clone();
        workers.push(std::thread::Builder::new().name(format!("sftp-lane-{lane}")).spawn(move || {
            for packet in rx {
                let reply = handle_packet(&session, &packet);
                session.buffers.give(packet);
                if replies.send(reply).is_err() {
                    break;
                }
            }
        })?);
        lanes.push(tx);
    }
    drop(reply_tx);

    let result = read_requests(&mut BufReader::with_capacity(512 * 1024, input), &lanes, &session.buffers);
    drop(lanes);
    for w in workers {
        let _ = w.join();
    }
    let _ = writer.join();
    // Whatever is still open was never closed by the client: drop it, which
    // discards unfinished uploads.
    let leftover: Vec<Arc<Handle>> = session.handles.lock().map(|mut h| h.drain().map(|(_, v)| v).collect()).unwrap_or_default();
    for h in &leftover {
        if let HandleKind::Upload(u) = &h.kind
            && u.lock().is_ok_and(|g| g.is_some())
        {
            session.quota.free(h.size.load(Ordering::Relaxed), 1);
        }
    }
    let leftover = leftover.len();
    if leftover > 0 {
        log::info!("user {}: session ended with {leftover} handle(s) open; unfinished uploads discarded", session.user);
    }
    result
}

fn write_replies(rx: Receiver<Outgoing>, output: impl Write, splice_to: Option<OwnedFd>, session: &Session) {
    // Small replies are gathered; DATA packets larger than the buffer go
    // straight to the output without another copy.
    let mut out = BufWriter::with_capacity(64 * 1024, output);
    loop {
        let packet = match rx.try_recv() {
            Ok(p) => p,
            Err(TryRecvError::Empty) => {
                // Nothing else is ready: push what we have to the client.
                if out.flush().is_err() {
                    return;
                }
                match rx.recv() {
                    Ok(p) => p,
                    Err(_) => return,
                }
            }
            Err(TryRecvError::Disconnected) => {
                let _ = out.flush();
                return;
            }
        };
        match packet {
            Outgoing::Packet(packet) => {
                if out.write_all(&packet).is_err() {
                    return;
                }
                session.buffers.give(packet);
            }
            Outgoing::Spliced { header, pipe, spliced, tail } => {
                // The header must be out before the pipe's bytes follow it.
                let (Some(to), Some(pool)) = (&splice_to, &session.pipes) else { return };
                if out.write_all(&header).is_err() || out.flush().is_err() || !drain_pipe(&pipe, to, spliced) {
                    return;
                }
                pool.give(pipe);
                if out.write_all(&tail).is_err() {
                    return;
                }
                session.buffers.give(tail);
            }
        }
    }
}

/// Moves `len` bytes from `pipe` to `to`; false when the output failed
/// (the stream is then cut mid-packet, so the session ends).
fn drain_pipe(pipe: &SplicePipe, to: &OwnedFd, len: usize) -> bool {
    let mut left = len;
    while left > 0 {
        match rustix::pipe::splice(&pipe.read, None, to, None, left, rustix::pipe::SpliceFlags::MORE) {
            Ok(0) => return false,
            Ok(n) => left -= n,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return false,
        }
    }
    true
}

/// Reads packets and hands each to its lane. Returns at end of input.
fn read_requests(input: &mut impl Read, lanes: &[SyncSender<Vec<u8>>], buffers: &BufferPool) -> io::Result<()> {
    let mut len_buf = [0u8; 4];
    loop {
        match input.read_exact(&mut len_buf) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes(len_buf);
        if len == 0 || len > MAX_PACKET {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("client sent a packet of {len} bytes (limit {MAX_PACKET}); closing the session"),
            ));
        }
        let mut packet = buffers.take();
        packet.extend_from_slice(&len_buf);
        let body_len = u64::from(len);
        if input.by_ref().take(body_len).read_to_end(&mut packet)? != len as usize {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "client closed the channel inside a packet"));
        }
        let lane = lane_of(&packet[4..]);
        if lanes[lane].send(packet).is_err() {
            return Ok(());
        }
    }
}

/// Picks the lane: requests naming a handle go to that handle's lane.
fn lane_of(body: &[u8]) -> usize {
    let handle = match Request::decode(body) {
        Ok(req) => match req.kind {
            RequestKind::Close { handle }
            | RequestKind::Read { handle, .. }
            | RequestKind::Write { handle, .. }
            | RequestKind::Fstat { handle }
            | RequestKind::Fsetstat { handle, .. }
            | RequestKind::Readdir { handle }
            | RequestKind::Fstatvfs { handle }
            | RequestKind::Fsync { handle } => parse_handle(handle),
            _ => None,
        },
        Err(_) => None,
    };
    match handle {
        Some(h) => 1 + (h as usize % (LANES - 1)),
        None => 0,
    }
}

fn parse_handle(h: &[u8]) -> Option<u32> {
    std::str::from_utf8(h).ok()?.parse().ok()
}

/// Decodes and executes one packet, returning the encoded reply.
fn handle_packet(session: &Session, packet: &[u8]) -> Outgoing {
    let body = match split_packet(packet, MAX_PACKET) {
        Ok(Some((body, _))) => body,
        _ => return Outgoing::Packet(Reply::status(0, StatusCode::BadMessage, "malformed packet").encode()),
    };
    Outgoing::Packet(match Request::decode(body) {
        Ok(Request { id, kind: RequestKind::Read { handle, offset, len } }) => return read(session, id, handle, offset, len),
        Ok(req) => {
            let id = req.id;
            let reply = execute(session, req);
            if let Reply::Status { code, message, .. } = &reply
                && *code != StatusCode::Ok
                && *code != StatusCode::Eof
            {
                log::debug!("user {}: request {id} ({}) failed: {code:?} {message}", session.user, body[0]);
            }
            match reply {
                Reply::Data { id, data } => encode_data(id, &data),
                other => other.encode(),
            }
        }
        Err(e) => {
            // The id sits right after the type byte when the packet is long enough.
            let id = if body.len() >= 5 { u32::from_be_bytes([body[1], body[2], body[3], body[4]]) } else { 0 };
            log::warn!("user {}: undecodable request {id}: {e}", session.user);
            Reply::status(id, StatusCode::BadMessage, format!("bad request: {e}")).encode()
        }
    })
}

fn err_reply(id: u32, e: &io::Error) -> Reply {
    let (code, message) = io_status(e);
    Reply::status(id, code, message)
}

fn parse_path(id: u32, p: &[u8]) -> Result<JailPath, Reply> {
    JailPath::parse(p).map_err(|e| match e {
        coffer_storage::PathError::Reserved => Reply::status(id, StatusCode::NoSuchFile, "No such file"),
        other => Reply::status(id, StatusCode::BadMessage, other.to_string()),
    })
}

fn attrs_of(meta: &Meta) -> Attrs {
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

/// Early return of the error reply from a `Result<T, Reply>`.
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

fn execute(s: &Session, req: Request<'_>) -> Reply {
    let id = req.id;
    let io = |r: io::Result<()>| match r {
        Ok(()) => Reply::ok(id),
        Err(e) => err_reply(id, &e),
    };
    match req.kind {
        RequestKind::Init { .. } => Reply::Version,
        RequestKind::Realpath { path } => {
            let p = tri!(parse_path(id, path));
            let name = p.display();
            Reply::Name {
                id,
                entries: vec![NameEntry { longname: name.clone(), filename: name, attrs: Attrs::default() }],
            }
        }
        RequestKind::Stat { path } => {
            let p = tri!(parse_path(id, path));
            match s.jail.stat(&p) {
                Ok(m) => Reply::Attrs { id, attrs: attrs_of(&m) },
                Err(e) => err_reply(id, &e),
            }
        }
        RequestKind::Lstat { path } => {
            let p = tri!(parse_path(id, path));
            match s.jail.lstat(&p) {
                Ok(m) => Reply::Attrs { id, attrs: attrs_of(&m) },
                Err(e) => err_reply(id, &e),
            }
        }
        RequestKind::Open { path, flags, attrs } => open(s, id, path, flags, &attrs),
        RequestKind::Opendir { path } => {
            let p = tri!(parse_path(id, path));
            // Check the limit first: a refused OPENDIR opens nothing.
            tri!(handle_room(s, id, &p));
            match s.jail.open_dir(&p) {
                Ok(dir) => new_handle(s, id, p, HandleKind::Dir(Mutex::new(dir)), 0),
                Err(e) => err_reply(id, &e),
            }
        }
        RequestKind::Readdir { handle } => {
            let h = tri!(get_handle(s, id, handle));
            let HandleKind::Dir(dir) = &h.kind else {
                return Reply::status(id, StatusCode::Failure, "handle is not a directory");
            };
            let Ok(mut dir) = dir.lock() else { return Reply::status(id, StatusCode::Failure, "lock poisoned") };
            let batch = match dir.next_batch(READDIR_BATCH) {
                Ok(batch) => batch,
                Err(e) => return err_reply(id, &e),
            };
            if batch.is_empty() {
                return Reply::status(id, StatusCode::Eof, "End of file");
            }
            let entries = batch
                .into_iter()
                .map(|e| NameEntry { longname: longname(&e.name, &e.meta, &s.user), attrs: attrs_of(&e.meta), filename: e.name })
                .collect();
            Reply::Name { id, entries }
        }
        RequestKind::Close { handle } => {
            let reply = close(s, id, handle);
            // What the file took becomes usage and unused credit goes back:
            // an open session must not hold the user's room.
            s.quota.settle();
            reply
        }
        RequestKind::Read { handle, offset, len } => {
            // `handle_packet` sends READs to `read`, which builds the DATA packet in place.
            let _ = (handle, offset, len);
            Reply::status(id, StatusCode::Failure, "internal error: READ not routed")
        }
        RequestKind::Write { handle, offset, data } => write(s, id, handle, offset, data),
        RequestKind::Fstat { handle } => {
            let h = tri!(get_handle(s, id, handle));
            let meta = match h.file() {
                Some(f) => f.with(|f| f.metadata()).map(|m| meta_from_std(&m)),
                None => s.jail.stat(&h.path),
            };
            match meta {
                Ok(m) => Reply::Attrs { id, attrs: attrs_of(&m) },
                Err(e) => err_reply(id, &e),
            }
        }
        RequestKind::Setstat { path, attrs } => {
            let p = tri!(parse_path(id, path));
            if !s.may_change_existing(&p) {
                return s.deny(id, "changing an existing file");
            }
            match setstat(s, &p, &attrs) {
                Ok(Ok(())) => Reply::ok(id),
                Ok(Err(q)) => quota_reply(id, &q),
                Err(e) => err_reply(id, &e),
            }
        }
        RequestKind::Fsetstat { handle, attrs } => {
            let h = tri!(get_handle(s, id, handle));
            if let Some(msg) = h.refused.get() {
                return Reply::status(id, StatusCode::Failure, msg.clone());
            }
            // A read handle stays on the inode it opened, whatever the path names now.
            let writable = matches!(h.kind, HandleKind::Upload(_) | HandleKind::InPlace(_));
            if !writable && s.profile != Profile::Full {
                return s.deny(id, "changing an existing file");
            }
            match h.file() {
                Some(f) => match f.with(|f| Ok(fsetstat(s, &h, f, &attrs))) {
                    Ok(Ok(Ok(()))) => Reply::ok(id),
                    Ok(Ok(Err(q))) => quota_reply(id, &q),
                    Ok(Err(e)) | Err(e) => err_reply(id, &e),
                },
                None => match setstat(s, &h.path, &attrs) {
                    Ok(Ok(())) => Reply::ok(id),
                    Ok(Err(q)) => quota_reply(id, &q),
                    Err(e) => err_reply(id, &e),
                },
            }
        }
        RequestKind::Remove { path } => {
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
                        s.forget_created(m.inode);
                    }
                    Reply::ok(id)
                }
                Err(e) => err_reply(id, &e),
            }
        }
        RequestKind::Mkdir { path, attrs } => {
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
        RequestKind::Rmdir { path } => {
            let p = tri!(parse_path(id, path));
            if s.profile != Profile::Full && !(s.profile == Profile::AppendOnly && s.created_here(&p)) {
                return s.deny(id, "deleting directories");
            }
            let before = s.jail.lstat(&p);
            match s.jail.rmdir(&p) {
                Ok(()) => {
                    s.quota.free(before.as_ref().map_or(0, |m| m.size), 1);
                    if let Ok(m) = before {
                        s.forget_created(m.inode);
                    }
                    Reply::ok(id)
                }
                Err(e) => err_reply(id, &e),
            }
        }
        RequestKind::Rename { from, to } => {
            let (f, t) = (tri!(parse_path(id, from)), tri!(parse_path(id, to)));
            rename(s, id, &f, &t, false)
        }
        RequestKind::PosixRename { from, to } => {
            let (f, t) = (tri!(parse_path(id, from)), tri!(parse_path(id, to)));
            rename(s, id, &f, &t, true)
        }
        RequestKind::Hardlink { from, to } => {
            let (f, t) = (tri!(parse_path(id, from)), tri!(parse_path(id, to)));
            // A second name for an old file would let later changes reach it.
            if s.profile != Profile::Full {
                return s.deny(id, "creating hard links");
            }
            io(s.jail.hardlink(&f, &t))
        }
        RequestKind::Readlink { path } => {
            let p = tri!(parse_path(id, path));
            match s.jail.readlink(&p) {
                Ok(target) => Reply::Name {
                    id,
                    entries: vec![NameEntry { longname: target.clone(), filename: target, attrs: Attrs::default() }],
                },
                Err(e) => err_reply(id, &e),
            }
        }
        RequestKind::Symlink { target, link } => {
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
        RequestKind::Statvfs { .. } | RequestKind::Fstatvfs { .. } => match s.jail.statvfs() {
            Ok(v) => Reply::StatVfs { id, vfs: statvfs(&v, s.quota.usage()) },
            Err(e) => err_reply(id, &e),
        },
        RequestKind::Fsync { handle } => {
            let h = tri!(get_handle(s, id, handle));
            match &h.kind {
                HandleKind::Upload(u) => match u.lock() {
                    Ok(g) => io(g.as_ref().map_or(Ok(()), Upload::sync)),
                    Err(_) => Reply::status(id, StatusCode::Failure, "lock poisoned"),
                },
                HandleKind::InPlace(f) | HandleKind::Read(f) => io(f.sync_data()),
                HandleKind::Dir(_) => Reply::ok(id),
            }
        }
        RequestKind::Limits => Reply::Limits {
            id,
            limits: Limits {
                max_packet: u64::from(MAX_PACKET),
                max_read: u64::from(MAX_IO),
                max_write: u64::from(MAX_IO),
                max_open_handles: MAX_HANDLES as u64,
            },
        },
        RequestKind::UnknownExtension { name } => Reply::status(
            id,
            StatusCode::OpUnsupported,
            format!("extension {} is not supported", String::from_utf8_lossy(name)),
        ),
    }
}

/// READ, the hot path of every download: the file's bytes are spliced
/// into a pipe when the output is one, else read into a pooled reply
/// packet. Replies are always as long as the file allows: a short read is
/// legal, but OpenSSH's client then truncates the download it thinks was
/// reordered.
fn read(s: &Session, id: u32, handle: &[u8], offset: u64, len: u32) -> Outgoing {
    let h = match get_handle(s, id, handle) {
        Ok(h) => h,
        Err(reply) => return Outgoing::Packet(reply.encode()),
    };
    let Some(file) = h.file() else {
        return Outgoing::Packet(Reply::status(id, StatusCode::Failure, "handle is a directory").encode());
    };
    let len = len.min(MAX_IO) as usize;
    // Only files no request of this session can change: a spliced pipe holds
    // page references, so a later WRITE on the same handle would show through.
    let read_only = matches!(h.kind, HandleKind::Read(_));
    if let Some(pool) = &s.pipes
        && read_only
        && len > 0
        && i64::try_from(offset).is_ok()
        && let Some(mut pipe) = pool.take()
    {
        let spliced = file.with(|f| {
            let Some(n) = splice_file(pool, f, &mut pipe, offset, len) else { return Ok(None) };
            let mut tail = s.buffers.take();
            tail.resize(len - n, 0);
            let got = read_full(f, &mut tail, offset + n as u64)?;
            tail.truncate(got);
            Ok(Some((n, tail)))
        });
        match spliced {
            Ok(Some((0, tail))) if tail.is_empty() => {
                s.buffers.give(tail);
                pool.give(pipe);
                return Outgoing::Packet(Reply::status(id, StatusCode::Eof, "End of file").encode());
            }
            Ok(Some((n, tail))) => {
                return Outgoing::Spliced { header: data_header(id, n + tail.len()), pipe, spliced: n, tail };
            }
            Err(e) => {
                // Bytes may wait in the pipe: it is closed, never reused.
                pool.discard(pipe);
                return Outgoing::Packet(err_reply(id, &e).encode());
            }
            // Nothing moved: copying below gives the data or the right error.
            Ok(None) => pool.give(pipe),
        }
    }
    let mut packet = s.buffers.take();
    packet.resize(DATA_HEADER + len, 0);
    let result = file.with(|f| read_full(f, &mut packet[DATA_HEADER..], offset));
    Outgoing::Packet(match result {
        Ok(0) if len > 0 => {
            s.buffers.give(packet);
            Reply::status(id, StatusCode::Eof, "End of file").encode()
        }
        Ok(n) => {
            packet.truncate(DATA_HEADER + n);
            packet[..DATA_HEADER].copy_from_slice(&data_header(id, n));
            packet
        }
        Err(e) => {
            s.buffers.give(packet);
            err_reply(id, &e).encode()
        }
    })
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match f.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Splices up to `len` bytes of `file` at `offset` into the (empty) pipe,
/// growing the pipe to fit when the kernel allows. Returns the bytes moved
/// (0 at end of file), or `None` when nothing could be spliced.
fn splice_file(pool: &PipePool, file: &File, pipe: &mut SplicePipe, offset: u64, len: usize) -> Option<usize> {
    use rustix::io::Errno;
    use rustix::pipe::{SpliceFlags, fcntl_setpipe_size, splice};
    // A read that starts inside a page may need one slot more than this;
    // the copied tail takes that last piece.
    let wanted = len.next_power_of_two().min(pool.grow_limit);
    if wanted > pipe.capacity {
        // A pipe that cannot grow (the user's pipe pages are used up) takes what it can.
        if let Ok(size) = fcntl_setpipe_size(&pipe.write, wanted) {
            pipe.capacity = size;
        }
    }
    let mut at = offset;
    let mut filled = 0;
    while filled < len {
        // Non-blocking on the pipe: a full pipe ends this READ short instead of waiting.
        match splice(file, Some(&mut at), &pipe.write, None, len - filled, SpliceFlags::NONBLOCK) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) if filled > 0 => break,
            Err(e) => {
                if e == Errno::INVAL || e == Errno::NOSYS {
                    // This file system cannot splice: stop trying for the session.
                    pool.works.store(false, Ordering::Relaxed);
                }
                return (filled > 0).then_some(filled);
            }
        }
    }
    Some(filled)
}

fn open(s: &Session, id: u32, path: &[u8], flags: OpenFlags, attrs: &Attrs) -> Reply {
    let p = tri!(parse_path(id, path));
    // Before anything is opened or charged: a refused OPEN leaves nothing behind.
    tri!(handle_room(s, id, &p));
    let mode = attrs.permissions.map_or(0o666, |m| m & 0o777);
    let writes = [OpenFlags::WRITE, OpenFlags::APPEND, OpenFlags::CREAT, OpenFlags::TRUNC];
    if writes.iter().any(|&f| flags.has(f)) && s.profile == Profile::ReadOnly {
        return s.deny(id, "writing files");
    }
    if !writes.iter().any(|&f| flags.has(f)) {
        return match s.jail.open_read(&p) {
            Ok(f) => new_handle(s, id, p, HandleKind::Read(f), 0),
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
    if exists && !s.may_change_existing(&p) {
        return s.deny(id, "overwriting or changing an existing file");
    }
    if exists && !flags.has(OpenFlags::TRUNC) {
        // Append (sftp reput) or a write without truncation (scp): the client
        // asks to change the existing file, so it is changed in place.
        return match s.jail.open_write_in_place(&p, flags.has(OpenFlags::APPEND), flags.has(OpenFlags::READ)) {
            Ok(f) => {
                let size = f.metadata().map(|m| m.len()).unwrap_or(0);
                new_handle(s, id, p, HandleKind::InPlace(f), size)
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
        Ok(up) => new_handle(s, id, p, HandleKind::Upload(Mutex::new(Some(up))), 0),
        Err(e) => {
            s.quota.free(0, 1);
            err_reply(id, &e)
        }
    }
}

fn close(s: &Session, id: u32, handle: &[u8]) -> Reply {
    let Some(n) = parse_handle(handle) else { return Reply::status(id, StatusCode::Failure, "invalid handle") };
    let removed = s.handles.lock().ok().and_then(|mut h| h.remove(&n));
    let Some(h) = removed else { return Reply::status(id, StatusCode::Failure, "invalid handle") };
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
                        s.forget_created(m.inode);
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

/// Refuses to open `path` when the session holds [`MAX_HANDLES`] handles.
fn handle_room(s: &Session, id: u32, path: &JailPath) -> Result<(), Reply> {
    let open = s.handles.lock().map_or(MAX_HANDLES, |h| h.len());
    if open < MAX_HANDLES {
        return Ok(());
    }
    log::warn!("user {}: refused to open {}: {MAX_HANDLES} handles open", s.user, String::from_utf8_lossy(&path.display()));
    Err(Reply::status(
        id,
        StatusCode::Failure,
        format!(
            "cannot open {}: this session already has {MAX_HANDLES} open handles, the limit; close some first",
            String::from_utf8_lossy(&path.display())
        ),
    ))
}

fn new_handle(s: &Session, id: u32, path: JailPath, kind: HandleKind, size: u64) -> Reply {
    tri!(handle_room(s, id, &path));
    let Ok(mut handles) = s.handles.lock() else { return Reply::status(id, StatusCode::Failure, "lock poisoned") };
    let n = s.next_handle.fetch_add(1, Ordering::Relaxed);
    handles.insert(n, Arc::new(Handle { path, kind, size: AtomicU64::new(size), refused: std::sync::OnceLock::new() }));
    Reply::Handle { id, handle: n.to_string().into_bytes() }
}

fn get_handle(s: &Session, id: u32, handle: &[u8]) -> Result<Arc<Handle>, Reply> {
    parse_handle(handle)
        .and_then(|n| s.handles.lock().ok()?.get(&n).cloned())
        .ok_or_else(|| Reply::status(id, StatusCode::Failure, "invalid handle"))
}

/// SETSTAT on a path. The outer error is the file system's, the inner one a quota refusal.
fn setstat(s: &Session, p: &JailPath, attrs: &Attrs) -> io::Result<Result<(), QuotaExceeded>> {
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

fn fsetstat(s: &Session, h: &Handle, f: &File, attrs: &Attrs) -> io::Result<Result<(), QuotaExceeded>> {
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

/// WRITE: charge the growth, then write; a refused upload is discarded.
fn write(s: &Session, id: u32, handle: &[u8], offset: u64, data: &[u8]) -> Reply {
    let h = match get_handle(s, id, handle) {
        Ok(h) => h,
        Err(r) => return r,
    };
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

/// RENAME and posix-rename, with the append-only rule and quota for a replaced target.
fn rename(s: &Session, id: u32, from: &JailPath, to: &JailPath, replace: bool) -> Reply {
    let target = s.jail.lstat(to).ok();
    match s.profile {
        Profile::ReadOnly => return s.deny(id, "renaming files"),
        Profile::AppendOnly if !s.created_here(from) || target.is_some() => {
            return s.deny(id, "renaming existing files or replacing files");
        }
        _ => {}
    }
    // Append-only renames never replace, even a target that appears meanwhile.
    let replace = replace && s.profile == Profile::Full;
    match s.jail.rename(from, to, replace) {
        Ok(()) => {
            if let Some(m) = target.filter(|m| !m.is_dir()) {
                s.quota.free(if m.nlink <= 1 { m.size } else { 0 }, u64::from(m.nlink <= 1));
            }
            Reply::ok(id)
        }
        Err(e) => err_reply(id, &e),
    }
}

/// statvfs: the file system's numbers, limited by the user's quota.
fn statvfs(v: &rustix::fs::StatVfs, quota: Option<crate::quota::QuotaUsage>) -> StatVfs {
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

fn meta_from_std(m: &std::fs::Metadata) -> Meta {
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

/// An `ls -l` style line, which OpenSSH's `sftp ls -l` prints as is.
fn longname(name: &[u8], m: &Meta, user: &str) -> Vec<u8> {
    let kind = match m.mode & 0o170_000 {
        0o040_000 => 'd',
        0o120_000 => 'l',
        0o100_000 => '-',
        _ => '?',
    };
    let mut perms = String::with_capacity(10);
    perms.push(kind);
    for shift in [6, 3, 0] {
        let bits = (m.mode >> shift) & 7;
        perms.push(if bits & 4 != 0 { 'r' } else { '-' });
        perms.push(if bits & 2 != 0 { 'w' } else { '-' });
        perms.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let date = format_date(m.mtime);
    let mut line = format!("{perms} {:>4} {user:<8} {user:<8} {:>12} {date} ", m.nlink, m.size).into_bytes();
    line.extend_from_slice(name);
    line
}

/// "Nov 27 06:51" from seconds since the epoch (UTC).
fn format_date(t: i64) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (_, month, day, hour, minute, _) = coffer_duplicity::civil_from_unix(t);
    let name = MONTHS[usize::try_from(month - 1).unwrap_or(0).min(11)];
    format!("{name} {day:>2} {hour:02}:{minute:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(format_date(0), "Jan  1 00:00");
        assert_eq!(format_date(1_795_762_260), "Nov 27 06:51");
        assert_eq!(format_date(951_782_400), "Feb 29 00:00");
    }

    fn packet(kind: u8, id: Option<u32>, fields: &[&[u8]]) -> Vec<u8> {
        let mut body = vec![kind];
        if let Some(id) = id {
            body.extend_from_slice(&id.to_be_bytes());
        }
        for f in fields {
            body.extend_from_slice(f);
        }
        let mut p = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
        p.extend_from_slice(&body);
        p
    }

    fn string(b: &[u8]) -> Vec<u8> {
        let mut v = u32::try_from(b.len()).unwrap().to_be_bytes().to_vec();
        v.extend_from_slice(b);
        v
    }

    fn reply(r: &mut impl Read) -> Vec<u8> {
        let mut len = [0u8; 4];
        r.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        r.read_exact(&mut body).unwrap();
        body
    }

    /// An SFTP session served over real pipes, as the worker's stdout is.
    struct PipeSession {
        requests: std::io::PipeWriter,
        replies: std::io::PipeReader,
        server: std::thread::JoinHandle<io::Result<()>>,
    }

    impl PipeSession {
        fn start(dir: &std::path::Path, pipe_grow_limit: usize) -> Self {
            let jail = UserJail::open(dir).unwrap();
            let ctx = SessionContext { jail, user: "t".into(), profile: Profile::Full, quota: Box::new(crate::quota::Unlimited) };
            let (req_r, requests) = std::io::pipe().unwrap();
            let (replies, rep_w) = std::io::pipe().unwrap();
            let out = File::from(OwnedFd::from(rep_w));
            let splice_to = Some(OwnedFd::from(out.try_clone().unwrap()));
            let server = std::thread::spawn(move || serve_with(ctx, req_r, out, splice_to, pipe_grow_limit));
            let mut s = PipeSession { requests, replies, server };
            s.send(&packet(1, None, &[&3u32.to_be_bytes()]));
            assert_eq!(s.reply()[0], 2, "VERSION");
            s
        }

        fn send(&mut self, p: &[u8]) {
            self.requests.write_all(p).unwrap();
        }

        fn reply(&mut self) -> Vec<u8> {
            reply(&mut self.replies)
        }

        /// OPEN with SSH_FXF_* flags; returns the handle.
        fn open(&mut self, path: &[u8], flags: u32) -> Vec<u8> {
            self.send(&packet(3, Some(1), &[&string(path), &flags.to_be_bytes(), &0u32.to_be_bytes()]));
            let h = self.reply();
            assert_eq!(h[0], 102, "HANDLE");
            h[9..].to_vec()
        }

        fn read(&mut self, id: u32, handle: &[u8], offset: u64, len: u32) {
            self.send(&packet(5, Some(id), &[&string(handle), &offset.to_be_bytes(), &len.to_be_bytes()]));
        }

        fn finish(self) {
            drop(self.requests);
            self.server.join().unwrap().unwrap();
        }
    }

    /// READDIR answers in batches of at most 100 read from the directory
    /// as asked; the session holds at most MAX_HANDLES handles, and the
    /// refusal says so.
    #[test]
    fn listings_are_batched_and_handles_capped() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..1000 {
            std::fs::write(dir.path().join(format!("f{i}")), b"").unwrap();
        }
        let mut s = PipeSession::start(dir.path(), PIPE_GROW_LIMIT);
        let opendir = |s: &mut PipeSession| {
            s.send(&packet(11, Some(2), &[&string(b"/")]));
            s.reply()
        };
        let first = opendir(&mut s);
        assert_eq!(first[0], 102, "HANDLE");
        let handle = first[9..].to_vec();
        let mut total = 0;
        loop {
            s.send(&packet(12, Some(3), &[&string(&handle)]));
            let r = s.reply();
            if r[0] == 101 {
                assert_eq!(u32::from_be_bytes(r[5..9].try_into().unwrap()), 1, "EOF");
                break;
            }
            assert_eq!(r[0], 104, "NAME");
            let count = u32::from_be_bytes(r[5..9].try_into().unwrap()) as usize;
            assert!((1..=READDIR_BATCH).contains(&count), "{count} entries in one reply");
            total += count;
        }
        assert_eq!(total, 1000);
        for _ in 1..MAX_HANDLES {
            assert_eq!(opendir(&mut s)[0], 102, "HANDLE");
        }
        let refused = opendir(&mut s);
        assert_eq!((refused[0], u32::from_be_bytes(refused[5..9].try_into().unwrap())), (101, 4), "STATUS FAILURE");
        assert!(String::from_utf8_lossy(&refused).contains("128 open handles"));
        s.send(&packet(3, Some(4), &[&string(b"/f1"), &1u32.to_be_bytes(), &0u32.to_be_bytes()]));
        assert_eq!(s.reply()[0], 101, "OPEN refused as well");
        // A CLOSE makes room again.
        s.send(&packet(4, Some(5), &[&string(&handle)]));
        let closed = s.reply();
        assert_eq!((closed[0], u32::from_be_bytes(closed[5..9].try_into().unwrap())), (101, 0), "STATUS OK");
        assert_eq!(opendir(&mut s)[0], 102, "HANDLE");
        s.finish();
    }

    /// Checks a READ reply against the file's content: whole, or EOF.
    fn check_read(r: &[u8], id: u32, content: &[u8], offset: u64, len: u32) {
        assert_eq!(u32::from_be_bytes(r[1..5].try_into().unwrap()), id);
        let start = usize::try_from(offset).unwrap();
        if start >= content.len() {
            assert_eq!((r[0], u32::from_be_bytes(r[5..9].try_into().unwrap())), (101, 1), "STATUS EOF past the end");
            return;
        }
        assert_eq!(r[0], 103, "DATA");
        let n = u32::from_be_bytes(r[5..9].try_into().unwrap()) as usize;
        assert_eq!(r.len(), 9 + n);
        let want = (start + len.min(MAX_IO) as usize).min(content.len()) - start;
        assert_eq!(n, want, "read {id} is whole (clients mishandle short reads)");
        assert_eq!(&r[9..], &content[start..start + n], "read {id}");
    }

    fn test_content(len: u32) -> Vec<u8> {
        (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
    }

    /// Over real pipes, READ replies are spliced: whole reads (also from
    /// unaligned offsets, and when a pipe cannot grow to the read's size),
    /// a read across the end, EOF, and many reads in flight arrive intact.
    #[test]
    fn downloads_spliced_into_a_pipe_arrive_intact() {
        for limit in [PIPE_GROW_LIMIT, 16 * 1024] {
            let dir = tempfile::tempdir().unwrap();
            let content = test_content(700_000);
            std::fs::write(dir.path().join("big.bin"), &content).unwrap();
            let mut s = PipeSession::start(dir.path(), limit);
            let handle = s.open(b"/big.bin", 1);
            // Reads of every size the clients use, all sent before any reply is read.
            let reads: Vec<(u64, u32)> = vec![
                (0, 261_120),
                (261_120, 261_120),
                (520_192, 2048),
                (0, 32_768),
                (32_768, 262_144),
                (294_912, 262_144),
                (557_056, 262_144),
                (699_990, 100),
                (700_000, 10),
            ];
            for (i, (offset, len)) in reads.iter().enumerate() {
                s.read(10 + u32::try_from(i).unwrap(), &handle, *offset, *len);
            }
            for (i, (offset, len)) in reads.iter().enumerate() {
                let r = s.reply();
                check_read(&r, 10 + u32::try_from(i).unwrap(), &content, *offset, *len);
            }
            // An offset the kernel refuses is a failure, and splicing goes on after it.
            s.read(30, &handle, u64::MAX - 5, 10);
            assert_eq!(s.reply()[0], 101, "STATUS");
            s.read(31, &handle, 1000, 5000);
            check_read(&s.reply(), 31, &content, 1000, 5000);
            s.finish();
        }
    }

    /// More reads in flight than there are pipes: the rest are copied, and
    /// every reply still arrives whole and in order.
    #[test]
    fn reads_beyond_the_pipe_pool_are_copied() {
        let dir = tempfile::tempdir().unwrap();
        let content = test_content(3 << 20);
        std::fs::write(dir.path().join("f"), &content).unwrap();
        let mut s = PipeSession::start(dir.path(), PIPE_GROW_LIMIT);
        let handle = s.open(b"/f", 1);
        let reads: Vec<(u64, u32)> = (0..96u32).map(|i| (u64::from(i) * 32_768, 32_768)).collect();
        for (i, (offset, len)) in reads.iter().enumerate() {
            s.read(100 + u32::try_from(i).unwrap(), &handle, *offset, *len);
        }
        for (i, (offset, len)) in reads.iter().enumerate() {
            let r = s.reply();
            check_read(&r, 100 + u32::try_from(i).unwrap(), &content, *offset, *len);
        }
        s.finish();
    }

    /// A READ answers with the file as it was when the READ ran, even when
    /// a WRITE on the same handle follows before the reply is read.
    #[test]
    fn a_read_is_not_changed_by_the_write_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let content = test_content(100_000);
        std::fs::write(dir.path().join("f"), &content).unwrap();
        let mut s = PipeSession::start(dir.path(), PIPE_GROW_LIMIT);
        // READ | WRITE, no TRUNC: a file changed in place.
        let handle = s.open(b"/f", 1 | 2);
        s.read(7, &handle, 0, 50_000);
        s.send(&packet(6, Some(8), &[&string(&handle), &0u64.to_be_bytes(), &string(&[0xAA; 50_000])]));
        let r = s.reply();
        check_read(&r, 7, &content, 0, 50_000);
        let w = s.reply();
        assert_eq!((w[0], u32::from_be_bytes(w[5..9].try_into().unwrap())), (101, 0), "WRITE OK");
        s.finish();
    }
}
