//! `coffer raid watch`: the mirror's watcher, run by the supervisor as a
//! service. It hears disks come and go from kernel uevents, fails a pulled
//! disk out of the array at once (`mdadm -If`, as udev would: md itself only
//! notices on its next write), re-reads md's sysfs (often while a rebuild
//! runs, every few seconds otherwise), gathers the disks' health (sysfs
//! counters, the kernel log, `smartctl`) and a scrub request, and lets
//! `coffer_raid::step::WatchState` decide; it then applies the effects
//! (events, alerts, md writes, mdadm, the LED, the view `status` shows).

use std::path::Path;
use std::process::Command;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use coffer_config::{Config, StatePaths};
use coffer_hal::{LedSetting, MdSync, SysRoot, UeventSocket};
use coffer_raid::scrub::ScrubRecord;
use coffer_raid::step::{ControllerLook, Effect, ScrubRequest, WatchInput, WatchState};
use coffer_raid::threeware::{ThreewareLayout, ThreewareMonitor};
use coffer_runtime::Paths;

use crate::mirror::{mdadm, snapshot};
use coffer_raid::{
    DiskReading, LedPattern, RaidAction, RaidEvent, RaidKind, RaidPolicy, SmartReport, Snapshot,
    parse_smartctl_json,
};
use coffer_runtime::event::{self, Event, MirrorEvent};
use serde_json::json;

/// How often `smartctl` is asked (the counters in sysfs are read on every look).
const SMART_INTERVAL: Duration = Duration::from_secs(30 * 60);
const QUIET_INTERVAL: Duration = Duration::from_secs(5);
const BUSY_INTERVAL: Duration = Duration::from_millis(500);

pub(crate) fn watch(state: &Path) -> Result<()> {
    let paths = StatePaths::new(state);
    let config = Config::load(&paths.config())?;
    crate::logging::init(&config.log.level);
    let bays = crate::board::bays();
    let policy = RaidPolicy { auto_add_blank: config.raid.auto_add_blank, auto_add_foreign: config.raid.auto_add_foreign, bays: bays.clone() };
    let sys = SysRoot::system();
    if config.raid.rebuild_speed_max_kib > 0 {
        sys.set_md_speed_limit_max(config.raid.rebuild_speed_max_kib).context("setting the rebuild speed limit")?;
    }
    let uevents = UeventSocket::open().context("listening for kernel uevents")?;
    let status_led = crate::board::status_led().and_then(|name| sys.find_led(&name));
    let mut smart: BTreeMap<String, SmartReport> = BTreeMap::new();
    let mut smart_asked: Option<Instant> = None;
    event::emit(&Event::RaidWatching { status_led: status_led.clone() });
    // The kernel log: block-layer I/O errors per disk (virtio and NVMe have no
    // error counters in sysfs) and a 3ware controller's AEN messages.
    let mut kmsg = match sys.kmsg() {
        Ok(k) => Some(k),
        Err(e) => {
            log::warn!("the kernel log is unreadable ({e}); I/O errors are seen only through sysfs");
            None
        }
    };
    let mut kernel_io_errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut threeware = sys.pci_driver_bound("3w-xxxx").then(|| Threeware::new(&sys, &bays));
    let scrub_every = (config.raid.scrub_interval_days > 0).then(|| i64::from(config.raid.scrub_interval_days) * 86_400);
    let mut scrub_file = ScrubFile::new(&paths);
    let mut watch = WatchState::new(policy, scrub_file.load(&sys), scrub_every);
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
            if matches!(ev.action.as_str(), "add" | "remove") && ev.devtype.as_deref() == Some("disk")
                && let Some(kname) = &ev.devname {
                    // The errors logged under this name were the old disk's, not the one that takes the name next.
                    kernel_io_errors.remove(kname);
                }
            break;
        }
        let records = kmsg.as_mut().map(coffer_hal::KmsgReader::records).unwrap_or_default();
        for r in &records {
            if let Some(disk) = coffer_raid::kernel_io_error_disk(r) {
                *kernel_io_errors.entry(disk).or_default() += 1;
            }
        }
        let snapshot = snapshot(&sys)?;
        if smart_asked.is_none_or(|t| t.elapsed() >= SMART_INTERVAL) {
            smart = ask_smart(&sys, &snapshot);
            smart_asked = Some(Instant::now());
        }
        let readings = readings(&sys, &snapshot, &smart, &kernel_io_errors);
        let controller = threeware.as_mut().map(|t| t.look(&records));
        let input = WatchInput {
            snapshot: &snapshot,
            readings: &readings,
            controller: controller.as_ref(),
            scrub_request: take_scrub_request(),
            clock_trusted: coffer_runtime::clock::trusted(&Paths::appliance()),
            now: coffer_runtime::clock::now(),
        };
        let effects = watch.step(input);
        for effect in effects.list {
            apply(state, &sys, status_led.as_deref(), &mut watch, effect);
        }
        scrub_file.save(watch.scrub_record(), effects.save_scrub_now);
        // Look often while md is syncing, or right after we changed something (a rebuild is about to start).
        interval = if effects.look_soon { BUSY_INTERVAL } else { QUIET_INTERVAL };
    }
}

/// Does what the step decided.
fn apply(state: &Path, sys: &SysRoot, status_led: Option<&str>, watch: &mut WatchState, effect: Effect) {
    match effect {
        Effect::Event(e) => emit(&e),
        Effect::Alert(alert) => coffer_runtime::alert::raise(&Paths::appliance().with_state(state), &alert),
        Effect::DataUnavailable(failed) => mark_data_unavailable(failed),
        Effect::StopScrub { array } => {
            if let Err(e) = sys.set_md_sync(&array, MdSync::Idle) {
                log::warn!("stopping the check of {array}: {e}");
            }
        }
        Effect::FinishScrub { array } => {
            let _ = sys.set_md_sync(&array, MdSync::Idle);
        }
        Effect::StartScrub { array, label, from_sector } => match sys.set_md_sync(&array, MdSync::Check { from_sector }) {
            Ok(()) => emit(&watch.scrub_started(&label, from_sector, coffer_runtime::clock::now())),
            Err(e) => log::warn!("starting the check of {array}: {e}"),
        },
        Effect::Led(pattern) => show(sys, status_led, pattern),
        Effect::Publish(view) => crate::watch_status::publish(&view),
        Effect::Md(action) => run_action(sys, &action),
        Effect::Warn(message) => log::warn!("{message}"),
    }
}

fn emit(e: &RaidEvent) {
    event::emit(&Event::Mirror(MirrorEvent { kind: e.kind.code(), fields: e.fields.clone() }));
}

/// The 3ware 8006-2LP backend's effects: AEN records from `/dev/kmsg` and
/// `smartctl -d 3ware,N` readings into the pure [`ThreewareMonitor`].
struct Threeware {
    monitor: ThreewareMonitor,
    smart_asked: Option<Instant>,
    /// The controller's character device (`/dev/twe0`), through which smartctl reads each port.
    controller: std::path::PathBuf,
}

impl Threeware {
    fn new(sys: &SysRoot, bays: &[String]) -> Self {
        let layout = ThreewareLayout { bays: bays.to_vec(), ..ThreewareLayout::default() };
        Threeware { monitor: ThreewareMonitor::new(layout), smart_asked: None, controller: sys.dev_node("twe0") }
    }

    /// New kernel log records (the whole backlog on the first call, so a
    /// unit found degraded at power-on is reported), and SMART now and then.
    fn look(&mut self, records: &[String]) -> ControllerLook {
        let first = self.smart_asked.is_none();
        let mut out = Vec::new();
        for record in records {
            if let Some(aen) = coffer_raid::threeware::parse_kmsg_line(record) {
                out.extend(self.monitor.observe_aen(&aen));
            }
        }
        let degraded = out.iter().any(|e| e.kind == RaidKind::Degraded);
        if first || degraded || self.smart_asked.is_some_and(|t| t.elapsed() >= SMART_INTERVAL) {
            let mut readings = Vec::new();
            for port in [0u32, 1] {
                let Ok(o) = Command::new("/sbin/smartctl").arg("-j").arg("-a").arg("-d").arg(format!("3ware,{port}")).arg(&self.controller).output() else {
                    continue;
                };
                readings.extend(coffer_raid::threeware::parse_smartctl_3ware(&String::from_utf8_lossy(&o.stdout)));
            }
            out.extend(self.monitor.observe_smart(&readings));
            self.smart_asked = Some(Instant::now());
        }
        if first {
            out.push(self.monitor.state_event());
        }
        ControllerLook { events: out, health: self.monitor.health() }
    }
}

/// The request `raid scrub` left, taken (the file is removed); anything
/// but `check` or `stop` is dropped.
fn take_scrub_request() -> Option<ScrubRequest> {
    let request_file = Paths::appliance().scrub_request();
    let request = std::fs::read_to_string(&request_file).ok()?;
    let _ = std::fs::remove_file(&request_file);
    match request.trim() {
        "check" => Some(ScrubRequest::Check),
        "stop" => Some(ScrubRequest::Stop),
        _ => None,
    }
}

/// The scrub record in the state partition (`raid-scrub.json`): loaded when
/// the watcher starts, saved as the step changes it.
struct ScrubFile {
    path: std::path::PathBuf,
    saved: ScrubRecord,
    saved_at: Instant,
}

impl ScrubFile {
    fn new(paths: &StatePaths) -> Self {
        // Nothing saved yet: the first save always writes.
        ScrubFile { path: paths.root().join("raid-scrub.json"), saved: ScrubRecord { position: u64::MAX, ..ScrubRecord::default() }, saved_at: Instant::now() }
    }

    fn load(&self, sys: &SysRoot) -> ScrubRecord {
        let record: ScrubRecord = match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                log::warn!("{} is unreadable ({e}); the scrub schedule starts afresh", self.path.display());
                ScrubRecord::default()
            }),
            Err(_) => ScrubRecord::default(),
        };
        let checking = sys.md_arrays().ok().into_iter().flatten().any(|a| a.level == "raid1" && a.sync_action == "check");
        record.at_start(checking, coffer_runtime::clock::now() as i64)
    }

    /// Saves on every change of state, and progress at most twice a minute.
    fn save(&mut self, record: &ScrubRecord, now: bool) {
        if *record == self.saved {
            return;
        }
        let moved_only = ScrubRecord { position: self.saved.position, current: self.saved.current, ..record.clone() } == self.saved;
        if moved_only && !now && self.saved_at.elapsed() < Duration::from_secs(30) {
            return;
        }
        match serde_json::to_vec(record).map_err(std::io::Error::other).and_then(|b| {
            coffer_config::write_atomically(&self.path, &b).map_err(std::io::Error::other)
        }) {
            Ok(()) => {
                self.saved = record.clone();
                self.saved_at = Instant::now();
            }
            Err(e) => log::warn!("saving {}: {e}", self.path.display()),
        }
    }
}

/// Health readings of every disk in a mirror: sysfs counters, md's
/// corrected errors, and the last SMART report.
fn readings(sys: &SysRoot, snapshot: &Snapshot, smart: &BTreeMap<String, SmartReport>, kernel_io_errors: &BTreeMap<String, u64>) -> Vec<DiskReading> {
    let mut out = Vec::new();
    for m in snapshot.arrays.iter().flat_map(|a| &a.members).filter(|m| m.present) {
        let c = sys.disk_counters(&m.kname);
        let mut counters = BTreeMap::new();
        counters.insert("md-corrected-errors", m.errors);
        counters.insert("kernel-io-errors", kernel_io_errors.get(&m.kname).copied().unwrap_or(0));
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
            completed: c.completed,
            in_flight: c.in_flight,
        });
    }
    out
}

/// `smartctl -j -a` for each mirror disk; disks without SMART (virtio) give nothing.
fn ask_smart(sys: &SysRoot, snapshot: &Snapshot) -> BTreeMap<String, SmartReport> {
    let mut out = BTreeMap::new();
    for m in snapshot.arrays.iter().flat_map(|a| &a.members).filter(|m| m.present) {
        let Ok(o) = Command::new("/sbin/smartctl").args(["-j", "-a"]).arg(sys.dev_node(&m.kname)).output() else { continue };
        if let Some(report) = parse_smartctl_json(&String::from_utf8_lossy(&o.stdout)) {
            out.insert(m.kname.clone(), report);
        }
    }
    out
}

/// Tells the endpoint to refuse sessions while a mirror has failed, so
/// clients get a clear message instead of I/O errors.
fn mark_data_unavailable(failed: bool) {
    let marker_path = Paths::appliance().data_unavailable();
    let marker = marker_path.as_path();
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
    // The pattern's name is its serde name (`slow-blink`), as `status` shows it.
    event::emit(&Event::LedPattern { pattern: json!(pattern).as_str().unwrap_or_default().to_string(), led: led.map(str::to_string) });
}

fn run_action(sys: &SysRoot, action: &RaidAction) {
    let node = |kname: &str| sys.dev_node(kname).to_string_lossy().into_owned();
    let (what, ok) = match action {
        RaidAction::FailDetached { array } => ("fail-detached", mdadm(&[&node(array), "--fail", "detached", "--remove", "detached"])),
        RaidAction::RemoveFailed { array } => ("remove-failed", mdadm(&[&node(array), "--remove", "failed"])),
        RaidAction::Add { array, disk } => ("add", mdadm(&[&node(array), "--add", &node(disk)])),
        RaidAction::ReAdd { array, disk } => {
            let (array, disk) = (node(array), node(disk));
            ("re-add", mdadm(&[&array, "--re-add", &disk]) || mdadm(&[&array, "--add", &disk]))
        }
    };
    event::emit(&Event::RaidAction { action: what.to_string(), detail: format!("{action:?}"), ok });
}
