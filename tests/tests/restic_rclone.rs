//! restic and rclone against Coffer: restic through `ssh -s sftp` with
//! several handles busy at once; rclone with server-side hashes (md5sum and
//! sha1sum emulated over exec).

use std::process::Command;

use coffer_tests::{Client, Coffer, run_ok, text, tree};

fn restic(c: &Client, args: &[&str]) -> Command {
    let mut cmd = c.command("restic");
    cmd.env("RESTIC_PASSWORD", "coffer-test")
        .env("RESTIC_CACHE_DIR", c.home.join(".cache/restic"))
        .args(["-r", "sftp:coffer:restic-repo"])
        .args(["-o", &format!("sftp.command=ssh -F {} coffer -s sftp", c.ssh_config().display())])
        .args(args);
    cmd
}

#[test]
fn restic_lifecycle() {
    let server = Coffer::start();
    let c = server.client("alice");
    let src = c.home.join("data");
    tree::make_source(&src);
    run_ok(&mut restic(&c, &["init"]));
    run_ok(restic(&c, &["backup"]).arg(&src));
    tree::modify_source(&src);
    run_ok(restic(&c, &["backup"]).arg(&src));
    let snaps = text(&run_ok(&mut restic(&c, &["snapshots", "--json"])));
    assert_eq!(snaps.matches("\"short_id\"").count(), 2, "{snaps}");
    let dest = c.home.join("restored");
    run_ok(restic(&c, &["restore", "latest", "--target"]).arg(&dest));
    tree::assert_same(&src, &dest.join(src.strip_prefix("/").unwrap()), true);
    run_ok(&mut restic(&c, &["check", "--read-data"]));
    run_ok(&mut restic(&c, &["forget", "--keep-last", "1", "--prune"]));
    let snaps = text(&run_ok(&mut restic(&c, &["snapshots", "--json"])));
    assert_eq!(snaps.matches("\"short_id\"").count(), 1, "{snaps}");
    run_ok(&mut restic(&c, &["check", "--read-data"]));
    // No restic temporary or unfinished upload is left anywhere.
    let leftovers = Command::new("find").arg(server.area("alice")).args(["-name", "*restic-temp*", "-o", "-name", ".coffer-upload-*"]).output().unwrap();
    assert!(leftovers.stdout.is_empty(), "{}", text(&leftovers));
}

fn rclone(c: &Client, server: &Coffer, args: &[&str]) -> Command {
    let mut cmd = c.command("rclone");
    // A fresh config every run: rclone remembers the first shell/hash answers.
    cmd.env("RCLONE_CONFIG", c.home.join("rclone.conf"))
        .env("RCLONE_CONFIG_COFFER_TYPE", "sftp")
        .env("RCLONE_CONFIG_COFFER_HOST", "127.0.0.1")
        .env("RCLONE_CONFIG_COFFER_PORT", server.port.to_string())
        .env("RCLONE_CONFIG_COFFER_USER", &c.user)
        .env("RCLONE_CONFIG_COFFER_KEY_FILE", c.home.join(".ssh/id_ed25519"))
        .env("RCLONE_CONFIG_COFFER_KNOWN_HOSTS_FILE", c.home.join(".ssh/known_hosts"))
        .args(args);
    cmd
}

#[test]
fn rclone_copy_sync_check_with_hashes() {
    let server = Coffer::start();
    let c = server.client("alice");
    let src = c.home.join("data");
    tree::make_source(&src);
    std::fs::remove_file(src.join("link-to-a")).unwrap();
    std::fs::remove_dir(src.join("docs/empty")).unwrap();
    run_ok(rclone(&c, &server, &["copy"]).arg(&src).arg("coffer:rc"));
    tree::assert_same(&src, &server.area("alice").join("rc"), false);
    tree::modify_source(&src);
    // --checksum: the change keeps big.bin's size and may land in the same
    // second as the copy, so only the server-side hash reveals it.
    run_ok(rclone(&c, &server, &["sync", "--checksum"]).arg(&src).arg("coffer:rc"));
    tree::assert_same(&src, &server.area("alice").join("rc"), false);
    let out = run_ok(rclone(&c, &server, &["check", "-v"]).arg(&src).arg("coffer:rc"));
    let log = text(&out);
    assert!(!log.contains("No common hash") && !log.contains("hashes could not be checked"), "{log}");
    assert!(log.contains("0 differences found"), "{log}");
    let out = run_ok(&mut rclone(&c, &server, &["md5sum", "coffer:rc/docs/a.txt"]));
    let local_md5 = run_ok(Command::new("md5sum").arg(src.join("docs/a.txt")));
    assert_eq!(text(&out).split_whitespace().next(), text(&local_md5).split_whitespace().next());
    let out = run_ok(&mut rclone(&c, &server, &["lsf", "-R", "coffer:rc"]));
    assert!(text(&out).contains("docs/new.txt"), "{}", text(&out));
    // A corrupted copy on the server is caught by the hash check.
    std::fs::write(server.area("alice").join("rc/docs/small-001.dat"), vec![0u8; 397]).unwrap();
    let out = rclone(&c, &server, &["check"]).arg(&src).arg("coffer:rc").output().unwrap();
    assert!(!out.status.success(), "{}", text(&out));
}
