//! `coffer-client` against stock duplicity 0.8: what the client writes,
//! duplicity restores byte for byte, through `file://` and through `sftp://`
//! against `coffer serve`; and a chain mixed of both tools continues and
//! restores at every point.

#![allow(clippy::unwrap_used, reason = "test code: a failed step fails the test with its error")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use coffer_tests::tree::{assert_same, make_source, modify_source};
use coffer_tests::{Client, Coffer, coffer_bin, gpg_key, run_ok, text};

fn client_bin() -> PathBuf {
    coffer_bin().with_file_name("coffer-client")
}

/// `coffer-client` as the user of `home` runs it, with no agent.
fn client_cmd(home: &Path, user: &str) -> Command {
    let mut c = Command::new(client_bin());
    c.env("HOME", home).env("USER", user).env_remove("SSH_AUTH_SOCK").current_dir(home);
    c
}

fn backup(home: &Path, user: &str, source: &Path, url: &str, extra: &[&str]) -> Output {
    run_ok(client_cmd(home, user).args(["backup", "--no-encryption", "--volsize", "1"]).args(extra).arg(source).arg(url))
}

/// Stock duplicity without encryption, its cache in `cache`.
fn duplicity(cache: &Path, action: &[&str]) -> Command {
    let mut c = Command::new("duplicity");
    c.args(action).args(["--no-encryption", "--archive-dir"]).arg(cache).args(["-v", "warning", "--volsize", "1"]);
    c
}

fn restore_with_duplicity(cache: &Path, url: &str, time: Option<&str>, dest: &Path) {
    let mut c = duplicity(cache, &["restore"]);
    if let Some(t) = time {
        c.args(["--time", t]);
    }
    run_ok(c.arg(url).arg(dest));
}

/// A copy of `dir` (for comparing with restores of earlier points).
fn keep(dir: &Path, to: &Path) {
    run_ok(Command::new("cp").arg("-a").arg(dir).arg(to));
}

/// A GnuPG key made in `home/.gnupg` and imported into `coffer-client`'s
/// store as `user` would; its fingerprint and what `key import` printed.
fn shared_key(home: &Path, user: &str) -> (String, Output) {
    let fpr = gpg_key(home);
    let exported = run_ok(
        Command::new("gpg")
            .env("GNUPGHOME", home.join(".gnupg"))
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--export-secret-keys", "--armor", &fpr]),
    );
    std::fs::write(home.join("key.asc"), &exported.stdout).unwrap();
    let imported = run_ok(client_cmd(home, user).env("PASSPHRASE", "").args(["key", "import"]).arg(home.join("key.asc")));
    (fpr, imported)
}

#[test]
fn duplicity_restores_a_full_and_incrementals_written_to_a_directory() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let src = w.join("src");
    make_source(&src);
    let url = format!("file://{}", w.join("target").display());
    let first = backup(w, "root", &src, &url, &[]);
    assert!(text(&first).contains("duplicity-full."), "{}", text(&first));
    keep(&src, &w.join("at-1"));
    modify_source(&src);
    let second = backup(w, "root", &src, &url, &[]);
    assert!(text(&second).contains("duplicity-inc.") && text(&second).contains("1 deleted"), "{}", text(&second));
    keep(&src, &w.join("at-2"));
    // A file becomes a directory, a directory a symlink.
    std::fs::remove_file(src.join("docs/a.txt")).unwrap();
    std::fs::create_dir(src.join("docs/a.txt")).unwrap();
    std::fs::write(src.join("docs/a.txt/inside"), b"now a directory\n").unwrap();
    std::fs::remove_dir_all(src.join("docs/empty")).unwrap();
    std::os::unix::fs::symlink("../big.bin", src.join("docs/empty")).unwrap();
    backup(w, "root", &src, &url, &[]);

    let cache = w.join("cache");
    let latest = w.join("restored-latest");
    restore_with_duplicity(&cache, &url, None, &latest);
    assert_same(&src, &latest, true);
    // Every earlier point, through duplicity's own choice of sets.
    let status = run_ok(duplicity(&cache, &["collection-status"]).arg(&url));
    assert!(text(&status).contains("Number of contained backup sets: 3"), "{}", text(&status));
    // The manifests list each set's new and changed regular files, as
    // duplicity reads them (the third set made docs/a.txt a directory).
    let history = run_ok(duplicity(&cache, &["collection-status", "--file-changed", "docs/a.txt"]).arg(&url));
    let history = text(&history);
    assert!(history.contains("Total number of backup: 2") && history.contains("New") && history.contains("Changed"), "{history}");
    let stamps: Vec<String> = std::fs::read_dir(w.join("target"))
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".manifest").map(|n| n.rsplit('.').next().unwrap().to_string()))
        .collect();
    let mut stamps = stamps;
    stamps.sort();
    for (stamp, expected) in stamps.iter().zip(["at-1", "at-2"]) {
        let dest = w.join(format!("restored-{expected}"));
        restore_with_duplicity(&cache, &url, Some(stamp), &dest);
        assert_same(&w.join(expected), &dest, true);
    }
    // One file of the first set, as duplicity picks volumes by the manifest.
    let one = w.join("one-file");
    run_ok(duplicity(&cache, &["restore", "--file-to-restore", "big.bin", "--time", &stamps[0]]).arg(&url).arg(&one));
    assert_eq!(std::fs::read(&one).unwrap(), std::fs::read(w.join("at-1/big.bin")).unwrap());
}

#[test]
fn a_chain_mixed_of_both_tools_continues_and_restores() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let src = w.join("src");
    make_source(&src);
    let url = format!("file://{}", w.join("target").display());
    let cache = w.join("cache");
    backup(w, "root", &src, &url, &[]);
    modify_source(&src);
    run_ok(duplicity(&cache, &["incremental"]).arg(&src).arg(&url));
    keep(&src, &w.join("after-duplicity"));
    std::fs::write(src.join("docs/third.txt"), b"written before coffer-client's incremental\n").unwrap();
    let out = backup(w, "root", &src, &url, &[]);
    assert!(text(&out).contains("1 new"), "coffer-client read duplicity's signatures: {}", text(&out));
    let dest = w.join("restored");
    restore_with_duplicity(&cache, &url, None, &dest);
    assert_same(&src, &dest, true);
    let verify = duplicity(&cache, &["verify", "--compare-data"]).arg(&url).arg(&src).output().unwrap();
    assert!(verify.status.success(), "duplicity verify --compare-data: {}", text(&verify));
}

#[test]
fn backups_over_sftp_to_coffer_serve_restore_with_duplicity() {
    let server = Coffer::start();
    let c: Client = server.client("alice");
    let src = c.home.join("src");
    make_source(&src);
    let url = format!("sftp://alice@127.0.0.1:{}/backups/laptop", c.port);
    backup(&c.home, "alice", &src, &url, &[]);
    modify_source(&src);
    backup(&c.home, "alice", &src, &url, &[]);
    let names: Vec<String> = std::fs::read_dir(server.area("alice").join("backups/laptop")).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| n.starts_with("duplicity-")), "no temporaries left: {names:?}");
    let dest = c.home.join("restored");
    let cache = c.home.join("cache");
    // duplicity reads the same files straight from the user's area.
    restore_with_duplicity(&cache, &format!("file://{}", server.area("alice").join("backups/laptop").display()), None, &dest);
    assert_same(&src, &dest, true);
}

#[test]
fn an_unknown_host_key_is_refused_with_its_fingerprint() {
    let server = Coffer::start();
    let c = server.client("alice");
    std::fs::write(c.home.join(".ssh/known_hosts"), "").unwrap();
    let src = c.home.join("src");
    std::fs::create_dir(&src).unwrap();
    let out = client_cmd(&c.home, "alice")
        .args(["backup", "--no-encryption"])
        .arg(&src)
        .arg(format!("sftp://alice@127.0.0.1:{}/b", c.port))
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("SHA256:"), "the fingerprint is shown: {}", text(&out));
}

#[test]
fn a_backup_without_a_key_or_no_encryption_is_refused_with_what_to_do() {
    let work = tempfile::tempdir().unwrap();
    let out = client_cmd(work.path(), "root").args(["backup"]).arg(work.path()).arg("file:///nowhere").output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("--encrypt-key") && text(&out).contains("--no-encryption"), "{}", text(&out));
}

#[test]
fn encrypted_and_signed_backups_over_sftp_restore_with_duplicity_and_its_gnupg() {
    let server = Coffer::start();
    let c: Client = server.client("alice");
    let (fpr, imported) = shared_key(&c.home, "alice");
    assert!(text(&imported).contains(&fpr), "{}", text(&imported));
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(c.home.join(".config/coffer/keys")).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700, "the key store is private");

    let src = c.home.join("src");
    make_source(&src);
    let url = format!("sftp://alice@127.0.0.1:{}/backups/laptop", c.port);
    let run = |extra: &[&str]| {
        run_ok(
            client_cmd(&c.home, "alice")
                .env("PASSPHRASE", "")
                .args(["backup", "--volsize", "1", "--encrypt-key", &fpr, "--sign-key", &fpr])
                .args(extra)
                .arg(&src)
                .arg(&url),
        )
    };
    run(&[]);
    modify_source(&src);
    // The incremental reads the encrypted signatures back.
    let second = run(&[]);
    assert!(text(&second).contains("duplicity-inc."), "{}", text(&second));
    let area = server.area("alice").join("backups/laptop");
    let names: Vec<String> = std::fs::read_dir(&area).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| n.ends_with(".gpg")), "everything is encrypted: {names:?}");
    assert!(names.iter().filter(|n| n.contains(".vol")).count() > 3, "3 MiB at --volsize 1 spans volumes: {names:?}");
    let dest = c.home.join("restored");
    run_ok(
        c.command("duplicity")
            .env("GNUPGHOME", c.home.join(".gnupg"))
            .env("PASSPHRASE", "")
            .args(["restore", "--archive-dir"])
            .arg(c.home.join("cache"))
            .args(["-v", "warning"])
            .arg(format!("file://{}", area.display()))
            .arg(&dest),
    );
    assert_same(&src, &dest, true);
}

#[test]
fn coffer_client_restores_what_duplicity_wrote_with_gnupg_at_every_point() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (fpr, _) = shared_key(w, "root");
    let src = w.join("src");
    make_source(&src);
    let url = format!("file://{}", w.join("target").display());
    let gpg_duplicity = |action: &str| {
        run_ok(
            Command::new("duplicity")
                .env("GNUPGHOME", w.join(".gnupg"))
                .env("PASSPHRASE", "")
                .args([action, "--encrypt-key", &fpr, "--sign-key", &fpr, "--volsize", "1", "-v", "warning", "--archive-dir"])
                .arg(w.join("cache"))
                .arg(&src)
                .arg(&url),
        )
    };
    gpg_duplicity("full");
    keep(&src, &w.join("at-1"));
    modify_source(&src);
    std::thread::sleep(std::time::Duration::from_secs(1));
    gpg_duplicity("incremental");
    let restore = |extra: &[&str], dest: &Path| {
        run_ok(client_cmd(w, "root").env("PASSPHRASE", "").arg("restore").args(extra).arg(&url).arg(dest))
    };
    restore(&[], &w.join("latest"));
    assert_same(&src, &w.join("latest"), true);
    let full_time = std::fs::read_dir(w.join("target"))
        .unwrap()
        .flatten()
        .find_map(|e| e.file_name().to_str()?.strip_prefix("duplicity-full.")?.split('.').next().map(str::to_string))
        .unwrap();
    restore(&["--time", &full_time], &w.join("first"));
    assert_same(&w.join("at-1"), &w.join("first"), true);
    restore(&["--path", "docs/a.txt"], &w.join("one.txt"));
    assert_eq!(std::fs::read(w.join("one.txt")).unwrap(), std::fs::read(src.join("docs/a.txt")).unwrap());

    // The listing names what duplicity's does.
    let ours = run_ok(client_cmd(w, "root").env("PASSPHRASE", "").args(["list"]).arg(&url));
    let theirs = run_ok(
        Command::new("duplicity")
            .env("GNUPGHOME", w.join(".gnupg"))
            .env("PASSPHRASE", "")
            .args(["list-current-files", "--archive-dir"])
            .arg(w.join("cache"))
            .arg(&url),
    );
    let paths = |out: &Output, skip: usize| -> Vec<String> {
        let mut v: Vec<String> = text(out).lines().filter_map(|l| l.splitn(skip + 1, ' ').nth(skip).map(str::to_string)).collect();
        v.sort();
        v
    };
    // duplicity: "Sun Dec  6 15:24:23 2026 path" (5 words with the double space), ours "STAMP path".
    let theirs_paths: Vec<String> = {
        let mut v: Vec<String> = String::from_utf8_lossy(&theirs.stdout).lines().filter(|l| l.split_whitespace().nth(4).is_some_and(|y| y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit()))).map(|l| l.split_whitespace().skip(5).collect::<Vec<_>>().join(" ")).collect();
        v.sort();
        v
    };
    assert_eq!(paths(&ours, 1), theirs_paths);

    // verify finds a change, and only that.
    let clean = client_cmd(w, "root").env("PASSPHRASE", "").args(["verify", "--compare-data"]).arg(&url).arg(&src).output().unwrap();
    assert!(clean.status.success(), "{}", text(&clean));
    std::fs::write(src.join("docs/a.txt"), b"edited after the backup\n").unwrap();
    let dirty = client_cmd(w, "root").env("PASSPHRASE", "").args(["verify", "--compare-data"]).arg(&url).arg(&src).output().unwrap();
    assert!(!dirty.status.success() && text(&dirty).contains("docs/a.txt"), "{}", text(&dirty));
}

#[test]
fn hard_links_come_back_as_links_with_coffer_client_and_as_copies_with_duplicity() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let src = w.join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("a/original"), b"shared bytes\n").unwrap();
    std::fs::hard_link(src.join("a/original"), src.join("link-1")).unwrap();
    std::fs::hard_link(src.join("a/original"), src.join("link-2")).unwrap();
    let url = format!("file://{}", w.join("target").display());
    backup(w, "root", &src, &url, &[]);
    let ours = w.join("ours");
    run_ok(client_cmd(w, "root").arg("restore").arg(&url).arg(&ours));
    let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    assert_eq!(ino(&ours.join("a/original")), ino(&ours.join("link-1")));
    assert_eq!(ino(&ours.join("a/original")), ino(&ours.join("link-2")));
    let theirs = w.join("theirs");
    restore_with_duplicity(&w.join("cache"), &url, None, &theirs);
    assert_same(&src, &theirs, true);
    assert_ne!(ino(&theirs.join("a/original")), ino(&theirs.join("link-1")), "duplicity makes copies");
}

#[test]
fn an_unreadable_directory_is_reported_and_its_files_stay_in_the_backup() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::set_permissions(w, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let src = w.join("src");
    std::fs::create_dir_all(src.join("closed")).unwrap();
    std::fs::write(src.join("closed/kept.txt"), b"backed up while readable\n").unwrap();
    std::fs::write(src.join("open.txt"), b"always readable\n").unwrap();
    run_ok(Command::new("chown").args(["-R", "nobody:nogroup"]).arg(w));
    let url = format!("file://{}", w.join("target").display());
    // As an ordinary user: root reads every directory.
    let as_nobody = || {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"]).arg(client_bin()).env("HOME", w).env_remove("SSH_AUTH_SOCK");
        c
    };
    run_ok(as_nobody().args(["backup", "--no-encryption"]).arg(&src).arg(&url));
    std::fs::set_permissions(src.join("closed"), std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    std::fs::write(src.join("open.txt"), b"changed\n").unwrap();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
    std::fs::File::options().write(true).open(src.join("open.txt")).unwrap().set_modified(later).unwrap();
    let second = as_nobody().args(["backup", "--no-encryption"]).arg(&src).arg(&url).output().unwrap();
    assert_eq!(second.status.code(), Some(2), "skipped paths give exit status 2: {}", text(&second));
    assert!(text(&second).contains("closed"), "the directory is named: {}", text(&second));
    let dest = w.join("restored");
    restore_with_duplicity(&w.join("cache"), &url, None, &dest);
    assert_eq!(std::fs::read(dest.join("closed/kept.txt")).unwrap(), b"backed up while readable\n");
    assert_eq!(std::fs::read(dest.join("open.txt")).unwrap(), b"changed\n");
}

#[test]
fn a_damaged_volume_is_named_and_everything_else_is_restored() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let src = w.join("src");
    make_source(&src);
    let target = w.join("target");
    backup(w, "root", &src, &format!("file://{}", target.display()), &[]);
    let vol2 = std::fs::read_dir(&target).unwrap().flatten().map(|e| e.path()).find(|p| p.to_string_lossy().ends_with(".vol2.difftar.gz")).unwrap();
    let mut bytes = std::fs::read(&vol2).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&vol2, bytes).unwrap();
    let dest = w.join("restored");
    let out = client_cmd(w, "root").arg("restore").arg(format!("file://{}", target.display())).arg(&dest).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let name = vol2.file_name().unwrap().to_string_lossy().into_owned();
    assert!(text(&out).contains(&name), "the damaged volume is named: {}", text(&out));
    assert_eq!(std::fs::read(dest.join("docs/a.txt")).unwrap(), std::fs::read(src.join("docs/a.txt")).unwrap(), "files outside it are restored");
}

/// duplicity 3.x from PyPI, installed by `scripts/setup-host` under out/cache.
fn duplicity3() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../out/cache/duplicity3/bin/duplicity");
    assert!(bin.exists(), "{} is missing: scripts/setup-host installs duplicity 3 from PyPI there", bin.display());
    bin
}

#[test]
fn duplicity_3_restores_and_continues_what_coffer_client_wrote() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (fpr, _) = shared_key(w, "root");
    let src = w.join("src");
    make_source(&src);
    let url = format!("file://{}", w.join("target").display());
    let ours = || run_ok(client_cmd(w, "root").env("PASSPHRASE", "").args(["backup", "--volsize", "1", "--encrypt-key", &fpr, "--sign-key", &fpr]).arg(&src).arg(&url));
    let theirs = |args: &[&str]| {
        let mut c = Command::new(duplicity3());
        c.env("GNUPGHOME", w.join(".gnupg")).env("PASSPHRASE", "").env("HOME", w).args(args).args(["--archive-dir"]).arg(w.join("cache")).args(["-v", "warning"]);
        c
    };
    ours();
    modify_source(&src);
    run_ok(theirs(&["incremental", "--encrypt-key", &fpr, "--sign-key", &fpr, "--volsize", "1"]).arg(&src).arg(&url));
    std::fs::write(src.join("docs/after-duplicity-3.txt"), b"written before coffer-client's incremental\n").unwrap();
    ours();
    let dest = w.join("restored-by-3");
    run_ok(theirs(&["restore"]).arg(&url).arg(&dest));
    assert_same(&src, &dest, true);
    let ours_dest = w.join("restored-by-coffer");
    run_ok(client_cmd(w, "root").env("PASSPHRASE", "").arg("restore").arg(&url).arg(&ours_dest));
    assert_same(&src, &ours_dest, true);
    run_ok(theirs(&["verify", "--compare-data"]).arg(&url).arg(&src));
}

/// `key import` without `PASSPHRASE` asks on the terminal with echo off:
/// the passphrase typed never shows, and the key is imported with it.
#[test]
fn key_import_asks_for_the_passphrase_without_echoing_it() {
    let work = tempfile::tempdir().unwrap();
    let home = work.path();
    let gnupg = home.join(".gnupg");
    std::fs::create_dir_all(&gnupg).unwrap();
    std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| {
        run_ok(Command::new("gpg").env("GNUPGHOME", &gnupg).args(["--batch", "--pinentry-mode", "loopback", "--passphrase", "hunter2"]).args(args))
    };
    gpg(&["--quick-gen-key", "Echo Test <echo@coffer.invalid>", "ed25519", "sign,cert", "never"]);
    let exported = gpg(&["--export-secret-keys", "--armor", "echo@coffer.invalid"]);
    std::fs::write(home.join("key.asc"), &exported.stdout).unwrap();
    // A terminal for the client (Debian's python3 and its pty module): wait
    // for the question, type the answer, collect everything it showed.
    let driver = r#"
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
seen = b""
while b"PASSPHRASE" not in seen:
    seen += os.read(fd, 1024)
os.write(fd, b"hunter2\n")
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(seen)
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let out = run_ok(
        Command::new("/usr/bin/python3")
            .env("HOME", home)
            .env_remove("PASSPHRASE")
            .args(["-c", driver])
            .arg(client_bin())
            .args(["key", "import"])
            .arg(home.join("key.asc")),
    );
    let shown = text(&out);
    assert!(!shown.contains("hunter2"), "the passphrase was echoed: {shown}");
    assert!(shown.contains("passphrase of the key"), "{shown}");
    let listed = run_ok(client_cmd(home, "root").args(["key", "list"]));
    assert!(text(&listed).contains("Echo Test"), "{}", text(&listed));
}

/// A tree with every awkward thing duplicity must carry: names with a
/// newline, bytes that are not UTF-8 and non-Latin scripts, an empty file,
/// a sparse file, a FIFO, old mtimes; then an incremental that truncates,
/// appends, renames and turns a file into a symlink. Duplicity 0.8 and
/// 3.2.1 restore both points with names, types, contents and mtimes, and
/// `verify --compare-data` finds no difference; so does coffer-client.
#[test]
fn awkward_names_and_special_files_restore_and_verify_with_both_duplicities() {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::FileExt;
    use std::time::{Duration, UNIX_EPOCH};

    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let src = w.join("src");
    let at = |name: &[u8]| src.join(std::ffi::OsStr::from_bytes(name));
    std::fs::create_dir_all(src.join("dir")).unwrap();
    std::fs::write(at(b"new\nline.txt"), b"a name with a newline\n").unwrap();
    std::fs::write(at(b"bad-\xff\xfe-utf8.bin"), coffer_tests::tree::bytes(7, 3000)).unwrap();
    std::fs::write(at("ελληνικά 中文 עברית.txt".as_bytes()), b"scripts\n").unwrap();
    std::fs::write(src.join("empty"), b"").unwrap();
    std::fs::write(src.join("shrinks"), coffer_tests::tree::bytes(8, 200_000)).unwrap();
    std::fs::write(src.join("becomes-link"), b"a file first\n").unwrap();
    std::fs::write(src.join("old-name"), b"renamed later\n").unwrap();
    let sparse = std::fs::File::create(src.join("sparse")).unwrap();
    sparse.set_len(8 << 20).unwrap();
    sparse.write_all_at(b"the end", (8 << 20) - 7).unwrap();
    drop(sparse);
    run_ok(Command::new("mkfifo").arg(src.join("pipe")));
    let old = UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    for f in ["empty", "old-name"] {
        std::fs::File::options().write(true).open(src.join(f)).unwrap().set_modified(old).unwrap();
    }
    let url = format!("file://{}", w.join("target").display());
    backup(w, "root", &src, &url, &[]);
    keep(&src, &w.join("at-1"));

    let shrinks = std::fs::File::options().write(true).open(src.join("shrinks")).unwrap();
    shrinks.set_len(1000).unwrap();
    drop(shrinks);
    let mut bad = std::fs::File::options().append(true).open(at(b"bad-\xff\xfe-utf8.bin")).unwrap();
    std::io::Write::write_all(&mut bad, b"appended").unwrap();
    drop(bad);
    std::fs::rename(src.join("old-name"), src.join("dir/new-name")).unwrap();
    std::fs::remove_file(src.join("becomes-link")).unwrap();
    std::os::unix::fs::symlink("dir/new-name", src.join("becomes-link")).unwrap();
    // Changes are seen by whole-second mtime, as duplicity sees them.
    let later = std::time::SystemTime::now() + Duration::from_secs(2);
    for f in [&src.join("shrinks"), &at(b"bad-\xff\xfe-utf8.bin")] {
        std::fs::File::options().write(true).open(f).unwrap().set_modified(later).unwrap();
    }
    backup(w, "root", &src, &url, &[]);

    let cache = w.join("cache");
    let times = sets_by_time(&w.join("target"));
    for (version, program) in [("0.8", PathBuf::from("duplicity")), ("3", duplicity3())] {
        let run = |args: &[&str], extra: &[&Path]| {
            let mut c = Command::new(&program);
            c.env("HOME", w).args(args).args(["--no-encryption", "--archive-dir"]).arg(&cache).args(["-v", "warning"]);
            c.args(extra);
            run_ok(&mut c)
        };
        for (time, expected) in [(&times[0], w.join("at-1")), (&times[1], src.clone())] {
            let dest = w.join(format!("restored-{version}-{time}"));
            run(&["restore", "--time", time, &url], &[&dest]);
            assert_same_with_mtimes(&expected, &dest);
        }
        // Exit status 1 on any difference.
        run(&["verify", "--compare-data", &url], &[&src]);
    }
    let ours = w.join("restored-by-coffer");
    run_ok(client_cmd(w, "root").arg("restore").arg(&url).arg(&ours));
    assert_same_with_mtimes(&src, &ours);
    let verified = client_cmd(w, "root").args(["verify", "--compare-data"]).arg(&url).arg(&src).output().unwrap();
    assert!(verified.status.success() && text(&verified).contains(" 0 difference(s)"), "{}", text(&verified));
}

/// The end times of the sets at `target`, oldest first, as `--time` takes them.
fn sets_by_time(target: &Path) -> Vec<String> {
    let mut stamps: Vec<String> = std::fs::read_dir(target)
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".manifest").map(|n| n.rsplit('.').next().unwrap().to_string()))
        .collect();
    stamps.sort();
    stamps
}

/// Names (as bytes), types, contents, link targets and the mtimes of
/// files and FIFOs are the same in both trees.
fn assert_same_with_mtimes(a: &Path, b: &Path) {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    fn list(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<Vec<u8>, String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap().as_os_str().as_bytes().to_vec();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let kind = meta.file_type();
            let what = if kind.is_symlink() {
                format!("symlink to {:?}", std::fs::read_link(&path).unwrap())
            } else if kind.is_dir() {
                list(root, &path, out);
                "directory".to_string()
            } else if kind.is_fifo() {
                format!("fifo, mtime {}", meta.mtime())
            } else {
                let content = std::fs::read(&path).unwrap();
                format!("file of {} bytes, hash {:x}, mtime {}", content.len(), fnv(&content), meta.mtime())
            };
            out.insert(rel, what);
        }
    }
    fn fnv(data: &[u8]) -> u64 {
        data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    }
    let (mut la, mut lb) = (std::collections::BTreeMap::new(), std::collections::BTreeMap::new());
    list(a, a, &mut la);
    list(b, b, &mut lb);
    assert_eq!(la, lb, "{} and {} differ", a.display(), b.display());
}
