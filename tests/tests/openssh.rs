//! OpenSSH's own clients against Coffer: `sftp -b` and `scp` (SFTP mode and
//! legacy `-O`), both directions, recursive, compared byte for byte.

use coffer_tests::{Coffer, text, tree};

#[test]
fn sftp_batch_commands() {
    let server = Coffer::start();
    let c = server.client("alice");
    let local = c.home.join("src");
    tree::make_source(&local);
    let batch = format!(
        "mkdir up\ncd up\nput {l}/big.bin\nput {l}/docs/a.txt renamed-later.txt\nrename renamed-later.txt a.txt\nchmod 600 a.txt\nsymlink a.txt link\nln a.txt hard\nls -l\ndf\nget big.bin {h}/big.back\nget link {h}/link.back\nrm hard\nmkdir gone\nrmdir gone\n-rmdir /\n",
        l = local.display(),
        h = c.home.display()
    );
    let out = c.sftp_batch(&batch);
    assert!(out.status.success(), "{}", text(&out));
    let area = server.area("alice").join("up");
    assert_eq!(std::fs::read(area.join("big.bin")).unwrap(), std::fs::read(local.join("big.bin")).unwrap());
    assert_eq!(std::fs::read(c.home.join("big.back")).unwrap(), std::fs::read(local.join("big.bin")).unwrap());
    assert_eq!(std::fs::read(c.home.join("link.back")).unwrap(), b"version 1 of a\n");
    assert_eq!(std::fs::read_link(area.join("link")).unwrap().to_str(), Some("a.txt"));
    assert!(!area.join("hard").exists() && !area.join("gone").exists());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(area.join("a.txt")).unwrap().permissions().mode() & 0o777, 0o600);
    let listing = text(&out);
    assert!(listing.contains("big.bin") && listing.contains("Size"), "{listing}");

    // Error statuses are the ones clients rely on.
    let out = c.sftp_batch("get does-not-exist /dev/null\n");
    assert!(!out.status.success());
    assert!(text(&out).contains("not found") || text(&out).contains("No such file"), "{}", text(&out));
    // OpenSSH's sftp renames with posix-rename@openssh.com, which replaces the target.
    let out = c.sftp_batch("rename up/big.bin up/a.txt\n");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(area.join("a.txt")).unwrap(), std::fs::read(local.join("big.bin")).unwrap());
    let out = c.sftp_batch("rmdir up\n");
    assert!(!out.status.success(), "rmdir of a non-empty directory must fail");
}

#[test]
fn scp_both_modes_both_directions_recursive() {
    let server = Coffer::start();
    let c = server.client("alice");
    let local = c.home.join("src");
    tree::make_source(&local);
    std::fs::remove_file(local.join("link-to-a")).unwrap(); // scp copies link targets, not links
    for (mode, flags) in [("sftp", vec!["-r", "-p"]), ("legacy", vec!["-O", "-r", "-p"])] {
        let remote = format!("coffer:{mode}-copy");
        let mut args: Vec<&str> = flags.clone();
        let src = local.to_str().unwrap().to_string();
        args.extend([src.as_str(), remote.as_str()]);
        let out = c.scp(&args);
        assert!(out.status.success(), "scp {mode} upload: {}", text(&out));
        tree::assert_same(&local, &server.area("alice").join(format!("{mode}-copy")), true);

        let back = c.home.join(format!("{mode}-back"));
        let mut args: Vec<&str> = flags.clone();
        let back_s = back.to_str().unwrap().to_string();
        args.extend([remote.as_str(), back_s.as_str()]);
        let out = c.scp(&args);
        assert!(out.status.success(), "scp {mode} download: {}", text(&out));
        tree::assert_same(&local, &back, true);

        // Single file, to a file name and into a directory.
        let one = format!("coffer:{mode}-copy/big.bin");
        let out = c.scp(&[flags[0], one.as_str(), c.home.join(format!("{mode}.bin")).to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(std::fs::read(c.home.join(format!("{mode}.bin"))).unwrap(), std::fs::read(local.join("big.bin")).unwrap());
    }
    let out = c.scp(&["-O", "coffer:no-such-file", "/tmp/x-coffer-test"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("No such file"), "{}", text(&out));
}

#[test]
fn exec_emulation_and_refusals() {
    let server = Coffer::start();
    let c = server.client("alice");
    std::fs::write(server.area("alice").join("f.txt"), b"hello\n").unwrap();
    let out = c.ssh("md5sum /f.txt");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "b1946ac92492d2347c6235b4d2611184  /f.txt\n");
    let out = c.ssh("sha256sum f.txt");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  f.txt"));
    let out = c.ssh_with_stdin("sha1sum", b"");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "da39a3ee5e6b4b0d3255bfef95601890afd80709  -\n");
    let out = c.ssh("mkdir -p 'a b/c'");
    assert!(out.status.success() && server.area("alice").join("a b/c").is_dir());
    let out = c.ssh("ls -1 /");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a b\nf.txt\n");
    let out = c.ssh("rm 'f.txt'");
    assert!(out.status.success() && !server.area("alice").join("f.txt").exists());
    let out = c.ssh("rm f.txt");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = c.ssh("md5sum missing");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("missing: No such file"), "{}", text(&out));
    for refused in ["bash", "cat /etc/passwd", "ls; id", "rsync --server . x", "sh -c id"] {
        let out = c.ssh(refused);
        assert_eq!(out.status.code(), Some(127), "{refused}: {}", text(&out));
        assert!(text(&out).contains("coffer:"), "{refused}: {}", text(&out));
    }
    // No shell, no pty, no forwarding.
    let out = c.command("ssh").arg("-F").arg(c.ssh_config()).args(["-tt", "coffer"]).output().unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let out = c
        .command("ssh")
        .arg("-F")
        .arg(c.ssh_config())
        .args(["-o", "ExitOnForwardFailure=yes", "-L", "127.0.0.1:0:127.0.0.1:22", "-W", "127.0.0.1:22", "coffer"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "forwarding must be refused: {}", text(&out));
}
