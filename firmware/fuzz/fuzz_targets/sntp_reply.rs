//! SNTP server replies: the parser and the offset arithmetic never panic.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use coffer_time::packet::{NtpTimestamp, Sample, era_pivot_floor, parse_reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Use the bytes that would be the origin timestamp as "what we sent",
    // so the fuzzer also reaches the checks after the origin match.
    let sent = data
        .get(24..32)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(NtpTimestamp::ZERO, |b| NtpTimestamp::from_bits(u64::from_be_bytes(b)));
    if let Ok(reply) = parse_reply(data, sent) {
        let t1 = UNIX_EPOCH + Duration::from_secs(u64::from(data.first().copied().unwrap_or(0)) << 24);
        if let Ok(sample) = Sample::from_exchange(t1, &reply, t1, era_pivot_floor()) {
            let _ = sample.server_time();
        }
    }
});
