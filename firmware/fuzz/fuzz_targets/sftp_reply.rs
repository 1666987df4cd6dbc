//! SFTP packets as a client receives them from a server: framing, replies,
//! the VERSION packet and the extended replies' payloads.
#![no_main]

use coffer_sftp_proto::{Limits, Reply, ServerVersion, StatVfs, split_packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ServerVersion::decode(data);
    let mut rest = data;
    while let Ok(Some((body, used))) = split_packet(rest, 1 << 20) {
        if let Ok(Reply::Extended { data, .. }) = Reply::decode(body) {
            let _ = StatVfs::decode(&data);
            let _ = Limits::decode(&data);
        }
        rest = &rest[used..];
    }
});
