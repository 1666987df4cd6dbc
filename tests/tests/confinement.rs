//! A second user must fail to read, list, stat, overwrite or delete the first
//! user's files by every path trick: `..`, absolute paths, symlinks they make
//! or find, hard links, renames, and the exec commands.

use std::process::Command;

use coffer_tests::{Coffer, run_ok, text, tree};

const SECRET: &str = "alice's secret 7d3f";

#[test]
fn second_user_cannot_reach_first_users_files() {
    let server = Coffer::start();
    let alice = server.client("alice");
    let bob = server.client("bob");
    std::fs::write(alice.home.join("secret.txt"), SECRET).unwrap();
    let out = alice.sftp_batch(&format!("mkdir docs\nput {}/secret.txt secret.txt\nput {}/secret.txt docs/inner.txt\n", alice.home.display(), alice.home.display()));
    assert!(out.status.success(), "{}", text(&out));
    let alice_area = server.area("alice");
    let before = tree::snapshot(&alice_area, true);

    // A link that an earlier restore (or an administrator) left in bob's area.
    std::os::unix::fs::symlink(&alice_area, server.area("bob").join("found-link")).unwrap();
    std::fs::write(bob.home.join("mine.txt"), "bob's bytes").unwrap();

    let abs = alice_area.display().to_string();
    let attempts = [
        "get ../alice/secret.txt x".to_string(),
        "get /../alice/secret.txt x".to_string(),
        "get ../../data/alice/secret.txt x".to_string(),
        format!("get {abs}/secret.txt x"),
        "get found-link/secret.txt x".to_string(),
        "ls ../alice".to_string(),
        "ls /..".to_string(),
        format!("ls {abs}"),
        "ls found-link".to_string(),
        "ls found-link/".to_string(),
        "symlink ../alice/secret.txt made-rel".to_string(),
        "get made-rel x".to_string(),
        format!("symlink {abs}/secret.txt made-abs"),
        "get made-abs x".to_string(),
        "symlink / root-link".to_string(),
        "get root-link/../alice/secret.txt x".to_string(),
        "ln ../alice/secret.txt hard".to_string(),
        format!("ln {abs}/secret.txt hard2"),
        "rm ../alice/secret.txt".to_string(),
        format!("rm {abs}/secret.txt"),
        "rm found-link/secret.txt".to_string(),
        format!("put {}/mine.txt ../alice/secret.txt", bob.home.display()),
        format!("put {}/mine.txt found-link/secret.txt", bob.home.display()),
        format!("put {}/mine.txt {abs}/docs/inner.txt", bob.home.display()),
        "rename ../alice/secret.txt stolen".to_string(),
        "rename found-link/secret.txt stolen2".to_string(),
        "chmod 777 found-link/secret.txt".to_string(),
        "mkdir found-link/new".to_string(),
        "rmdir found-link/docs".to_string(),
        "df found-link".to_string(),
    ];
    for a in &attempts {
        let out = bob.sftp_batch(&format!("{a}\n"));
        let t = text(&out);
        assert!(!t.contains(SECRET), "{a} revealed alice's data: {t}");
        if a.starts_with("ls") {
            // Either an error, or only bob's own names (the echoed command is the first line).
            let leaked = t.lines().skip(1).any(|l| l.contains("secret.txt") || l.contains("inner.txt") || l.ends_with("docs"));
            assert!(!leaked, "{a} listed alice's files: {t}");
        }
        assert!(!bob.home.join("x").exists() || !std::fs::read_to_string(bob.home.join("x")).unwrap().contains(SECRET), "{a}");
    }
    // The exec side: every command resolves in bob's own area.
    for cmd in [
        "md5sum ../alice/secret.txt",
        "sha1sum found-link/secret.txt",
        &format!("sha256sum {abs}/secret.txt"),
        "ls -1 ../alice",
        "ls -1 found-link",
        &format!("ls -1 {abs}"),
        "rm '../alice/secret.txt'",
        "rm -r found-link/docs",
        "rm -rf /",
        "mkdir -p found-link/new",
        "scp -f found-link/secret.txt",
    ] {
        let out = bob.ssh(cmd);
        let t = text(&out);
        assert!(!t.contains(SECRET) && !t.contains("inner.txt"), "{cmd}: {t}");
    }
    for target in ["coffer:../alice/secret.txt", "coffer:found-link/secret.txt", &format!("coffer:{abs}/secret.txt")] {
        for mode in ["-O", "-s"] {
            let dest = bob.home.join("scp-out");
            let _ = bob.scp(&[mode, target, dest.to_str().unwrap()]);
            assert!(!dest.exists() || !std::fs::read_to_string(&dest).unwrap().contains(SECRET), "scp {mode} {target}");
        }
        let _ = bob.scp(&["-O", bob.home.join("mine.txt").to_str().unwrap(), target]);
    }
    // A tar-over-scp style recursive fetch of the link does not follow it out either.
    let _ = bob.scp(&["-O", "-r", "coffer:found-link", bob.home.join("rec").to_str().unwrap()]);
    let grep = Command::new("grep").args(["-r", SECRET]).arg(&bob.home).output().unwrap();
    assert!(grep.stdout.is_empty(), "secret leaked into bob's files: {}", text(&grep));

    let after = tree::snapshot(&alice_area, true);
    assert!(before == after, "alice's area changed");
    // Alice still has full access to her own files.
    let out = run_ok(alice.command("ssh").arg("-F").arg(alice.ssh_config()).args(["coffer", "md5sum secret.txt"]));
    assert!(text(&out).contains("secret.txt"));
}
