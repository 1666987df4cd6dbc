//! The command-line contract and the server's life: `init` is idempotent,
//! bad config is named, users come and go, SIGTERM stops cleanly with
//! nothing half-written left looking complete.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use coffer_tests::{Coffer, Options, coffer_bin, run_ok, text};

fn coffer(state: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(coffer_bin()).arg("--state").arg(state).args(args).output().unwrap()
}

#[test]
fn init_is_idempotent_and_config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("st");
    let first = text(&run_ok(Command::new(coffer_bin()).arg("--state").arg(&state).arg("init")));
    let second = text(&run_ok(Command::new(coffer_bin()).arg("--state").arg(&state).arg("init")));
    let fp = |t: &str| t.lines().find(|l| l.contains("fingerprint")).map(str::to_string);
    assert_eq!(fp(&first), fp(&second), "init replaced the host key");
    assert!(!second.contains("created"), "{second}");

    let config = state.join("coffer.toml");
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, good.replace("[server]", "[server]\nlisten-adress = \"x\"")).unwrap();
    let out = coffer(&state, &["serve", "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("listen-adress"), "{}", text(&out));
    std::fs::write(&config, good).unwrap();

    let out = coffer(dir.path().join("nowhere").as_path(), &["user", "list"]);
    assert!(!out.status.success() && text(&out).contains("init"), "{}", text(&out));
}

/// Commands that change the state take turns: eight users added at once
/// (as two administrators might) all land in users.toml.
#[test]
fn concurrent_user_adds_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("st");
    run_ok(Command::new(coffer_bin()).arg("--state").arg(&state).arg("init"));
    let key = dir.path().join("k");
    run_ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "laptop", "-f"]).arg(&key));
    let children: Vec<_> = (0..8)
        .map(|n| {
            Command::new(coffer_bin())
                .arg("--state")
                .arg(&state)
                .args(["user", "add", &format!("user{n}"), "--key"])
                .arg(key.with_extension("pub"))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    let list = text(&run_ok(Command::new(coffer_bin()).arg("--state").arg(&state).args(["user", "list"])));
    for n in 0..8 {
        assert!(list.contains(&format!("user{n}")), "user{n} was lost:\n{list}");
    }
}

#[test]
fn user_add_list_remove_purge() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("st");
    run_ok(Command::new(coffer_bin()).arg("--state").arg(&state).arg("init"));
    let key = dir.path().join("k");
    run_ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "laptop", "-f"]).arg(&key));
    let key2 = dir.path().join("k2");
    run_ok(Command::new("ssh-keygen").args(["-q", "-t", "ecdsa", "-b", "384", "-N", "", "-C", "phone", "-f"]).arg(&key2));
    let pubkey = key.with_extension("pub");
    let s = pubkey.to_str().unwrap();
    run_ok(Command::new(coffer_bin()).arg("--state").arg(&state).args(["user", "add", "me", "--key", s]));
    run_ok(Command::new(coffer_bin()).arg("--state").arg(&state).args(["user", "add", "me", "--key", key2.with_extension("pub").to_str().unwrap(), "--profile", "append-only"]));
    let list = text(&run_ok(Command::new(coffer_bin()).arg("--state").arg(&state).args(["user", "list"])));
    assert!(list.contains("me") && list.contains("laptop (full)") && list.contains("phone (append-only)"), "{list}");
    for bad in ["Me", "../x", "a b", ""] {
        let out = coffer(&state, &["user", "add", bad, "--key", s]);
        assert!(!out.status.success() && text(&out).contains("invalid user name"), "{bad}: {}", text(&out));
    }
    let junk = dir.path().join("junk.pub");
    std::fs::write(&junk, "not a key\n").unwrap();
    let out = coffer(&state, &["user", "add", "x", "--key", junk.to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).contains("junk.pub"), "{}", text(&out));

    let area = state.join("data/me");
    std::fs::write(area.join("kept.txt"), "data").unwrap();
    let out = text(&run_ok(Command::new(coffer_bin()).arg("--state").arg(&state).args(["user", "remove", "me"])));
    assert!(out.contains("kept"), "{out}");
    assert!(area.join("kept.txt").exists());
    let out = coffer(&state, &["user", "remove", "me"]);
    assert!(!out.status.success() && text(&out).contains("no user named me"), "{}", text(&out));
    run_ok(Command::new(coffer_bin()).arg("--state").arg(&state).args(["user", "add", "me", "--key", s]));
    run_ok(Command::new(coffer_bin()).arg("--state").arg(&state).args(["user", "remove", "me", "--purge"]));
    assert!(!area.exists());
}

#[test]
fn sigterm_mid_upload_leaves_nothing_half_written() {
    let mut server = Coffer::start_with(Options { users: vec!["alice"], ..Options::default() });
    let c = server.client("alice");
    let out = c.sftp_batch(&format!("put {} done.bin\n", coffer_bin().display()));
    assert!(out.status.success(), "{}", text(&out));

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/sftp_probe.py");
    let mut holder = c
        .command("/usr/bin/python3")
        .arg(script)
        .arg(c.port.to_string())
        .arg(&c.user)
        .arg(c.home.join(".ssh/id_ed25519"))
        .arg(c.home.join(".ssh/known_hosts"))
        .args(["hold-upload", "partial.bin"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "READY");
    let area = server.area("alice");
    let hidden = || {
        std::fs::read_dir(&area).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with(".coffer-upload-")).count()
    };
    assert_eq!(hidden(), 1, "the upload in progress has a hidden temporary");
    assert!(!area.join("partial.bin").exists(), "an unfinished upload is visible under its final name");

    let status = server.stop();
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(status.success(), "serve exited with {status}");
    assert!(!area.join("partial.bin").exists());
    assert_eq!(hidden(), 0, "temporary left behind");
    assert_eq!(std::fs::read(area.join("done.bin")).unwrap(), std::fs::read(coffer_bin()).unwrap());
    let log = server.log();
    assert!(log.contains("\"kind\":\"server.stopped\""), "{log}");

    // A temporary left by a crash is swept at the next start.
    std::fs::write(area.join(".coffer-upload-deadbeef"), "crash leftovers").unwrap();
    server.spawn();
    assert_eq!(hidden(), 0);
    let out = c.sftp_batch("ls\n");
    assert!(text(&out).contains("done.bin"), "{}", text(&out));
}
