//! Reused packet buffers. Requests and replies of up to 256 KiB would
//! otherwise each cost a fresh mapping and its page faults.

use std::sync::Mutex;

pub(super) struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    /// Buffers kept for reuse; the rest are freed.
    keep: usize,
}

impl BufferPool {
    pub(super) fn new(keep: usize) -> Self {
        BufferPool { free: Mutex::new(Vec::new()), keep }
    }

    pub(super) fn take(&self) -> Vec<u8> {
        self.free.lock().ok().and_then(|mut v| v.pop()).unwrap_or_default()
    }

    pub(super) fn give(&self, mut buf: Vec<u8>) {
        buf.clear();
        if let Ok(mut v) = self.free.lock()
            && v.len() < self.keep
        {
            v.push(buf);
        }
    }
}
