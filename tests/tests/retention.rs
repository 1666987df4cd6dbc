//! Retention end to end: a real duplicity history made with controlled
//! times, server-side retention, then stock duplicity finds no broken or
//! orphaned sets and every kept restore point restores byte for byte.

use std::process::Command;

use coffer_tests::{Client, Coffer, Options, coffer_bin, run_ok, text, tree};

const DAY: u64 = 86_400;

fn dup(c: &Client, fpr: &str, args: &[String]) -> std::process::Output {
    let mut cmd = c.command("duplicity");
    cmd.env("GNUPGHOME", c.home.join(".gnupg"))
        .env("PASSPHRASE", "")
        .args(args)
        .args(["--encrypt-key", fpr, "--sign-key", fpr, "--num-retries", "1", "-v", "notice"]);
    run_ok(&mut cmd)
}

fn coffer(server: &Coffer, args: &[&str]) -> String {
    text(&coffer_tests::coffer_ok(&server.state, args))
}

#[test]
fn retention_keeps_restorable_points_and_removes_whole_chains() {
    let server = Coffer::start_with(Options { users: vec!["alice"], ..Options::default() });
    let c = server.client("alice");
    let fpr = coffer_tests::gpg_key(&c.home);
    let src = c.home.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let url = format!("scp://alice@127.0.0.1:{}/backup/home", server.port);
    let start = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 60 * DAY;

    // Eight daily backups, a full every third day: chains [0,1,2] [3,4,5] [6,7].
    let mut versions = Vec::new();
    for day in 0..8u64 {
        std::fs::write(src.join("day.txt"), format!("content of day {day}\n")).unwrap();
        std::fs::write(src.join("blob.bin"), tree::bytes(day, 50_000)).unwrap();
        let kind = if day % 3 == 0 { "full" } else { "incremental" };
        let t = start + day * DAY;
        // duplicity notices changes by whole-second mtime: give each day its own.
        for f in ["day.txt", "blob.bin"] {
            let file = std::fs::OpenOptions::new().write(true).open(src.join(f)).unwrap();
            file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t)).unwrap();
        }
        dup(&c, &fpr, &[kind.into(), "--current-time".into(), t.to_string(), src.display().to_string(), url.clone()]);
        versions.push((t, format!("content of day {day}\n")));
    }
    // An interrupted backup: volumes without a manifest, untouched for days.
    let area = server.area("alice").join("backup/home");
    let stale = area.join(format!("duplicity-full.{}.vol1.difftar.gpg", stamp(start + 20 * DAY)));
    std::fs::write(&stale, b"partial").unwrap();
    run_ok(Command::new("touch").args(["-d", "@1000000000"]).arg(&stale));
    // Someone else's file in the backup directory stays.
    std::fs::write(area.join("README.txt"), "not a backup").unwrap();

    coffer(&server, &["retention", "set", "--user", "alice", "--keep-last", "1", "--keep-daily", "1"]);
    let shown = coffer(&server, &["retention", "show", "--user", "alice"]);
    assert!(shown.contains("keep-last 1, keep-daily 1"), "{shown}");
    let now = format!("@{}", start + 8 * DAY);
    let dry = coffer(&server, &["retention", "run", "--user", "alice", "--dry-run", "--now", &now]);
    assert!(dry.contains("would be deleted"), "{dry}");
    let files_before = std::fs::read_dir(&area).unwrap().count();

    // keep-last 1 → day 7, keep-daily 1 → day 6 (another day): chain [6,7] stays,
    // chains [0..2] and [3..5] go whole, the stale incomplete set goes.
    let out = coffer(&server, &["retention", "run", "--user", "alice", "--now", &now]);
    assert!(out.contains("keep: keep-last") && out.contains("keep: keep-daily"), "{out}");
    assert!(out.contains("delete: no restore point of its chain is kept"), "{out}");
    assert!(out.contains("incomplete full") && out.contains("older than the grace period"), "{out}");
    assert!(std::fs::read_dir(&area).unwrap().count() < files_before);
    assert!(!stale.exists());
    assert!(area.join("README.txt").exists());
    for day in 0..6 {
        let s = stamp(start + day * DAY);
        let left: Vec<String> = std::fs::read_dir(&area)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(&format!(".{s}.")) || n.ends_with(&format!(".to.{s}.manifest.gpg")))
            .collect();
        assert!(left.is_empty(), "day {day} left {left:?}");
    }

    // Stock duplicity sees one clean chain.
    let status = text(&dup(&c, &fpr, &["collection-status".into(), url.clone()]));
    assert!(status.contains("Found 0 secondary backup chains"), "{status}");
    assert!(status.contains("No orphaned or incomplete backup sets found."), "{status}");
    // Every kept restore point restores byte for byte.
    for (t, content) in &versions[6..] {
        let dest = c.home.join(format!("restore-{t}"));
        dup(&c, &fpr, &["restore".into(), "--time".into(), t.to_string(), url.clone(), dest.display().to_string()]);
        assert_eq!(std::fs::read_to_string(dest.join("day.txt")).unwrap(), *content);
    }

    // The default policy applies to users without their own; clearing falls back to it.
    coffer(&server, &["retention", "set", "--keep-within", "2M", "--keep-weekly", "4"]);
    coffer(&server, &["retention", "set", "--user", "alice", "--clear"]);
    let shown = coffer(&server, &["retention", "show", "--user", "alice"]);
    assert!(shown.contains("keep-within 2M, keep-weekly 4 (the default)"), "{shown}");
    let bad = Command::new(coffer_bin()).arg("--state").arg(&server.state).args(["retention", "set", "--keep-within", "2X"]).output().unwrap();
    assert!(!bad.status.success() && text(&bad).contains("invalid duration"), "{}", text(&bad));
}

fn stamp(t: u64) -> String {
    let out = Command::new("date").args(["-u", "-d", &format!("@{t}"), "+%Y%m%dT%H%M%SZ"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn scheduled_retention_runs_while_serving() {
    let server = Coffer::start_with(Options {
        users: vec!["alice"],
        config_extra: "[retention]\ninterval-secs = 1\n".into(),
    });
    run_ok(Command::new(coffer_bin()).arg("--state").arg(&server.state).args(["retention", "set", "--keep-last", "1"]));
    // Retention works on names alone: two one-set chains, the older one goes.
    let dir = server.area("alice").join("b");
    std::fs::create_dir_all(&dir).unwrap();
    for t in ["20250101T000000Z", "20250201T000000Z"] {
        for f in [format!("duplicity-full.{t}.manifest.gpg"), format!("duplicity-full.{t}.vol1.difftar.gpg"), format!("duplicity-full-signatures.{t}.sigtar.gpg")] {
            std::fs::write(dir.join(f), vec![1u8; 100]).unwrap();
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_dir(&dir).unwrap().count() > 3 {
        assert!(std::time::Instant::now() < deadline, "scheduled retention did not run: {}", server.log());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(dir.join("duplicity-full.20250201T000000Z.manifest.gpg").exists());
    assert!(server.log().contains("\"kind\":\"retention.deleted\""), "{}", server.log());
}
