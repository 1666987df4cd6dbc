//! What administrator commands do with files a hostile party chose.
//!
//! Key files given to `user add --key`: an administrator must not be able
//! to read the box's files through it. Over SSH a file name is refused
//! (keys come on standard input); locally the file is read with the rights
//! of the person who ran `sudo coffer …`; and no error shows a byte of what
//! was read. Data a removed user left behind (links included) is handed to
//! a new user of that name without following a link out of the area.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use coffer_tests::{Coffer, coffer_bin, coffer_ok, run_ok, text};

/// What no refusal may show: the first word of the files below.
const MARK: &str = "Zq8mark";

/// A root-only file (mode 0600) like /etc/shadow, with `MARK` in its first line.
fn root_only_file(dir: &Path) -> PathBuf {
    let path = dir.join("root-only");
    std::fs::write(&path, format!("{MARK}:$6$salt$hash:19000:0:99999:7:::\nsecond line\n")).expect("write the root-only file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod the root-only file");
    path
}

fn public_key(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    run_ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"]).arg(&key));
    let public = key.with_extension("pub");
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).expect("chmod the public key");
    public
}

fn refused_without_content(out: &Output, expect: &str, what: &str) {
    let said = text(out);
    assert!(!out.status.success(), "{what}: accepted: {said}");
    assert!(said.contains(expect), "{what}: {said}");
    assert!(!said.contains(MARK) && !said.contains("19000"), "{what}: the refusal shows the file's content: {said}");
}

#[test]
fn key_files_on_the_box_are_not_read_over_ssh() {
    let server = Coffer::start();
    coffer_ok(&server.state, &["user", "set", "alice", "--role", "admin"]);
    let alice = server.client("alice");
    let secret = root_only_file(&server.root);
    for line in [
        format!("user add zz --key {}", secret.display()),
        format!("user add zz --key={} --profile read-only", secret.display()),
        "user add zz --key /etc/shadow".to_string(),
    ] {
        let out = alice.ssh(&line);
        refused_without_content(&out, "--key -", &line);
        assert!(text(&out).contains("standard input"), "{line}: {}", text(&out));
        assert!(!text(&out).contains("root:"), "{line}: {}", text(&out));
    }
    // What comes on standard input is not echoed either.
    let out = alice.ssh_with_stdin("user add zz --key -", std::fs::read(&secret).unwrap().as_slice());
    refused_without_content(&out, "standard input: line 1 is not an OpenSSH public key", "junk on stdin");
    assert!(!text(&alice.ssh("user list")).contains("zz"));

    // The supported way still works.
    let dir = tempfile::tempdir().unwrap();
    let key = std::fs::read(public_key(dir.path(), "zz")).unwrap();
    let out = alice.ssh_with_stdin("user add zz --key -", &key);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&alice.ssh("user list")).contains("zz"));
}

#[test]
fn a_local_key_file_is_read_as_the_user_who_ran_sudo() {
    let dir = tempfile::Builder::new().prefix("coffer-keys-").tempdir().unwrap();
    // nobody must be able to reach the readable files below.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let state = dir.path().join("state");
    coffer_ok(&state, &["init"]);
    let secret = root_only_file(dir.path());
    let junk = dir.path().join("junk");
    std::fs::write(&junk, format!("{MARK} is not a key\n")).unwrap();
    std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o644)).unwrap();
    let add = |key: &Path, sudo: bool| {
        let mut c = Command::new(coffer_bin());
        c.arg("--state").arg(&state).args(["user", "add", "zz", "--key"]).arg(key);
        if sudo {
            c.env("SUDO_UID", "65534").env("SUDO_GID", "65534");
        } else {
            c.env_remove("SUDO_UID").env_remove("SUDO_GID");
        }
        c.output().expect("run coffer")
    };

    // `sudo coffer user add zz --key /etc/shadow` by someone who cannot read it.
    let out = add(&secret, true);
    refused_without_content(&out, "Permission denied", "root-only file under sudo");
    assert!(text(&out).contains("as uid 65534"), "{}", text(&out));
    // Root reads it, and is told it is no key without seeing a word of it.
    refused_without_content(&add(&secret, false), "line 1 is not an OpenSSH public key (expected a line like `ssh-ed25519 AAAA", "root-only file as root");
    refused_without_content(&add(&junk, true), "line 1 is not an OpenSSH public key", "readable junk under sudo");
    assert!(!text(&Command::new(coffer_bin()).arg("--state").arg(&state).args(["user", "list"]).output().unwrap()).contains("zz"));

    // A key the sudo user can read is added.
    let key = public_key(dir.path(), "zz");
    let out = add(&key, true);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&coffer_ok(&state, &["user", "list"])).contains("zz"));
}

/// Every path under `dir` (links not followed), `dir` included.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if std::fs::symlink_metadata(dir).expect("lstat").is_dir() {
        for entry in std::fs::read_dir(dir).expect("list") {
            walk(&entry.expect("entry").path(), out);
        }
    }
}

#[test]
fn kept_data_goes_to_the_new_user_without_following_links_out() {
    let server = Coffer::start();
    let outside = server.root.join("outside");
    std::fs::create_dir_all(outside.join("sub")).expect("mkdir outside");
    std::fs::write(outside.join("file"), "root's").expect("write outside");
    let local = server.root.join("upload");
    std::fs::write(&local, "bob's data").expect("write upload");
    // bob's session plants links to the outside next to his data.
    let bob = server.client("bob");
    let out = bob.sftp_batch(&format!(
        "mkdir backup\nmkdir backup/sub\nput {local} backup/sub/data\nsymlink {o} backup/escape\nsymlink {o}/file backup/escape-file\nsymlink ../../../outside backup/sub/up\n",
        local = local.display(),
        o = outside.display()
    ));
    assert!(out.status.success(), "{}", text(&out));
    let area = server.area("bob");
    assert!(std::fs::symlink_metadata(area.join("backup/escape")).expect("planted link").file_type().is_symlink());

    coffer_ok(&server.state, &["user", "remove", "bob"]);
    let key = server.root.join("clients/bob/.ssh/id_ed25519.pub");
    coffer_ok(&server.state, &["user", "add", "bob", "--key", key.to_str().expect("utf-8 path")]);
    let uid = std::fs::metadata(&area).expect("area").uid();
    assert_ne!(uid, 0);
    let mut inside = Vec::new();
    walk(&area, &mut inside);
    assert!(inside.len() >= 7, "{inside:?}");
    for p in &inside {
        assert_eq!(std::fs::symlink_metadata(p).expect("lstat").uid(), uid, "{} handed over", p.display());
    }
    for p in [outside.clone(), outside.join("sub"), outside.join("file")] {
        assert_eq!(std::fs::metadata(&p).expect("stat").uid(), 0, "{} changed owner", p.display());
    }
    let fetched = server.root.join("fetched");
    let out = server.client("bob").sftp_batch(&format!("get backup/sub/data {}\n", fetched.display()));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&fetched).expect("fetched"), "bob's data");
}
