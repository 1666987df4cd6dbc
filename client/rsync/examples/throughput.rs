//! Throughput of signatures, deltas and patches on a 100 MiB file held in
//! memory (no disk in the measurement). Run optimised, e.g.
//! `CARGO_PROFILE_DEV_OPT_LEVEL=3 cargo run -p coffer-rsync --example throughput`,
//! and compare with `time rdiff signature -H md4 -R rollsum -S 8 -b 2048`.

use std::io::Cursor;
use std::time::Instant;

use coffer_rsync::{PatchLimits, Signature, SignatureParams, apply_patch, write_delta, write_signature};

const LEN: usize = 100 << 20;

/// xorshift64*: fast incompressible bytes without a dependency.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Nanoseconds this thread has run on a CPU (Linux's schedstat): the
/// build machines are shared, so wall time alone says little.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

struct Clock {
    wall: Instant,
    cpu: u64,
}

fn start() -> Clock {
    Clock { wall: Instant::now(), cpu: cpu_ns() }
}

fn report(what: &str, bytes: usize, clock: Clock) {
    let wall = clock.wall.elapsed().as_secs_f64();
    let cpu = (cpu_ns() - clock.cpu) as f64 / 1e9;
    let mb = bytes as f64 / 1e6;
    println!("{what:<40} {:>8.1} MB/s of CPU time ({cpu:.3} s), {:>8.1} MB/s wall ({wall:.3} s)", mb / cpu, mb / wall);
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let basis = noise(1, LEN);
    let params = SignatureParams::duplicity(LEN as u64);
    println!("100 MiB, blocks of {} bytes", params.block_len());

    let clock = start();
    let mut sig_bytes = Vec::new();
    write_signature(&basis[..], params, &mut sig_bytes)?;
    report("signature", LEN, clock);

    let clock = start();
    let signature = Signature::from_bytes(&sig_bytes, u64::MAX)?;
    report("signature parse + index", sig_bytes.len(), clock);

    // One byte changed in every MiB: 1 % of the blocks differ.
    let mut edited = basis.clone();
    for at in (0..LEN).step_by(1 << 20) {
        edited[at + 777] ^= 0xff;
    }
    let cases = [("delta, unchanged file", &basis), ("delta, 100 scattered edits", &edited)];
    let mut delta = Vec::new();
    for (what, new) in cases {
        delta.clear();
        let clock = start();
        write_delta(&signature, &new[..], &mut delta)?;
        report(what, LEN, clock);
    }
    let unrelated = noise(2, LEN);
    let clock = start();
    let mut literal = Vec::new();
    write_delta(&signature, &unrelated[..], &mut literal)?;
    report("delta, unrelated file (all literal)", LEN, clock);

    let clock = start();
    let mut out = Vec::with_capacity(LEN);
    apply_patch(Cursor::new(&basis), &delta[..], &mut out, PatchLimits { max_output: u64::MAX })?;
    report("patch (100 scattered edits)", LEN, clock);
    assert!(out == edited, "patch must rebuild the edited file");
    Ok(())
}
