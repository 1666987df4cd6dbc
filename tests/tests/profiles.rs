//! Per-key profiles with the real clients: an append-only key backs up
//! (duplicity full, incremental, resume; restic backup) but cannot destroy
//! history; a read-only key restores only.

use std::process::Command;

use coffer_tests::{Client, Coffer, Options, coffer_bin, run_ok, text, tree};

fn set_profile(server: &Coffer, user: &str, profile: &str) {
    let key = server.client(user).home.join(".ssh/id_ed25519.pub");
    run_ok(Command::new(coffer_bin()).arg("--state").arg(&server.state).args(["user", "add", user, "--key"]).arg(key).args(["--profile", profile]));
}

fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = walk(dir);
    v.sort();
    v
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        out.push(format!("{} {}", p.display(), e.metadata().map(|m| m.len()).unwrap_or(0)));
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&p));
        }
    }
    out
}

#[test]
fn append_only_openssh_rules() {
    let server = Coffer::start_with(Options { users: vec!["alice"], ..Options::default() });
    set_profile(&server, "alice", "append-only");
    let c = server.client("alice");
    std::fs::write(c.home.join("f"), "new data").unwrap();
    let h = c.home.display();
    let out = c.sftp_batch(&format!("mkdir d\nput {h}/f d/f\nput {h}/f d/.g.part\nrename d/.g.part d/g\n"));
    assert!(out.status.success(), "creating and renaming its own upload: {}", text(&out));
    let before = listing(&server.area("alice"));
    let put_over = format!("put {h}/f d/f");
    for (cmd, what) in [
        ("rm d/f", "rm"),
        ("rename d/f d/g", "rename over an existing file"),
        (put_over.as_str(), "put over an existing file"),
        ("rmdir d", "rmdir"),
        ("chmod 600 d/f", "chmod of an existing file"),
    ] {
        let out = c.sftp_batch(&format!("{cmd}\n"));
        assert!(!out.status.success(), "{what} succeeded");
    }
    assert_eq!(before, listing(&server.area("alice")), "append-only key changed history");
    // Links it makes cannot lead a write to an older file, even named like an unfinished duplicity volume.
    let out = c.sftp_batch("symlink f d/ln\nsymlink f d/duplicity-full.20250101T000000Z.vol1.difftar.gpg\n");
    assert!(out.status.success(), "{}", text(&out));
    let before = listing(&server.area("alice"));
    for target in ["d/ln", "d/duplicity-full.20250101T000000Z.vol1.difftar.gpg"] {
        for cmd in [format!("put {h}/f {target}"), format!("reput {h}/f {target}")] {
            assert!(!c.sftp_batch(&format!("{cmd}\n")).status.success(), "{cmd} succeeded");
        }
    }
    assert_eq!(before, listing(&server.area("alice")));
    // Hard links and links in the directory part of a path cannot reach older files either.
    let hex = "a".repeat(64);
    std::fs::create_dir_all(server.area("alice").join("snap")).unwrap();
    std::fs::write(server.area("alice").join("snap").join(&hex), "old snapshot").unwrap();
    let out = c.sftp_batch("mkdir e\nsymlink /snap e/locks\nsymlink /d dl\n");
    assert!(out.status.success(), "{}", text(&out));
    let before = listing(&server.area("alice"));
    for cmd in ["ln d/f d/hard".to_string(), "rm dl/f".into(), format!("rm e/locks/{hex}"), format!("put {h}/f dl/new")] {
        assert!(!c.sftp_batch(&format!("{cmd}\n")).status.success(), "{cmd} succeeded");
    }
    assert!(!c.ssh(&format!("rm e/locks/{hex}")).status.success());
    assert_eq!(before, listing(&server.area("alice")));
    let out = c.ssh("rm d/f");
    assert!(!out.status.success() && text(&out).contains("append-only"), "{}", text(&out));
    let out = c.scp(&["-O", &format!("{h}/f"), "coffer:d/f"]);
    assert!(!out.status.success(), "scp over an existing file succeeded");
    assert_eq!(before, listing(&server.area("alice")), "append-only key changed history");
}

#[test]
fn read_only_restores_only() {
    let server = Coffer::start_with(Options { users: vec!["alice"], ..Options::default() });
    let c = server.client("alice");
    std::fs::write(c.home.join("f"), "data").unwrap();
    let h = c.home.display();
    assert!(c.sftp_batch(&format!("put {h}/f f\n")).status.success());
    set_profile(&server, "alice", "read-only");
    let out = c.sftp_batch(&format!("get f {h}/back\n"));
    assert!(out.status.success(), "{}", text(&out));
    for cmd in [format!("put {h}/f g"), "rm f".into(), "mkdir x".into(), "rename f g".into(), "symlink f l".into()] {
        assert!(!c.sftp_batch(&format!("{cmd}\n")).status.success(), "{cmd} succeeded with a read-only key");
    }
    assert!(!c.ssh("mkdir -p x").status.success());
    assert!(c.ssh("md5sum f").status.success());
    assert_eq!(std::fs::read_dir(server.area("alice")).unwrap().count(), 1);
}

fn duplicity(c: &Client, fpr: &str, args: &[&str], extra: &[&std::ffi::OsStr]) -> std::process::Output {
    c.command("duplicity")
        .env("GNUPGHOME", c.home.join(".gnupg"))
        .env("PASSPHRASE", "")
        .args(args)
        .args(["--encrypt-key", fpr, "--sign-key", fpr, "--volsize", "1", "--num-retries", "1", "-v", "notice"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn append_only_duplicity_and_restic() {
    let server = Coffer::start_with(Options { users: vec!["alice"], ..Options::default() });
    set_profile(&server, "alice", "append-only");
    let c = server.client("alice");
    let fpr = coffer_tests::gpg_key(&c.home);
    let src = c.home.join("src");
    tree::make_source(&src);
    let url = format!("sftp://alice@127.0.0.1:{}/dup", server.port);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let t = |s: u64| (now - s).to_string();

    // An interrupted full backup, then the resumed run overwrites the unfinished set's volumes.
    let out = duplicity(&c, &fpr, &["full", "--fail-on-volume", "3", "--current-time", &t(86_400 * 3)], &[src.as_os_str(), url.as_ref()]);
    assert!(!out.status.success(), "the forced failure did not happen");
    let out = duplicity(&c, &fpr, &["full", "--current-time", &t(86_400 * 3)], &[src.as_os_str(), url.as_ref()]);
    assert!(out.status.success(), "resume under append-only failed: {}", text(&out));
    assert!(text(&out).contains("Restarting backup") || text(&out).contains("RESTART"), "{}", text(&out));
    tree::modify_source(&src);
    let out = duplicity(&c, &fpr, &["incremental", "--current-time", &t(86_400 * 2)], &[src.as_os_str(), url.as_ref()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = duplicity(&c, &fpr, &["full", "--current-time", &t(86_400)], &[src.as_os_str(), url.as_ref()]);
    assert!(out.status.success(), "{}", text(&out));
    let restored = c.home.join("restored");
    let out = duplicity(&c, &fpr, &["restore"], &[url.as_ref(), restored.as_os_str()]);
    assert!(out.status.success(), "{}", text(&out));
    tree::assert_same(&src, &restored, true);

    let before = listing(&server.area("alice"));
    let out = duplicity(&c, &fpr, &["remove-older-than", "36h", "--force"], &[url.as_ref()]);
    assert_eq!(before, listing(&server.area("alice")), "remove-older-than deleted history: {}", text(&out));
    // duplicity 0.8 reports each refused delete but still exits 0.
    assert!(text(&out).contains("profile (append-only) does not allow deleting files"), "{}", text(&out));
    // The interrupted run left nothing for cleanup to find, so plant an orphan it would delete.
    std::fs::write(server.area("alice").join("dup/duplicity-full.20200101T000000Z.vol1.difftar.gpg"), b"junk").unwrap();
    let before = listing(&server.area("alice"));
    let out = duplicity(&c, &fpr, &["cleanup", "--force"], &[url.as_ref()]);
    assert!(text(&out).contains("does not allow deleting files"), "{}", text(&out));
    assert_eq!(before, listing(&server.area("alice")), "duplicity deleted history through an append-only key");

    // restic: backup works, forget --prune fails and deletes nothing.
    let restic = |args: &[&str]| {
        c.command("restic")
            .env("RESTIC_PASSWORD", "t")
            .env("RESTIC_CACHE_DIR", c.home.join(".cache/restic"))
            .args(["-r", "sftp:coffer:restic", "-o"])
            .arg(format!("sftp.command=ssh -F {} coffer -s sftp", c.ssh_config().display()))
            .args(args)
            .output()
            .unwrap()
    };
    assert!(restic(&["init"]).status.success());
    let out = restic(&["backup", src.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(src.join("docs/for-restic.txt"), "a second snapshot").unwrap();
    assert!(restic(&["backup", src.to_str().unwrap()]).status.success());
    let before = listing(&server.area("alice").join("restic"));
    let out = restic(&["forget", "--keep-last", "1", "--prune"]);
    assert!(!out.status.success(), "forget --prune succeeded: {}", text(&out));
    let after: Vec<String> = listing(&server.area("alice").join("restic")).into_iter().filter(|l| !l.contains("/locks/")).collect();
    let before: Vec<String> = before.into_iter().filter(|l| !l.contains("/locks/")).collect();
    assert_eq!(before, after, "restic deleted data through an append-only key");
    assert!(restic(&["check"]).status.success());
}
