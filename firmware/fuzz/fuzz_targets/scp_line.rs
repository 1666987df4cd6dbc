//! Legacy scp protocol control lines.
#![no_main]

use coffer_command::scp::ScpLine;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ScpLine::parse(data);
});
