//! librsync deltas read back from a server (a difftar's `diff/` members)
//! applied to a basis. The first byte splits the input into basis and delta
//! commands; the delta magic is supplied so every run reaches the commands.
#![no_main]

use std::io::Cursor;

use coffer_rsync::{DELTA_MAGIC, PatchLimits, apply_patch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let (basis, commands) = rest.split_at(usize::from(split).min(rest.len()));
    let delta = [&DELTA_MAGIC.to_be_bytes()[..], commands].concat();
    let limits = PatchLimits { max_output: 1 << 20 };
    let mut out = Vec::new();
    if let Ok(len) = apply_patch(Cursor::new(basis), &delta[..], &mut out, limits) {
        assert_eq!(len, out.len() as u64);
    }
    assert!(out.len() <= 1 << 20, "the output limit holds");
});
