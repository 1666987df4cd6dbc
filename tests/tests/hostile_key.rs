//! An attacker with a user's key (paramiko, `tests/clients/hostile.py`)
//! against `coffer serve`: revocation and downgrades reach connections that
//! are already open, one login cannot hold unlimited sessions, connections
//! that never log in are bounded in number and time, and no expensive key
//! exchange is offered.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use coffer_tests::{Client, Coffer, Options, coffer_ok, text};

const HOSTILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/hostile.py");

/// A running hostile.py that answers one line per command.
struct Probe {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Probe {
    fn start(c: &Client, args: &[&str]) -> Probe {
        Probe::start_as(c, &c.home.join(".ssh/id_ed25519"), args)
    }

    fn start_as(c: &Client, key: &Path, args: &[&str]) -> Probe {
        let mut child = c
            .command("/usr/bin/python3")
            .arg(HOSTILE)
            .arg(c.port.to_string())
            .arg(&c.user)
            .arg(key)
            .arg(c.home.join(".ssh/known_hosts"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start hostile.py");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Probe { child, stdin, stdout }
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.stdout.read_line(&mut l).expect("read from hostile.py");
        l.trim().to_string()
    }

    fn ask(&mut self, command: &str) -> String {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{command}").expect("write to hostile.py");
        stdin.flush().expect("flush");
        self.line()
    }

    /// Asks `command` until the answer starts with `want` (or `within` passes).
    fn ask_until(&mut self, command: &str, want: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let answer = self.ask(command);
            if answer.starts_with(want) || Instant::now() > deadline {
                return answer;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fingerprint(public_key: &Path) -> String {
    let out = Command::new("ssh-keygen").arg("-lf").arg(public_key).output().expect("ssh-keygen -l");
    String::from_utf8_lossy(&out.stdout).split_whitespace().nth(1).expect("fingerprint").to_string()
}

/// Session workers of `user` that the server `server_pid` runs now.
fn workers_of(server_pid: u32, user: &str) -> usize {
    let needle = format!("--user\0{user}\0");
    let parent = format!("PPid:\t{server_pid}\n");
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter(|e| std::fs::read_to_string(e.path().join("status")).is_ok_and(|s| s.contains(&parent)))
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| {
            let c = String::from_utf8_lossy(c);
            c.contains("session-worker") && c.contains(&needle)
        })
        .count()
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {}s", within.as_secs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn profile_quota_and_key_changes_reach_a_connection_already_open() {
    let server = Coffer::start();
    let c = server.client("alice");
    let public = c.home.join(".ssh/id_ed25519.pub");
    let mut probe = Probe::start(&c, &["hold"]);
    assert_eq!(probe.line(), "READY");
    assert_eq!(probe.ask("put kept.bin 4096"), "OK");

    // The stolen-laptop procedure, step one: the key becomes read-only and the
    // quota small. The session opened under the full profile ends by itself.
    coffer_ok(&server.state, &["user", "add", "alice", "--profile", "read-only", "--key", public.to_str().unwrap()]);
    coffer_ok(&server.state, &["user", "set", "alice", "--quota", "1M"]);
    let alive = probe.ask_until("alive", "ERR", Duration::from_secs(3));
    assert!(alive.starts_with("ERR"), "the full-profile session still runs after the downgrade: {alive}");
    assert!(server.log().contains("\"kind\":\"session.narrowed\""), "no event: {}", server.log());
    let put = probe.ask("put big.bin 5242880");
    assert!(put.starts_with("ERR"), "a read-only key uploaded on an old connection: {put}");
    let rm = probe.ask("rm kept.bin");
    assert!(rm.starts_with("ERR"), "a read-only key deleted on an old connection: {rm}");
    assert!(server.area("alice").join("kept.bin").exists());
    assert!(!server.area("alice").join("big.bin").exists());

    // Back to full, but the new 1 MiB quota holds on this connection.
    coffer_ok(&server.state, &["user", "add", "alice", "--profile", "full", "--key", public.to_str().unwrap()]);
    std::thread::sleep(Duration::from_secs(1));
    let put = probe.ask("put big.bin 5242880");
    assert!(put.starts_with("ERR") && put.contains("quota"), "the login-time (unlimited) quota applied: {put}");
    assert_eq!(probe.ask("put small.bin 65536"), "OK");

    // Step two: the key is removed; the connection ends within a second or two.
    coffer_ok(&server.state, &["user", "key-remove", "alice", &fingerprint(&public)]);
    let connected = probe.ask_until("connected", "ERR", Duration::from_secs(3));
    assert!(connected.starts_with("ERR"), "a removed key's connection is still up: {connected}");
    let put = probe.ask("put after-removal.bin 1024");
    assert!(put.starts_with("ERR"), "a removed key wrote: {put}");
    assert!(!server.area("alice").join("after-removal.bin").exists());
    assert!(server.log().contains("\"kind\":\"session.revoked\""), "no event: {}", server.log());
    assert!(server.log().contains("\"reason\":\"key-removed\""), "{}", server.log());
}

#[test]
fn locking_a_user_ends_their_open_connections() {
    let server = Coffer::start();
    let c = server.client("alice");
    let mut probe = Probe::start(&c, &["hold"]);
    assert_eq!(probe.line(), "READY");
    coffer_ok(&server.state, &["user", "lock", "alice"]);
    let connected = probe.ask_until("connected", "ERR", Duration::from_secs(3));
    assert!(connected.starts_with("ERR"), "a locked user's connection is still up: {connected}");
    assert!(server.log().contains("\"reason\":\"user-locked\""), "{}", server.log());
}

#[test]
fn one_user_cannot_hold_unlimited_sessions_or_lock_others_out() {
    let server = Coffer::start();
    let alice = server.client("alice");
    let bob = server.client("bob");
    let pid = server.pid();
    let before = open_descriptors(pid);

    // One connection asking for 201 channels gets ten (OpenSSH's MaxSessions).
    let mut one = Probe::start(&alice, &["flood", "1", "201"]);
    assert_eq!(one.line(), "LOGGED-IN 1 CHANNELS 10");
    drop(one);
    wait_for("alice's workers to end", Duration::from_secs(10), || workers_of(pid, "alice") == 0);

    // Thirty connections of ten: 24 log in, at most 32 sessions run (the
    // others are answered with the reason and end at once).
    let mut many = Probe::start(&alice, &["flood", "30", "10"]);
    let line = many.line();
    assert!(line.starts_with("LOGGED-IN 24 "), "{line}\n{}", server.log());
    let running = workers_of(pid, "alice");
    assert!((30..=32).contains(&running), "{running} workers");

    // Bob is served meanwhile.
    std::fs::write(bob.home.join("mine.bin"), vec![7u8; 100_000]).unwrap();
    let out = bob.sftp_batch("put mine.bin\nget mine.bin back.bin\nls -l\n");
    assert!(out.status.success(), "bob was locked out: {}\n{}", text(&out), server.log());
    assert_eq!(std::fs::read(bob.home.join("back.bin")).unwrap().len(), 100_000);
    assert!(server.log().contains("server.max-sessions-per-user"), "{}", server.log());
    assert!(server.log().contains("server.max-connections-per-user"), "{}", server.log());

    drop(many);
    wait_for("alice's workers to end", Duration::from_secs(15), || workers_of(pid, "alice") == 0);
    wait_for("the front end's descriptors to come back", Duration::from_secs(10), || open_descriptors(pid) <= before + 2);
}

#[test]
fn connections_that_never_log_in_are_bounded_in_number_and_time() {
    let server = Coffer::start_with(Options {
        users: vec!["alice", "bob"],
        config_extra: "[server]\nlogin-grace-secs = 6\n[login-throttle]\nmax-failures = 6\n".into(),
    });
    let bob = server.client("bob");

    // 64 sockets from one address that only send a banner: sixteen are served
    // until the grace time ends, the others are refused at once.
    let mut flood = Probe::start(&bob, &["banner", "64", "127.0.0.2"]);
    assert_eq!(flood.line(), "READY");
    // Sockets still in the listen queue look open until the server takes them.
    let open = flood.ask_until("count", "OPEN 16", Duration::from_secs(3));
    assert_eq!(open, "OPEN 16", "{}", server.log());

    // Another address logs in meanwhile.
    let out = bob.ssh("echo");
    let out_text = text(&out);
    assert!(!out_text.contains("Connection closed") && !out_text.contains("refused"), "bob was locked out: {out_text}");

    // After the grace time none is left, and they counted as failed logins.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(flood.ask_until("count", "OPEN 0", Duration::from_secs(2)), "OPEN 0", "{}", server.log());
    drop(flood);
    assert!(server.log().contains("\"kind\":\"login.banned\""), "sixteen dropped connections did not ban the address: {}", server.log());
    assert!(server.log().contains("\"address\":\"127.0.0.2\""), "{}", server.log());

    // A finished key exchange kept alive with SSH_MSG_IGNORE ends at the grace time too.
    let mut idle = Probe::start(&bob, &["kex-idle", "127.0.0.3"]);
    let closed = idle.line();
    let seconds: f64 = closed.strip_prefix("CLOSED-AFTER ").and_then(|s| s.parse().ok()).unwrap_or(f64::MAX);
    assert!(seconds <= 8.0, "an unauthenticated connection sending IGNORE stayed: {closed}");
}

#[test]
fn finite_field_key_exchanges_are_not_offered() {
    let server = Coffer::start();
    let c = server.client("alice");
    for kex in ["diffie-hellman-group18-sha512", "diffie-hellman-group16-sha512", "diffie-hellman-group14-sha256"] {
        let out = c.command("ssh").arg("-F").arg(c.ssh_config()).args(["-o", "LogLevel=INFO", "-o", &format!("KexAlgorithms={kex}"), "coffer", "true"]).output().expect("ssh");
        assert!(!out.status.success(), "{kex} was accepted");
        assert!(text(&out).contains("no matching key exchange method"), "{kex}: {}", text(&out));
    }
    for kex in ["curve25519-sha256", "curve25519-sha256@libssh.org", "mlkem768x25519-sha256"] {
        let supported = Command::new("ssh").arg("-Q").arg("kex").output().map(|o| String::from_utf8_lossy(&o.stdout).contains(kex));
        if !supported.unwrap_or(false) {
            continue;
        }
        let out = c.command("ssh").arg("-F").arg(c.ssh_config()).args(["-o", &format!("KexAlgorithms={kex}"), "coffer", "echo"]).output().expect("ssh");
        assert!(out.status.success(), "{kex}: {}", text(&out));
    }
}
