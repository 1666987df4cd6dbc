//! An SFTP v3 client over one SSH channel, pipelined as OpenSSH's `sftp`:
//! up to 64 WRITE or READ requests in flight per transfer, each as large
//! as the server's `limits@openssh.com` allows (255 KiB on Coffer and
//! OpenSSH, 32 KiB without the extension).
//!
//! One task writes request packets, one reads reply packets and hands each
//! to the request waiting for its id; the blocking [`SftpRemote`] methods
//! drive them on the remote's own runtime. Reply packets are checked
//! against a size limit before anything is allocated for them.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use coffer_sftp_proto::{
    Attrs, FileKind, Limits, OpenFlags, Reply, Request, RequestKind, ServerVersion, StatusCode, VERSION, packet_type,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::error::RemoteError;
use crate::ssh::{self, Connection, SshOptions};
use crate::url::SshTarget;
use crate::{Entry, PART_PREFIX, Remote, check_name, part_name};

/// Requests in flight per transfer, as OpenSSH's `sftp -R` default.
const IN_FLIGHT: usize = 64;
/// The largest READ/WRITE payload asked for, whatever a server allows.
const MAX_CHUNK: u32 = 255 * 1024;
/// Without `limits@openssh.com`, the size every server accepts.
const DEFAULT_CHUNK: u32 = 32 * 1024;
/// The largest reply packet accepted: a full DATA reply plus headers, and
/// room for long directory batches.
const MAX_REPLY: u32 = 1024 * 1024;

type Waiters = HashMap<u32, oneshot::Sender<Reply>>;

/// The request/reply plumbing of one SFTP session.
struct Session {
    host: String,
    packets: mpsc::Sender<Vec<u8>>,
    /// `None` once the reply reader has stopped: nothing more will answer.
    waiting: Mutex<Option<Waiters>>,
    /// Why the reader stopped, when it was not a clean end.
    failure: Mutex<Option<String>>,
    next_id: AtomicU32,
}

impl Session {
    fn closed(&self, op: &'static str) -> RemoteError {
        match self.failure.lock().ok().and_then(|f| f.clone()) {
            Some(reason) => RemoteError::Protocol { host: self.host.clone(), reason },
            None => RemoteError::Closed { host: self.host.clone(), op },
        }
    }

    /// Queues a request; the receiver yields its reply.
    async fn send(&self, op: &'static str, kind: RequestKind<'_>) -> Result<oneshot::Receiver<Reply>, RemoteError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut guard = self.waiting.lock().map_err(|_| self.closed(op))?;
            let waiters = guard.as_mut().ok_or_else(|| self.closed(op))?;
            waiters.insert(id, tx);
        }
        let packet = Request { id, kind }.encode();
        self.packets.send(packet).await.map_err(|_| self.closed(op))?;
        Ok(rx)
    }

    async fn wait(&self, op: &'static str, rx: oneshot::Receiver<Reply>) -> Result<Reply, RemoteError> {
        rx.await.map_err(|_| self.closed(op))
    }

    async fn call(&self, op: &'static str, kind: RequestKind<'_>) -> Result<Reply, RemoteError> {
        let rx = self.send(op, kind).await?;
        self.wait(op, rx).await
    }

    fn unexpected(&self, op: &'static str, reply: &Reply) -> RemoteError {
        RemoteError::Protocol { host: self.host.clone(), reason: format!("unexpected reply to {op}: {reply:?}") }
    }

    /// A STATUS reply that must be OK.
    fn expect_ok(&self, op: &'static str, name: &str, reply: Reply) -> Result<(), RemoteError> {
        match reply {
            Reply::Status { code: StatusCode::Ok, .. } => Ok(()),
            Reply::Status { code, message, .. } => Err(RemoteError::Status { op, name: name.to_string(), code, message }),
            other => Err(self.unexpected(op, &other)),
        }
    }

    async fn handle(&self, op: &'static str, name: &str, kind: RequestKind<'_>) -> Result<Vec<u8>, RemoteError> {
        match self.call(op, kind).await? {
            Reply::Handle { handle, .. } => Ok(handle),
            Reply::Status { code, message, .. } => Err(RemoteError::Status { op, name: name.to_string(), code, message }),
            other => Err(self.unexpected(op, &other)),
        }
    }

    async fn stat(&self, path: &[u8]) -> Result<Option<Attrs>, RemoteError> {
        match self.call("stat", RequestKind::Stat { path }).await? {
            Reply::Attrs { attrs, .. } => Ok(Some(attrs)),
            Reply::Status { code: StatusCode::NoSuchFile, .. } => Ok(None),
            Reply::Status { code, message, .. } => {
                Err(RemoteError::Status { op: "stat", name: String::from_utf8_lossy(path).into_owned(), code, message })
            }
            other => Err(self.unexpected("stat", &other)),
        }
    }

    /// Best effort: used on paths that already failed.
    async fn close_quietly(&self, handle: &[u8]) {
        if let Ok(rx) = self.send("close", RequestKind::Close { handle }).await {
            let _ = rx.await;
        }
    }
}

fn reply_id(reply: &Reply) -> Option<u32> {
    match reply {
        Reply::Version => None,
        Reply::Status { id, .. }
        | Reply::Handle { id, .. }
        | Reply::Data { id, .. }
        | Reply::Name { id, .. }
        | Reply::Attrs { id, .. }
        | Reply::StatVfs { id, .. }
        | Reply::Limits { id, .. }
        | Reply::Extended { id, .. } => Some(*id),
    }
}

/// Reads one packet body; `Ok(None)` at a clean end of stream.
async fn read_packet<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>, String> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(format!("reading a reply: {e}")),
    }
    let len = u32::from_be_bytes(len);
    if len == 0 || len > MAX_REPLY {
        return Err(format!("reply packet of {len} bytes (the limit is {MAX_REPLY})"));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).await.map_err(|e| format!("reading a reply of {len} bytes: {e}"))?;
    Ok(Some(body))
}

async fn read_replies<R: AsyncRead + Unpin>(mut r: R, session: Arc<Session>) {
    let failure = loop {
        let body = match read_packet(&mut r).await {
            Ok(Some(b)) => b,
            Ok(None) => break None,
            Err(e) => break Some(e),
        };
        let reply = match Reply::decode(&body) {
            Ok(r) => r,
            Err(e) => break Some(format!("undecodable reply (type {}): {e}", body[0])),
        };
        let Some(id) = reply_id(&reply) else { break Some("a second VERSION packet".to_string()) };
        let waiter = session.waiting.lock().ok().and_then(|mut w| w.as_mut().and_then(|w| w.remove(&id)));
        match waiter {
            // A dropped receiver (an abandoned download) is not an error.
            Some(tx) => drop(tx.send(reply)),
            None => break Some(format!("reply to request {id}, which was never sent")),
        }
    };
    if let Some(f) = failure {
        log::warn!("SFTP with {}: {f}", session.host);
        if let Ok(mut slot) = session.failure.lock() {
            *slot = Some(f);
        }
    }
    // Every waiter now sees the session closed.
    if let Ok(mut w) = session.waiting.lock() {
        w.take();
    }
}

async fn write_requests<W: AsyncWrite + Unpin>(mut w: W, mut packets: mpsc::Receiver<Vec<u8>>) {
    while let Some(p) = packets.recv().await {
        if w.write_all(&p).await.is_err() {
            return;
        }
        // Flush only when nothing else is queued, so pipelined requests
        // share channel packets.
        if packets.is_empty() && w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}

/// A directory on an SFTP server.
pub struct SftpRemote {
    session: Arc<Session>,
    dir: Vec<u8>,
    write_chunk: u32,
    read_chunk: u32,
    posix_rename: bool,
    _ssh: Connection,
    /// Last: the connection's tasks run here. Shared with open downloads.
    rt: Arc<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for SftpRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpRemote").field("host", &self.session.host).field("dir", &String::from_utf8_lossy(&self.dir)).finish()
    }
}

impl SftpRemote {
    /// Connects to `target`, checks its host key, logs in and starts SFTP.
    pub fn connect(target: &SshTarget, options: &SshOptions) -> Result<Self, RemoteError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("coffer-remote")
            .enable_all()
            .build()
            .map_err(|e| RemoteError::Ssh { host: target.host.clone(), port: target.port, reason: format!("starting the runtime: {e}") })?;
        let rt = Arc::new(rt);
        let (ssh, session, version) = rt.block_on(start(target, options))?;
        let mut remote = SftpRemote {
            session,
            dir: target.dir.clone(),
            write_chunk: DEFAULT_CHUNK,
            read_chunk: DEFAULT_CHUNK,
            posix_rename: version.has("posix-rename@openssh.com"),
            _ssh: ssh,
            rt,
        };
        if version.has("limits@openssh.com") {
            let reply = remote.rt.block_on(remote.session.call("limits", RequestKind::Limits))?;
            let limits = match reply {
                Reply::Extended { data, .. } => Limits::decode(&data)
                    .map_err(|e| RemoteError::Protocol { host: target.host.clone(), reason: format!("limits reply: {e}") })?,
                other => return Err(remote.session.unexpected("limits", &other)),
            };
            let fit = |n: u64| if n == 0 { DEFAULT_CHUNK } else { u32::try_from(n).unwrap_or(MAX_CHUNK).clamp(1024, MAX_CHUNK) };
            remote.write_chunk = fit(limits.max_write);
            remote.read_chunk = fit(limits.max_read);
        }
        Ok(remote)
    }

    fn path(&self, name: &str) -> Result<Vec<u8>, RemoteError> {
        check_name(name)?;
        Ok(join(&self.dir, name))
    }

    async fn upload(&self, part: &[u8], name: &str, data: &mut dyn Read) -> Result<u64, RemoteError> {
        let s = &self.session;
        let flags = OpenFlags(OpenFlags::WRITE | OpenFlags::CREAT | OpenFlags::EXCL);
        let attrs = Attrs { permissions: Some(0o600), ..Attrs::default() };
        let handle = s.handle("creating", name, RequestKind::Open { path: part, flags, attrs }).await?;
        let written = self.write_all(&handle, name, data).await;
        let closed = match s.call("closing", RequestKind::Close { handle: &handle }).await {
            Ok(reply) => s.expect_ok("closing", name, reply),
            Err(e) => Err(e),
        };
        let written = written?;
        closed?;
        Ok(written)
    }

    async fn write_all(&self, handle: &[u8], name: &str, data: &mut dyn Read) -> Result<u64, RemoteError> {
        let s = &self.session;
        let mut queue = VecDeque::with_capacity(IN_FLIGHT);
        let mut offset = 0u64;
        let mut buf = vec![0u8; self.write_chunk as usize];
        loop {
            let n = fill(data, &mut buf).map_err(|source| RemoteError::Source { name: name.to_string(), source })?;
            if n == 0 {
                break;
            }
            let rx = s.send("writing", RequestKind::Write { handle, offset, data: &buf[..n] }).await?;
            queue.push_back(rx);
            offset += n as u64;
            if queue.len() >= IN_FLIGHT
                && let Some(rx) = queue.pop_front()
            {
                s.expect_ok("writing", name, s.wait("writing", rx).await?)?;
            }
        }
        while let Some(rx) = queue.pop_front() {
            s.expect_ok("writing", name, s.wait("writing", rx).await?)?;
        }
        Ok(offset)
    }

    async fn put_async(&self, name: &str, data: &mut dyn Read) -> Result<u64, RemoteError> {
        let target = self.path(name)?;
        let part = join(&self.dir, &part_name(name));
        let s = &self.session;
        let result = match self.upload(&part, name, data).await {
            Ok(n) => {
                let kind = if self.posix_rename {
                    RequestKind::PosixRename { from: &part, to: &target }
                } else {
                    RequestKind::Rename { from: &part, to: &target }
                };
                match s.call("renaming into place", kind).await {
                    Ok(reply) => s.expect_ok("renaming into place", name, reply).map(|()| n),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        if result.is_err() {
            // Best effort; the temporary never looks complete anyway.
            if let Ok(rx) = s.send("removing", RequestKind::Remove { path: &part }).await {
                let _ = rx.await;
            }
        }
        result
    }

    async fn list_async(&self) -> Result<Vec<Entry>, RemoteError> {
        let s = &self.session;
        let dir = String::from_utf8_lossy(&self.dir).into_owned();
        let handle = s.handle("listing", &dir, RequestKind::Opendir { path: &self.dir }).await?;
        let mut out = Vec::new();
        let result = loop {
            match s.call("listing", RequestKind::Readdir { handle: &handle }).await {
                Ok(Reply::Name { entries, .. }) => {
                    for e in entries {
                        let Ok(name) = String::from_utf8(e.filename) else { continue };
                        let regular = matches!(e.attrs.kind(), Some(FileKind::Regular) | None);
                        if regular && name != "." && name != ".." && !name.starts_with(PART_PREFIX) {
                            out.push(Entry { name, size: e.attrs.size.unwrap_or(0) });
                        }
                    }
                }
                Ok(Reply::Status { code: StatusCode::Eof, .. }) => break Ok(out),
                Ok(Reply::Status { code, message, .. }) => break Err(RemoteError::Status { op: "listing", name: dir.clone(), code, message }),
                Ok(other) => break Err(s.unexpected("listing", &other)),
                Err(e) => break Err(e),
            }
        };
        s.close_quietly(&handle).await;
        result
    }

    async fn create_dir_async(&self) -> Result<(), RemoteError> {
        let s = &self.session;
        let mut prefix: Vec<u8> = if self.dir.starts_with(b"/") { b"/".to_vec() } else { Vec::new() };
        for part in self.dir.split(|&b| b == b'/').filter(|p| !p.is_empty() && *p != b".") {
            if !prefix.is_empty() && !prefix.ends_with(b"/") {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(part);
            let shown = || String::from_utf8_lossy(&prefix).into_owned();
            let not_dir = |shown: String| RemoteError::Status {
                op: "creating the directory",
                name: shown,
                code: StatusCode::Failure,
                message: "exists and is not a directory".into(),
            };
            match s.stat(&prefix).await? {
                Some(a) if a.kind() == Some(FileKind::Directory) => continue,
                Some(_) => return Err(not_dir(shown())),
                None => {}
            }
            let reply = s.call("creating the directory", RequestKind::Mkdir { path: &prefix, attrs: Attrs::default() }).await?;
            if let Err(e) = s.expect_ok("creating the directory", &shown(), reply) {
                // Another client may have made it meanwhile.
                match s.stat(&prefix).await? {
                    Some(a) if a.kind() == Some(FileKind::Directory) => {}
                    _ => return Err(e),
                }
            }
        }
        Ok(())
    }

    async fn open_read(&self, name: &str) -> Result<(Vec<u8>, Option<u64>), RemoteError> {
        let path = self.path(name)?;
        let s = &self.session;
        let handle =
            s.handle("opening", name, RequestKind::Open { path: &path, flags: OpenFlags(OpenFlags::READ), attrs: Attrs::default() }).await?;
        let size = match s.call("opening", RequestKind::Fstat { handle: &handle }).await {
            Ok(Reply::Attrs { attrs, .. }) => attrs.size,
            _ => None,
        };
        Ok((handle, size))
    }
}

/// `dir/name`, with `.` meaning the login directory.
fn join(dir: &[u8], name: &str) -> Vec<u8> {
    if dir == b"." {
        return name.as_bytes().to_vec();
    }
    let mut p = dir.to_vec();
    if !p.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(name.as_bytes());
    p
}

/// Reads until `buf` is full or the source ends; returns the bytes read.
fn fill(data: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match data.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Connects and runs the SFTP handshake.
async fn start(t: &SshTarget, o: &SshOptions) -> Result<(Connection, Arc<Session>, ServerVersion), RemoteError> {
    let ssh = ssh::connect(t, o).await?;
    let ssh_err = |reason: String| RemoteError::Ssh { host: t.host.clone(), port: t.port, reason };
    let channel = ssh.channel_open_session().await.map_err(|e| ssh_err(format!("opening a session: {e}")))?;
    channel.request_subsystem(true, "sftp").await.map_err(|e| ssh_err(format!("starting sftp: {e}")))?;
    let (mut reader, mut writer) = tokio::io::split(channel.into_stream());
    let init = Request { id: 0, kind: RequestKind::Init { version: VERSION } }.encode();
    writer.write_all(&init).await.map_err(|e| ssh_err(format!("starting sftp: {e}")))?;
    writer.flush().await.map_err(|e| ssh_err(format!("starting sftp: {e}")))?;
    let protocol = |reason: String| RemoteError::Protocol { host: t.host.clone(), reason };
    let body = read_packet(&mut reader)
        .await
        .map_err(&protocol)?
        .ok_or_else(|| protocol("the server closed the channel instead of starting sftp (no sftp subsystem?)".into()))?;
    if body.first() != Some(&packet_type::VERSION) {
        return Err(protocol(format!("expected VERSION, got packet type {}", body[0])));
    }
    let version = ServerVersion::decode(&body).map_err(|e| protocol(format!("VERSION packet: {e}")))?;
    if version.version < VERSION {
        return Err(protocol(format!("the server speaks SFTP version {}, 3 is needed", version.version)));
    }
    let (packets, queue) = mpsc::channel(IN_FLIGHT * 2);
    let session = Arc::new(Session {
        host: t.host.clone(),
        packets,
        waiting: Mutex::new(Some(HashMap::new())),
        failure: Mutex::new(None),
        next_id: AtomicU32::new(1),
    });
    tokio::spawn(write_requests(writer, queue));
    tokio::spawn(read_replies(reader, session.clone()));
    Ok((ssh, session, version))
}

impl Remote for SftpRemote {
    fn list(&self) -> Result<Vec<Entry>, RemoteError> {
        self.rt.block_on(self.list_async())
    }

    fn put(&self, name: &str, data: &mut dyn Read) -> Result<u64, RemoteError> {
        self.rt.block_on(self.put_async(name, data))
    }

    fn get(&self, name: &str) -> Result<Box<dyn Read + Send>, RemoteError> {
        let (handle, size) = self.rt.block_on(self.open_read(name))?;
        Ok(Box::new(Download {
            rt: self.rt.clone(),
            session: self.session.clone(),
            name: name.to_string(),
            handle,
            size,
            next: 0,
            chunk: self.read_chunk,
            queue: VecDeque::with_capacity(IN_FLIGHT),
            buf: Vec::new(),
            pos: 0,
            eof: false,
        }))
    }

    fn delete(&self, name: &str) -> Result<(), RemoteError> {
        let path = self.path(name)?;
        let s = &self.session;
        self.rt.block_on(async {
            let reply = s.call("deleting", RequestKind::Remove { path: &path }).await?;
            s.expect_ok("deleting", name, reply)
        })
    }

    fn create_dir(&self) -> Result<(), RemoteError> {
        self.rt.block_on(self.create_dir_async())
    }
}

/// A streaming download with READ requests pipelined ahead of the reader.
struct Download {
    rt: Arc<tokio::runtime::Runtime>,
    session: Arc<Session>,
    name: String,
    handle: Vec<u8>,
    /// The size FSTAT gave: requests stop there (one more finds the end).
    size: Option<u64>,
    next: u64,
    chunk: u32,
    queue: VecDeque<(u64, u32, oneshot::Receiver<Reply>)>,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
}

impl Download {
    fn error(&self, code: StatusCode, message: String) -> RemoteError {
        RemoteError::Status { op: "reading", name: self.name.clone(), code, message }
    }

    /// The next block of the file into `buf`; `eof` at the end.
    async fn next_block(&mut self) -> Result<(), RemoteError> {
        let s = self.session.clone();
        while self.queue.len() < IN_FLIGHT && (self.queue.is_empty() || self.size.is_none_or(|size| self.next < size)) {
            let (offset, len) = (self.next, self.chunk);
            let rx = s.send("reading", RequestKind::Read { handle: &self.handle, offset, len }).await?;
            self.queue.push_back((offset, len, rx));
            self.next += u64::from(len);
        }
        let Some((offset, len, rx)) = self.queue.pop_front() else { return Ok(()) };
        let mut block = match s.wait("reading", rx).await? {
            Reply::Data { data, .. } => data,
            Reply::Status { code: StatusCode::Eof, .. } => {
                self.eof = true;
                return Ok(());
            }
            Reply::Status { code, message, .. } => return Err(self.error(code, message)),
            other => return Err(s.unexpected("reading", &other)),
        };
        if block.len() > len as usize {
            return Err(RemoteError::Protocol { host: s.host.clone(), reason: format!("{} bytes for a read of {len}", block.len()) });
        }
        // A short read is not the end: fetch the rest before the blocks
        // already requested behind it.
        while block.len() < len as usize && !block.is_empty() {
            let at = offset + block.len() as u64;
            let want = len - u32::try_from(block.len()).unwrap_or(len);
            match s.call("reading", RequestKind::Read { handle: &self.handle, offset: at, len: want }).await? {
                Reply::Data { data, .. } if !data.is_empty() && data.len() <= want as usize => block.extend_from_slice(&data),
                Reply::Status { code: StatusCode::Eof, .. } => break,
                Reply::Status { code, message, .. } => return Err(self.error(code, message)),
                other => return Err(s.unexpected("reading", &other)),
            }
        }
        if block.is_empty() {
            self.eof = true;
        }
        self.buf = block;
        self.pos = 0;
        Ok(())
    }
}

impl Read for Download {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.buf.len() {
            if self.eof || out.is_empty() {
                return Ok(0);
            }
            let rt = self.rt.clone();
            rt.block_on(self.next_block()).map_err(std::io::Error::other)?;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        // Replies still in flight are dropped on arrival; the handle is
        // closed in the background so dropping never blocks.
        let session = self.session.clone();
        let handle = std::mem::take(&mut self.handle);
        self.rt.spawn(async move { session.close_quietly(&handle).await });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(join(b".", "f"), b"f");
        assert_eq!(join(b"a/b", "f"), b"a/b/f");
        assert_eq!(join(b"a/b/", "f"), b"a/b/f");
        assert_eq!(join(b"/", "f"), b"/f");
        assert_eq!(join(b"/srv", "f"), b"/srv/f");
    }

    #[test]
    fn packets_are_bounded_before_allocation() {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let cases: [(&[u8], &str); 3] = [
            (&[0xff, 0xff, 0xff, 0xff], "the limit"),
            (&[0, 0, 0, 0], "reply packet of 0 bytes"),
            (&[0, 0, 0, 9, 101], "reading a reply of 9 bytes"),
        ];
        for (bytes, want) in cases {
            let err = rt.block_on(read_packet(&mut &bytes[..])).expect_err("refused");
            assert!(err.contains(want), "{err}");
        }
        assert_eq!(rt.block_on(read_packet(&mut &[][..])), Ok(None));
        assert_eq!(rt.block_on(read_packet(&mut &[0, 0, 0, 1, 7][..])), Ok(Some(vec![7])));
    }
}
