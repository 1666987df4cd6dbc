//! Duplicity volumes and sigtars as read back from a server: every header,
//! name and data byte goes through the streaming reader.
#![no_main]

use std::io::Read;

use coffer_archive::TarReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = TarReader::new(data);
    while let Ok(Some(header)) = reader.next_header() {
        let _ = header.entry_name();
        let mut sink = Vec::new();
        if reader.data().read_to_end(&mut sink).is_err() {
            break;
        }
        assert_eq!(sink.len() as u64, header.size);
    }
});
