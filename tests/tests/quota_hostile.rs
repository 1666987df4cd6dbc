//! Quota promises against a hostile key (issue 12, findings 4, 9 and 10):
//! a usage count that cannot fail open, credit that one session cannot
//! hoard, refusals that tell used from held bytes, and a default file
//! limit with directories counted in bytes. Real `coffer serve` as root,
//! paramiko and OpenSSH as clients.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coffer_tests::{Client, Coffer, Options, coffer_bin, coffer_ok, run_ok, text, tree};

const PROBE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/quota_probe.py");

/// The paramiko probe as `user` with `key`, not yet started.
fn probe(c: &Client, user: &str, key: &Path, args: &[&str]) -> Command {
    let mut cmd = c.command("/usr/bin/python3");
    cmd.arg(PROBE).arg(c.port.to_string()).arg(user).arg(key).arg(c.home.join(".ssh/known_hosts")).args(args);
    cmd
}

fn probe_out(c: &Client, user: &str, key: &Path, args: &[&str]) -> String {
    text(&probe(c, user, key, args).output().expect("run the paramiko probe"))
}

/// A new key for `user` with `profile`; returns the private key's path.
fn add_key(server: &Coffer, dir: &Path, user: &str, name: &str, profile: &str) -> PathBuf {
    let key = dir.join(name);
    run_ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"]).arg(&key));
    run_ok(Command::new(coffer_bin()).arg("--state").arg(&server.state).args(["user", "add", user, "--key"]).arg(key.with_extension("pub")).args(["--profile", profile]));
    key
}

fn open_descriptors(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).expect("the server's descriptors").count() as u64
}

fn set_descriptor_limit(pid: u32, n: u64) {
    // Only the soft limit: raising a hard limit back needs CAP_SYS_RESOURCE.
    run_ok(Command::new("prlimit").arg("--pid").arg(pid.to_string()).arg(format!("--nofile={n}:")));
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<String>) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// 1,100 empty directories (0.2 s to make) made the count fail with EMFILE
/// under `ulimit -n 1024`, and the user then had no limit at all. Counted
/// now; and a count that does fail refuses writes until a retry succeeds.
#[test]
fn usage_counts_cannot_fail_open() {
    let mut server = Coffer::start_with(Options { users: vec!["alice"], ..Options::default() });
    coffer_ok(&server.state, &["user", "set", "alice", "--quota", "20M"]);
    assert!(server.stop().success());
    // The appliance's limit, which nothing raised.
    server.nofile = Some(1024);
    let area = server.area("alice");
    for i in 0..1100 {
        std::fs::create_dir(area.join(format!("e{i}"))).unwrap();
    }
    server.spawn();
    let c = server.client("alice");
    let key = c.home.join(".ssh/id_ed25519");
    assert!(!server.log().contains("cannot count usage"), "{}", server.log());
    let ten = (10 << 20).to_string();
    assert_eq!(probe_out(&c, "alice", &key, &["upload", "one.bin", &ten]).trim(), "ACCEPTED");
    let second = probe_out(&c, "alice", &key, &["upload", "two.bin", &ten]);
    assert!(second.contains("REFUSED quota exceeded for user alice"), "1,100 directories + 20 MiB under a 20 MiB quota: {second}");
    assert!(!area.join("two.bin").exists());

    // A user whose first count fails (here the server is out of descriptors
    // for the count of a deep tree, but not for the session) writes nothing
    // until a retry of the count succeeds.
    let keys = tempfile::tempdir().unwrap();
    let carol_key = add_key(&server, keys.path(), "carol", "carol", "full");
    let mut deep = server.area("carol");
    for _ in 0..40 {
        deep.push("d");
        std::fs::create_dir(&deep).unwrap();
    }
    let pid = server.pid();
    set_descriptor_limit(pid, open_descriptors(pid) + 15);
    let refused = probe_out(&c, "carol", &carol_key, &["upload", "c.bin", "4096"]);
    assert!(refused.contains("REFUSED writes refused for user carol: a recount of their usage is running"), "{refused}\n{}", server.log());
    assert!(!server.area("carol").join("c.bin").exists(), "a write passed while the usage was unknown");
    assert!(server.log().contains("user carol: cannot count usage"), "{}", server.log());
    assert!(server.log().contains("\"kind\":\"quota.count_failed\""), "{}", server.log());
    set_descriptor_limit(pid, 1024);
    wait_for("the retried count", Duration::from_secs(30), || server.log().contains("user carol: usage counted").then_some(String::new()));
    assert_eq!(probe_out(&c, "carol", &carol_key, &["upload", "c.bin", "4096"]).trim(), "ACCEPTED");
}

/// An append-only session that created 200 empty files held 16 MiB of byte
/// credit per 64 files until it ended, so the full key could not upload 4 KiB.
#[test]
fn an_open_session_of_empty_files_holds_no_bytes() {
    let server = Coffer::start_with(Options { users: vec!["alice"], ..Options::default() });
    coffer_ok(&server.state, &["user", "set", "alice", "--quota", "50M"]);
    let c = server.client("alice");
    let keys = tempfile::tempdir().unwrap();
    let laptop = add_key(&server, keys.path(), "alice", "laptop", "append-only");
    let mut holder = probe(&c, "alice", &laptop, &["empty-files", "200"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "READY");

    std::fs::write(c.home.join("small"), tree::bytes(1, 4096)).unwrap();
    let out = c.sftp_batch(&format!("put {}/small small\n", c.home.display()));
    assert!(out.status.success(), "the full key's 4 KiB upload: {}\n{}", text(&out), server.log());
    let key = c.home.join(".ssh/id_ed25519");
    let big = (40 << 20).to_string();
    assert_eq!(probe_out(&c, "alice", &key, &["upload", "big.bin", &big]).trim(), "ACCEPTED", "{}", server.log());
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
}

/// A 2 MiB upload under a 1 MiB quota was refused with "used 0 bytes of
/// 1.0 MiB" while the 80 and 90 % warnings fired, counting held credit.
#[test]
fn refusals_tell_used_from_held_and_held_credit_never_warns() {
    let server = Coffer::start_with(Options { users: vec!["alice"], ..Options::default() });
    coffer_ok(&server.state, &["user", "set", "alice", "--quota", "1M"]);
    let c = server.client("alice");
    let key = c.home.join(".ssh/id_ed25519");
    let out = probe_out(&c, "alice", &key, &["upload", "big.bin", &(2 << 20).to_string()]);
    assert!(
        out.contains("REFUSED quota exceeded for user alice: used 0 bytes of 1.0 MiB, and ") && out.contains("more is held by uploads in progress (this one included)"),
        "{out}"
    );
    std::thread::sleep(Duration::from_secs(3));
    let show = text(&coffer_ok(&server.state, &["user", "show", "alice"]));
    assert!(show.contains("warnings: none"), "a refused upload raised warnings:\n{show}");
    assert!(!server.log().contains("\"kind\":\"quota.warning\""), "{}", server.log());

    // Committed data still warns.
    assert_eq!(probe_out(&c, "alice", &key, &["upload", "fits.bin", &(900 << 10).to_string()]).trim(), "ACCEPTED");
    let show = wait_for("the 80 % warning", Duration::from_secs(10), || {
        let show = text(&coffer_ok(&server.state, &["user", "show", "alice"]));
        show.contains("warning: 80%").then_some(show)
    });
    assert!(!show.contains("warning: 90%"), "{show}");
}

/// Unmounts the test's small file system, however the test ends.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// 20,000 empty files used 7 MB of directory blocks but counted 5 bytes,
/// and nothing limited a user's inodes. A user without a file limit now
/// gets a tenth of the data area's inodes, and directories cost space.
#[test]
fn a_new_user_has_a_default_file_limit_and_directories_cost_space() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    run_ok(Command::new("mount").args(["-t", "tmpfs", "-o", "size=64m,nr_inodes=2000,mode=0711", "tmpfs"]).arg(&data));
    let _mount = Mount(data.clone());
    let server = Coffer::start_with(Options {
        users: vec!["alice"],
        config_extra: format!("[server]\ndata-dir = \"{}\"\n", data.display()),
    });
    let show = text(&coffer_ok(&server.state, &["user", "show", "alice"]));
    assert!(show.contains("files:   0 of 200 (the default: 1/10 of the data area's inodes)"), "{show}");
    let list = text(&coffer_ok(&server.state, &["user", "list"]));
    assert!(list.contains("200*") && list.contains("default file limit"), "{list}");

    let c = server.client("alice");
    let out = probe_out(&c, "alice", &c.home.join(".ssh/id_ed25519"), &["mkdirs", "d", "300"]);
    assert!(out.contains("MADE 200") && out.contains("REFUSED quota exceeded for user alice: used 200 of 200 files"), "{out}");
    let out = c.ssh("mkdir -p more/and/more");
    assert!(text(&out).contains("quota exceeded for user alice: used 200 of 200 files"), "{}", text(&out));

    // Each new directory was charged a block; a recount measures them.
    std::thread::sleep(Duration::from_secs(3));
    let record = std::fs::read_to_string(server.state.join("quota/alice.toml")).unwrap();
    assert!(record.contains(&format!("used-bytes = {}", 200 * 4096)), "{record}");
    let out = text(&coffer_ok(&server.state, &["quota", "rescan", "--user", "alice"]));
    let counted: u64 = out.split_whitespace().skip_while(|w| *w != "counted").nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!(counted >= 200 * 20, "directories counted no space: {out}");

    // An explicit limit still wins.
    coffer_ok(&server.state, &["user", "set", "alice", "--files", "250"]);
    let out = probe_out(&c, "alice", &c.home.join(".ssh/id_ed25519"), &["mkdirs", "e", "300"]);
    assert!(out.contains("MADE 50") && out.contains("REFUSED quota exceeded for user alice: used 250 of 250 files"), "{out}");
}
