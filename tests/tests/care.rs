//! The booted appliance's day-to-day care over `ssh admin@box`: status in
//! text and JSON with the host key the console printed, the clock set from
//! an SNTP server on the host, a user without a recent backup raising an
//! alert once the clock is trusted, the mDNS responder, events and logs, and a
//! configuration exported, then imported onto a freshly flashed boot disk.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use coffer_tests::qemu::{Appliance, BootOptions, exclusive, timeout};
use coffer_tests::sinks::{AlertSinks, HTTP_PORT, SMTP_PORT};
use coffer_tests::text;

/// The port the test image's `[time] servers` names (scripts/build-test-image).
const SNTP_PORT: u16 = 47123;

struct Sntp(Child);

impl Sntp {
    fn start(offset_secs: f64) -> Self {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/sntp_server.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .args([SNTP_PORT.to_string(), offset_secs.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("sntp_server.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        Sntp(child)
    }
}

impl Drop for Sntp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn status_clock_stale_alert_mdns_and_logs_over_ssh() {
    let _one_guest = exclusive();
    let sinks = AlertSinks::start(SMTP_PORT, HTTP_PORT);
    let mut a = Appliance::boot(BootOptions::default());
    a.wait_event("service.ready", timeout(120));
    a.wait_ssh("alice", timeout(60));
    // The fingerprints are printed a moment after the endpoint starts, before or after it is ready.
    let keys = a.any_event("boot.host-keys", timeout(30));

    // alice's last backup is ten days old (sftp keeps the file's time);
    // the clock is not trusted yet, so nothing is said.
    let alice = a.client("alice");
    let file = alice.home.join("old.tar");
    std::fs::write(&file, b"old backup").unwrap();
    std::fs::File::options().write(true).open(&file).unwrap().set_modified(std::time::SystemTime::now() - Duration::from_secs(10 * 86_400)).unwrap();
    let out = alice.sftp_batch("put -p old.tar\n");
    assert!(out.status.success(), "{}", text(&out));

    let admin = a.client("admin");
    let status = text(&admin.ssh("status"));
    assert!(status.contains("not yet set from a time server"), "{status}");
    let fingerprint = keys["fingerprints"][0].as_str().unwrap().to_string();
    assert!(status.contains(&fingerprint), "the console's host key {fingerprint} is on the status screen:\n{status}");

    // The host's SNTP server sets the clock (5 s ahead); then the stale check runs.
    let _sntp = Sntp::start(5.0);
    let synced = a.wait_event("time.synced", timeout(60));
    assert_eq!(synced["server"], format!("10.0.2.2:{SNTP_PORT}"));
    assert!(synced["offset-ms"].as_i64().unwrap() > 3000, "{synced}");
    assert_eq!(synced["rtc"], true, "the hardware clock is written back: {synced}");
    let stale = a.wait_event("backup.stale", timeout(90));
    assert_eq!(stale["user"], "alice");
    sinks.wait_for("smtp", "alice has not backed up", timeout(60));

    let out = admin.ssh("status --json");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
    assert_eq!(v["clock-trusted"], true);
    assert_eq!(v["health"], "warning", "{v}");
    assert_eq!(v["arrays"][0]["health"], "healthy", "{v}");
    assert_eq!(v["slot"], "a");
    let alice_status = v["users"].as_array().unwrap().iter().find(|u| u["name"] == "alice").unwrap().clone();
    assert_eq!(alice_status["stale"], true, "{v}");
    let screen = text(&admin.ssh("status"));
    assert!(screen.contains("WARNING") && screen.contains("no backup for 7+ days"), "{screen}");

    // mDNS: the responder runs on the guest's address (QEMU's user network
    // carries no multicast; the responder's answers are tested on loopback).
    let mdns = a.events().into_iter().find(|e| e["kind"] == "mdns.advertising").expect("mdns.advertising");
    assert_eq!((mdns["name"].as_str(), mdns["address"].as_str()), (Some("coffer.local"), Some("10.0.2.15")));

    // A check of the mirror on request; its result shows in status.
    let out = admin.ssh("raid scrub");
    assert!(out.status.success(), "{}", text(&out));
    a.wait_event("raid.scrub-started", timeout(30));
    let done = a.wait_event("raid.scrub-finished", timeout(120));
    assert_eq!(done["mismatches"], 0, "{done}");
    let v: serde_json::Value = serde_json::from_slice(&admin.ssh("status --json").stdout).unwrap();
    assert_eq!(v["arrays"][0]["last-scrub"]["mismatches"], 0, "{v}");

    let events = text(&admin.ssh("events"));
    assert!(events.lines().any(|l| l.contains("\"kind\":\"boot.start\"")), "{events}");
    let logs = text(&admin.ssh("logs --since 1h"));
    assert!(logs.contains("time.synced"), "{logs}");
    // `logs --follow` shows new lines as they come, until the client goes.
    let mut follow = admin.command("ssh").arg("-F").arg(admin.ssh_config()).args(["coffer", "logs --follow --since 1s"]).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let _ = admin.ssh("raid scrub");
    a.wait_event("raid.scrub-started", timeout(30));
    std::thread::sleep(Duration::from_secs(2));
    let _ = follow.kill();
    let followed = String::from_utf8_lossy(&follow.wait_with_output().unwrap().stdout).into_owned();
    assert!(followed.contains("raid.scrub-started"), "followed: {followed}");
    // alice may back up but not administer.
    let out = alice.ssh("status");
    assert!(!out.status.success() && text(&out).contains("administrator"), "{}", text(&out));
}

/// A box's identity and users, exported over SSH, come back on a freshly
/// flashed boot disk; the data disks are the same, so alice finds her files.
#[test]
fn config_export_and_import_onto_a_freshly_flashed_boot_disk() {
    let _one_guest = exclusive();
    let mut a = Appliance::boot(BootOptions { allow_reset: true, ..BootOptions::default() });
    a.wait_event("service.ready", timeout(120));
    a.wait_ssh("admin", timeout(60));
    let admin = a.client("admin");
    let carol_key = coffer_tests::qemu::TestImage::get().keys.join("alice.pub");
    let out = admin.ssh_with_stdin("user add carol --key - --quota 1G", &std::fs::read(carol_key).unwrap());
    assert!(out.status.success(), "{}", text(&out));
    assert!(admin.ssh("config set alerts.no-backup-days 3").status.success());
    let exported = admin.ssh_with_stdin("config export --passphrase-stdin", b"four words make a passphrase\n");
    assert!(exported.status.success(), "{}", text(&exported));
    a.power_cut();

    a.reflash();
    a.start();
    a.wait_event("service.ready", timeout(120));
    a.wait_ssh("admin", timeout(60));
    let admin = a.client("admin");
    assert!(!text(&admin.ssh("user list")).contains("carol"), "a fresh boot disk has no carol");
    let mut input = b"four words make a passphrase\n".to_vec();
    input.extend_from_slice(&exported.stdout);
    // The import ends in a reboot, but its exit status comes first.
    let out = admin.ssh_with_stdin("config import --passphrase-stdin --reboot", &input);
    assert!(out.status.success() && text(&out).contains("rebooting now"), "{}", text(&out));
    a.wait_event_where("boot.start", timeout(180), |_| true);
    a.wait_event("service.ready", timeout(120));
    a.wait_ssh("admin", timeout(60));
    let admin = a.client("admin");
    assert!(text(&admin.ssh("user list")).contains("carol"));
    assert!(text(&admin.ssh("config show")).contains("no-backup-days = 3"));
}
