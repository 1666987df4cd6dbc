//! `coffer-client` over random trees and random edits: after every backup
//! (a full, then incrementals) the restore equals the source, whatever
//! became of each path in between (rewritten, appended, truncated, deleted,
//! turned into a directory or a link, its mode changed).

#![allow(clippy::unwrap_used, reason = "test code: a failed step fails the test with its error")]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use coffer_tests::tree::{assert_same, bytes};
use coffer_tests::{coffer_bin, run_ok};
use proptest::prelude::*;

/// The paths an edit may touch: a few names, some nested, some awkward.
const PATHS: [&str; 8] = ["a", "b c", "d/e", "d/f", "d/g/h", "é ünï", "new\nline", "d/g/i"];

#[derive(Debug, Clone)]
enum Edit {
    Write { path: usize, seed: u64, len: usize },
    Append { path: usize, seed: u64, len: usize },
    Truncate { path: usize, len: usize },
    Remove { path: usize },
    MakeDir { path: usize },
    Link { path: usize, target: usize },
    Chmod { path: usize, mode: u32 },
}

fn edit() -> impl Strategy<Value = Edit> {
    let path = 0..PATHS.len();
    // Sizes around the 64 KiB pieces and the signature blocks.
    let len = prop_oneof![0usize..2000, 65_000usize..140_000];
    prop_oneof![
        (path.clone(), any::<u64>(), len.clone()).prop_map(|(path, seed, len)| Edit::Write { path, seed, len }),
        (path.clone(), any::<u64>(), 0usize..70_000).prop_map(|(path, seed, len)| Edit::Append { path, seed, len }),
        (path.clone(), len).prop_map(|(path, len)| Edit::Truncate { path, len }),
        path.clone().prop_map(|path| Edit::Remove { path }),
        path.clone().prop_map(|path| Edit::MakeDir { path }),
        (path.clone(), 0..PATHS.len()).prop_map(|(path, target)| Edit::Link { path, target }),
        (path, prop_oneof![Just(0o600u32), Just(0o644), Just(0o755), Just(0o640)]).prop_map(|(path, mode)| Edit::Chmod { path, mode }),
    ]
}

fn remove(p: &Path) {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p).unwrap(),
        Ok(_) => std::fs::remove_file(p).unwrap(),
        Err(_) => {}
    }
}

/// Makes the parent directories of `p` (replacing files in the way).
fn parents(root: &Path, p: &Path) {
    let mut at = root.to_path_buf();
    for c in p.strip_prefix(root).unwrap().parent().into_iter().flat_map(Path::components) {
        at.push(c);
        if !std::fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir()) {
            remove(&at);
            std::fs::create_dir(&at).unwrap();
        }
    }
}

/// Applies an edit; a changed file gets an mtime of its own second, since
/// duplicity (and so coffer-client) tells changes by whole-second mtime.
fn apply(root: &Path, e: &Edit, when: SystemTime) {
    let at = |i: usize| root.join(PATHS[i]);
    match e {
        Edit::Write { path, seed, len } => {
            parents(root, &at(*path));
            remove(&at(*path));
            std::fs::write(at(*path), bytes(*seed, *len)).unwrap();
        }
        Edit::Append { path, seed, len } => {
            if std::fs::symlink_metadata(at(*path)).is_ok_and(|m| m.is_file()) {
                let mut data = std::fs::read(at(*path)).unwrap();
                data.extend(bytes(*seed, *len));
                std::fs::write(at(*path), data).unwrap();
            }
        }
        Edit::Truncate { path, len } => {
            if std::fs::symlink_metadata(at(*path)).is_ok_and(|m| m.is_file()) {
                let f = std::fs::OpenOptions::new().write(true).open(at(*path)).unwrap();
                f.set_len(*len as u64 / 2).unwrap();
            }
        }
        Edit::Remove { path } => remove(&at(*path)),
        Edit::MakeDir { path } => {
            parents(root, &at(*path));
            if !std::fs::symlink_metadata(at(*path)).is_ok_and(|m| m.is_dir()) {
                remove(&at(*path));
                std::fs::create_dir(at(*path)).unwrap();
            }
        }
        Edit::Link { path, target } => {
            parents(root, &at(*path));
            remove(&at(*path));
            std::os::unix::fs::symlink(PATHS[*target], at(*path)).unwrap();
        }
        Edit::Chmod { path, mode } => {
            if std::fs::symlink_metadata(at(*path)).is_ok_and(|m| m.is_file()) {
                std::fs::set_permissions(at(*path), std::fs::Permissions::from_mode(*mode)).unwrap();
            }
        }
    }
    if let Some(p) = match e {
        Edit::Write { path, .. } | Edit::Append { path, .. } | Edit::Truncate { path, .. } | Edit::Chmod { path, .. } => Some(at(*path)),
        _ => None,
    } && std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file())
    {
        std::fs::File::options().write(true).open(&p).unwrap().set_modified(when).unwrap();
    }
}

fn client() -> PathBuf {
    coffer_bin().with_file_name("coffer-client")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn every_backup_restores_to_the_source(rounds in proptest::collection::vec(proptest::collection::vec(edit(), 1..8), 1..4)) {
        let work = tempfile::tempdir().unwrap();
        let w = work.path();
        let src = w.join("src");
        std::fs::create_dir(&src).unwrap();
        let url = format!("file://{}", w.join("target").display());
        let start = SystemTime::now() - Duration::from_secs(100_000);
        for (round, edits) in rounds.iter().enumerate() {
            for (i, e) in edits.iter().enumerate() {
                apply(&src, e, start + Duration::from_secs((round * 100 + i) as u64 * 10));
            }
            run_ok(Command::new(client()).env("HOME", w).args(["backup", "--no-encryption", "--volsize", "1"]).arg(&src).arg(&url));
            let dest = w.join(format!("restored-{round}"));
            run_ok(Command::new(client()).env("HOME", w).arg("restore").arg(&url).arg(&dest));
            assert_same(&src, &dest, true);
        }
    }
}
