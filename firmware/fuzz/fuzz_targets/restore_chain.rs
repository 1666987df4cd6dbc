//! A chain read back from a server: the input is cut into a full and an
//! incremental volume (first byte: where), restored into a fresh directory,
//! listed as sigtars and verified against the result. Nothing may appear
//! beside the destination, and no run may panic.
#![no_main]

use std::io::{self, Cursor, Read};

use coffer_restore::{Chain, Limits, VolumeSource, list, restore, verify};
use libfuzzer_sys::fuzz_target;

const MANIFEST: &[u8] = b"Volume 1:\n    StartingPath   .  \n    EndingPath     zzz  \n    Hash SHA1 00\n";

struct Source(Vec<Vec<u8>>);

impl VolumeSource for Source {
    fn name(&self, set: usize, volume: u32) -> String {
        format!("set{set}.vol{volume}")
    }
    fn open(&mut self, set: usize, _: u32) -> io::Result<Box<dyn Read>> {
        let bytes = self.0.get(set).cloned().ok_or(io::ErrorKind::NotFound)?;
        Ok(Box::new(Cursor::new(bytes)))
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let at = (usize::from(cut) * 64).min(rest.len());
    let (full, inc) = rest.split_at(at);
    let Ok(chain) = Chain::parse(&[MANIFEST, MANIFEST]) else { return };
    let Ok(tmp) = tempfile::tempdir() else { return };
    let inner = tmp.path().join("inner");
    if std::fs::create_dir(&inner).is_err() {
        return;
    }
    let dest = inner.join("dest");
    let limits = Limits { max_file_size: 1 << 20 };
    let mut source = Source(vec![full.to_vec(), inc.to_vec()]);
    let _ = restore(&chain, &mut source, &dest, None, &limits);
    let beside: Vec<_> = std::fs::read_dir(&inner).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(beside.iter().all(|n| n == "dest"), "{beside:?}");
    assert_eq!(std::fs::read_dir(tmp.path()).map(|d| d.count()).unwrap_or(0), 1);
    let _ = list([full, inc]);
    if dest.is_dir() {
        let _ = verify(&chain, &mut source, &dest, true, &limits);
    }
});
