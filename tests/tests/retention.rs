//! Retention end to end: a real duplicity history made with controlled
//! times, server-side retention, then stock duplicity finds no broken or
//! orphaned sets and every kept restore point restores byte for byte; and
//! what a stolen append-only key can upload (sets named in the future,
//! back-dated into gaps, a burst of fresh ones) never makes retention delete
//! real history.

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
    // The history is back-dated (`--current-time`): unconfirmed until adopted.
    let listed = coffer(&server, &["retention", "show", "--user", "alice"]);
    assert!(listed.contains("unconfirmed sets") && listed.contains(&format!("/backup/home full {}", stamp(start))), "{listed}");
    let adopted = coffer(&server, &["retention", "adopt", "--user", "alice"]);
    assert!(adopted.contains("9 set(s) confirmed"), "{adopted}");

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
    // Named long before they arrived: only an administrator can confirm them.
    run_ok(Command::new(coffer_bin()).arg("--state").arg(&server.state).args(["retention", "adopt", "--user", "alice"]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_dir(&dir).unwrap().count() > 3 {
        assert!(std::time::Instant::now() < deadline, "scheduled retention did not run: {}", server.log());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(dir.join("duplicity-full.20250201T000000Z.manifest.gpg").exists());
    assert!(server.log().contains("\"kind\":\"retention.deleted\""), "{}", server.log());
}

/// Seconds since the epoch of a `date -d` expression in UTC.
fn epoch(expr: &str) -> u64 {
    let out = run_ok(Command::new("date").env("TZ", "UTC").args(["-d", expr, "+%s"]));
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("date prints seconds")
}

fn wall() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_secs()
}

/// The user's key becomes append-only (a laptop reported stolen keeps backing up).
fn make_append_only(server: &Coffer, user: &str) {
    let key = server.client(user).home.join(".ssh/id_ed25519.pub");
    run_ok(Command::new(coffer_bin()).arg("--state").arg(&server.state).args(["user", "add", user, "--key"]).arg(key).args(["--profile", "append-only"]));
}

/// Uploads complete-looking sets named `stamps` into `dir` with paramiko.
fn forge(c: &Client, dir: &str, stamps: &[String]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/forge_sets.py");
    let mut cmd = c.command("/usr/bin/python3");
    cmd.arg(script).arg(c.port.to_string()).arg(&c.user).arg(c.home.join(".ssh/id_ed25519")).arg(c.home.join(".ssh/known_hosts")).arg(dir).args(stamps);
    let out = run_ok(&mut cmd);
    assert_eq!(text(&out).lines().filter(|l| l.starts_with("forged ")).count(), stamps.len(), "{}", text(&out));
}

fn manifest(area: &std::path::Path, s: &str) -> std::path::PathBuf {
    area.join(format!("duplicity-full.{s}.manifest.gpg"))
}

#[test]
fn append_only_key_cannot_make_retention_delete_history() {
    let server = Coffer::start_with(Options { users: vec!["alice"], ..Options::default() });
    let c = server.client("alice");
    let fpr = coffer_tests::gpg_key(&c.home);
    let src = c.home.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let url = format!("scp://alice@127.0.0.1:{}/backup/home", server.port);
    let area = server.area("alice").join("backup/home");

    // With the full key: a backup on the first of every month, Dec 2025 to Nov 2026.
    let mut real = Vec::new();
    for m in 0..12 {
        let t = epoch(&format!("2025-12-01 +{m} month"));
        std::fs::write(src.join("month.txt"), format!("month {m}\n")).unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(src.join("month.txt")).unwrap();
        file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t)).unwrap();
        dup(&c, &fpr, &["full".into(), "--current-time".into(), t.to_string(), src.display().to_string(), url.clone()]);
        real.push(stamp(t));
    }
    let adopted = coffer(&server, &["retention", "adopt", "--user", "alice"]);
    assert!(adopted.contains("12 set(s) confirmed"), "{adopted}");

    // The laptop is stolen; its key is made append-only. The thief uploads
    // sets named in 2098-2099 (one with real duplicity) and sets back-dated
    // into the gaps, where keep-daily/weekly/monthly would pick them.
    make_append_only(&server, "alice");
    let future: Vec<String> = (0..24).map(|k| stamp(epoch(&format!("2098-01-01 +{k} month")))).collect();
    std::fs::write(src.join("month.txt"), "ransomed\n").unwrap();
    dup(&c, &fpr, &["full".into(), "--current-time".into(), epoch("2098-01-01").to_string(), src.display().to_string(), url.clone()]);
    forge(&c, "backup/home", &future[1..]);
    let gaps: Vec<String> = (0..12).map(|m| stamp(epoch(&format!("2025-12-16 +{m} month")))).collect();
    forge(&c, "backup/home", &gaps);
    let forged: Vec<&String> = future.iter().chain(&gaps).collect();

    let policies: [&[&str]; 2] = [
        &["--keep-last", "12"],
        &["--keep-within", "2M", "--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "12"],
    ];
    for policy in policies {
        let mut args = vec!["retention", "set", "--user", "alice", "--clear"];
        args.extend_from_slice(policy);
        coffer(&server, &args);
        let out = coffer(&server, &["retention", "run", "--user", "alice"]);
        for s in &real {
            assert!(manifest(&area, s).exists(), "{policy:?} deleted the real set {s}:\n{out}");
        }
        for s in &forged {
            assert!(manifest(&area, s).exists(), "{policy:?} deleted the unconfirmed set {s}:\n{out}");
        }
        assert!(out.contains(&format!("/backup/home full {}: keep: unconfirmed", future[0])), "{out}");
        assert!(out.contains("alice: 0 set(s), 0 file(s)"), "{out}");
    }

    // `retention show` and `status` list what is not counted.
    let shown = coffer(&server, &["retention", "show", "--user", "alice"]);
    assert!(shown.contains("unconfirmed sets") && shown.contains(&format!("/backup/home full {}", future[23])), "{shown}");
    let status: serde_json::Value = serde_json::from_slice(&coffer_tests::coffer_ok(&server.state, &["status", "--json"]).stdout).unwrap();
    let alice = status["users"].as_array().unwrap().iter().find(|u| u["name"] == "alice").unwrap().clone();
    assert_eq!(alice["unconfirmed"].as_array().unwrap().len(), forged.len(), "{alice}");
    assert_eq!(status["health"], "warning");
    let screen = coffer(&server, &["status"]);
    assert!(screen.contains(&format!("{} unconfirmed set(s)", forged.len())), "{screen}");
}

#[test]
fn a_burst_of_fresh_sets_holds_keep_last_and_alerts() {
    let server = Coffer::start_with(Options { users: vec!["alice"], ..Options::default() });
    let c = server.client("alice");
    let out = c.sftp_batch("mkdir backup\n");
    assert!(out.status.success(), "{}", text(&out));
    let area = server.area("alice").join("backup");
    // Twelve monthly sets, made on the box long ago (written here, adopted).
    let real: Vec<String> = (0..12).map(|m| stamp(epoch(&format!("2025-12-01 +{m} month")))).collect();
    for s in &real {
        for f in [format!("duplicity-full.{s}.vol1.difftar.gpg"), format!("duplicity-full-signatures.{s}.sigtar.gpg"), format!("duplicity-full.{s}.manifest.gpg")] {
            std::fs::write(area.join(f), b"real").unwrap();
        }
    }
    coffer(&server, &["retention", "adopt", "--user", "alice"]);
    coffer(&server, &["retention", "set", "--user", "alice", "--keep-last", "12"]);
    assert!(coffer(&server, &["retention", "run", "--user", "alice"]).contains("alice: 0 set(s)"));

    // Later (arrivals are recorded in whole seconds), the stolen key uploads
    // twelve sets named for the last two hours, all plausible, within
    // seconds: keep-last 12 would now keep only those.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    make_append_only(&server, "alice");
    let now = wall();
    let fresh: Vec<String> = (0..12u64).map(|k| stamp(now - 7200 + k * 600)).collect();
    forge(&c, "backup", &fresh);

    let dry = coffer(&server, &["retention", "run", "--user", "alice", "--dry-run"]);
    assert!(dry.contains("alice: held: nothing would be deleted"), "{dry}");
    for round in 0..2 {
        let out = text(&coffer_tests::coffer_ok(&server.state, &["retention", "run", "--user", "alice"]));
        assert!(out.contains("alice: held: nothing was deleted"), "round {round}: {out}");
        assert!(out.contains(&format!("alice /backup full {}: held: displaced by 12 new set(s)", real[0])), "{out}");
        assert!(out.contains("\"kind\":\"retention.held\""), "{out}");
        for s in real.iter().chain(&fresh) {
            assert!(manifest(&area, s).exists(), "round {round} deleted {s}:\n{out}");
        }
    }
    // One alert, naming the user and what would have gone.
    let alerts: Vec<String> = std::fs::read_dir(server.state.join("alerts/spool"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .filter(|a| a.contains("retention:alice:held"))
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].contains("\"resolved\":false") && alerts[0].contains(&format!("/backup full {}", real[11])), "{}", alerts[0]);
    let status: serde_json::Value = serde_json::from_slice(&coffer_tests::coffer_ok(&server.state, &["status", "--json"]).stdout).unwrap();
    assert_eq!(status["users"][0]["retention-held"], true, "{status}");

    // An administrator who knows the sets are genuine adopts them: the hold
    // ends (alert resolved) and keep-last 12 applies to the newest twelve.
    let adopted = coffer(&server, &["retention", "adopt", "--user", "alice"]);
    assert!(adopted.contains("0 set(s) confirmed"), "{adopted}");
    let out = coffer(&server, &["retention", "run", "--user", "alice"]);
    assert!(out.contains("alice: 12 set(s), 36 file(s)"), "{out}");
    assert!(fresh.iter().all(|s| manifest(&area, s).exists()) && !manifest(&area, &real[11]).exists());
    let resolved = std::fs::read_dir(server.state.join("alerts/spool"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .any(|a| a.contains("retention:alice:held") && a.contains("\"resolved\":true"));
    assert!(resolved);
}
