//! Logins: public keys only, weak signature algorithms refused, unknown keys
//! and passwords refused, failed logins throttled into a ban, keepalives
//! answered.

use std::process::{Command, Stdio};

use coffer_tests::{Client, Coffer, Options, run_ok, text};

fn ssh(c: &Client, opts: &[&str], remote: &str) -> std::process::Output {
    c.command("ssh").arg("-F").arg(c.ssh_config()).args(opts).arg("coffer").arg(remote).output().unwrap()
}

/// ssh with only the given key (the client config names the user's own key).
fn ssh_key(c: &Client, key: &std::path::Path, opts: &[&str], remote: &str) -> std::process::Output {
    c.command("ssh")
        .args(["-F", "/dev/null", "-p", &c.port.to_string(), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o"])
        .arg(format!("UserKnownHostsFile={}", c.home.join(".ssh/known_hosts").display()))
        .arg("-i")
        .arg(key)
        .args(opts)
        .arg(format!("{}@127.0.0.1", c.user))
        .arg(remote)
        .output()
        .unwrap()
}

#[test]
fn only_the_right_key_of_the_right_user_logs_in() {
    let server = Coffer::start();
    let alice = server.client("alice");
    assert!(ssh(&alice, &[], "ls -1").status.success());
    // Alice's key does not open bob's account.
    let out = ssh(&alice, &["-l", "bob"], "ls -1");
    assert!(!out.status.success());
    // An unknown key.
    let stranger = alice.home.join("stranger");
    run_ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&stranger));
    let out = ssh_key(&alice, &stranger, &[], "ls -1");
    assert!(!out.status.success());
    assert!(ssh_key(&alice, &alice.home.join(".ssh/id_ed25519"), &[], "ls -1").status.success());
    // Passwords and keyboard-interactive are not offered at all.
    let out = ssh(&alice, &["-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive"], "ls -1");
    assert!(!out.status.success());
    assert!(text(&out).contains("Permission denied (publickey)"), "{}", text(&out));
}

#[test]
fn sha1_rsa_signatures_are_refused_sha2_accepted() {
    let server = Coffer::start();
    let alice = server.client("alice");
    let rsa = alice.home.join("rsa");
    run_ok(Command::new("ssh-keygen").args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"]).arg(&rsa));
    run_ok(Command::new(coffer_tests::coffer_bin()).arg("--state").arg(&server.state).args(["user", "add", "alice", "--key"]).arg(rsa.with_extension("pub")));
    let out = ssh_key(&alice, &rsa, &[], "ls -1");
    assert!(out.status.success(), "rsa-sha2 login failed: {}", text(&out));
    let out = ssh_key(&alice, &rsa, &["-o", "PubkeyAcceptedAlgorithms=ssh-rsa"], "ls -1");
    // server-sig-algs does not list ssh-rsa, so OpenSSH does not even try;
    // a client that tries anyway is refused by the key policy (unit-tested).
    assert!(!out.status.success(), "ssh-rsa (SHA-1) login succeeded");
    // Adding a DSA key is refused with a clear message.
    let dsa_line = "ssh-dss AAAAB3NzaC1kc3MAAACBAP1/U4EddRIpUt9KnC7s5Of2EbdSPO9EAMMeP4C2USZpRV1AIlH7WT2NWPq/xfW6MPbLm1Vs14E7gB00b/JmYLdrmVClpJ+f6AR7ECLCT7up1/63xhv4O1fnxqimFQ8E+4P208UewwI1VBNaFpEy9nXzrith1yrv8iIDGZ3RSAHHAAAAFQCXYFCPFSMLzLKSuYKi64QL8Fgc9QAAAIEA9+GghdabPd7LvKtcNrhXuXmUr7v6OuqC+VdMCz0HgmdRWVeOutRZT+ZxBxCBgLRJFnEj6EwoFhO3zwkyjMim4TwWeotUfI0o4KOuHiuzpnWRbqN/C/ohNWLx+2J6ASQ7zKTxvqhRkImog9/hWuWfBpKLZl6Ae1UlZAFMO/7PSSoAAACBAPV0n3OjZsNbQ6WiYA5CmDQD2/4V3G4vb0Xp1ESnbb1ZiF7l1sQY6Sk4eTNZKA6V7AmJwK3gH1TTdSwLSkrSxD2iM1ITjA6Aovt4lpzUzcYDXaoapG7XQzPIj/bPcEHbXrHkf8XDg7+CYkIcMPiY5xTmxBFX4CMsXQe6gIZ8f9qz dsa-test\n";
    let dsa = alice.home.join("dsa.pub");
    std::fs::write(&dsa, dsa_line).unwrap();
    let out = Command::new(coffer_tests::coffer_bin()).arg("--state").arg(&server.state).args(["user", "add", "carol", "--key"]).arg(&dsa).output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("ssh-dss"), "{}", text(&out));
}

#[test]
fn repeated_failures_ban_the_address() {
    let server = Coffer::start_with(Options {
        users: vec!["alice"],
        config_extra: "[login-throttle]\nmax-failures = 3\nban-secs = 600\n".into(),
    });
    let alice = server.client("alice");
    let stranger = alice.home.join("stranger");
    run_ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&stranger));
    for _ in 0..3 {
        let out = ssh_key(&alice, &stranger, &[], "ls -1");
        assert!(!out.status.success());
    }
    // Now even the right key is refused until the ban ends.
    let out = ssh(&alice, &[], "ls -1");
    assert!(!out.status.success(), "banned address could log in");
    let log = server.log();
    assert!(log.contains("coffer-event {") && log.contains("\"kind\":\"login.banned\""), "{log}");
}

#[test]
fn successful_connection_bursts_are_not_throttled() {
    let server = Coffer::start_with(Options {
        users: vec!["alice"],
        config_extra: "[login-throttle]\nmax-failures = 3\n".into(),
    });
    let alice = server.client("alice");
    // duplicity's pexpect backends open one connection per file.
    for i in 0..12 {
        let out = ssh(&alice, &[], "ls -1");
        assert!(out.status.success(), "connection {i}: {}", text(&out));
    }
}

#[test]
fn keepalives_are_answered() {
    let server = Coffer::start();
    let alice = server.client("alice");
    // The remote command waits on stdin for 4 s while the client probes every
    // second and gives up after one unanswered probe.
    let mut child = alice
        .command("ssh")
        .arg("-F")
        .arg(alice.ssh_config())
        .args(["-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=1", "coffer", "sha1sum"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(4));
    std::io::Write::write_all(&mut stdin, b"abc").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a9993e364706816aba3e25717850c26c9cd0d89d  -\n");
}
