//! SFTP packets as they arrive from a client: framing and request decoding.
#![no_main]

use coffer_sftp_proto::{Request, split_packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Request::decode(data);
    let mut rest = data;
    while let Ok(Some((body, used))) = split_packet(rest, 1 << 20) {
        let _ = Request::decode(body);
        rest = &rest[used..];
    }
});
