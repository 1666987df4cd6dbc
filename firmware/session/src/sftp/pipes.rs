//! Pipes that carry a download past this process: a READ splices file
//! pages into a pooled pipe, the writer splices them on into the output.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Pipes one session may hold at once.
const MAX_PIPES: usize = 16;
/// Bytes a pipe may grow to (the kernel's pipe-max-size for unprivileged users).
pub(super) const PIPE_GROW_LIMIT: usize = 1 << 20;

/// A DATA reply waits in the pipe it was spliced into, never in memory.
pub(super) struct SplicePipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl SplicePipe {
    /// Moves `len` bytes from the pipe to `to`; false when the output failed
    /// (the stream is then cut mid-packet, so the session ends).
    pub(super) fn splice_out(&self, to: &OwnedFd, len: usize) -> bool {
        let mut left = len;
        while left > 0 {
            match rustix::pipe::splice(&self.read, None, to, None, left, rustix::pipe::SpliceFlags::MORE) {
                Ok(0) => return false,
                Ok(n) => left -= n,
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => return false,
            }
        }
        true
    }
}

/// Pipes for spliced READs, made on demand and reused. Bounded, because
/// every pipe holds two descriptors and counts against the user's pipe
/// pages (16 pipes of 256 KiB are 1024 of the default 16384 per user); a
/// READ that finds none free is copied instead.
pub(super) struct PipePool {
    free: Mutex<Vec<SplicePipe>>,
    made: AtomicUsize,
    /// Cleared when the file system cannot splice: every READ copies then.
    works: AtomicBool,
    /// Bytes a pipe may grow to.
    grow_limit: usize,
}

impl PipePool {
    pub(super) fn new(grow_limit: usize) -> Self {
        PipePool { free: Mutex::new(Vec::new()), made: AtomicUsize::new(0), works: AtomicBool::new(true), grow_limit }
    }

    pub(super) fn take(&self) -> Option<SplicePipe> {
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
    pub(super) fn give(&self, pipe: SplicePipe) {
        if let Ok(mut v) = self.free.lock() {
            v.push(pipe);
        }
    }

    /// Closes a pipe that may still hold bytes, making room for a new one.
    pub(super) fn discard(&self, pipe: SplicePipe) {
        drop(pipe);
        self.made.fetch_sub(1, Ordering::Relaxed);
    }

    /// Splices up to `len` bytes of `file` at `offset` into the (empty) pipe,
    /// growing the pipe to fit when the kernel allows. Returns the bytes moved
    /// (0 at end of file), or `None` when nothing could be spliced.
    pub(super) fn splice_in(&self, pipe: &mut SplicePipe, file: &File, offset: u64, len: usize) -> Option<usize> {
        use rustix::io::Errno;
        use rustix::pipe::{SpliceFlags, fcntl_setpipe_size, splice};
        // A read that starts inside a page may need one slot more than this;
        // the copied tail takes that last piece.
        let wanted = len.next_power_of_two().min(self.grow_limit);
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
                        self.works.store(false, Ordering::Relaxed);
                    }
                    return (filled > 0).then_some(filled);
                }
            }
        }
        Some(filled)
    }
}
