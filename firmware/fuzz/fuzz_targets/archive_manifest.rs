//! Duplicity manifests as read back from a server; what parses must encode
//! and parse again to the same manifest.
#![no_main]

use coffer_archive::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = Manifest::parse(data) {
        let again = Manifest::parse(&manifest.to_bytes()).expect("an encoded manifest parses");
        assert_eq!(again, manifest);
    }
});
