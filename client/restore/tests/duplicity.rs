//! Against the real thing: Debian's duplicity 0.8 backs up a tree (a full
//! and three incrementals with edits, appends, truncations, deletions, a
//! rename, a file that becomes a directory and then a symlink, empty files,
//! a 3 MB file spanning 1 MB volumes, odd names, modes, owners, mtimes,
//! symlinks, a FIFO), a copy of the source is kept after each backup, and
//! the chain up to each set restored with this crate must equal that copy
//! byte for byte and in metadata. Then: one file and one directory alone,
//! `list` against `duplicity list-current-files`, `verify` against the
//! source and a changed copy, and a chain with a volume deleted.
//!
//! Skipped (with a note on stderr) when /usr/bin/duplicity is missing.

#![allow(clippy::unwrap_used, reason = "test code: a failed file operation or tool run fails the test")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use coffer_archive::Index;
use coffer_restore::{Chain, Limits, VolumeSource, list, restore, verify};
use common::{differences, no_temporaries, snapshot};

const DUPLICITY: &str = "/usr/bin/duplicity";

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn name(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

fn run(program: &str, args: &[&OsStr]) -> String {
    let out = Command::new(program).args(args).env("LC_ALL", "C.UTF-8").output().unwrap();
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn touch(path: &Path, mtime: i64) {
    run("touch", &["-h".as_ref(), "-d".as_ref(), format!("@{mtime}").as_ref(), path.as_os_str()]);
}

fn duplicity(action: &str, src: &Path, work: &Path) {
    let url = format!("file://{}", work.join("remote").display());
    let cache = work.join("cache");
    let mut args: Vec<&OsStr> = vec![action.as_ref(), "--no-encryption".as_ref(), "--volsize".as_ref(), "1".as_ref()];
    args.extend(["--name".as_ref(), "t".as_ref(), "--archive-dir".as_ref(), cache.as_os_str()]);
    args.extend([src.as_os_str(), url.as_ref()]);
    run(DUPLICITY, &args);
}

/// One set's files in the remote directory.
struct SetFiles {
    /// `duplicity-full.T` or `duplicity-inc.T1.to.T2`.
    prefix: String,
    volumes: BTreeMap<u32, PathBuf>,
    manifest: PathBuf,
}

/// The remote's sets in chain order (the full, then incrementals by time)
/// and its sigtars in the same order.
fn remote_sets(remote: &Path) -> (Vec<SetFiles>, Vec<PathBuf>) {
    let mut sets: BTreeMap<(bool, String), SetFiles> = BTreeMap::new();
    let mut sigtars = BTreeMap::new();
    for item in fs::read_dir(remote).unwrap() {
        let path = item.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_string();
        if file.contains("signatures.") {
            sigtars.insert((file.starts_with("duplicity-new"), file), path);
            continue;
        }
        let full = file.starts_with("duplicity-full.");
        if let Some(key) = file.strip_suffix(".manifest") {
            let set = sets.entry((full, key.into())).or_insert_with(|| SetFiles {
                prefix: key.into(),
                volumes: BTreeMap::new(),
                manifest: PathBuf::new(),
            });
            set.manifest = path.clone();
        } else if let Some(at) = file.find(".vol") {
            let number: u32 = file[at + 4..].split('.').next().unwrap().parse().unwrap();
            let set = sets.entry((full, file[..at].into())).or_insert_with(|| SetFiles {
                prefix: file[..at].into(),
                volumes: BTreeMap::new(),
                manifest: PathBuf::new(),
            });
            set.volumes.insert(number, path.clone());
        }
    }
    // (false, …) sorts first: make the full come first.
    let mut ordered: Vec<SetFiles> = Vec::new();
    let (fulls, incs): (Vec<_>, Vec<_>) = sets.into_iter().partition(|((full, _), _)| *full);
    ordered.extend(fulls.into_iter().map(|(_, s)| s));
    ordered.extend(incs.into_iter().map(|(_, s)| s));
    (ordered, sigtars.into_values().collect())
}

/// Volumes from the remote directory, gunzipped as they are read.
struct DirSource {
    prefixes: Vec<String>,
    sets: Vec<BTreeMap<u32, PathBuf>>,
    opened: usize,
}

impl VolumeSource for DirSource {
    fn name(&self, set: usize, volume: u32) -> String {
        format!("{}.vol{volume}.difftar.gz", self.prefixes[set])
    }
    fn open(&mut self, set: usize, volume: u32) -> io::Result<Box<dyn Read>> {
        self.opened += 1;
        let path = self.sets.get(set).and_then(|s| s.get(&volume)).ok_or(io::ErrorKind::NotFound)?;
        Ok(Box::new(flate2::read::GzDecoder::new(File::open(path)?)))
    }
}

fn chain_at(remote: &Path, last_set: usize) -> (Chain, DirSource) {
    let (sets, _) = remote_sets(remote);
    let sets = &sets[..=last_set];
    let manifests: Vec<Vec<u8>> = sets.iter().map(|s| fs::read(&s.manifest).unwrap()).collect();
    let chain = Chain::parse(&manifests).unwrap();
    let prefixes = sets.iter().map(|s| s.prefix.clone()).collect();
    (chain, DirSource { prefixes, sets: sets.iter().map(|s| s.volumes.clone()).collect(), opened: 0 })
}

fn build(src: &Path) {
    let mut t = 1_700_000_000;
    let mut file = |rel: &Path, data: &[u8]| {
        let path = src.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, data).unwrap();
        t += 1;
        touch(&path, t);
    };
    file(Path::new("a.txt"), b"hello\n");
    file(Path::new("empty"), b"");
    file(Path::new("append"), &noise(100_000, 1));
    file(Path::new("trunc"), &noise(200_000, 2));
    file(Path::new("big.bin"), &noise(3_000_000, 3));
    file(Path::new("gone"), b"bye");
    file(Path::new("renamed-from"), b"moving");
    file(Path::new("morph"), b"i am a file");
    file(Path::new("exec.sh"), b"#!/bin/sh\n");
    file(Path::new("private"), b"secret");
    file(Path::new("sp ace/inner.txt"), b"inner");
    file(Path::new("sub/deeper/x"), b"x");
    file(&name(b"bad\xff\xfe"), b"bad name");
    file(&name(b"new\nline"), b"nl");
    file(Path::new("h\u{e9}llo \u{65e5}\u{672c}.txt"), b"unicode");
    file(Path::new("quo\"te's"), b"quotes");
    fs::set_permissions(src.join("exec.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(src.join("private"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(src.join("sub"), fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::lchown(src.join("private"), Some(1234), Some(5678)).unwrap();
    symlink("a.txt", src.join("link")).unwrap();
    symlink("/nonexistent/x", src.join("dangling")).unwrap();
    run("mkfifo", &[src.join("fifo").as_os_str()]);
    touch(&src.join("fifo"), 1_600_000_000);
    fs::hard_link(src.join("a.txt"), src.join("hard")).unwrap();
}

fn edit(src: &Path, step: u32) {
    let t = 1_710_000_000 + i64::from(step) * 1000;
    let set = |rel: &str, data: &[u8]| {
        fs::write(src.join(rel), data).unwrap();
        touch(&src.join(rel), t);
    };
    let append = |rel: &str, data: &[u8]| {
        fs::OpenOptions::new().append(true).open(src.join(rel)).unwrap().write_all(data).unwrap();
        touch(&src.join(rel), t);
    };
    match step {
        1 => {
            set("a.txt", b"hello again\n");
            append("append", &noise(50_000, 4));
            fs::OpenOptions::new().write(true).open(src.join("trunc")).unwrap().set_len(1000).unwrap();
            touch(&src.join("trunc"), t);
            fs::remove_file(src.join("gone")).unwrap();
            fs::rename(src.join("renamed-from"), src.join("renamed-to")).unwrap();
            fs::remove_file(src.join("morph")).unwrap();
            fs::create_dir(src.join("morph")).unwrap();
            set("morph/child", b"child");
            let mut big = fs::read(src.join("big.bin")).unwrap();
            big[1_000_000..1_000_100].fill(7);
            set("big.bin", &big);
            fs::set_permissions(src.join("exec.sh"), fs::Permissions::from_mode(0o700)).unwrap();
            set("empty2", b"");
        }
        2 => {
            fs::remove_dir_all(src.join("morph")).unwrap();
            symlink("a.txt", src.join("morph")).unwrap();
            fs::remove_dir_all(src.join("sub")).unwrap();
            fs::create_dir_all(src.join("sub2/nested")).unwrap();
            set("sub2/file", b"sub2");
            set("sub2/nested/deep", b"deep");
            fs::write(src.join(name(b"new\nline")), b"changed nl").unwrap();
            touch(&src.join(name(b"new\nline")), t);
            fs::write(src.join(name(b"bad\xff\xfe")), b"changed bad name").unwrap();
            touch(&src.join(name(b"bad\xff\xfe")), t);
        }
        _ => {
            fs::OpenOptions::new().write(true).open(src.join("append")).unwrap().set_len(0).unwrap();
            touch(&src.join("append"), t);
            set("gone", b"back again");
            fs::remove_file(src.join("fifo")).unwrap();
            append("big.bin", &noise(70_000, 5));
            set("empty", b"no longer empty");
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    run("cp", &["-a".as_ref(), from.as_os_str(), to.as_os_str()]);
}

#[test]
fn chains_written_by_duplicity_restore_list_and_verify() {
    if !Path::new(DUPLICITY).exists() {
        eprintln!("{DUPLICITY} missing: skipped");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let src = work.join("src");
    fs::create_dir(&src).unwrap();
    build(&src);
    let remote = work.join("remote");
    for step in 0..4u32 {
        if step > 0 {
            // Sets are named by the second they start.
            std::thread::sleep(std::time::Duration::from_millis(1100));
            edit(&src, step);
        }
        duplicity(if step == 0 { "full" } else { "incr" }, &src, work);
        copy_tree(&src, &work.join(format!("snap{step}")));
    }
    let (sets, sigtars) = remote_sets(&remote);
    assert_eq!(sets.len(), 4);
    assert!(sets[0].volumes.len() >= 3, "the big file spans volumes");

    for step in 0..4usize {
        let (chain, mut source) = chain_at(&remote, step);
        let dest = work.join(format!("out{step}"));
        let report = restore(&chain, &mut source, &dest, None, &Limits::default()).unwrap();
        assert!(report.is_complete(), "set {step}: {report:?}");
        let diff = differences(&snapshot(&work.join(format!("snap{step}"))), &snapshot(&dest));
        assert!(diff.is_empty(), "set {step}:\n{}", diff.join("\n"));
        assert!(no_temporaries(&dest));
        fs::remove_dir_all(&dest).unwrap();
    }
    let last = sets.len() - 1;
    let snap = work.join(format!("snap{last}"));

    // One file, one directory: only the volumes that may hold them.
    let (chain, mut source) = chain_at(&remote, last);
    let one = work.join("one");
    let report =
        restore(&chain, &mut source, &one, Some(&Index::from_bytes(b"sp ace/inner.txt")), &Limits::default()).unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert!(differences(&snapshot(&snap.join("sp ace/inner.txt")), &snapshot(&one)).is_empty());
    let all: usize = sets.iter().map(|s| s.volumes.len()).sum();
    assert!(source.opened < all, "{} of {all} volumes opened", source.opened);
    let (chain, mut source) = chain_at(&remote, last);
    let sub = work.join("sub");
    let report = restore(&chain, &mut source, &sub, Some(&Index::from_bytes(b"sub2")), &Limits::default()).unwrap();
    assert!(report.is_complete(), "{report:?}");
    let diff = differences(&snapshot(&snap.join("sub2")), &snapshot(&sub));
    assert!(diff.is_empty(), "{}", diff.join("\n"));

    // list equals list-current-files.
    let readers: Vec<_> = sigtars.iter().map(|p| flate2::read::GzDecoder::new(File::open(p).unwrap())).collect();
    let listed = list(readers).unwrap();
    let url = format!("file://{}", remote.display());
    let cache = work.join("cache");
    let text = run(
        DUPLICITY,
        &[
            "list-current-files".as_ref(),
            "--no-encryption".as_ref(),
            "--name".as_ref(),
            "t".as_ref(),
            "--archive-dir".as_ref(),
            cache.as_os_str(),
            url.as_ref(),
        ],
    );
    let dated = |line: &str| {
        line.len() > 25 && line.as_bytes()[3] == b' ' && line.as_bytes()[7] == b' ' && line.as_bytes()[13] == b':'
    };
    let theirs: BTreeSet<String> = text.lines().filter(|l| dated(l)).map(|l| l[25..].to_string()).collect();
    assert_eq!(text.lines().filter(|l| dated(l)).count(), listed.len(), "{text}");
    for (index, _) in &listed {
        let Ok(path) = std::str::from_utf8(index.as_bytes()) else { continue };
        if path.contains('\n') {
            continue;
        }
        let shown = if path.is_empty() { "." } else { path };
        assert!(theirs.contains(shown), "{shown:?} not in\n{text}");
    }

    // verify: the source as backed up is clean, a changed copy is not.
    let (chain, mut source) = chain_at(&remote, last);
    let report = verify(&chain, &mut source, &snap, true, &Limits::default()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(report.compared as usize >= listed.len());
    let edited = work.join("edited");
    copy_tree(&snap, &edited);
    // Same size and mtime: only the data differs (and "hard" stays as it was).
    fs::remove_file(edited.join("a.txt")).unwrap();
    fs::write(edited.join("a.txt"), b"HELLO AGAIN\n").unwrap();
    touch(&edited.join("a.txt"), 1_710_001_000);
    fs::remove_file(edited.join("renamed-to")).unwrap();
    fs::write(edited.join("extra"), b"").unwrap();
    touch(&edited.join("exec.sh"), 5);
    touch(&edited, std::os::unix::fs::MetadataExt::mtime(&fs::metadata(&snap).unwrap()));
    let (chain, mut source) = chain_at(&remote, last);
    let report = verify(&chain, &mut source, &edited, true, &Limits::default()).unwrap();
    let messages: Vec<&str> = report.differences.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert_eq!(messages[0], "Difference found: Data for file a.txt is different");
    assert!(messages[1].starts_with("Difference found: File exec.sh has mtime Thu Jan  1 00:00:05 1970, expected "));
    assert_eq!(messages[2..], ["Difference found: New file extra", "Difference found: File renamed-to is missing"]);
    let (chain, mut source) = chain_at(&remote, last);
    let report = verify(&chain, &mut source, &edited, false, &Limits::default()).unwrap();
    assert_eq!(report.differences.len(), 3, "metadata only: the same-size edit is not seen {report:?}");

    // A missing volume: named, and everything not in it restored.
    let broken = work.join("broken");
    copy_tree(&remote, &broken);
    let (full_sets, _) = remote_sets(&broken);
    let lost = full_sets[0].volumes[&2].clone();
    fs::remove_file(&lost).unwrap();
    let (chain, mut source) = chain_at(&broken, last);
    let dest = work.join("partial");
    let report = restore(&chain, &mut source, &dest, None, &Limits::default()).unwrap();
    assert!(!report.is_complete());
    assert_eq!(report.volumes.len(), 1, "{report:?}");
    assert_eq!(report.volumes[0].name, lost.file_name().unwrap().to_string_lossy());
    assert_eq!((report.volumes[0].set, report.volumes[0].volume), (0, 2));
    let failed: Vec<&[u8]> = report.paths.iter().map(|p| p.index.as_bytes()).collect();
    assert_eq!(failed, [b"big.bin"], "{report:?}");
    let mut want = snapshot(&snap);
    want.remove(&b"big.bin"[..]);
    let diff = differences(&want, &snapshot(&dest));
    assert!(diff.is_empty(), "{}", diff.join("\n"));
}
