//! The usage count needs a bounded number of descriptors whatever the
//! tree's shape. Its own test binary: it lowers the process's descriptor
//! limit, which would break tests running beside it.

use coffer_storage::UserJail;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

#[test]
fn usage_fits_in_few_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let area = dir.path().join("alice");
    std::fs::create_dir(&area).unwrap();
    // 1,100 empty directories made the old walk (one descriptor per pending
    // directory) fail under `ulimit -n 1024`; a 300-deep chain needs as many
    // levels.
    for i in 0..1100 {
        std::fs::create_dir(area.join(format!("e{i}"))).unwrap();
    }
    let mut deep = area.join("deep");
    std::fs::create_dir(&deep).unwrap();
    for _ in 0..300 {
        deep.push("d");
        std::fs::create_dir(&deep).unwrap();
    }
    std::fs::write(deep.join("leaf"), b"x").unwrap();
    let jail = UserJail::open(&area).unwrap();
    let open_now = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    let before = getrlimit(Resource::Nofile);
    // The walk's bound (16 levels) plus listing and re-opening; far below 1,100 or 300.
    let limit = open_now + 24;
    setrlimit(Resource::Nofile, Rlimit { current: Some(limit), maximum: before.maximum }).unwrap();
    let counted = jail.usage();
    setrlimit(Resource::Nofile, before).unwrap();
    let (_, files) = counted.unwrap();
    assert_eq!(files, 1100 + 1 + 300 + 1);
}
