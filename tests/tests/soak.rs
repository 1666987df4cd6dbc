//! Ten minutes of hostile traffic from one user's key (channel and login
//! floods, connections that never log in, endless scp control lines, huge
//! listings, inode churn) while another user's duplicity backups and
//! restores must complete unchanged; the server's descriptors and memory are
//! recorded before and after and must come back.
//!
//! `COFFER_SOAK_SECONDS` shortens or lengthens the attack (default 600).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use coffer_tests::{Client, Coffer, duplicity_command, text, tree};

const HOSTILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/hostile.py");

fn hostile(c: &Client, source: &str, args: &[&str]) -> Child {
    c.command("/usr/bin/python3")
        .arg(HOSTILE)
        .arg(c.port.to_string())
        .arg(&c.user)
        .arg(c.home.join(".ssh/id_ed25519"))
        .arg(c.home.join(".ssh/known_hosts"))
        .args(args)
        .env("HOSTILE_SOURCE", source)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start hostile.py")
}

/// Runs one attack: reads its first line, holds it for `hold`, then ends it.
fn attack_once(c: &Client, source: &str, args: &[&str], hold: Duration, probe: Option<&str>) {
    let mut child = hostile(c, source, args);
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let _ = out.read_line(&mut line);
    if let (Some(p), Some(stdin)) = (probe, child.stdin.as_mut()) {
        let _ = writeln!(stdin, "{p}");
        let _ = out.read_line(&mut line);
    }
    std::thread::sleep(hold);
    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn children(pid: u32) -> usize {
    let parent = format!("PPid:\t{pid}\n");
    std::fs::read_dir("/proc")
        .map(|d| d.flatten().filter(|e| std::fs::read_to_string(e.path().join("status")).is_ok_and(|s| s.contains(&parent))).count())
        .unwrap_or(0)
}

#[test]
fn hostile_traffic_from_one_key_leaves_another_users_backups_unchanged() {
    let seconds: u64 = std::env::var("COFFER_SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(600);
    let server = Coffer::start();
    let alice = Arc::new(server.client("alice"));
    let bob = server.client("bob");
    let pid = server.pid();

    // A directory of 20,000 entries in the attacker's own area, for listings.
    let area = server.area("alice");
    let owner = std::fs::metadata(&area).expect("alice's area").uid();
    let big = area.join("big");
    std::fs::create_dir(&big).expect("mkdir big");
    for i in 0..20_000 {
        std::fs::File::create(big.join(format!("entry-with-a-longish-name-{i:06}"))).expect("entry");
    }
    Command::new("chown").arg("-R").arg(format!("{owner}:{owner}")).arg(&big).status().expect("chown");

    let fpr = coffer_tests::gpg_key(&bob.home);
    let src = bob.home.join("src");
    tree::make_source(&src);
    let url = format!("sftp://bob@127.0.0.1:{}/backup", server.port);

    let fds_before = descriptors(pid);
    let rss_before = status_field(pid, "VmRSS:");

    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    type Attack = (&'static str, Vec<&'static str>, Duration, Option<&'static str>);
    let attacks: Vec<Attack> = vec![
        ("127.0.0.2", vec!["flood", "30", "10"], Duration::from_secs(3), None),
        ("127.0.0.3", vec!["banner", "64", "127.0.0.3"], Duration::from_secs(2), Some("count")),
        ("127.0.0.4", vec!["long-line", "64"], Duration::ZERO, None),
        ("127.0.0.5", vec!["listings", "big", "100"], Duration::ZERO, None),
        ("127.0.0.6", vec!["churn", "300"], Duration::ZERO, None),
    ];
    let threads: Vec<_> = attacks
        .into_iter()
        .map(|(source, args, hold, probe)| {
            let (alice, stop, rounds) = (Arc::clone(&alice), Arc::clone(&stop), Arc::clone(&rounds));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    attack_once(&alice, source, &args, hold, probe);
                    rounds.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();

    // The victim: full, then incrementals, each restored and compared, until the time is up.
    let started = Instant::now();
    let mut backups = 0;
    // Memory once the attack has reached its full size: the allocator keeps
    // what the peak took, so a leak shows as growth after this point.
    let mut rss_warm = None;
    while backups == 0 || started.elapsed() < Duration::from_secs(seconds) {
        let action = if backups == 0 { "full" } else { "incremental" };
        if backups > 0 {
            std::fs::write(src.join(format!("round-{backups}.bin")), tree::bytes(backups, 300_000)).expect("new file");
        }
        let out = duplicity_command(&bob, &fpr, &[action], &[src.to_str().unwrap(), &url]).output().expect("duplicity");
        assert!(out.status.success(), "bob's {action} backup failed under attack: {}\n{}", text(&out), server.log());
        let restored = bob.home.join(format!("restored-{backups}"));
        let out = duplicity_command(&bob, &fpr, &["restore"], &[&url, restored.to_str().unwrap()]).output().expect("duplicity");
        assert!(out.status.success(), "bob's restore failed under attack: {}\n{}", text(&out), server.log());
        tree::assert_same(&src, &restored, true);
        std::fs::remove_dir_all(&restored).expect("remove restored tree");
        backups += 1;
        if rss_warm.is_none() && started.elapsed() >= Duration::from_secs(seconds / 4) {
            rss_warm = Some(status_field(pid, "VmRSS:"));
        }
    }
    let rss_warm = rss_warm.unwrap_or_else(|| status_field(pid, "VmRSS:"));
    let fds_peak = descriptors(pid);
    let rss_peak = status_field(pid, "VmHWM:");
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().expect("attack thread");
    }

    // Everything the attack held is given back.
    let deadline = Instant::now() + Duration::from_secs(60);
    while (children(pid) > 0 || descriptors(pid) > fds_before + 4) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let fds_after = descriptors(pid);
    let rss_after = status_field(pid, "VmRSS:");
    eprintln!(
        "soak: {}s, {backups} backup+restore rounds for bob, {} attack rounds; server descriptors {fds_before} before, {fds_peak} at the end of the attack, {fds_after} after; server RSS {rss_before} KiB before, {rss_warm} KiB a quarter in, {rss_after} KiB after, peak {rss_peak} KiB",
        started.elapsed().as_secs(),
        rounds.load(Ordering::SeqCst)
    );
    assert_eq!(children(pid), 0, "session workers left running");
    assert!(fds_after <= fds_before + 4, "descriptors leaked: {fds_before} before, {fds_after} after");
    assert!(rss_after < rss_warm + 32 * 1024, "server memory kept growing: {rss_warm} KiB a quarter in, {rss_after} KiB after");
    assert!(rss_peak < 512 * 1024, "server memory peaked at {rss_peak} KiB");
}
