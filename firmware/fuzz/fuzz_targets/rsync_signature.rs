//! librsync signatures read back from a server (a sigtar's members): parsing,
//! then a delta of the same bytes against whatever parsed.
#![no_main]

use coffer_rsync::{Signature, write_delta};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(signature) = Signature::from_bytes(data, 1 << 20) else { return };
    assert_eq!(signature.to_bytes(), data, "a signature that parses is written back unchanged");
    let mut delta = Vec::new();
    let _ = write_delta(&signature, data, &mut delta);
});
