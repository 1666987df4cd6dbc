//! The bytes of a regular file's entry as the volume writer pulls them:
//! the file itself, or its librsync delta against the previous signature;
//! either way the file's new signature is computed on the same single read.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::rc::Rc;

use coffer_rsync::{DeltaWriter, Signature, SignatureParams, SignatureWriter};

/// Reads `inner` unchanged and signs what passes.
pub(super) struct Signed<R> {
    inner: R,
    signature: SignatureWriter<Vec<u8>>,
}

impl<R: Read> Signed<R> {
    /// `stat_len` chooses the block length, as duplicity does from the size `stat` gave.
    pub(super) fn new(inner: R, stat_len: u64) -> Self {
        Signed { inner, signature: SignatureWriter::new(Vec::new(), SignatureParams::duplicity(stat_len)) }
    }

    /// The signature of everything read.
    pub(super) fn finish(self) -> io::Result<Vec<u8>> {
        self.signature.finish()
    }
}

impl<R: Read> Read for Signed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.signature.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Bytes the delta writer has produced and the volume writer not yet taken.
#[derive(Clone, Default)]
struct Pending(Rc<RefCell<VecDeque<u8>>>);

impl Write for Pending {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads `inner` and yields its delta against `old`, signing it on the way.
pub(super) struct Delta<'s, R> {
    inner: R,
    signature: SignatureWriter<Vec<u8>>,
    delta: Option<DeltaWriter<'s, Pending>>,
    pending: Pending,
    chunk: Vec<u8>,
}

impl<'s, R: Read> Delta<'s, R> {
    pub(super) fn new(inner: R, stat_len: u64, old: &'s Signature) -> Self {
        let pending = Pending::default();
        Delta {
            inner,
            signature: SignatureWriter::new(Vec::new(), SignatureParams::duplicity(stat_len)),
            delta: Some(DeltaWriter::new(old, pending.clone())),
            pending,
            chunk: vec![0; 64 * 1024],
        }
    }

    /// The new signature, once the delta has been read to its end.
    pub(super) fn finish(self) -> io::Result<Vec<u8>> {
        self.signature.finish()
    }
}

impl<R: Read> Read for Delta<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pending.0.borrow().is_empty() {
            let Some(delta) = self.delta.as_mut() else { return Ok(0) };
            let n = self.inner.read(&mut self.chunk)?;
            if n == 0 {
                if let Some(delta) = self.delta.take() {
                    delta.finish()?;
                }
                continue;
            }
            self.signature.write_all(&self.chunk[..n])?;
            delta.write_all(&self.chunk[..n])?;
        }
        let mut pending = self.pending.0.borrow_mut();
        let n = buf.len().min(pending.len());
        for (slot, byte) in buf.iter_mut().zip(pending.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_read_through_patches_back_to_the_new_file_and_signs_it() {
        let old: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut new = old.clone();
        new.splice(1000..1000, b"inserted".iter().copied());
        new.truncate(250_000);
        let mut old_sig = Vec::new();
        coffer_rsync::write_signature(&old[..], SignatureParams::duplicity(old.len() as u64), &mut old_sig).unwrap();
        let old_sig = Signature::from_bytes(&old_sig, 1 << 20).unwrap();
        let mut reader = Delta::new(&new[..], new.len() as u64, &old_sig);
        let mut delta = Vec::new();
        reader.read_to_end(&mut delta).unwrap();
        let new_sig = reader.finish().unwrap();
        assert!(delta.len() < new.len() / 10, "mostly copies: {} bytes", delta.len());
        let mut patched = Vec::new();
        coffer_rsync::apply_patch(std::io::Cursor::new(&old), &delta[..], &mut patched, coffer_rsync::PatchLimits { max_output: 1 << 20 }).unwrap();
        assert_eq!(patched, new);
        let mut expected = Vec::new();
        coffer_rsync::write_signature(&new[..], SignatureParams::duplicity(new.len() as u64), &mut expected).unwrap();
        assert_eq!(new_sig, expected);
    }

    #[test]
    fn a_signed_read_passes_the_bytes_and_signs_them() {
        let data = vec![42u8; 100_000];
        let mut reader = Signed::new(&data[..], data.len() as u64);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        let mut expected = Vec::new();
        coffer_rsync::write_signature(&data[..], SignatureParams::duplicity(data.len() as u64), &mut expected).unwrap();
        assert_eq!(reader.finish().unwrap(), expected);
    }
}
