//! A bounded pipe between two threads of one process: a volume is sealed
//! (encrypted) on one thread while another uploads what comes out, so the
//! sealed bytes never touch the disk. Unlike an OS pipe, the reader can
//! tell a writer that finished from one that failed or was dropped part
//! way: only [`PipeWriter::finish`] makes the reader see an end, so a
//! sealing error can never pass for a short but complete upload. The
//! writer may be cloned: the encryptor consumes one clone when it ends its
//! message, and the other then says the pipe is finished.

use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Writes that may wait in the pipe before the writer blocks.
const DEPTH: usize = 16;

enum Piece {
    Data(Vec<u8>),
    End,
}

/// The writing end.
#[derive(Clone)]
pub(super) struct PipeWriter(SyncSender<Piece>);

/// The reading end.
pub(super) struct PipeReader {
    pieces: Receiver<Piece>,
    current: Vec<u8>,
    at: usize,
    ended: bool,
}

/// A new pipe.
pub(super) fn pipe() -> (PipeWriter, PipeReader) {
    let (tx, rx) = sync_channel(DEPTH);
    (
        PipeWriter(tx),
        PipeReader {
            pieces: rx,
            current: Vec::new(),
            at: 0,
            ended: false,
        },
    )
}

fn reader_gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped reading")
}

impl PipeWriter {
    /// Tells the reader that everything was written.
    pub(super) fn finish(self) -> io::Result<()> {
        self.0.send(Piece::End).map_err(|_| reader_gone())
    }
}

impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.0
            .send(Piece::Data(buf.to_vec()))
            .map_err(|_| reader_gone())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            if self.ended {
                return Ok(0);
            }
            match self.pieces.recv() {
                Ok(Piece::Data(data)) => {
                    self.current = data;
                    self.at = 0;
                }
                Ok(Piece::End) => self.ended = true,
                Err(_) => {
                    return Err(io::Error::other(
                        "the sealing of the volume stopped before its end",
                    ));
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_and_finished_is_read_to_its_end() {
        let (mut w, mut r) = pipe();
        let writer = std::thread::spawn(move || {
            for i in 0..100u8 {
                w.write_all(&[i; 1000]).unwrap();
            }
            w.finish().unwrap();
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        assert_eq!(got.len(), 100_000);
        assert!(
            got.chunks(1000)
                .enumerate()
                .all(|(i, c)| c.iter().all(|&b| usize::from(b) == i))
        );
    }

    #[test]
    fn a_writer_dropped_before_finishing_fails_the_read() {
        let (mut w, mut r) = pipe();
        w.write_all(b"half a volume").unwrap();
        drop(w);
        let mut got = Vec::new();
        let err = r.read_to_end(&mut got).unwrap_err();
        assert!(err.to_string().contains("stopped before its end"), "{err}");
    }

    #[test]
    fn a_reader_gone_fails_the_write() {
        let (mut w, r) = pipe();
        drop(r);
        assert_eq!(w.write(b"x").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }
}
