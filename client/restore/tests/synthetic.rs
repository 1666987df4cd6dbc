//! Chains written by coffer-archive's writer in memory: how entries of
//! successive sets combine (table), hard links, one-path restores that read
//! only the volumes they need, lost volumes, and hostile archives that try
//! to write outside the destination (tables and a property over damaged
//! volumes).

#![allow(clippy::unwrap_used, reason = "test code: a failed setup step fails the test")]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use coffer_archive::{Entry, FileType, HARDLINK_PAX_KEY, Index, Kind, Meta};
use coffer_restore::{Chain, EntryError, Limits, RestoreReport, list, restore};
use coffer_rsync::{Signature, SignatureParams, write_delta, write_signature};
use common::{MemSet, MemSource, no_temporaries, write_set};
use proptest::prelude::*;

const MB: u64 = 1 << 20;

fn meta(file_type: FileType, mode: u32, mtime: u64) -> Meta {
    Meta { file_type, mode, uid: 0, gid: 0, uname: Vec::new(), gname: Vec::new(), mtime, extra_pax: Vec::new() }
}

fn entry(kind: Kind, path: &str, file_type: FileType, data: &[u8]) -> (Entry, Vec<u8>) {
    let meta = if kind == Kind::Deleted { Meta::deleted() } else { meta(file_type, 0o644, 1_000_000) };
    (Entry { kind, index: Index::from_bytes(path.as_bytes()), meta }, data.to_vec())
}

fn root() -> (Entry, Vec<u8>) {
    let (mut e, d) = entry(Kind::Snapshot, "", FileType::Directory, b"");
    e.meta.mode = 0o755;
    (e, d)
}

fn file(path: &str, data: &[u8]) -> (Entry, Vec<u8>) {
    entry(Kind::Snapshot, path, FileType::Regular, data)
}

fn dir(path: &str) -> (Entry, Vec<u8>) {
    let (mut e, d) = entry(Kind::Snapshot, path, FileType::Directory, b"");
    e.meta.mode = 0o750;
    (e, d)
}

fn delta(old: &[u8], new: &[u8]) -> Vec<u8> {
    let mut sig = Vec::new();
    write_signature(old, SignatureParams::duplicity(old.len() as u64), &mut sig).unwrap();
    let sig = Signature::read_from(sig.as_slice(), u64::MAX).unwrap();
    let mut out = Vec::new();
    write_delta(&sig, new, &mut out).unwrap();
    out
}

fn chain_of(sets: &[MemSet]) -> (Chain, MemSource) {
    let chain = Chain::parse(&sets.iter().map(|s| s.manifest.clone()).collect::<Vec<_>>()).unwrap();
    let source = MemSource { sets: sets.iter().map(|s| s.volumes.clone()).collect(), opened: Vec::new() };
    (chain, source)
}

fn run(sets: &[MemSet], dest: &Path, selection: Option<&str>) -> (RestoreReport, MemSource) {
    let (chain, mut source) = chain_of(sets);
    let selection = selection.map(|s| Index::from_bytes(s.as_bytes()));
    let report = restore(&chain, &mut source, dest, selection.as_ref(), &Limits::default()).unwrap();
    (report, source)
}

#[test]
fn sets_combine_as_duplicity_combines_them() {
    let old: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut new = old.clone();
    new[100_000..100_100].fill(9);
    new.extend_from_slice(b"appended");
    let full = write_set(
        &[
            root(),
            file("changed", &old),
            file("deleted", b"x"),
            file("kept", b"kept"),
            file("to-dir", b"file first"),
            file("twice", b"v1"),
        ],
        MB,
    );
    let inc1 = write_set(
        &[
            root(),
            (Entry { kind: Kind::Diff, ..file("changed", b"").0 }, delta(&old, &new)),
            entry(Kind::Deleted, "deleted", FileType::Regular, b""),
            dir("to-dir"),
            file("to-dir/inner", b"inner"),
            (Entry { kind: Kind::Diff, ..file("twice", b"").0 }, delta(b"v1", b"v2 longer")),
        ],
        MB,
    );
    let newer = [new.clone(), b" again".to_vec()].concat();
    let inc2 = write_set(
        &[
            root(),
            (Entry { kind: Kind::Diff, ..file("changed", b"").0 }, delta(&new, &newer)),
            (Entry { kind: Kind::Diff, ..file("twice", b"").0 }, delta(b"v2 longer", b"v3")),
        ],
        MB,
    );
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("out");
    let (report, _) = run(&[full, inc1, inc2], &dest, None);
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(fs::read(dest.join("changed")).unwrap(), newer);
    assert!(!dest.join("deleted").exists());
    assert_eq!(fs::read(dest.join("kept")).unwrap(), b"kept");
    assert_eq!(fs::read(dest.join("to-dir/inner")).unwrap(), b"inner");
    assert_eq!(fs::metadata(dest.join("to-dir")).unwrap().mode() & 0o7777, 0o750);
    assert_eq!(fs::read(dest.join("twice")).unwrap(), b"v3");
    assert_eq!(fs::metadata(dest.join("twice")).unwrap().mtime(), 1_000_000);
    assert!(no_temporaries(&dest));
}

#[test]
fn diffs_without_a_file_to_patch_are_reported_by_path() {
    let full = write_set(&[root(), dir("d"), file("gone", b"x"), file("plain", b"p")], MB);
    let inc = write_set(
        &[
            root(),
            (Entry { kind: Kind::Diff, ..file("d", b"").0 }, delta(b"", b"x")),
            (Entry { kind: Kind::Diff, ..file("nobasis", b"").0 }, delta(b"", b"x")),
            (Entry { kind: Kind::Diff, ..file("plain", b"").0 }, b"not a delta".to_vec()),
        ],
        MB,
    );
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("out");
    let (report, _) = run(&[full, inc], &dest, None);
    let problems: BTreeMap<Vec<u8>, String> =
        report.paths.iter().map(|p| (p.index.as_bytes().to_vec(), p.error.to_string())).collect();
    assert!(problems[&b"d"[..]].contains("follows a directory"), "{problems:?}");
    assert!(matches!(
        report.paths.iter().find(|p| p.index.as_bytes() == b"nobasis").unwrap().error,
        EntryError::NoBasis
    ));
    assert!(problems[&b"plain"[..]].contains("delta magic"), "{problems:?}");
    assert_eq!(fs::read(dest.join("gone")).unwrap(), b"x");
    assert!(!dest.join("plain").exists());
    assert!(no_temporaries(&dest));
}

#[test]
fn hard_links_are_made_again_when_their_first_path_was_restored() {
    let linked = |path: &str, target: &str, data: &[u8]| {
        let (mut e, d) = file(path, data);
        e.meta.extra_pax.push((HARDLINK_PAX_KEY.to_vec(), target.as_bytes().to_vec()));
        (e, d)
    };
    let full = write_set(
        &[
            root(),
            file("a", b"shared"),
            dir("d"),
            linked("d/b", "a", b"shared"),
            file("d/c", b"in d"),
            linked("d/e", "d/c", b"in d"),
            linked("f", "missing", b"own data"),
        ],
        MB,
    );
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("out");
    let (report, _) = run(std::slice::from_ref(&full), &dest, None);
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.hard_links, 2);
    let ino = |p: &str| fs::metadata(dest.join(p)).unwrap().ino();
    assert_eq!(ino("a"), ino("d/b"));
    assert_eq!(ino("d/c"), ino("d/e"));
    assert_ne!(ino("a"), ino("d/c"));
    assert_eq!(fs::read(dest.join("f")).unwrap(), b"own data");

    // Restoring d alone: its link to a (outside) gets its own data, the
    // one inside d is linked.
    let sub = tmp.path().join("sub");
    let (report, _) = run(std::slice::from_ref(&full), &sub, Some("d"));
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.hard_links, 1);
    assert_eq!(fs::read(sub.join("b")).unwrap(), b"shared");
    assert_eq!(fs::metadata(sub.join("b")).unwrap().nlink(), 1);
    assert_eq!(fs::metadata(sub.join("c")).unwrap().ino(), fs::metadata(sub.join("e")).unwrap().ino());
}

#[test]
fn one_path_reads_only_the_volumes_that_may_hold_it() {
    let noise: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let full = write_set(&[root(), file("a", b"a"), file("big", &noise), dir("z"), file("z/one", b"1")], MB);
    assert!(full.volumes.len() >= 3, "the big file spans volumes");
    let tmp = tempfile::tempdir().unwrap();

    let (report, source) = run(std::slice::from_ref(&full), &tmp.path().join("one"), Some("z/one"));
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(fs::read(tmp.path().join("one")).unwrap(), b"1");
    assert_eq!(source.opened, [(0, *full.volumes.keys().last().unwrap())]);

    let (report, _) = run(std::slice::from_ref(&full), &tmp.path().join("big"), Some("big"));
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(fs::read(tmp.path().join("big")).unwrap(), noise);
}

#[test]
fn a_lost_volume_is_named_and_everything_else_restored() {
    let noise: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let mut full = write_set(&[root(), file("a", b"a"), file("big", &noise), file("z", b"z")], MB);
    full.volumes.remove(&2);
    let inc = write_set(&[root(), (Entry { kind: Kind::Diff, ..file("big", b"").0 }, delta(&noise, b"short"))], MB);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("out");
    let (report, _) = run(&[full, inc], &dest, None);
    assert!(!report.is_complete());
    assert_eq!(report.volumes.len(), 1);
    assert_eq!((report.volumes[0].set, report.volumes[0].volume), (0, 2));
    assert_eq!(report.volumes[0].name, "set0.vol2");
    assert!(report.volumes[0].to_string_lossy().contains("could not be opened"));
    assert_eq!(report.paths.len(), 1, "{report:?}");
    assert_eq!(report.paths[0].index.as_bytes(), b"big");
    assert_eq!(fs::read(dest.join("a")).unwrap(), b"a");
    assert_eq!(fs::read(dest.join("z")).unwrap(), b"z");
    assert!(!dest.join("big").exists());
    assert!(no_temporaries(&dest));
}

#[test]
fn a_lost_incremental_volume_marks_what_it_may_have_changed() {
    let noise: Vec<u8> = (0..2_500_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let full = write_set(&[root(), file("a", b"old a"), file("b", b"old b")], MB);
    let mut inc = write_set(&[root(), file("a0big", &noise), file("z", b"z")], MB);
    let last = *inc.volumes.keys().last().unwrap();
    assert!(last >= 3);
    inc.volumes.remove(&last);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("out");
    let (report, _) = run(&[full, inc], &dest, None);
    assert_eq!(report.volumes.len(), 1, "{report:?}");
    assert_eq!((report.volumes[0].set, report.volumes[0].volume), (1, last));
    let failed: Vec<&[u8]> = report.paths.iter().map(|p| p.index.as_bytes()).collect();
    assert_eq!(failed, [b"a0big"], "{report:?}");
    // b comes from the full, but the lost volume's range covers it.
    let uncertain: Vec<&[u8]> = report.uncertain.iter().map(|i| i.as_bytes()).collect();
    assert_eq!(uncertain, [b"b"], "{report:?}");
    assert_eq!(fs::read(dest.join("a")).unwrap(), b"old a");
    assert_eq!(fs::read(dest.join("b")).unwrap(), b"old b");
    assert!(no_temporaries(&dest));
}

#[test]
fn fifos_and_devices_are_made_with_their_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let probe = tmp.path().join("probe");
    fs::write(&probe, b"").unwrap();
    let root_user = fs::metadata(&probe).unwrap().uid() == 0;
    let mut fifo = entry(Kind::Snapshot, "fifo", FileType::Fifo, b"");
    fifo.0.meta.mode = 0o640;
    let null = entry(Kind::Snapshot, "null", FileType::CharDevice { major: 1, minor: 3 }, b"");
    let full = write_set(&[root(), fifo, null], MB);
    let dest = tmp.path().join("out");
    let (report, _) = run(&[full], &dest, None);
    let fifo = fs::symlink_metadata(dest.join("fifo")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&fifo.file_type()));
    assert_eq!((fifo.mode() & 0o7777, fifo.mtime()), (0o640, 1_000_000));
    if root_user {
        assert!(report.is_complete(), "{report:?}");
        let null = fs::symlink_metadata(dest.join("null")).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_char_device(&null.file_type()));
        assert_eq!(null.rdev(), fs::metadata("/dev/null").unwrap().rdev());
    } else {
        assert!(matches!(report.paths[0].error, EntryError::DeviceNotRoot), "{report:?}");
    }
}

trait Shown {
    fn to_string_lossy(&self) -> String;
}

impl Shown for coffer_restore::VolumeProblem {
    fn to_string_lossy(&self) -> String {
        self.error.to_string()
    }
}

#[test]
fn hostile_archives_never_write_outside_the_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let link = |path: &str, target: &[u8]| entry(Kind::Snapshot, path, FileType::Symlink(target.to_vec()), b"");
    let full = write_set(
        &[
            root(),
            link("a", outside.as_os_str().as_encoded_bytes()),
            file("a/pwned", b"x"),
            link("b", b".."),
            file("b/outside/pwned", b"x"),
            file("c", b"plain file"),
            file("c/under-a-file", b"x"),
        ],
        MB,
    );
    // Later sets try again through the links restored earlier.
    let inc = write_set(&[root(), file("a/again", b"x"), file("ok", b"ok")], MB);
    let dest = tmp.path().join("dest");
    let (report, _) = run(&[full, inc], &dest, None);
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "nothing written through a link");
    let failed: Vec<&[u8]> = report.paths.iter().map(|p| p.index.as_bytes()).collect();
    assert_eq!(failed, [&b"a/again"[..], b"a/pwned", b"b/outside/pwned", b"c/under-a-file"], "{report:?}");
    assert_eq!(fs::read(dest.join("ok")).unwrap(), b"ok");
    assert!(fs::symlink_metadata(dest.join("b")).unwrap().file_type().is_symlink());
    let entries: Vec<_> = fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
}

/// A tar name with `..` in it (the writer refuses to make one, so the
/// bytes are patched): refused by name, the rest restored.
#[test]
fn dot_dot_names_are_refused() {
    let mut full = write_set(&[root(), file("xx", b"evil"), file("y", b"fine")], MB);
    let volume = full.volumes.get_mut(&1).unwrap();
    let at = volume.windows(11).position(|w| w == b"snapshot/xx").unwrap();
    volume[at + 9..at + 11].copy_from_slice(b"..");
    let header = at - at % 512;
    volume[header + 148..header + 156].copy_from_slice(b"        ");
    let sum: u32 = volume[header..header + 512].iter().map(|b| u32::from(*b)).sum();
    volume[header + 148..header + 156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("inner/dest");
    fs::create_dir(tmp.path().join("inner")).unwrap();
    let (report, _) = run(&[full], &dest, None);
    assert_eq!(report.paths.len(), 1, "{report:?}");
    assert!(report.paths[0].error.to_string().contains("'..'"), "{report:?}");
    assert_eq!(fs::read(dest.join("y")).unwrap(), b"fine");
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
    assert_eq!(fs::read_dir(tmp.path().join("inner")).unwrap().count(), 1);
}

#[test]
fn list_merges_sigtars_newest_first() {
    use coffer_archive::SigTarWriter;
    let sigtar = |entries: &[(Entry, Vec<u8>)]| {
        let mut writer = SigTarWriter::new(Vec::new());
        for (e, d) in entries {
            writer.append(e, d.len() as u64, &mut d.as_slice()).unwrap();
        }
        writer.finish().unwrap()
    };
    let sig = |path: &str| (Entry { kind: Kind::Signature, ..file(path, b"").0 }, b"sig".to_vec());
    let full = sigtar(&[root(), sig("a"), sig("b"), dir("c"), sig("c/d")]);
    let inc = sigtar(&[entry(Kind::Deleted, "b", FileType::Regular, b""), sig("bb")]);
    let listed = list([full.as_slice(), inc.as_slice()]).unwrap();
    let paths: Vec<&[u8]> = listed.iter().map(|(i, _)| i.as_bytes()).collect();
    assert_eq!(paths, [&b""[..], b"a", b"bb", b"c", b"c/d"]);
    assert!(list([&b"garbage that is not a tar"[..]]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever bytes of a volume are damaged, nothing appears outside the
    /// destination, no temporary is left, and the run ends.
    #[test]
    fn damaged_volumes_stay_inside(flips in prop::collection::vec((0usize..8192, any::<u8>()), 0..12), cut in 0usize..9000) {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let mut full = write_set(
            &[
                root(),
                entry(Kind::Snapshot, "a", FileType::Symlink(outside.as_os_str().as_encoded_bytes().to_vec()), b""),
                file("a0", b"x"),
                dir("d"),
                file("d/f", &[5; 3000]),
                entry(Kind::Snapshot, "d/p", FileType::Fifo, b""),
            ],
            MB,
        );
        let volume = full.volumes.get_mut(&1).unwrap();
        for (at, byte) in flips {
            if let Some(b) = volume.get_mut(at) {
                *b = byte;
            }
        }
        volume.truncate(cut);
        let inner = tmp.path().join("inner");
        fs::create_dir(&inner).unwrap();
        let dest = inner.join("dest");
        let _ = run(&[full], &dest, None);
        prop_assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        prop_assert!(fs::read_dir(&inner).unwrap().all(|e| e.unwrap().file_name() == "dest"));
        if dest.is_dir() {
            prop_assert!(no_temporaries(&dest));
        }
    }
}

/// What a path is in the model of a tree.
#[derive(Clone, Debug, PartialEq)]
enum Model {
    File(Vec<u8>),
    Dir,
    Link(Vec<u8>),
}

fn content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        (any::<u8>(), 1usize..200_000).prop_map(|(b, n)| (0..n).map(|i| b.wrapping_add((i / 1000) as u8)).collect()),
    ]
}

/// One change: 0 keep, 1 new contents, 2 edit as a diff, 3 delete, 4 a directory, 5 a symlink.
fn change() -> impl Strategy<Value = (u8, Vec<u8>)> {
    (0u8..6, content())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Random chains (a full and up to three incrementals of snapshots,
    /// diffs, deletions and type changes over a few paths) restore, at
    /// every set, to exactly the tree the model holds then.
    #[test]
    fn random_chains_restore_to_the_model(sets in prop::collection::vec(prop::collection::vec(change(), 5), 1..5)) {
        let names = ["p0", "p1", "p2", "p3", "p4"];
        let mut model: BTreeMap<&str, Model> = BTreeMap::new();
        let mut written: Vec<MemSet> = Vec::new();
        let tmp = tempfile::tempdir().unwrap();
        for (n, changes) in sets.iter().enumerate() {
            let mut entries = vec![root()];
            for (name, (op, data)) in names.iter().zip(changes) {
                let before = model.get(name).cloned();
                let after = match (op, &before) {
                    (0, _) => before.clone(),
                    (2, Some(Model::File(_))) | (1, _) => Some(Model::File(data.clone())),
                    (3, _) => None,
                    (4, _) => Some(Model::Dir),
                    (5, _) => Some(Model::Link(data.iter().map(|b| b'a' + b % 26).take(20).collect())),
                    _ => before.clone(),
                };
                let unchanged = after == before && n > 0;
                match &after {
                    Some(now) => {
                        model.insert(name, now.clone());
                    }
                    None => {
                        model.remove(name);
                    }
                }
                if unchanged || (after.is_none() && (before.is_none() || n == 0)) {
                    continue;
                }
                entries.push(match (&before, &after) {
                    (_, None) => entry(Kind::Deleted, name, FileType::Regular, b""),
                    (Some(Model::File(old)), Some(Model::File(new))) if *op == 2 && n > 0 => {
                        (Entry { kind: Kind::Diff, ..file(name, b"").0 }, delta(old, new))
                    }
                    (_, Some(Model::File(new))) => file(name, new),
                    (_, Some(Model::Dir)) => dir(name),
                    (_, Some(Model::Link(target))) => entry(Kind::Snapshot, name, FileType::Symlink(target.clone()), b""),
                });
            }
            written.push(write_set(&entries, MB));
            let dest = tmp.path().join(format!("out{n}"));
            let (report, _) = run(&written, &dest, None);
            prop_assert!(report.is_complete(), "{:?}", report);
            let mut got: BTreeMap<String, Model> = BTreeMap::new();
            for item in fs::read_dir(&dest).unwrap() {
                let item = item.unwrap();
                let meta = fs::symlink_metadata(item.path()).unwrap();
                let node = if meta.is_dir() {
                    Model::Dir
                } else if meta.file_type().is_symlink() {
                    Model::Link(fs::read_link(item.path()).unwrap().into_os_string().into_encoded_bytes())
                } else {
                    Model::File(fs::read(item.path()).unwrap())
                };
                got.insert(item.file_name().into_string().unwrap(), node);
            }
            let want: BTreeMap<String, Model> = model.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            prop_assert_eq!(got, want, "after set {}", n);
            fs::remove_dir_all(&dest).unwrap();
        }
    }
}
