//! Against librsync itself: Debian's `rdiff` (librsync 2.x) must write the
//! same signatures and deltas as this crate, apply this crate's deltas, and
//! write deltas this crate applies. `rdiff` must be installed
//! (`apt-get install rdiff`); its default signature is BLAKE2 with the
//! RabinKarp rollsum, so duplicity's kind is asked for with `-H md4 -R rollsum -S 8`.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use coffer_rsync::{
    PatchLimits, Signature, SignatureParams, apply_patch, duplicity_block_len, write_delta, write_signature,
};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

const UNLIMITED: PatchLimits = PatchLimits { max_output: u64::MAX };

fn rdiff(args: &[&Path], options: &[String]) {
    let output = Command::new("rdiff")
        .arg("--force")
        .args(options)
        .args(args)
        .output()
        .expect("rdiff runs (Debian: apt-get install rdiff)");
    assert!(output.status.success(), "rdiff {options:?} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

fn random(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut data = vec![0; len];
    rng.fill_bytes(&mut data);
    data
}

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Self(tempfile::tempdir().expect("a temporary directory"))
    }

    fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, data).expect("writing a temporary file");
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

fn our_signature(data: &[u8], block_len: u32) -> Vec<u8> {
    let mut sig = Vec::new();
    write_signature(data, SignatureParams::new(block_len, 8).expect("valid"), &mut sig).expect("memory");
    sig
}

fn rdiff_signature(dir: &Dir, data: &[u8], block_len: u32) -> Vec<u8> {
    let basis = dir.file("basis", data);
    let sig = dir.path("basis.sig");
    let options = ["-H", "md4", "-R", "rollsum", "-S", "8", "-b"].map(String::from).to_vec();
    rdiff(&[Path::new("signature"), &basis, &sig], &[options, vec![block_len.to_string()]].concat());
    std::fs::read(sig).expect("rdiff's signature")
}

#[test]
fn signatures_equal_rdiffs() {
    let dir = Dir::new();
    let mut rng = StdRng::seed_from_u64(14);
    let mut cases: Vec<(usize, u32)> = [
        0, 1, 511, 512, 513, 1023, 1024, 1025, 65_536, 1_023_999, 1_024_000, 2_048_003, 3_145_745, 4_096_000,
    ]
    .iter()
    .map(|&len| (len, duplicity_block_len(len as u64, 2048)))
    .collect();
    cases.extend([(1000, 1), (1000, 7), (10_000, 4096), (5_000_000, 2048), (300_000, 65_536)]);
    for (len, block_len) in cases {
        let data = random(&mut rng, len);
        assert_eq!(our_signature(&data, block_len), rdiff_signature(&dir, &data, block_len), "{len} bytes, blocks of {block_len}");
    }
}

/// New versions of a basis: the edits an incremental backup meets.
fn edits(rng: &mut StdRng, basis: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mid = basis.len() / 2;
    let mut changed = basis.to_vec();
    for _ in 0..5 {
        if !changed.is_empty() {
            let at = rng.random_range(0..changed.len());
            changed[at] ^= 0x5a;
        }
    }
    let mut moved = basis[mid..].to_vec();
    moved.extend_from_slice(&basis[..mid]);
    vec![
        ("identical", basis.to_vec()),
        ("empty", Vec::new()),
        ("insertion", [&basis[..mid], &random(rng, 777), &basis[mid..]].concat()),
        ("deletion", [&basis[..mid / 2], &basis[mid..]].concat()),
        ("append", [basis, &random(rng, 5000)].concat()),
        ("truncation", basis[..(mid + 3).min(basis.len())].to_vec()),
        ("bytes changed", changed),
        ("halves swapped", moved),
        ("unrelated", random(rng, basis.len())),
        ("repeated", [basis, basis, &basis[..mid]].concat()),
    ]
}

/// Our delta equals rdiff's, rdiff applies ours, and we apply rdiff's.
fn check_delta(dir: &Dir, basis: &[u8], new: &[u8], block_len: u32, what: &str) {
    let sig_bytes = our_signature(basis, block_len);
    let sig_path = dir.file("basis.sig", &sig_bytes);
    let basis_path = dir.file("basis", basis);
    let new_path = dir.file("new", new);
    let signature = Signature::from_bytes(&sig_bytes, u64::MAX).expect("own signature");
    let mut ours = Vec::new();
    let stats = write_delta(&signature, new, &mut ours).expect("memory");
    assert_eq!(stats.delta_len, ours.len() as u64);

    let theirs_path = dir.path("theirs.delta");
    rdiff(&[Path::new("delta"), &sig_path, &new_path, &theirs_path], &[]);
    let theirs = std::fs::read(&theirs_path).expect("rdiff's delta");
    // An empty basis is the one case where rdiff cuts literals at its read buffer.
    if !basis.is_empty() {
        assert_eq!(ours, theirs, "{what}: delta of {} bytes against {} in blocks of {block_len}", new.len(), basis.len());
    }

    let ours_path = dir.file("ours.delta", &ours);
    let patched_path = dir.path("patched");
    rdiff(&[Path::new("patch"), &basis_path, &ours_path, &patched_path], &[]);
    assert!(std::fs::read(&patched_path).expect("rdiff's output") == new, "{what}: rdiff patch of our delta");

    let mut patched = Vec::new();
    apply_patch(Cursor::new(basis), &theirs[..], &mut patched, UNLIMITED).expect("rdiff's delta applies");
    assert!(patched == new, "{what}: our patch of rdiff's delta");
}

#[test]
fn deltas_equal_rdiffs_and_apply_both_ways() {
    let dir = Dir::new();
    let mut rng = StdRng::seed_from_u64(1414);
    let mut zeros_and_noise = vec![0u8; 200_000];
    zeros_and_noise.extend(random(&mut rng, 100_000));
    let bases: Vec<(Vec<u8>, u32)> = vec![
        (Vec::new(), 512),
        (random(&mut rng, 1), 512),
        (random(&mut rng, 512), 512),
        (random(&mut rng, 100_000), 512),
        (random(&mut rng, 100_000), 7),
        (zeros_and_noise, 512),
        (random(&mut rng, 3_000_000), duplicity_block_len(3_000_000, 2048)),
    ];
    for (basis, block_len) in &bases {
        for (what, new) in edits(&mut rng, basis) {
            check_delta(&dir, basis, &new, *block_len, what);
        }
    }
}

#[test]
fn long_misses_are_cut_like_rdiffs() {
    // 100 KiB of new bytes around one matching block: literals at 32 KiB.
    let dir = Dir::new();
    let mut rng = StdRng::seed_from_u64(7);
    let basis = random(&mut rng, 4096);
    let new = [random(&mut rng, 70_000), basis[1024..1536].to_vec(), random(&mut rng, 40_000)].concat();
    check_delta(&dir, &basis, &new, 512, "long misses");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random bases and random edits, byte for byte against rdiff.
    #[test]
    fn random_edits_match_rdiff(
        seed in any::<u64>(),
        basis_len in 0usize..20_000,
        block_len in prop_oneof![1u32..40, Just(512u32)],
        ops in proptest::collection::vec((0u8..4, any::<u16>(), 0usize..3000), 0..6),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        // A small alphabet makes blocks repeat and weak sums collide.
        let basis: Vec<u8> = (0..basis_len).map(|_| rng.random_range(b'a'..b'e')).collect();
        let mut new = basis.clone();
        for (kind, at, len) in ops {
            let at = usize::from(at) % (new.len() + 1);
            match kind {
                0 => { new.splice(at..at, random(&mut rng, len)); }
                1 => { new.drain(at..(at + len).min(new.len())); }
                2 => new.extend_from_slice(&basis[..len.min(basis.len())]),
                _ => new.truncate(at),
            }
        }
        check_delta(&Dir::new(), &basis, &new, block_len, "random edits");
    }
}
