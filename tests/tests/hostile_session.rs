//! A session worker against a client holding a user's key and meaning
//! harm (issue 12, findings 2 and 6): inode numbers reused after deletes
//! must not extend what an append-only key may change, and no input (scp
//! lines without end, directory handles on huge listings) may grow a
//! worker without bound. Driven with paramiko and OpenSSH against
//! `coffer serve` as root.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use coffer_tests::{Client, Coffer, Options, coffer_bin, run_ok, text};

fn probe(c: &Client, key: &std::path::Path, args: &[&str]) -> Command {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/hostile_probe.py");
    let mut cmd = c.command("/usr/bin/python3");
    cmd.arg(script).arg(c.port.to_string()).arg(&c.user).arg(key).arg(c.home.join(".ssh/known_hosts")).args(args);
    cmd
}

fn add_key(server: &Coffer, user: &str, key: &std::path::Path, profile: &str) {
    run_ok(Command::new(coffer_bin()).arg("--state").arg(&server.state).args(["user", "add", user, "--key"]).arg(key.with_extension("pub")).args(["--profile", profile]));
}

/// Session workers of `server` (its children running `session-worker`).
fn workers(server: &Coffer) -> Vec<u32> {
    workers_of(server.pid())
}

/// A `/proc/PID/status` value in KiB (`VmHWM`, `VmRSS`).
fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.trim().strip_suffix(" kB")?.trim().parse().ok())
}

/// Records the highest `VmHWM` of any worker of `server` until stopped.
struct MemoryWatch {
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MemoryWatch {
    fn start(server: &Coffer) -> Self {
        let (peak_kib, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let pid = server.pid();
        let (peak, halt) = (Arc::clone(&peak_kib), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                for w in workers_of(pid) {
                    if let Some(kib) = status_kib(w, "VmHWM") {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        MemoryWatch { peak_kib, stop, thread: Some(thread) }
    }

    fn peak_mib(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("memory watcher");
        }
        self.peak_kib.load(Ordering::Relaxed) / 1024
    }
}

fn workers_of(parent: u32) -> Vec<u32> {
    let parent = parent.to_string();
    // pid (comm) state ppid …; comm may hold spaces, so split after ')'.
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("list /proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1).map(str::to_string));
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if ppid.as_deref() == Some(parent.as_str()) && String::from_utf8_lossy(&cmdline).contains("session-worker") {
            out.push(pid);
        }
    }
    out
}

/// Finding 2: an append-only session that made and lost 200 files, still
/// connected, cannot change the 200 files a full key uploads next, which
/// get the freed inode numbers. Its own remaining file it may still finish.
#[test]
fn reused_inodes_give_an_append_only_session_nothing() {
    let server = Coffer::start_with(Options { users: vec!["alice"], ..Options::default() });
    let c = server.client("alice");
    let append_key = c.home.join(".ssh/id_ed25519");
    add_key(&server, "alice", &append_key, "append-only");
    let full_key = c.home.join(".ssh/id_full");
    run_ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "alice-full", "-f"]).arg(&full_key));
    add_key(&server, "alice", &full_key, "full");

    let out = probe(&c, &append_key, &["inode-reuse", full_key.to_str().unwrap(), "200"]).output().unwrap();
    let log = text(&out);
    assert!(out.status.success() && log.contains("DONE"), "{log}");
    let changed: Vec<&str> = log.lines().filter(|l| l.starts_with("CHANGED")).collect();
    assert!(changed.is_empty(), "the append-only key changed {} of the full key's files:\n{}", changed.len(), changed.join("\n"));
    assert!(log.contains("OWN finished"), "{log}");
    for i in 0..200 {
        let data = std::fs::read(server.area("alice").join(format!("backup/v-{i}"))).unwrap();
        assert_eq!(data, format!("history {i}").into_bytes(), "backup/v-{i}");
    }
}

/// Runs the scp-line attack; returns bytes sent, exit status, output and
/// the workers' peak memory in MiB.
fn scp_line(server: &Coffer, command: &str, first: &str) -> (u64, i32, String, u64) {
    let c = server.client("alice");
    let watch = MemoryWatch::start(server);
    let out = probe(&c, &c.home.join(".ssh/id_ed25519"), &["scp-line", command, first, &(400u64 << 20).to_string()]).output().expect("run the probe");
    let peak = watch.peak_mib();
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    let field = |name: &str| log.split_whitespace().skip_while(|w| *w != name).nth(1).and_then(|v| v.parse::<i64>().ok());
    let sent = field("SENT").unwrap_or_else(|| panic!("{log}"));
    let status = field("EXIT").unwrap_or_else(|| panic!("{log}"));
    (u64::try_from(sent).expect("bytes sent"), i32::try_from(status).expect("exit status"), log, peak)
}

/// Finding 6: 400 MiB without a newline to `scp -t` and to `scp -f` (open
/// to read-only keys): the worker stops at the line limit with a protocol
/// error, stays small, and the server goes on serving.
#[test]
fn endless_scp_lines_end_the_command() {
    let server = Coffer::start_with(Options { users: vec!["alice"], ..Options::default() });
    std::fs::write(server.area("alice").join("f"), b"data").unwrap();
    for (command, first) in [("scp -t .", "43"), ("scp -f f", "01")] {
        let (sent, status, log, peak) = scp_line(&server, command, first);
        assert_eq!(status, 1, "{command}: {log}");
        assert!(log.contains("control line longer than 8192 bytes"), "{command}: {log}");
        // What the SSH window and the pipes hold when the worker gives up, not 400 MiB.
        assert!(sent < 32 << 20, "{command}: the worker read {sent} bytes of one line: {log}");
        assert!(peak < 64, "{command}: a worker grew to {peak} MiB");
    }
    let out = server.client("alice").ssh("md5sum f");
    assert!(out.status.success(), "{}", text(&out));
}

/// Finding 6: directory handles on a 20,000-entry directory stop at the
/// handle limit with a clear failure, the worker stays small because
/// listings are read as READDIR asks, and OpenSSH's `ls` still lists all.
#[test]
fn huge_listings_and_many_handles_stay_bounded() {
    let server = Coffer::start_with(Options { users: vec!["alice"], ..Options::default() });
    let area = server.area("alice");
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&area).unwrap());
    let big = area.join("big");
    std::fs::create_dir(&big).unwrap();
    std::os::unix::fs::chown(&big, Some(owner), Some(owner)).unwrap();
    for i in 0..20_000 {
        // Long names, as backup tools use, make a listing big.
        let name = format!("f-{i:05}-{}", "n".repeat(100));
        std::fs::write(big.join(&name), b"").unwrap();
    }
    let c = server.client("alice");
    let mut child = probe(&c, &c.home.join(".ssh/id_ed25519"), &["many-opendir", "big", "600"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let opened = lines.next().unwrap().unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "HOLDING", "{opened}");
    assert!(opened.starts_with("OPENED 128 REFUSED") && opened.contains("128 open handles"), "{opened}");
    let live = workers(&server);
    assert_eq!(live.len(), 1, "one worker for the probe's session");
    let peak = status_kib(live[0], "VmHWM").unwrap() / 1024;
    assert!(peak < 64, "128 directory handles grew the worker to {peak} MiB");
    // And a limit stops any other growth: RLIMIT_DATA of 256 MiB, soft and hard.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", live[0])).unwrap();
    let data = limits.lines().find(|l| l.starts_with("Max data size")).unwrap();
    assert_eq!(data.split_whitespace().skip(3).take(2).collect::<Vec<_>>(), ["268435456", "268435456"], "{data}");
    child.stdin.take().unwrap().write_all(b"").unwrap();
    assert!(child.wait().unwrap().success());

    let out = c.sftp_batch("ls -1 big\n");
    assert!(out.status.success(), "{}", text(&out));
    let listed = String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("f-")).count();
    assert_eq!(listed, 20_000, "OpenSSH's ls listed {listed} of 20000 entries");
}
