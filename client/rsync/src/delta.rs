//! Deltas: the commands that rebuild a new file from the basis a signature
//! describes (COPY a run of basis blocks) and from the new bytes themselves
//! (LITERAL).
//!
//! The matching follows librsync 2.x's `delta.c` step for step, so the
//! output equals `rdiff delta`'s: a window of one block slides over the new
//! file; where its sums match a basis block the block is taken whole and the
//! window restarts after it, else one byte becomes literal and the window
//! rolls on; adjacent matches of consecutive basis blocks merge into one
//! COPY; literal runs are cut at 32 KiB; at the end of the file the window
//! shrinks byte by byte so the basis's short last block can still match.
//!
//! Command encoding (librsync's `prototab`): END `0x00`; LITERAL of 1 to 64
//! bytes `0x01..=0x40`, longer ones `0x41..=0x44` followed by a 1, 2, 4 or 8
//! byte length; COPY `0x45 + 4 * w + l` followed by the offset in `1 << w`
//! bytes and the length in `1 << l` bytes; every integer big-endian in the
//! fewest of those widths.

use std::io::{self, Read, Write};

use crate::error::DeltaError;
use crate::rollsum::Rollsum;
use crate::signature::Signature;
use crate::DELTA_MAGIC;

/// librsync's `max_miss`: the longest LITERAL the matcher emits.
const MAX_LITERAL: usize = 32 * 1024;

/// The most input taken in one `write` call, so memory stays bounded
/// whatever slice a caller hands over.
const INPUT_CHUNK: usize = 64 * 1024;

/// Encoded commands are handed to the output in pieces of about this size.
const WRITE_BATCH: usize = 64 * 1024;

/// What a delta holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeltaStats {
    /// Bytes of the new file.
    pub input_len: u64,
    /// Bytes of the new file sent as LITERAL data.
    pub literal_bytes: u64,
    /// Bytes of the new file sent as COPY commands.
    pub copied_bytes: u64,
    /// Bytes of the delta.
    pub delta_len: u64,
}

/// Writes a delta of the bytes written into it against `signature`.
///
/// Memory: 32 KiB of pending literal, one block, one 64 KiB input chunk and
/// a 64 KiB output batch, plus the signature's own index. An empty signature
/// (an empty basis) gives LITERAL commands of 32 KiB; `rdiff` cuts those
/// where its read buffer ends, so only there the bytes differ from rdiff's.
pub struct DeltaWriter<'s, W: Write> {
    signature: &'s Signature,
    out: W,
    pending_out: Vec<u8>,
    /// New-file bytes not yet sent or dropped; `buf[start..pos]` is the
    /// literal run being gathered, `buf[pos..]` is not yet scanned.
    buf: Vec<u8>,
    start: usize,
    pos: usize,
    /// Weak sum of the window `buf[pos..pos + sum.count()]`; count 0: none yet.
    sum: Rollsum,
    /// A COPY being extended: basis offset and length.
    copy: Option<(u64, u64)>,
    stats: DeltaStats,
}

impl<'s, W: Write> DeltaWriter<'s, W> {
    /// A delta against `signature`, written to `out`.
    pub fn new(signature: &'s Signature, out: W) -> Self {
        let block_len = signature.params().block_len() as usize;
        let mut pending_out = Vec::with_capacity(WRITE_BATCH + MAX_LITERAL + 16);
        pending_out.extend_from_slice(&DELTA_MAGIC.to_be_bytes());
        Self {
            signature,
            out,
            pending_out,
            buf: Vec::with_capacity(MAX_LITERAL + block_len + INPUT_CHUNK),
            start: 0,
            pos: 0,
            sum: Rollsum::default(),
            copy: None,
            stats: DeltaStats::default(),
        }
    }

    /// Matches what is left, writes the END command, and returns the output
    /// with what the delta holds.
    pub fn finish(mut self) -> io::Result<(W, DeltaStats)> {
        if self.signature.block_count() == 0 {
            self.pos = self.buf.len();
        }
        let block_len = self.signature.params().block_len() as usize;
        while self.pos < self.buf.len() {
            if self.sum.count() == 0 {
                let len = block_len.min(self.buf.len() - self.pos);
                self.sum = Rollsum::of(&self.buf[self.pos..self.pos + len]);
            }
            let len = self.sum.count();
            let window = &self.buf[self.pos..self.pos + len];
            match self.signature.find_block(self.sum.digest(), window) {
                Some(block) => {
                    self.append_copy(u64::from(block) * block_len as u64, len);
                    self.sum = Rollsum::default();
                }
                None => {
                    self.sum.rollout(self.buf[self.pos]);
                    self.append_miss();
                }
            }
        }
        self.flush_command();
        self.pending_out.push(0);
        self.stats.delta_len += self.pending_out.len() as u64;
        self.out.write_all(&self.pending_out)?;
        self.pending_out.clear();
        self.out.flush()?;
        Ok((self.out, self.stats))
    }

    /// Slides the window over every position that has a full block and one
    /// more byte after it (librsync decides nothing before that byte is there).
    fn scan(&mut self) {
        let block_len = self.signature.params().block_len() as usize;
        if self.signature.block_count() == 0 {
            // Nothing can match: every byte is literal.
            self.pos = self.buf.len();
            while self.pos - self.start > MAX_LITERAL {
                self.emit_literal(self.start + MAX_LITERAL);
            }
            return;
        }
        while self.pos + block_len < self.buf.len() {
            if self.sum.count() == 0 {
                self.sum = Rollsum::of(&self.buf[self.pos..self.pos + block_len]);
            }
            if self.copy.is_none() {
                self.skip_misses(block_len);
                if self.pos + block_len >= self.buf.len() {
                    break;
                }
            }
            let window = &self.buf[self.pos..self.pos + block_len];
            match self.signature.find_block(self.sum.digest(), window) {
                Some(block) => {
                    self.append_copy(u64::from(block) * block_len as u64, block_len);
                    self.sum = Rollsum::default();
                }
                None => {
                    self.sum.rotate(self.buf[self.pos], self.buf[self.pos + block_len]);
                    self.append_miss();
                }
            }
        }
    }

    /// The fast path of [`scan`](Self::scan) through new bytes: while no COPY
    /// is pending and the literal run is under its cap, a miss only rolls the
    /// window on, so roll it until a weak sum may match. Same decisions as
    /// the general step, without its bookkeeping per byte.
    fn skip_misses(&mut self, block_len: usize) {
        let end = (self.buf.len() - block_len).min(self.start + MAX_LITERAL);
        let mut pos = self.pos;
        let mut sum = self.sum;
        let (signature, buf) = (self.signature, &self.buf);
        while pos < end && !signature.may_have_weak(sum.digest()) {
            sum.rotate(buf[pos], buf[pos + block_len]);
            pos += 1;
        }
        self.stats.input_len += (pos - self.pos) as u64;
        self.pos = pos;
        self.sum = sum;
    }

    /// The window at `pos` matched `len` basis bytes at `basis_pos`.
    fn append_copy(&mut self, basis_pos: u64, len: usize) {
        match &mut self.copy {
            Some((from, copied)) if *from + *copied == basis_pos => *copied += len as u64,
            _ => {
                self.flush_command();
                self.copy = Some((basis_pos, len as u64));
            }
        }
        self.pos += len;
        self.start = self.pos;
        self.stats.input_len += len as u64;
    }

    /// The byte at `pos` matched nothing.
    fn append_miss(&mut self) {
        if self.copy.is_some() || self.pos - self.start >= MAX_LITERAL {
            self.flush_command();
        }
        self.pos += 1;
        self.stats.input_len += 1;
    }

    /// Emits the COPY being extended or the literal run gathered so far.
    fn flush_command(&mut self) {
        if let Some((pos, len)) = self.copy.take() {
            let (pos_width, pos_code) = width(pos);
            let (len_width, len_code) = width(len);
            self.pending_out.push(0x45 + 4 * pos_code + len_code);
            self.pending_out.extend_from_slice(&pos.to_be_bytes()[8 - pos_width..]);
            self.pending_out.extend_from_slice(&len.to_be_bytes()[8 - len_width..]);
            self.stats.copied_bytes += len;
        } else if self.pos > self.start {
            self.emit_literal(self.pos);
        }
    }

    /// Emits `buf[start..end]` as one LITERAL.
    fn emit_literal(&mut self, end: usize) {
        let len = end - self.start;
        if len <= 64 {
            self.pending_out.push(len as u8);
        } else {
            let (len_width, len_code) = width(len as u64);
            self.pending_out.push(0x41 + len_code);
            self.pending_out.extend_from_slice(&(len as u64).to_be_bytes()[8 - len_width..]);
        }
        self.pending_out.extend_from_slice(&self.buf[self.start..end]);
        self.stats.literal_bytes += len as u64;
        self.start = end;
    }
}

impl<W: Write> Write for DeltaWriter<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        // Drop what has been sent or copied, once per call rather than per command.
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.pos -= self.start;
            self.start = 0;
        }
        let take = data.len().min(INPUT_CHUNK);
        self.buf.extend_from_slice(&data[..take]);
        self.scan();
        if self.pending_out.len() >= WRITE_BATCH {
            self.stats.delta_len += self.pending_out.len() as u64;
            self.out.write_all(&self.pending_out)?;
            self.pending_out.clear();
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stats.delta_len += self.pending_out.len() as u64;
        self.out.write_all(&self.pending_out)?;
        self.pending_out.clear();
        self.out.flush()
    }
}

/// The fewest of 1, 2, 4 or 8 bytes that hold `value`, and that width's code (0 to 3).
fn width(value: u64) -> (usize, u8) {
    if value <= 0xff {
        (1, 0)
    } else if value <= 0xffff {
        (2, 1)
    } else if value <= 0xffff_ffff {
        (4, 2)
    } else {
        (8, 3)
    }
}

/// Writes a delta of everything `input` yields against `signature` to `out`.
pub fn write_delta<R: Read, W: Write>(signature: &Signature, mut input: R, out: W) -> Result<DeltaStats, DeltaError> {
    let mut buf = vec![0; INPUT_CHUNK];
    let mut writer = DeltaWriter::new(signature, out);
    let mut offset = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(DeltaError::ReadInput { offset, source }),
        };
        writer.write_all(&buf[..n]).map_err(|source| DeltaError::Write { source })?;
        offset += n as u64;
    }
    let (_, stats) = writer.finish().map_err(|source| DeltaError::Write { source })?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SignatureParams, write_signature};

    fn signature(basis: &[u8], block_len: u32) -> Signature {
        let mut bytes = Vec::new();
        write_signature(basis, SignatureParams::new(block_len, 8).expect("valid"), &mut bytes).expect("memory");
        Signature::from_bytes(&bytes, u64::MAX).expect("own signature")
    }

    fn delta(sig: &Signature, new: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_delta(sig, new, &mut out).expect("memory");
        out
    }

    #[test]
    fn command_encodings() {
        let magic = DELTA_MAGIC.to_be_bytes().to_vec();
        let empty = signature(b"", 4);
        let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (vec![], vec![0]),
            (vec![9], vec![1, 9, 0]),
            (vec![5; 64], [vec![64], vec![5; 64], vec![0]].concat()),
            (vec![5; 65], [vec![0x41, 65], vec![5; 65], vec![0]].concat()),
            (vec![5; 256], [vec![0x42, 1, 0], vec![5; 256], vec![0]].concat()),
            (vec![5; 32768], [vec![0x42, 0x80, 0], vec![5; 32768], vec![0]].concat()),
            (vec![5; 32769], [vec![0x42, 0x80, 0], vec![5; 32768], vec![1, 5], vec![0]].concat()),
        ];
        for (new, commands) in cases {
            assert_eq!(delta(&empty, &new), [magic.clone(), commands].concat(), "{} literal bytes", new.len());
        }
    }

    #[test]
    fn copies_merge_and_pick_their_width() {
        let basis: Vec<u8> = (0..70_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let sig = signature(&basis, 256);
        let magic = DELTA_MAGIC.to_be_bytes().to_vec();
        // Whole basis: one COPY from 0 of 70,000 bytes (offset in 1 byte, length in 4).
        assert_eq!(delta(&sig, &basis), [magic.clone(), vec![0x47, 0, 0, 1, 0x11, 0x70, 0]].concat());
        // Two blocks from offset 512: 2-byte offset, 2-byte length.
        assert_eq!(delta(&sig, &basis[512..1024]), [magic.clone(), vec![0x4a, 2, 0, 2, 0, 0]].concat());
        // A block at a 4-byte offset: 65,536 = block 256.
        assert_eq!(delta(&sig, &basis[65_536..65_792]), [magic, vec![0x4e, 0, 1, 0, 0, 1, 0, 0]].concat());
    }

    #[test]
    fn the_short_last_block_matches_at_the_end() {
        let basis = b"0123456789abc";
        let sig = signature(basis, 4);
        // "xyz" + the last block "c": literal "xyz", COPY 12+1.
        let got = delta(&sig, b"xyzc");
        assert_eq!(got, [DELTA_MAGIC.to_be_bytes().to_vec(), vec![3, b'x', b'y', b'z', 0x45, 12, 1, 0]].concat());
    }

    #[test]
    fn pieces_of_any_size_give_the_same_delta() {
        let basis: Vec<u8> = (0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        let mut new = basis.clone();
        new.splice(3000..3000, b"inserted".iter().copied());
        new.drain(9000..9100);
        let sig = signature(&basis, 128);
        let whole = delta(&sig, &new);
        for piece in [1, 7, 128, 129, 5000] {
            let mut writer = DeltaWriter::new(&sig, Vec::new());
            for chunk in new.chunks(piece) {
                writer.write_all(chunk).expect("memory");
            }
            let (got, stats) = writer.finish().expect("memory");
            assert_eq!(got, whole, "pieces of {piece}");
            assert_eq!(stats.input_len, new.len() as u64);
            assert_eq!(stats.literal_bytes + stats.copied_bytes, new.len() as u64);
            assert_eq!(stats.delta_len, whole.len() as u64);
        }
    }
}
