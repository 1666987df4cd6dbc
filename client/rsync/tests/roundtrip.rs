//! Properties without external tools: for any basis and any edits,
//! signature → parse → delta → patch gives the new file back (with strong
//! sums of 8 bytes or more: shorter ones collide, by design), whatever the
//! block length and however the input is cut into pieces; and patching
//! never writes past its limit.

use std::io::{Cursor, Read, Seek, SeekFrom, Write};

use coffer_rsync::{
    DeltaWriter, PatchError, PatchLimits, Signature, SignatureParams, SignatureWriter, apply_patch, write_delta,
    write_signature,
};
use proptest::prelude::*;

/// An edit of the basis, applied in order.
#[derive(Clone, Debug)]
enum Edit {
    Insert { at: usize, bytes: Vec<u8> },
    Delete { at: usize, len: usize },
    Append(Vec<u8>),
    Truncate(usize),
    CopyWithin { from: usize, len: usize, to: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 0..300)).prop_map(|(at, bytes)| Edit::Insert { at, bytes }),
        (any::<usize>(), 0usize..2000).prop_map(|(at, len)| Edit::Delete { at, len }),
        proptest::collection::vec(any::<u8>(), 0..3000).prop_map(Edit::Append),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), 0usize..3000, any::<usize>()).prop_map(|(from, len, to)| Edit::CopyWithin { from, len, to }),
    ]
}

fn apply(basis: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut new = basis.to_vec();
    for edit in edits {
        let clamp = |at: usize, new: &Vec<u8>| at % (new.len() + 1);
        match edit {
            Edit::Insert { at, bytes } => {
                let at = clamp(*at, &new);
                new.splice(at..at, bytes.iter().copied());
            }
            Edit::Delete { at, len } => {
                let at = clamp(*at, &new);
                let end = (at + len).min(new.len());
                new.drain(at..end);
            }
            Edit::Append(bytes) => new.extend_from_slice(bytes),
            Edit::Truncate(at) => {
                let at = clamp(*at, &new);
                new.truncate(at);
            }
            Edit::CopyWithin { from, len, to } => {
                let from = clamp(*from, &new);
                let piece: Vec<u8> = new[from..(from + len).min(new.len())].to_vec();
                let to = clamp(*to, &new);
                new.splice(to..to, piece);
            }
        }
    }
    new
}

/// A basis with structure: runs of a few symbols, so blocks repeat.
fn basis() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..30_000),
        proptest::collection::vec(0u8..3, 0..30_000),
        (proptest::collection::vec(any::<u8>(), 1..200), 0usize..200).prop_map(|(unit, n)| unit.repeat(n)),
    ]
}

fn round_trip(basis: &[u8], new: &[u8], params: SignatureParams, piece: usize) -> Vec<u8> {
    let mut signer = SignatureWriter::new(Vec::new(), params);
    for chunk in basis.chunks(piece) {
        signer.write_all(chunk).expect("memory");
    }
    let sig_bytes = signer.finish().expect("memory");
    assert_eq!(sig_bytes.len() as u64, params.signature_len(basis.len() as u64));
    let signature = Signature::from_bytes(&sig_bytes, sig_bytes.len() as u64).expect("own signature parses");
    let mut deltas = DeltaWriter::new(&signature, Vec::new());
    for chunk in new.chunks(piece) {
        deltas.write_all(chunk).expect("memory");
    }
    let (delta, stats) = deltas.finish().expect("memory");
    assert_eq!(stats.literal_bytes + stats.copied_bytes, new.len() as u64);
    let mut out = Vec::new();
    let limits = PatchLimits { max_output: new.len() as u64 };
    apply_patch(Cursor::new(basis), &delta[..], &mut out, limits).expect("own delta applies");
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn signature_delta_patch_gives_the_new_file(
        basis in basis(),
        edits in proptest::collection::vec(edit(), 0..6),
        block_len in prop_oneof![1u32..64, Just(512u32), Just(2048u32)],
        strong_len in 8u8..=16,
        piece in prop_oneof![1usize..10, Just(4096usize), Just(1 << 20)],
    ) {
        let new = apply(&basis, &edits);
        let params = SignatureParams::new(block_len, strong_len).expect("valid");
        let out = round_trip(&basis, &new, params, piece);
        prop_assert!(out == new, "patched output differs from the new file");
    }

    #[test]
    fn an_unchanged_file_is_copied_whole(basis in proptest::collection::vec(any::<u8>(), 1..20_000), block_len in 1u32..600) {
        let mut sig = Vec::new();
        write_signature(&basis[..], SignatureParams::new(block_len, 8).expect("valid"), &mut sig).expect("memory");
        let signature = Signature::from_bytes(&sig, u64::MAX).expect("own signature");
        let mut delta = Vec::new();
        let stats = write_delta(&signature, &basis[..], &mut delta).expect("memory");
        prop_assert_eq!(stats.copied_bytes, basis.len() as u64);
        prop_assert_eq!(stats.literal_bytes, 0);
        // Blocks long enough to be unique in random data merge into one
        // COPY (command byte, offset, length: at most 17 bytes), then END.
        if block_len >= 16 {
            prop_assert!(delta.len() <= 4 + 17 + 1, "{} bytes of delta", delta.len());
        }
    }

    #[test]
    fn patching_never_exceeds_its_limit(
        basis in proptest::collection::vec(any::<u8>(), 0..2000),
        commands in proptest::collection::vec(any::<u8>(), 0..400),
        limit in 0u64..5000,
    ) {
        let delta = [&coffer_rsync::DELTA_MAGIC.to_be_bytes()[..], &commands].concat();
        let mut out = Vec::new();
        let result = apply_patch(Cursor::new(&basis), &delta[..], &mut out, PatchLimits { max_output: limit });
        prop_assert!(out.len() as u64 <= limit);
        if let Ok(len) = result {
            prop_assert_eq!(len, out.len() as u64);
        }
    }

    #[test]
    fn any_signature_bytes_parse_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..200), limit in 0u64..300) {
        let mut input = coffer_rsync::MD4_SIG_MAGIC.to_be_bytes().to_vec();
        input.extend_from_slice(&bytes);
        match Signature::from_bytes(&input, limit) {
            Ok(sig) => prop_assert_eq!(sig.to_bytes(), input),
            Err(err) => prop_assert!(!err.to_string().is_empty()),
        }
    }
}

#[test]
fn a_copy_outside_the_basis_is_reported() {
    let delta = [&coffer_rsync::DELTA_MAGIC.to_be_bytes()[..], &[0x45, 0, 20, 0]].concat();
    let err = apply_patch(Cursor::new(vec![1u8; 10]), &delta[..], Vec::new(), PatchLimits { max_output: 100 })
        .expect_err("outside the basis");
    assert!(matches!(err, PatchError::CopyOutOfRange { offset: 4, pos: 0, len: 20, basis_len: 10 }), "{err}");
}

/// A basis that claims 100 bytes but holds 10, as a file truncated while
/// being patched would.
struct Shrinking(Cursor<Vec<u8>>);

impl Read for Shrinking {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Seek for Shrinking {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        match to {
            SeekFrom::End(0) => Ok(100),
            other => self.0.seek(other),
        }
    }
}

#[test]
fn a_basis_that_shrank_is_reported() {
    let delta = [&coffer_rsync::DELTA_MAGIC.to_be_bytes()[..], &[0x45, 5, 20, 0]].concat();
    let basis = Shrinking(Cursor::new(vec![1u8; 10]));
    let err = apply_patch(basis, &delta[..], Vec::new(), PatchLimits { max_output: 100 }).expect_err("basis too short");
    assert_eq!(err.to_string(), "reading the basis at offset 10: the basis ended early");
}
