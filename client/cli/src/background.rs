//! A volume fetched, checked and opened (decrypted or inflated) on a thread
//! of its own, so that work overlaps with the restore writing files. The
//! volume being read gets its bytes a few chunks at a time, so its thread
//! never runs far ahead; a volume started before it is needed writes them
//! to an unlinked spool file instead, so it can be decrypted to its end on
//! another core while the volume before it is still being read (OpenPGP
//! decryption is one stream, so volumes are the unit that spreads over
//! cores).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Condvar, Mutex};

use crate::backup::Opener;

/// Plain bytes the thread hands over at a time, and how many chunks may
/// wait for a reader that is not spooled.
const CHUNK: usize = 256 * 1024;
const CHUNKS_AHEAD: usize = 8;

/// Where the thread's bytes wait for the reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Buffer {
    /// A few chunks in memory: the thread keeps pace with the reader.
    Chunks,
    /// An unlinked temporary file (in `TMPDIR`): the thread runs to the end.
    Spool,
}

/// A volume's plain bytes, produced by a thread of its own.
pub(crate) enum Background {
    Chunks {
        chunks: Receiver<io::Result<Vec<u8>>>,
        current: Vec<u8>,
        at: usize,
    },
    Spool {
        file: File,
        at: u64,
        spool: Arc<Spool>,
    },
}

/// What a spooling thread has written so far, and how it ended.
#[derive(Default)]
pub(crate) struct Spool {
    progress: Mutex<Progress>,
    grew: Condvar,
    /// The reader is gone: the thread stops.
    abandoned: AtomicBool,
}

#[derive(Default)]
struct Progress {
    written: u64,
    end: Option<io::Result<()>>,
}

impl Background {
    /// Starts the thread that opens `stream` (the volume `name` as stored).
    pub(crate) fn start(
        opener: Opener<'static>,
        name: String,
        stream: Box<dyn Read + Send>,
        buffer: Buffer,
    ) -> io::Result<Background> {
        match buffer {
            Buffer::Chunks => {
                let (tx, chunks) = sync_channel(CHUNKS_AHEAD);
                std::thread::spawn(move || {
                    let end = pump(&opener, &name, stream, |chunk| {
                        tx.send(Ok(chunk.to_vec())).is_ok()
                    });
                    // A clean end is the channel closing.
                    if let Err(e) = end {
                        let _ = tx.send(Err(e));
                    }
                });
                Ok(Background::Chunks {
                    chunks,
                    current: Vec::new(),
                    at: 0,
                })
            }
            Buffer::Spool => {
                let file = tempfile::tempfile()?;
                let writer = file.try_clone()?;
                let spool = Arc::new(Spool::default());
                let shared = Arc::clone(&spool);
                std::thread::spawn(move || {
                    let mut offset = 0u64;
                    let mut failed = None;
                    let end = pump(&opener, &name, stream, |chunk| {
                        if shared.abandoned.load(Ordering::Relaxed) {
                            return false;
                        }
                        if let Err(e) = writer.write_all_at(chunk, offset) {
                            failed =
                                Some(io::Error::new(e.kind(), format!("spooling {name}: {e}")));
                            return false;
                        }
                        offset += chunk.len() as u64;
                        shared.advance(offset, None);
                        true
                    });
                    shared.advance(offset, Some(failed.map_or(end, Err)));
                });
                Ok(Background::Spool { file, at: 0, spool })
            }
        }
    }
}

/// Opens the volume and hands its plain bytes to `deliver` until it
/// returns false; the volume's end only after the opener checked the
/// whole message.
fn pump(
    opener: &Opener<'static>,
    name: &str,
    stream: Box<dyn Read + Send>,
    mut deliver: impl FnMut(&[u8]) -> bool,
) -> io::Result<()> {
    let mut plain = opener
        .open(name, stream)
        .map_err(|e| io::Error::other(format!("{e:#}")))?;
    let mut chunk = vec![0; CHUNK];
    loop {
        match plain.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                if !deliver(&chunk[..n]) {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

impl Spool {
    fn advance(&self, written: u64, end: Option<io::Result<()>>) {
        if let Ok(mut p) = self.progress.lock() {
            p.written = written;
            if end.is_some() {
                p.end = end;
            }
        }
        self.grew.notify_all();
    }

    /// Bytes readable from `at` on (waiting for the thread while there are
    /// none), or the thread's end: `Ok(0)` when clean.
    fn available(&self, at: u64) -> io::Result<u64> {
        let gone = || io::Error::other("a volume's reader thread panicked");
        let mut p = self.progress.lock().map_err(|_| gone())?;
        loop {
            if p.written > at {
                return Ok(p.written - at);
            }
            match p.end.take() {
                Some(Ok(())) => {
                    p.end = Some(Ok(()));
                    return Ok(0);
                }
                Some(Err(e)) => {
                    p.end = Some(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
                None => p = self.grew.wait(p).map_err(|_| gone())?,
            }
        }
    }
}

impl Read for Background {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Background::Chunks {
                chunks,
                current,
                at,
            } => {
                while *at == current.len() {
                    match chunks.recv() {
                        Ok(chunk) => {
                            *current = chunk?;
                            *at = 0;
                        }
                        // The thread finished without an error: the volume's end.
                        Err(_) => return Ok(0),
                    }
                }
                let n = buf.len().min(current.len() - *at);
                buf[..n].copy_from_slice(&current[*at..*at + n]);
                *at += n;
                Ok(n)
            }
            Background::Spool { file, at, spool } => {
                let ready = spool.available(*at)?;
                let want = buf.len().min(usize::try_from(ready).unwrap_or(usize::MAX));
                let n = file.read_at(&mut buf[..want], *at)?;
                *at += n as u64;
                Ok(n)
            }
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Background::Spool { spool, .. } = self {
            spool.abandoned.store(true, Ordering::Relaxed);
        }
    }
}
