//! Test helpers: SFTP packets by hand, and a session served over real
//! pipes, as the worker's stdout is.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;

use coffer_storage::UserJail;

use super::{SessionContext, serve_with};
use crate::profile::Profile;

/// A packet of type `kind` with an optional request id and the given fields.
pub(super) fn packet(kind: u8, id: Option<u32>, fields: &[&[u8]]) -> Vec<u8> {
    let mut body = vec![kind];
    if let Some(id) = id {
        body.extend_from_slice(&id.to_be_bytes());
    }
    for f in fields {
        body.extend_from_slice(f);
    }
    let mut p = u32::try_from(body.len()).expect("test fixture").to_be_bytes().to_vec();
    p.extend_from_slice(&body);
    p
}

/// An SFTP string: length, then bytes.
pub(super) fn string(b: &[u8]) -> Vec<u8> {
    let mut v = u32::try_from(b.len()).expect("test fixture").to_be_bytes().to_vec();
    v.extend_from_slice(b);
    v
}

fn reply(r: &mut impl Read) -> Vec<u8> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).expect("test fixture");
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    r.read_exact(&mut body).expect("test fixture");
    body
}

/// An SFTP session of a full key over real pipes, past INIT.
pub(super) struct PipeSession {
    requests: std::io::PipeWriter,
    replies: std::io::PipeReader,
    server: std::thread::JoinHandle<io::Result<()>>,
}

impl PipeSession {
    pub(super) fn start(dir: &std::path::Path, pipe_grow_limit: usize) -> Self {
        let jail = UserJail::open(dir).expect("test fixture");
        let ctx = SessionContext { jail, user: "t".into(), profile: Profile::Full, quota: Box::new(crate::quota::Unlimited) };
        let (req_r, requests) = std::io::pipe().expect("test fixture");
        let (replies, rep_w) = std::io::pipe().expect("test fixture");
        let out = File::from(OwnedFd::from(rep_w));
        let splice_to = Some(OwnedFd::from(out.try_clone().expect("test fixture")));
        let server = std::thread::spawn(move || serve_with(ctx, req_r, out, splice_to, pipe_grow_limit));
        let mut s = PipeSession { requests, replies, server };
        s.send(&packet(1, None, &[&3u32.to_be_bytes()]));
        assert_eq!(s.reply()[0], 2, "VERSION");
        s
    }

    pub(super) fn send(&mut self, p: &[u8]) {
        self.requests.write_all(p).expect("test fixture");
    }

    /// The next reply's body (type first).
    pub(super) fn reply(&mut self) -> Vec<u8> {
        reply(&mut self.replies)
    }

    /// OPEN with SSH_FXF_* flags; returns the handle.
    pub(super) fn open(&mut self, path: &[u8], flags: u32) -> Vec<u8> {
        self.send(&packet(3, Some(1), &[&string(path), &flags.to_be_bytes(), &0u32.to_be_bytes()]));
        let h = self.reply();
        assert_eq!(h[0], 102, "HANDLE");
        h[9..].to_vec()
    }

    pub(super) fn read(&mut self, id: u32, handle: &[u8], offset: u64, len: u32) {
        self.send(&packet(5, Some(id), &[&string(handle), &offset.to_be_bytes(), &len.to_be_bytes()]));
    }

    /// Ends the input and waits for the server to finish cleanly.
    pub(super) fn finish(self) {
        drop(self.requests);
        self.server.join().expect("the session thread panicked").expect("the session failed");
    }
}
