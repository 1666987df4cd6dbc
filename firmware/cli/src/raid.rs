//! `coffer raid watch`: the mirror's watcher, run by the supervisor as a
//! service. It hears disks come and go from kernel uevents, fails a pulled
//! disk out of the array at once (`mdadm -If`, as udev would: md itself only
//! notices on its next write), re-reads md's sysfs (often while a rebuild
//! runs, every few seconds otherwise), and lets `coffer_raid::Monitor`
//! decide what to report and do.

use std::path::Path;
use std::process::Command;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use coffer_config::{Config, StatePaths};
use coffer_hal::{DeviceKind, LedSetting, SysRoot, UeventSocket};
use coffer_alert::{Alert, Severity};
use coffer_raid::{
    DiskContent, DiskReading, FreeDisk, Health, HealthTracker, LedPattern, Monitor, RaidAction, RaidEvent, RaidPolicy, SmartReport, Snapshot,
    led_pattern, normalize_uuid, parse_smartctl_json,
};
use coffer_sshd::event;
use serde_json::{Value, json};

const BOOT_PARTITION: &str = "coffer-state";
/// Bay names, one per line, from the board's `disks.toml` (written by the image build).
const BAYS_FILE: &str = "/etc/coffer/bays";
/// The status LED's name (or `*suffix`), from the board's `leds.toml`.
const STATUS_LED_FILE: &str = "/etc/coffer/status-led";
/// How often `smartctl` is asked (the counters in sysfs are read on every look).
const SMART_INTERVAL: Duration = Duration::from_secs(30 * 60);
const QUIET_INTERVAL: Duration = Duration::from_secs(5);
const BUSY_INTERVAL: Duration = Duration::from_millis(500);

pub(crate) fn watch(state: &Path) -> Result<()> {
    let paths = StatePaths::new(state);
    let config = Config::load(&paths.config())?;
    crate::serve::init_logging(&config.log.level);
    let bays = std::fs::read_to_string(BAYS_FILE)
        .map(|t| t.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect())
        .unwrap_or_else(|_| RaidPolicy::default().bays);
    let policy = RaidPolicy { auto_add_blank: config.raid.auto_add_blank, auto_add_foreign: config.raid.auto_add_foreign, bays };
    let sys = SysRoot::system();
    if config.raid.rebuild_speed_max_kib > 0 {
        sys.set_md_speed_limit_max(config.raid.rebuild_speed_max_kib).context("setting the rebuild speed limit")?;
    }
    let uevents = UeventSocket::open().context("listening for kernel uevents")?;
    let mut monitor = Monitor::new(policy);
    let status_led = std::fs::read_to_string(STATUS_LED_FILE).ok().and_then(|p| sys.find_led(p.trim()));
    let mut shown: Option<LedPattern> = None;
    let mut health = HealthTracker::default();
    let mut smart: BTreeMap<String, SmartReport> = BTreeMap::new();
    let mut smart_asked: Option<Instant> = None;
    event::emit("raid.watching", &[("status-led", json!(status_led))]);
    let mut interval = QUIET_INTERVAL;
    loop {
        // A look at least every `interval`, however many unrelated uevents arrive.
        let next_look = Instant::now() + interval;
        while let Some(remaining) = next_look.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
            let Some(ev) = uevents.recv(remaining)? else { break };
            if ev.subsystem != "block" {
                continue;
            }
            if ev.action == "remove" && ev.devtype.as_deref() == Some("disk")
                && let Some(kname) = &ev.devname {
                    // What udev's 64-md-raid-assembly.rules does: fail and remove the member now.
                    mdadm(&["--incremental", "--fail", kname]);
                }
            break;
        }
        let snapshot = snapshot(&sys)?;
        let (events, actions) = monitor.observe(&snapshot);
        for e in events {
            let fields: Vec<(&str, Value)> = e.fields.iter().map(|(k, v)| (*k, v.clone())).collect();
            event::emit(e.code, &fields);
            for alert in alerts_for(&e, crate::alert::now()) {
                crate::alert::raise(state, &alert);
            }
        }
        mark_data_unavailable(&snapshot);
        if smart_asked.is_none_or(|t| t.elapsed() >= SMART_INTERVAL) {
            smart = ask_smart(&snapshot);
            smart_asked = Some(Instant::now());
        }
        for h in health.observe(&readings(&sys, &snapshot, &smart)) {
            event::emit(
                h.code,
                &[("disk", json!(h.disk)), ("serial", json!(h.serial)), ("what", json!(h.what)), ("guidance", json!(h.detail))],
            );
            let id = h.serial.clone().unwrap_or_else(|| h.disk.clone());
            let severity = if h.code == "disk.health-critical" { Severity::Critical } else { Severity::Warning };
            let alert = Alert {
                key: format!("disk:{id}:{}", h.what),
                severity,
                title: format!("disk {id} ({}): {}", h.disk, h.what),
                body: format!("{}.", h.detail),
                resolved: false,
                time: crate::alert::now(),
            };
            crate::alert::raise(state, &alert);
        }
        let pattern = led_pattern(&snapshot.arrays.iter().filter(|a| a.level == "raid1").map(coffer_raid::health).collect::<Vec<_>>());
        if shown != Some(pattern) {
            show(&sys, status_led.as_deref(), pattern);
            shown = Some(pattern);
        }
        let acted = !actions.is_empty();
        for action in actions {
            run_action(&action);
        }
        // Look often while md is syncing, or right after we changed something (a rebuild is about to start).
        let syncing = snapshot.arrays.iter().any(|a| !matches!(a.sync_action.as_str(), "idle" | ""));
        interval = if acted || syncing { BUSY_INTERVAL } else { QUIET_INTERVAL };
    }
}

/// Health readings of every disk in a mirror: sysfs counters, md's
/// corrected errors, and the last SMART report.
fn readings(sys: &SysRoot, snapshot: &Snapshot, smart: &BTreeMap<String, SmartReport>) -> Vec<DiskReading> {
    let mut out = Vec::new();
    for m in snapshot.arrays.iter().flat_map(|a| &a.members).filter(|m| m.present) {
        let c = sys.disk_counters(&m.kname);
        let mut counters = BTreeMap::new();
        counters.insert("md-corrected-errors", m.errors);
        if let Some(n) = c.io_errors {
            counters.insert("io-errors", n);
        }
        if let Some(n) = c.io_timeouts {
            counters.insert("io-timeouts", n);
        }
        out.push(DiskReading {
            kname: m.kname.clone(),
            serial: snapshot.serials.get(&m.kname).cloned(),
            counters,
            state: c.state,
            smart: smart.get(&m.kname).cloned(),
        });
    }
    out
}

/// `smartctl -j -a` for each mirror disk; disks without SMART (virtio) give nothing.
fn ask_smart(snapshot: &Snapshot) -> BTreeMap<String, SmartReport> {
    let mut out = BTreeMap::new();
    for m in snapshot.arrays.iter().flat_map(|a| &a.members).filter(|m| m.present) {
        let Ok(o) = Command::new("/sbin/smartctl").args(["-j", "-a", &format!("/dev/{}", m.kname)]).output() else { continue };
        if let Some(report) = parse_smartctl_json(&String::from_utf8_lossy(&o.stdout)) {
            out.insert(m.kname.clone(), report);
        }
    }
    out
}

/// Tells the endpoint to refuse sessions while a mirror has failed, so
/// clients get a clear message instead of I/O errors.
fn mark_data_unavailable(snapshot: &Snapshot) {
    let marker = Path::new(coffer_sshd::DATA_UNAVAILABLE_MARKER);
    let failed = snapshot.arrays.iter().any(|a| a.level == "raid1" && coffer_raid::health(a) == Health::Failed);
    if failed && !marker.exists() {
        let why = "the data mirror has failed (both disks are gone); backups are refused so nothing lands on the boot disk. Put a disk that holds the data back in.";
        if let Some(dir) = marker.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = std::fs::write(marker, why) {
            log::error!("writing {}: {e}", marker.display());
        }
    } else if !failed && marker.exists() {
        let _ = std::fs::remove_file(marker);
    }
}

fn show(sys: &SysRoot, led: Option<&str>, pattern: LedPattern) {
    let setting = match pattern.timing() {
        None => LedSetting::On,
        Some((on_ms, off_ms)) => LedSetting::Blink { on_ms, off_ms },
    };
    if let Some(name) = led
        && let Err(e) = sys.set_led(name, setting) {
            log::warn!("setting LED {name}: {e}");
        }
    event::emit("led.pattern", &[("pattern", json!(pattern)), ("led", json!(led))]);
}

/// The alerts an event raises: one problem per array (degraded, failed),
/// resolved when the array is healthy again; ignored disks as warnings.
fn alerts_for(e: &RaidEvent, now: u64) -> Vec<Alert> {
    let field = |k: &str| e.fields.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let array = field("array");
    let alert = |key: String, severity, title: String, body: String, resolved| Alert { key, severity, title, body, resolved, time: now };
    match e.code {
        "raid.degraded" => vec![alert(
            format!("raid:{array}:degraded"),
            Severity::Critical,
            format!("mirror {array} is degraded: the {} disk is missing", field("bay")),
            format!("{}.\nThe data is safe on the other disk until it fails too.", field("guidance")),
            false,
        )],
        "raid.failed" => vec![alert(
            format!("raid:{array}:failed"),
            Severity::Critical,
            format!("mirror {array} has failed: no disk left"),
            format!("{}.", field("guidance")),
            false,
        )],
        // Also a healthy array at first sight: problems raised before a reboot are over.
        "raid.healthy" | "raid.state" if e.code == "raid.healthy" || field("health") == "healthy" => ["degraded", "failed"]
            .iter()
            .map(|p| {
                alert(format!("raid:{array}:{p}"), Severity::Info, format!("mirror {array} is healthy again"), "Both disks are in sync.".into(), true)
            })
            .collect(),
        "raid.disk-ignored" => vec![alert(
            format!("raid:disk:{}:ignored", field("disk")),
            Severity::Warning,
            format!("disk {} was not added to mirror {array}", field("disk")),
            format!("{}.", field("guidance")),
            false,
        )],
        _ => Vec::new(),
    }
}

fn snapshot(sys: &SysRoot) -> Result<Snapshot> {
    let arrays = sys.md_arrays()?;
    let devices = sys.block_devices()?;
    let boot_disk = devices.iter().find(|d| d.part_name.as_deref() == Some(BOOT_PARTITION)).and_then(|d| d.parent.clone()).unwrap_or_default();
    let serials = devices.iter().filter(|d| d.kind == DeviceKind::Disk).filter_map(|d| Some((d.name.clone(), d.serial.clone()?))).collect();
    let in_array = |name: &str| arrays.iter().any(|a| a.members.iter().any(|m| m.kname == name));
    let degraded = arrays.iter().any(|a| coffer_raid::health(a) == Health::Degraded);
    let mut free_disks = Vec::new();
    // Looking inside disks costs I/O: only when an array wants one.
    if degraded {
        for d in coffer_raid::data_disk_candidates(&devices, &boot_disk) {
            if in_array(&d.name) {
                continue;
            }
            let content = match sys.disk_is_blank(&d.name, d.size) {
                Ok(true) => DiskContent::Blank,
                Ok(false) => examine(&d.name),
                Err(e) => {
                    log::warn!("reading {}: {e}", d.name);
                    continue;
                }
            };
            free_disks.push(FreeDisk { kname: d.name.clone(), serial: d.serial.clone(), content });
        }
    }
    Ok(Snapshot { arrays, free_disks, serials })
}

/// What md superblock, if any, a disk carries.
fn examine(kname: &str) -> DiskContent {
    let out = Command::new("/sbin/mdadm").args(["--examine", "--export", &format!("/dev/{kname}")]).output();
    let uuid = out.ok().filter(|o| o.status.success()).and_then(|o| {
        String::from_utf8_lossy(&o.stdout).lines().find_map(|l| l.strip_prefix("MD_UUID=").map(normalize_uuid))
    });
    uuid.map_or(DiskContent::Foreign, DiskContent::MemberOf)
}

fn mdadm(args: &[&str]) -> bool {
    match Command::new("/sbin/mdadm").args(args).output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            log::warn!("mdadm {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
            false
        }
        Err(e) => {
            log::warn!("mdadm {}: {e}", args.join(" "));
            false
        }
    }
}

fn run_action(action: &RaidAction) {
    let (what, ok) = match action {
        RaidAction::FailDetached { array } => ("fail-detached", mdadm(&[array, "--fail", "detached", "--remove", "detached"])),
        RaidAction::RemoveFailed { array } => ("remove-failed", mdadm(&[array, "--remove", "failed"])),
        RaidAction::Add { array, disk } => ("add", mdadm(&[array, "--add", disk])),
        RaidAction::ReAdd { array, disk } => ("re-add", mdadm(&[array, "--re-add", disk]) || mdadm(&[array, "--add", disk])),
    };
    event::emit("raid.action", &[("action", json!(what)), ("detail", json!(format!("{action:?}"))), ("ok", json!(ok))]);
}
