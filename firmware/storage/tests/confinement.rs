//! Every path trick a client could try ends inside the jail or fails.

use std::io::Read;
use std::os::unix::fs::symlink;

use coffer_storage::{JailPath, UserJail};

fn p(s: &str) -> JailPath {
    JailPath::parse(s.as_bytes()).unwrap()
}

fn setup() -> (tempfile::TempDir, UserJail) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("alice")).unwrap();
    std::fs::create_dir(dir.path().join("bob")).unwrap();
    std::fs::write(dir.path().join("bob/secret"), b"bob's data").unwrap();
    std::fs::write(dir.path().join("alice/own"), b"alice's data").unwrap();
    let jail = UserJail::open(&dir.path().join("alice")).unwrap();
    (dir, jail)
}

#[test]
fn dotdot_and_absolute_stay_inside() {
    let (dir, jail) = setup();
    assert!(jail.stat(&p("../bob/secret")).is_err());
    let abs = format!("{}/bob/secret", dir.path().display());
    assert!(jail.open_read(&p(&abs)).is_err());
    let mut s = String::new();
    jail.open_read(&p("/../../own")).unwrap().read_to_string(&mut s).unwrap();
    assert_eq!(s, "alice's data");
}

#[test]
fn symlinks_resolve_inside_the_jail() {
    let (dir, jail) = setup();
    // Pre-existing links, relative and absolute, pointing at another user's data.
    symlink("../bob/secret", dir.path().join("alice/rel")).unwrap();
    symlink(dir.path().join("bob/secret"), dir.path().join("alice/abs")).unwrap();
    symlink(dir.path().join("bob"), dir.path().join("alice/bobdir")).unwrap();
    for name in ["rel", "abs", "bobdir/secret"] {
        assert!(jail.open_read(&p(name)).is_err(), "{name} escaped");
        assert!(jail.stat(&p(name)).is_err(), "{name} escaped");
    }
    assert!(jail.read_dir(&p("bobdir")).is_err());
    // Writing through a link replaces the link inside the jail, never the target.
    let up = jail.create_upload(&p("abs"), 0o644, false).unwrap();
    up.commit().unwrap();
    assert_eq!(std::fs::read(dir.path().join("bob/secret")).unwrap(), b"bob's data");
    // Links the user makes are confined the same way.
    jail.symlink(b"/../bob/secret", &p("made")).unwrap();
    assert!(jail.open_read(&p("made")).is_err());
    assert!(jail.set_mode(&p("bobdir"), 0o777).is_err());
    assert!(jail.set_size(&p("rel"), 0).is_err());
    assert_eq!(std::fs::read(dir.path().join("bob/secret")).unwrap(), b"bob's data");
    // A hard link cannot name a file outside.
    assert!(jail.hardlink(&p("../bob/secret"), &p("hl")).is_err());
}

#[test]
fn uploads_appear_only_when_committed() {
    let (dir, jail) = setup();
    let up = jail.create_upload(&p("new"), 0o644, false).unwrap();
    std::io::Write::write_all(&mut up.file(), b"partial").unwrap();
    assert!(jail.stat(&p("new")).is_err());
    assert!(jail.read_dir(&p("/")).unwrap().iter().all(|e| e.name != b"new"));
    drop(up);
    assert!(jail.stat(&p("new")).is_err());
    assert_eq!(std::fs::read_dir(dir.path().join("alice")).unwrap().count(), 1);

    let up = jail.create_upload(&p("own"), 0o644, false).unwrap();
    std::io::Write::write_all(&mut up.file(), b"replaced").unwrap();
    assert_eq!(std::fs::read(dir.path().join("alice/own")).unwrap(), b"alice's data");
    up.commit().unwrap();
    assert_eq!(std::fs::read(dir.path().join("alice/own")).unwrap(), b"replaced");
    assert!(jail.create_upload(&p("own"), 0o644, true).is_err());
}

#[test]
fn usage_counts_each_inode_once() {
    let (dir, jail) = setup();
    std::fs::create_dir(dir.path().join("alice/d")).unwrap();
    std::fs::write(dir.path().join("alice/d/f"), vec![0u8; 1000]).unwrap();
    std::fs::hard_link(dir.path().join("alice/d/f"), dir.path().join("alice/d/g")).unwrap();
    // own (12 bytes) + d (its block) + f (1000, linked twice)
    let d = dir_bytes(&dir.path().join("alice/d"));
    assert_eq!(jail.usage().unwrap(), (1012 + d, 3));
}

/// Space a directory occupies, as the count measures it.
fn dir_bytes(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).expect("directory metadata");
    (m.blocks() * 512).max(m.size())
}

/// Wide and deep trees are counted whole, each directory with its space
/// (`usage_descriptors.rs` checks the descriptors the walk needs).
#[test]
fn usage_counts_wide_and_deep_trees() {
    let (dir, jail) = setup();
    let area = dir.path().join("alice");
    let mut expected = (12u64, 1u64);
    for i in 0..300 {
        let d = area.join(format!("w{i}"));
        std::fs::create_dir(&d).unwrap();
        expected.0 += dir_bytes(&d);
        expected.1 += 1;
    }
    let mut deep = area.clone();
    for _ in 0..200 {
        deep.push("d");
        std::fs::create_dir(&deep).unwrap();
        expected.0 += dir_bytes(&deep);
        expected.1 += 1;
    }
    std::fs::write(deep.join("leaf"), b"12345").unwrap();
    expected = (expected.0 + 5, expected.1 + 1);
    expected.0 += dir_bytes(&area).saturating_sub(4096);
    assert_eq!(jail.usage().unwrap(), expected);
    // Renaming a directory away is not an error for later counts.
    std::fs::rename(area.join("w0"), area.join("d/w0")).unwrap();
    assert_eq!(jail.usage().unwrap(), expected);
}

