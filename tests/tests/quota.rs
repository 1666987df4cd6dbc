//! Quotas: enforced while bytes arrive (SFTP, scp, concurrent uploads),
//! headroom to recover, statvfs, warnings, and accounting across restarts.

use coffer_tests::{Coffer, Options, text, tree};

fn coffer(server: &Coffer, args: &[&str]) -> std::process::Output {
    coffer_tests::coffer_ok(&server.state, args)
}

fn leftovers(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with(".coffer-upload-")).count()
}

#[test]
fn uploads_stop_at_the_limit_and_users_can_recover() {
    let server = Coffer::start_with(Options { users: vec!["alice"], ..Options::default() });
    coffer(&server, &["user", "set", "alice", "--quota", "2M"]);
    let c = server.client("alice");
    std::fs::write(c.home.join("one.bin"), tree::bytes(1, 1 << 20)).unwrap();
    std::fs::write(c.home.join("three.bin"), tree::bytes(3, 3 << 20)).unwrap();
    let h = c.home.display();

    let out = c.sftp_batch(&format!("put {h}/one.bin one.bin\n"));
    assert!(out.status.success(), "{}", text(&out));
    let out = c.sftp_batch(&format!("put {h}/three.bin three.bin\n"));
    assert!(!out.status.success());
    // OpenSSH's sftp prints only the status name ("Failure"); the message is in the reply and the log.
    assert!(text(&out).contains("Failure"), "{}", text(&out));
    assert!(server.log().contains("quota exceeded for user alice: used"), "{}", server.log());
    let area = server.area("alice");
    assert!(!area.join("three.bin").exists(), "a refused upload appeared");
    assert_eq!(leftovers(&area), 0);
    assert_eq!(std::fs::read(area.join("one.bin")).unwrap().len(), 1 << 20, "other data changed");

    // The SFTP status carries the message (paramiko shows it).
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/sftp_probe.py");
    let out = c
        .command("/usr/bin/python3")
        .arg(script)
        .arg(c.port.to_string())
        .arg(&c.user)
        .arg(c.home.join(".ssh/id_ed25519"))
        .arg(c.home.join(".ssh/known_hosts"))
        .args(["over-quota", "3145728"])
        .output()
        .unwrap();
    assert!(text(&out).contains("REFUSED quota exceeded for user alice: used 1.0 MiB of 2.0 MiB"), "{}", text(&out));
    assert!(!area.join("over-quota.bin").exists());
    assert_eq!(leftovers(&area), 0);

    // Legacy scp is refused the same way, with an scp error.
    let out = c.scp(&["-O", &format!("{h}/three.bin"), "coffer:scp.bin"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("quota exceeded for user alice"), "{}", text(&out));
    assert!(!area.join("scp.bin").exists());

    // df shows the quota, not the disk.
    let out = c.sftp_batch("df\n");
    let df = text(&out);
    let size_kib: u64 = df.lines().nth(2).and_then(|l| l.split_whitespace().next()).and_then(|v| v.parse().ok()).unwrap_or(0);
    assert_eq!(size_kib, 2048, "{df}");

    // Filling up to the limit still leaves list, read, rename and delete working.
    std::fs::write(c.home.join("fill.bin"), tree::bytes(4, (1 << 20) - 100)).unwrap();
    let out = c.sftp_batch(&format!("put {h}/fill.bin fill.bin\nls\nget one.bin {h}/back.bin\nrename fill.bin moved.bin\nrm moved.bin\n"));
    assert!(out.status.success(), "{}", text(&out));
    let out = c.sftp_batch(&format!("put {h}/one.bin again.bin\n"));
    assert!(out.status.success(), "space freed by rm is usable again: {}", text(&out));

    // Warnings were recorded at 80 and 90 %.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let show = text(&coffer(&server, &["user", "show", "alice"]));
    assert!(show.contains("warning: 80%") && show.contains("warning: 90%"), "{show}");
    assert!(server.log().contains("\"kind\":\"quota.warning\""), "{}", server.log());
}

#[test]
fn concurrent_uploads_count_together() {
    let server = Coffer::start_with(Options { users: vec!["alice"], ..Options::default() });
    coffer(&server, &["user", "set", "alice", "--quota", "3M"]);
    let c = server.client("alice");
    for i in 0..3 {
        std::fs::write(c.home.join(format!("f{i}.bin")), tree::bytes(i, 2 << 20)).unwrap();
    }
    let children: Vec<_> = (0..3)
        .map(|i| {
            c.command("sftp")
                .arg("-F")
                .arg(c.ssh_config())
                .args(["-b", "-", "coffer"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map(|mut ch| {
                    use std::io::Write;
                    ch.stdin.take().unwrap().write_all(format!("put {}/f{i}.bin f{i}.bin\n", c.home.display()).as_bytes()).unwrap();
                    ch
                })
                .unwrap()
        })
        .collect();
    let ok = children.into_iter().map(|ch| ch.wait_with_output().unwrap().status.success()).filter(|&s| s).count();
    assert_eq!(ok, 1, "exactly one 2 MiB upload fits in 3 MiB");
    let stored: u64 = std::fs::read_dir(server.area("alice")).unwrap().flatten().map(|e| e.metadata().unwrap().len()).sum();
    assert!(stored <= 3 << 20, "{stored}");
}

#[test]
fn file_limits_and_accounting_across_restarts() {
    let mut server = Coffer::start_with(Options { users: vec!["alice"], ..Options::default() });
    coffer(&server, &["user", "set", "alice", "--quota", "60G", "--files", "3"]);
    let c = server.client("alice");
    let out = c.sftp_batch("mkdir a\nmkdir b\nmkdir c\n");
    assert!(out.status.success(), "{}", text(&out));
    let out = c.sftp_batch("mkdir d\n");
    assert!(!out.status.success());
    let out = c.ssh("mkdir -p e");
    assert!(text(&out).contains("quota exceeded for user alice: used 3 of 3 files"), "{}", text(&out));
    coffer(&server, &["user", "set", "alice", "--files", "none"]);

    let out = c.sftp_batch("put /etc/hostname a/h\n");
    assert!(out.status.success(), "{}", text(&out));
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(server.stop().success());
    let record = std::fs::read_to_string(server.state.join("quota/alice.toml")).unwrap();
    // Each new directory is charged one block (4 KiB) until a recount measures it.
    let size = std::fs::metadata("/etc/hostname").unwrap().len() + 3 * 4096;
    assert!(record.contains(&format!("used-bytes = {size}")) && record.contains("used-files = 4"), "{record}");

    // A change behind the server's back is found at start-up and by rescan;
    // directories count with the space they occupy.
    let dirs: u64 = ["a", "b", "c"].iter().map(|d| dir_bytes(&server.area("alice").join(d))).sum();
    let size = size - 3 * 4096 + dirs;
    std::fs::write(server.area("alice").join("behind"), vec![7u8; 1000]).unwrap();
    server.spawn();
    assert!(server.log().contains(&format!("usage on disk is {} bytes in 5 files", size + 1000)), "{}", server.log());
    std::fs::write(server.area("alice").join("behind2"), vec![7u8; 10]).unwrap();
    let out = text(&coffer(&server, &["quota", "rescan", "--user", "alice"]));
    assert!(out.contains(&format!("counted {} bytes in 6 files", size + 1010)), "{out}");
}

/// Space a directory occupies, as the usage count measures it.
fn dir_bytes(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).expect("directory metadata");
    (m.blocks() * 512).max(m.size())
}
