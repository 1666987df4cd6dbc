//! Signatures: writing them from a file's bytes, and reading them back (from
//! a sigtar that came from a server) into a form deltas can be matched
//! against.
//!
//! Format (librsync, all integers big-endian): magic, block length, strong
//! sum length, then for each block of the file (the last one may be short)
//! its 4-byte rollsum and the first `strong_len` bytes of its MD4 digest.

use std::io::{self, Read, Write};

use md4::{Digest, Md4};

use crate::error::SignatureError;
use crate::index::BlockIndex;
use crate::rollsum::Rollsum;
use crate::{MAX_BLOCK_LEN, MD4_SIG_MAGIC, MD4_SUM_LEN};

/// duplicity's default `--max-blocksize`.
pub const DUPLICITY_MAX_BLOCK_LEN: u32 = 2048;

/// The strong sum length duplicity asks librsync for.
pub const DUPLICITY_STRONG_LEN: u8 = 8;

/// Length of the header: magic, block length, strong sum length.
const HEADER_LEN: usize = 12;

/// Signature records are gathered and written in pieces of about this size,
/// so an unbuffered writer is not called once per block.
const WRITE_BATCH: usize = 64 * 1024;

/// The most blocks a signature read back may hold: block numbers stay `u32`
/// and the index's arithmetic cannot overflow.
const MAX_BLOCKS: u64 = 1 << 28;

/// duplicity's block length for a file of `file_len` bytes (`get_block_size`
/// in duplicity's `diffdir.py`): 512 below 1,024,000 bytes, else the length
/// divided by 2000 rounded down to a multiple of 512, capped at
/// `max_block_len` (`--max-blocksize`, [`DUPLICITY_MAX_BLOCK_LEN`] by default).
pub fn duplicity_block_len(file_len: u64, max_block_len: u32) -> u32 {
    if file_len < 1_024_000 {
        return 512;
    }
    let rounded = file_len / (2000 * 512) * 512;
    u32::try_from(rounded).unwrap_or(u32::MAX).min(max_block_len)
}

/// The shape of a signature: block length and strong sum length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignatureParams {
    block_len: u32,
    strong_len: u8,
}

impl SignatureParams {
    /// Any valid shape: block length in `1..=MAX_BLOCK_LEN`, strong sum length in `1..=16`.
    pub fn new(block_len: u32, strong_len: u8) -> Result<Self, SignatureError> {
        if block_len == 0 || block_len > MAX_BLOCK_LEN {
            return Err(SignatureError::BlockLen { found: block_len });
        }
        if strong_len == 0 || usize::from(strong_len) > MD4_SUM_LEN {
            return Err(SignatureError::StrongLen { found: u32::from(strong_len) });
        }
        Ok(Self { block_len, strong_len })
    }

    /// What duplicity asks for when it signs a file of `file_len` bytes with
    /// the default `--max-blocksize`.
    pub fn duplicity(file_len: u64) -> Self {
        Self { block_len: duplicity_block_len(file_len, DUPLICITY_MAX_BLOCK_LEN), strong_len: DUPLICITY_STRONG_LEN }
    }

    /// Bytes per block (the last block of a file may be shorter).
    pub fn block_len(&self) -> u32 {
        self.block_len
    }

    /// Bytes of each block's MD4 digest that are kept.
    pub fn strong_len(&self) -> u8 {
        self.strong_len
    }

    /// The length of the signature of a file of `file_len` bytes.
    pub fn signature_len(&self, file_len: u64) -> u64 {
        let blocks = file_len.div_ceil(u64::from(self.block_len));
        HEADER_LEN as u64 + blocks * (4 + u64::from(self.strong_len))
    }

    fn header(&self) -> [u8; HEADER_LEN] {
        let mut header = [0; HEADER_LEN];
        header[..4].copy_from_slice(&MD4_SIG_MAGIC.to_be_bytes());
        header[4..8].copy_from_slice(&self.block_len.to_be_bytes());
        header[8..].copy_from_slice(&u32::from(self.strong_len).to_be_bytes());
        header
    }
}

/// The first `MD4_SUM_LEN` bytes of MD4 over `block`.
pub(crate) fn strong_sum(block: &[u8]) -> [u8; MD4_SUM_LEN] {
    Md4::digest(block).into()
}

/// Writes a signature of the bytes written into it, as they arrive: the
/// client reads a file once and feeds the same bytes to the archive and to
/// this. Memory: one block plus a 64 KiB output batch.
pub struct SignatureWriter<W: Write> {
    out: W,
    params: SignatureParams,
    /// The start of a block whose remaining bytes have not arrived yet.
    partial: Vec<u8>,
    /// Header and records not yet handed to `out`.
    pending: Vec<u8>,
}

impl<W: Write> SignatureWriter<W> {
    /// A writer whose signature goes to `out` (nothing is written before the
    /// first flush or [`finish`](Self::finish)).
    pub fn new(out: W, params: SignatureParams) -> Self {
        let mut pending = Vec::with_capacity(WRITE_BATCH + HEADER_LEN);
        pending.extend_from_slice(&params.header());
        Self { out, params, partial: Vec::with_capacity(params.block_len as usize), pending }
    }

    /// Signs the short last block, if any, writes everything and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.partial.is_empty() {
            push_record(&mut self.pending, self.params.strong_len, &self.partial);
            self.partial.clear();
        }
        self.out.write_all(&self.pending)?;
        self.pending.clear();
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for SignatureWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let block_len = self.params.block_len as usize;
        let strong_len = self.params.strong_len;
        let mut rest = data;
        if !self.partial.is_empty() {
            let take = (block_len - self.partial.len()).min(rest.len());
            self.partial.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.partial.len() == block_len {
                push_record(&mut self.pending, strong_len, &self.partial);
                self.partial.clear();
            }
        }
        let mut blocks = rest.chunks_exact(block_len);
        for block in &mut blocks {
            push_record(&mut self.pending, strong_len, block);
        }
        self.partial.extend_from_slice(blocks.remainder());
        if self.pending.len() >= WRITE_BATCH {
            self.out.write_all(&self.pending)?;
            self.pending.clear();
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.write_all(&self.pending)?;
        self.pending.clear();
        self.out.flush()
    }
}

fn push_record(pending: &mut Vec<u8>, strong_len: u8, block: &[u8]) {
    pending.extend_from_slice(&Rollsum::of(block).digest().to_be_bytes());
    pending.extend_from_slice(&strong_sum(block)[..usize::from(strong_len)]);
}

/// Writes the signature of everything `input` yields to `out`; returns the
/// input's length.
pub fn write_signature<R: Read, W: Write>(
    mut input: R,
    params: SignatureParams,
    out: W,
) -> Result<u64, SignatureError> {
    // A whole number of blocks per read, so blocks rarely straddle reads.
    let block_len = params.block_len as usize;
    let mut buf = vec![0; block_len * (128 * 1024 / block_len).max(1)];
    let mut writer = SignatureWriter::new(out, params);
    let mut offset = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(SignatureError::ReadInput { offset, source }),
        };
        writer.write_all(&buf[..n]).map_err(|source| SignatureError::Write { source })?;
        offset += n as u64;
    }
    writer.finish().map_err(|source| SignatureError::Write { source })?;
    Ok(offset)
}

/// A signature read back, with the index deltas are matched through.
/// Memory: about 2.5 times the signature's length (3 with 4-byte strong sums).
pub struct Signature {
    params: SignatureParams,
    weak: Vec<u32>,
    /// `strong_len` bytes per block, block after block.
    strong: Vec<u8>,
    index: BlockIndex,
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signature").field("params", &self.params).field("blocks", &self.weak.len()).finish()
    }
}

impl Signature {
    /// Reads and validates a whole signature from `input`, refusing one
    /// longer than `max_len` bytes. Only MD4 signatures are accepted (the
    /// only kind duplicity writes).
    pub fn read_from<R: Read>(mut input: R, max_len: u64) -> Result<Self, SignatureError> {
        let mut header = [0u8; HEADER_LEN];
        let got = read_full(&mut input, &mut header, 0)?;
        if got < 4 {
            return Err(SignatureError::Truncated { offset: got as u64, what: "inside the magic" });
        }
        let word = |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        if word(0) != MD4_SIG_MAGIC {
            return Err(SignatureError::BadMagic { found: word(0) });
        }
        if got < HEADER_LEN {
            return Err(SignatureError::Truncated { offset: got as u64, what: "inside the header" });
        }
        let block_len = word(4);
        let strong_len = word(8);
        if strong_len == 0 || strong_len as usize > MD4_SUM_LEN {
            return Err(SignatureError::StrongLen { found: strong_len });
        }
        let params = SignatureParams::new(block_len, strong_len as u8)?;
        if max_len < HEADER_LEN as u64 {
            return Err(SignatureError::TooLarge { limit: max_len });
        }

        let record_len = 4 + strong_len as usize;
        let mut weak = Vec::new();
        let mut strong = Vec::new();
        // Records are read a batch at a time; vectors grow only with bytes
        // actually read, so memory follows the input, never a length field.
        let mut buf = vec![0u8; record_len * 4096];
        let mut offset = HEADER_LEN as u64;
        loop {
            let got = read_full(&mut input, &mut buf, offset)?;
            let records = &buf[..got];
            if offset + got as u64 > max_len {
                return Err(SignatureError::TooLarge { limit: max_len });
            }
            let mut whole = records.chunks_exact(record_len);
            for record in &mut whole {
                weak.push(u32::from_be_bytes([record[0], record[1], record[2], record[3]]));
                strong.extend_from_slice(&record[4..]);
            }
            if !whole.remainder().is_empty() {
                return Err(SignatureError::Truncated {
                    offset: offset + (got - whole.remainder().len()) as u64,
                    what: "inside a block's sums",
                });
            }
            if weak.len() as u64 > MAX_BLOCKS {
                return Err(SignatureError::TooLarge { limit: MAX_BLOCKS * record_len as u64 });
            }
            offset += got as u64;
            if got < buf.len() {
                break;
            }
        }
        let index = BlockIndex::build(&weak, &strong, strong_len as usize);
        Ok(Self { params, weak, strong, index })
    }

    /// [`read_from`](Self::read_from) over bytes already in memory.
    pub fn from_bytes(bytes: &[u8], max_len: u64) -> Result<Self, SignatureError> {
        Self::read_from(bytes, max_len)
    }

    /// Block length and strong sum length.
    pub fn params(&self) -> SignatureParams {
        self.params
    }

    /// How many blocks the signed file had.
    pub fn block_count(&self) -> usize {
        self.weak.len()
    }

    /// The signature's bytes again (the sigtar of the next set repeats
    /// unchanged files' signatures).
    pub fn to_bytes(&self) -> Vec<u8> {
        let strong_len = usize::from(self.params.strong_len);
        let mut out = Vec::with_capacity(HEADER_LEN + self.weak.len() * (4 + strong_len));
        out.extend_from_slice(&self.params.header());
        for (weak, strong) in self.weak.iter().zip(self.strong.chunks_exact(strong_len)) {
            out.extend_from_slice(&weak.to_be_bytes());
            out.extend_from_slice(strong);
        }
        out
    }

    /// False if no block has weak sum `weak` (one cached bit read).
    #[inline]
    pub(crate) fn may_have_weak(&self, weak: u32) -> bool {
        self.index.may_contain(weak)
    }

    /// The first block, in file order, whose sums are `weak` and the strong
    /// sum of `window` (librsync's choice among identical blocks).
    #[inline]
    pub(crate) fn find_block(&self, weak: u32, window: &[u8]) -> Option<u32> {
        let strong_len = usize::from(self.params.strong_len);
        let mut digest: Option<[u8; MD4_SUM_LEN]> = None;
        for &(candidate, block) in self.index.candidates(weak) {
            if candidate != weak {
                continue;
            }
            let i = block as usize;
            // The MD4 is computed once, and only when a weak sum matches.
            let digest = digest.get_or_insert_with(|| strong_sum(window));
            if digest[..strong_len] == self.strong[i * strong_len..(i + 1) * strong_len] {
                return Some(block);
            }
        }
        None
    }
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_full<R: Read>(input: &mut R, buf: &mut [u8], base: u64) -> Result<usize, SignatureError> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(SignatureError::ReadSignature { offset: base + got as u64, source }),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicity_block_lengths() {
        let cases: &[(u64, u32, u32)] = &[
            (0, 2048, 512),
            (1, 2048, 512),
            (1_023_999, 2048, 512),
            (1_024_000, 2048, 512),
            (2_047_999, 2048, 512),
            (2_048_000, 2048, 1024),
            (3_072_000, 2048, 1536),
            (4_095_999, 2048, 1536),
            (4_096_000, 2048, 2048),
            (100 << 30, 2048, 2048),
            (100 << 30, 8192, 8192),
            (u64::MAX, u32::MAX, u32::MAX),
        ];
        for &(len, max, want) in cases {
            assert_eq!(duplicity_block_len(len, max), want, "file of {len} bytes, max {max}");
        }
    }

    #[test]
    fn signature_of_hello_is_rdiffs() {
        // `rdiff signature -b 512 -S 8 -H md4 -R rollsum` of "hello\n".
        let want = hex("727301360000020000000008 0ad002d8 63481c78ae04c201");
        let mut out = Vec::new();
        write_signature(&b"hello\n"[..], SignatureParams::duplicity(6), &mut out).expect("signing memory");
        assert_eq!(out, want);
        assert_eq!(SignatureParams::duplicity(6).signature_len(6), want.len() as u64);
    }

    #[test]
    fn pushing_in_any_pieces_gives_the_same_signature() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let params = SignatureParams::new(100, 8).expect("valid");
        let mut whole = Vec::new();
        write_signature(&data[..], params, &mut whole).expect("signing memory");
        for piece in [1, 3, 99, 100, 101, 4999] {
            let mut writer = SignatureWriter::new(Vec::new(), params);
            for chunk in data.chunks(piece) {
                writer.write_all(chunk).expect("memory");
            }
            assert_eq!(writer.finish().expect("memory"), whole, "pieces of {piece}");
        }
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(matches!(SignatureParams::new(0, 8), Err(SignatureError::BlockLen { found: 0 })));
        assert!(matches!(SignatureParams::new(MAX_BLOCK_LEN + 1, 8), Err(SignatureError::BlockLen { .. })));
        assert!(matches!(SignatureParams::new(512, 0), Err(SignatureError::StrongLen { found: 0 })));
        assert!(matches!(SignatureParams::new(512, 17), Err(SignatureError::StrongLen { found: 17 })));
        assert!(SignatureParams::new(MAX_BLOCK_LEN, 16).is_ok());
    }

    #[test]
    fn hostile_signatures_are_refused_with_the_spot() {
        let good = hex("727301360000020000000008 0ad002d8 63481c78ae04c201");
        let check = |bytes: &[u8], limit: u64, want: &str| {
            let err = Signature::from_bytes(bytes, limit).expect_err("must be refused");
            assert_eq!(err.to_string(), want, "{bytes:02x?}");
        };
        check(&[], 100, "signature truncated at offset 0: inside the magic");
        check(&good[..3], 100, "signature truncated at offset 3: inside the magic");
        check(
            &hex("72730146 00000200 00000008"),
            100,
            "signature magic 0x72730146 at offset 0 is not librsync's MD4 signature magic 0x72730136",
        );
        check(&good[..11], 100, "signature truncated at offset 11: inside the header");
        check(&hex("72730136 00000000 00000008"), 100, "signature block length 0 is outside 1..=16777216");
        check(&hex("72730136 01000001 00000008"), 100, "signature block length 16777217 is outside 1..=16777216");
        check(&hex("72730136 00000200 00000000"), 100, "signature strong sum length 0 is outside 1..=16");
        check(&hex("72730136 00000200 00000011"), 100, "signature strong sum length 17 is outside 1..=16");
        check(&hex("72730136 00000200 ffffffff"), 100, "signature strong sum length 4294967295 is outside 1..=16");
        check(&good[..23], 100, "signature truncated at offset 12: inside a block's sums");
        check(&good, 23, "signature is longer than the limit of 23 bytes");
        check(&good, 11, "signature is longer than the limit of 11 bytes");
        let sig = Signature::from_bytes(&good, 24).expect("exactly at the limit");
        assert_eq!(sig.block_count(), 1);
        assert_eq!(sig.to_bytes(), good);
    }

    #[test]
    fn identical_blocks_match_the_first() {
        let data = [b"abcd".repeat(3), b"wxyz".to_vec(), b"abcd".to_vec()].concat();
        let mut bytes = Vec::new();
        write_signature(&data[..], SignatureParams::new(4, 8).expect("valid"), &mut bytes).expect("memory");
        let sig = Signature::from_bytes(&bytes, 1 << 20).expect("valid");
        assert_eq!(sig.block_count(), 5);
        assert_eq!(sig.find_block(Rollsum::of(b"abcd").digest(), b"abcd"), Some(0));
        assert_eq!(sig.find_block(Rollsum::of(b"wxyz").digest(), b"wxyz"), Some(3));
        assert_eq!(sig.find_block(Rollsum::of(b"abce").digest(), b"abce"), None);
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }
}
