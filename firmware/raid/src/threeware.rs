//! The 3ware 8006-2LP backend: the same mirror events as md's monitor, for a
//! RAID1 unit that lives on a 3w-xxxx controller instead of in md.
//!
//! The controller shows nothing of its units in sysfs; what it says comes as
//! asynchronous event notifications (AENs) that the driver prints to the
//! kernel log ("Unit degraded: Unit #0", "Rebuild started: Unit #0", ...),
//! and each disk's SMART data can be read through it with
//! `smartctl -d 3ware,N /dev/twe0`. [`parse_kmsg_line`] reads the first,
//! [`parse_smartctl_3ware`] the second, and [`ThreewareMonitor`] turns both
//! into [`RaidEvent`]s with md's codes (`raid.degraded`,
//! `raid.rebuild-started`, ...) and guidance naming the disk by serial and
//! bay, plus a [`Health`] for [`crate::led_pattern`]. All of it is pure:
//! reading `/dev/kmsg` and running smartctl are the caller's job.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::health::{DiskReading, HealthTracker, SmartReport, parse_smartctl_json};
use crate::{Health, RaidEvent, RaidKind};

/// What an AEN reports, one kind per string of the driver's `tw_aen_string[]`
/// (several strings share a kind where they call for the same response).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AenKind {
    /// 0x002 (unit): the unit lost a disk.
    UnitDegraded,
    /// 0x00B (unit).
    RebuildStarted,
    /// 0x005 (unit): the unit is redundant again.
    RebuildComplete,
    /// 0x004 (unit): the unit stays degraded.
    RebuildFailed,
    /// 0x00A (port).
    DriveError,
    /// 0x009 (port): the disk did not answer in time.
    PortTimeout,
    /// 0x00F (port): SMART predicts failure.
    SmartThresholdExceeded,
    /// 0x006 (unit): at start-up a disk of the unit was missing.
    IncompleteUnit,
    /// 0x008 (unit): the box went down without flushing; a mirror is then re-mirrored by the controller.
    UncleanShutdown,
    /// 0x029 (unit).
    VerifyStarted,
    /// 0x02B (unit).
    VerifyComplete,
    /// 0x02A (port): the verify found a problem on this disk.
    VerifyFailed,
    /// 0x026 (port): a sector could not be read.
    EccError,
    /// 0x023 (port): the disk remapped a bad sector.
    SectorRepaired,
    /// 0x02C, 0x02D (port): unreadable sectors met while rebuilding (on the source disk).
    RebuildBadSector,
    /// 0x02E (port): the new disk is smaller than the unit.
    ReplacementTooSmall,
    /// 0x030 (port).
    DriveNotSupported,
    /// 0x025 (port): a write held in the controller's cache never reached the disk.
    LostCachedWrite,
    /// 0x027, 0x028 (port): the disk's configuration block (DCB) is unreadable or foreign.
    DcbError,
    /// 0x021 (port): the link was slowed after transfer errors (often the cable).
    UdmaDowngrade,
    /// 0x00C (unit).
    InitializationStarted,
    /// 0x007 (unit).
    InitializationComplete,
    /// 0x00D (unit): the unit no longer exists.
    UnitDeleted,
    /// 0x001.
    SoftReset,
    /// 0x003, 0x024: the controller itself.
    ControllerError,
    /// 0x0FF: the controller's queue overflowed, so AENs were lost.
    QueueOverflow,
    /// Anything else (UDMA upgrade, queue empty, "Received AEN N" for codes the driver has no text for, ...).
    Other,
}

/// One AEN as the driver printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aen {
    /// The SCSI host (`scsi2:`); `None` for AENs drained while the driver loads, which it prints without one.
    pub host: Option<u32>,
    pub kind: AenKind,
    /// The unit an AEN about a unit names (`Unit #0`).
    pub unit: Option<u32>,
    /// The port an AEN about a disk names (`Port #1`).
    pub port: Option<u32>,
    /// The AEN's text without the trailing full stop: `ERROR: Unit degraded: Unit #0`, `Received AEN 305`.
    pub text: String,
}

/// `tw_aen_string[]` of Linux's `drivers/scsi/3w-xxxx.h` (index = AEN code),
/// plus 0x0FF, which `tw_aen_complete` prints itself. A text ending in `#`
/// is printed with the unit or port number after it.
const AEN_STRINGS: &[(u16, &str, AenKind)] = &[
    (0x000, "INFO: AEN queue empty", AenKind::Other),
    (0x001, "INFO: Soft reset occurred", AenKind::SoftReset),
    (0x002, "ERROR: Unit degraded: Unit #", AenKind::UnitDegraded),
    (0x003, "ERROR: Controller error", AenKind::ControllerError),
    (0x004, "ERROR: Rebuild failed: Unit #", AenKind::RebuildFailed),
    (0x005, "INFO: Rebuild complete: Unit #", AenKind::RebuildComplete),
    (0x006, "ERROR: Incomplete unit detected: Unit #", AenKind::IncompleteUnit),
    (0x007, "INFO: Initialization complete: Unit #", AenKind::InitializationComplete),
    (0x008, "WARNING: Unclean shutdown detected: Unit #", AenKind::UncleanShutdown),
    (0x009, "WARNING: ATA port timeout: Port #", AenKind::PortTimeout),
    (0x00A, "ERROR: Drive error: Port #", AenKind::DriveError),
    (0x00B, "INFO: Rebuild started: Unit #", AenKind::RebuildStarted),
    (0x00C, "INFO: Initialization started: Unit #", AenKind::InitializationStarted),
    (0x00D, "ERROR: Logical unit deleted: Unit #", AenKind::UnitDeleted),
    (0x00F, "WARNING: SMART threshold exceeded: Port #", AenKind::SmartThresholdExceeded),
    (0x021, "WARNING: ATA UDMA downgrade: Port #", AenKind::UdmaDowngrade),
    (0x022, "WARNING: ATA UDMA upgrade: Port #", AenKind::Other),
    (0x023, "WARNING: Sector repair occurred: Port #", AenKind::SectorRepaired),
    (0x024, "ERROR: SBUF integrity check failure", AenKind::ControllerError),
    (0x025, "ERROR: Lost cached write: Port #", AenKind::LostCachedWrite),
    (0x026, "ERROR: Drive ECC error detected: Port #", AenKind::EccError),
    (0x027, "ERROR: DCB checksum error: Port #", AenKind::DcbError),
    (0x028, "ERROR: DCB unsupported version: Port #", AenKind::DcbError),
    (0x029, "INFO: Verify started: Unit #", AenKind::VerifyStarted),
    (0x02A, "ERROR: Verify failed: Port #", AenKind::VerifyFailed),
    (0x02B, "INFO: Verify complete: Unit #", AenKind::VerifyComplete),
    (0x02C, "WARNING: Overwrote bad sector during rebuild: Port #", AenKind::RebuildBadSector),
    (0x02D, "ERROR: Encountered bad sector during rebuild: Port #", AenKind::RebuildBadSector),
    (0x02E, "ERROR: Replacement drive is too small: Port #", AenKind::ReplacementTooSmall),
    (0x02F, "WARNING: Verify error: Unit not previously initialized: Unit #", AenKind::Other),
    (0x030, "ERROR: Drive not supported: Port #", AenKind::DriveNotSupported),
    (0x0FF, "INFO: AEN queue overflow", AenKind::QueueOverflow),
    // Drivers before 2002 spelled 0x002 so (and printed no severities).
    (0x002, "Mirorr degraded: Unit #", AenKind::UnitDegraded),
];

/// One `/dev/kmsg` record, or a plain log line (then only `message` is set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KmsgRecord<'a> {
    /// The kernel's sequence number: lets a restarted reader skip what it already handled in this boot.
    pub seq: Option<u64>,
    /// Microseconds since boot.
    pub usec: Option<u64>,
    pub message: &'a str,
}

/// Splits a `/dev/kmsg` record (`PRI,SEQ,USEC,FLAGS[,...];MESSAGE`); any
/// other line (dmesg, syslog, a record's ` KEY=value` continuation) is
/// returned whole as the message.
pub fn split_kmsg(line: &str) -> KmsgRecord<'_> {
    let line = line.trim_end_matches(['\n', '\r']);
    if let Some((header, message)) = line.split_once(';') {
        let mut fields = header.split(',');
        let mut number = || fields.next().filter(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit())).and_then(|f| f.parse::<u64>().ok());
        if let (Some(_prio), Some(seq), Some(usec)) = (number(), number(), number()) {
            return KmsgRecord { seq: Some(seq), usec: Some(usec), message };
        }
    }
    KmsgRecord { seq: None, usec: None, message: line }
}

/// Parses a kernel log line carrying a 3w-xxxx AEN: a `/dev/kmsg` record or a
/// dmesg/syslog line (the driver's text is looked for anywhere in it).
/// `None` for every other line, including the 3w-9xxx and 3w-sas drivers'.
///
/// The driver prints `3w-xxxx: scsiH: AEN: TEXT[N].` for AENs it is told
/// about while running, `3w-xxxx: AEN: TEXT[N].` for those it drains from
/// the controller at load, and `3w-xxxx: [scsiH: ]Received AEN CODE.` for
/// codes beyond its table (the unit or port in the high byte).
pub fn parse_kmsg_line(line: &str) -> Option<Aen> {
    let (_, rest) = split_kmsg(line).message.split_once("3w-xxxx:")?;
    let mut rest = rest.trim_start();
    let mut host = None;
    if let Some(after) = rest.strip_prefix("scsi") {
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let tail = after.get(digits..)?.strip_prefix(':')?;
        host = Some(after.get(..digits)?.parse::<u32>().ok()?);
        rest = tail.trim_start();
    }
    let rest = rest.trim_end();
    let rest = rest.strip_suffix('.').unwrap_or(rest);
    if let Some(text) = rest.strip_prefix("AEN:") {
        let text = text.trim();
        let (kind, unit, port) = classify(text);
        return Some(Aen { host, kind, unit, port, text: text.to_string() });
    }
    if let Some(code) = rest.strip_prefix("Received AEN ") {
        let code: u32 = code.trim().parse().ok()?;
        // `aen & 0xff` picks the string, `aen >> 8` is the unit or port.
        let number = code >> 8;
        let entry = AEN_STRINGS.iter().find(|(c, _, _)| u32::from(*c) == code & 0xff);
        let (kind, unit, port) = match entry {
            Some((_, s, kind)) if s.ends_with("Unit #") => (*kind, Some(number), None),
            Some((_, s, kind)) if s.ends_with("Port #") => (*kind, None, Some(number)),
            Some((_, _, kind)) => (*kind, None, None),
            None => (AenKind::Other, None, None),
        };
        return Some(Aen { host, kind, unit, port, text: format!("Received AEN {code}") });
    }
    None
}

/// The severity prefix of the driver's strings (absent in old drivers).
fn without_severity(s: &str) -> &str {
    ["INFO: ", "WARNING: ", "ERROR: "].iter().find_map(|p| s.strip_prefix(p)).unwrap_or(s)
}

/// Kind, unit and port of an AEN's text.
fn classify(text: &str) -> (AenKind, Option<u32>, Option<u32>) {
    let digits = text.bytes().rev().take_while(u8::is_ascii_digit).count();
    let split = text.len() - digits;
    let (body, number) = match (text.get(..split), text.get(split..)) {
        (Some(body), Some(n)) if digits > 0 && body.ends_with('#') => (body, n.parse::<u32>().ok()),
        _ => (text, None),
    };
    let body = without_severity(body);
    let kind = AEN_STRINGS.iter().find(|(_, s, _)| without_severity(s) == body).map_or(AenKind::Other, |(_, _, k)| *k);
    // The number's meaning is in the text, so unknown strings still yield it.
    if body.ends_with("Unit #") {
        (kind, number, None)
    } else if body.ends_with("Port #") {
        (kind, None, number)
    } else {
        (kind, None, None)
    }
}

/// What `smartctl -j -a -d 3ware,N /dev/twe0` says about the disk on port N.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortReading {
    pub port: u32,
    pub serial: Option<String>,
    pub model: Option<String>,
    pub smart: SmartReport,
}

/// Parses `smartctl -j -a -d 3ware,N` output. `None` when it is not
/// smartctl JSON for a 3ware port, or when smartctl could not ask the disk
/// (exit status bits 1 and 2, as for an empty port).
pub fn parse_smartctl_3ware(json: &str) -> Option<PortReading> {
    let v: Value = serde_json::from_str(json).ok()?;
    let port = smartctl_port(&v)?;
    // The shared parser reads the text again; twice per half hour costs nothing.
    let smart = parse_smartctl_json(json)?;
    let text = |key: &str| v[key].as_str().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    Some(PortReading { port, serial: text("serial_number"), model: text("model_name"), smart })
}

/// The port of a 3ware reading. smartctl's `device.type` for these devices
/// is plain `3ware`; the port is in `device.info_name`
/// (`/dev/twe0 [3ware_disk_01]`) and in the command line it was given.
fn smartctl_port(v: &Value) -> Option<u32> {
    let number = |s: &str| -> Option<u32> {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        s.get(..digits).filter(|d| !d.is_empty())?.parse().ok()
    };
    let device = &v["device"];
    if let Some(n) = device["info_name"].as_str().and_then(|s| s.split_once("[3ware_disk_")).and_then(|(_, n)| number(n)) {
        return Some(n);
    }
    if let Some(n) = device["type"].as_str().and_then(|t| t.strip_prefix("3ware,")).and_then(number) {
        return Some(n);
    }
    let argv: Vec<&str> = v["smartctl"]["argv"].as_array()?.iter().filter_map(Value::as_str).collect();
    argv.iter().enumerate().find_map(|(i, a)| {
        let spec = match *a {
            "-d" | "--device" => argv.get(i + 1).copied(),
            _ => a.strip_prefix("--device=").or_else(|| a.strip_prefix("-d")),
        };
        spec.and_then(|s| s.strip_prefix("3ware,")).and_then(number)
    })
}

/// How many AENs back a drive error still names the disk a "Unit degraded"
/// is about: the controller reports the error and the degradation together.
const SUSPECT_WINDOW: u64 = 4;

/// Which unit and ports of which controller make the mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreewareLayout {
    /// The controller's SCSI host, when known: AENs of other hosts are not ours.
    pub host: Option<u32>,
    /// The RAID1 unit (`u0`).
    pub unit: u32,
    /// The unit's ports (the 8006-2LP has two).
    pub ports: Vec<u32>,
    /// Bay names by port number (`left`, `right`).
    pub bays: Vec<String>,
}

impl Default for ThreewareLayout {
    fn default() -> Self {
        ThreewareLayout { host: None, unit: 0, ports: vec![0, 1], bays: vec!["left".into(), "right".into()] }
    }
}

#[derive(Debug, Clone, Default)]
struct Port {
    /// The serial of the disk last read on this port, kept while the disk is
    /// gone so the guidance can name the disk to pull.
    serial: Option<String>,
    /// Answered the last smartctl round (`None`: not known).
    answering: Option<bool>,
    /// Problems already reported for the disk now in this port: a disk that
    /// keeps timing out is reported once, not per AEN.
    reported: BTreeSet<&'static str>,
}

/// Follows one RAID1 unit of a 3w-xxxx controller through its AENs and
/// periodic smartctl readings, and says what md's [`crate::Monitor`] would.
///
/// The controller reports problems, not their absence: the unit counts as
/// healthy until an AEN says otherwise. So the kernel log must be read from
/// the start of the boot (the driver prints what the controller queued
/// before it loaded, such as a unit found degraded at power-on).
#[derive(Debug, Clone)]
pub struct ThreewareMonitor {
    layout: ThreewareLayout,
    health: Health,
    ports: BTreeMap<u32, Port>,
    /// The port out of the mirror while degraded or rebuilding, when known.
    failed: Option<u32>,
    /// `raid.member-failed` was said for the current failure.
    failed_reported: bool,
    /// The port of the latest drive error, and when it came (in AENs seen):
    /// "Unit degraded" names only the unit, a drive error just before it
    /// names the disk.
    suspect: Option<(u32, u64)>,
    /// AENs seen that concern this unit (a clock for `suspect`).
    seen: u64,
    /// A port whose disk changed (new serial) since the unit was last whole.
    replaced: Option<u32>,
    /// An unclean shutdown was reported: the controller then re-mirrors by itself.
    unclean: bool,
    /// A verify is running; the ports it found failing.
    verify: Option<BTreeSet<u32>>,
    /// The port where the running rebuild met unreadable sectors.
    rebuild_bad_sectors: Option<u32>,
    tracker: HealthTracker,
}

impl ThreewareMonitor {
    pub fn new(layout: ThreewareLayout) -> Self {
        let ports = layout.ports.iter().map(|p| (*p, Port::default())).collect();
        ThreewareMonitor {
            layout,
            health: Health::Healthy,
            ports,
            failed: None,
            failed_reported: false,
            suspect: None,
            seen: 0,
            replaced: None,
            unclean: false,
            verify: None,
            rebuild_bad_sectors: None,
            tracker: HealthTracker::default(),
        }
    }

    /// The unit's name in events: `3ware-u0`.
    pub fn label(&self) -> String {
        format!("3ware-u{}", self.layout.unit)
    }

    /// The unit's health as the AENs so far tell it (never `Syncing`).
    pub fn health(&self) -> Health {
        self.health
    }

    /// `raid.state` with the health now: what md's monitor says of an array
    /// at first sight. Emit it once the kernel log's backlog is read, so
    /// problems raised before a restart are resolved when the unit is healthy.
    pub fn state_event(&self) -> RaidEvent {
        self.event(RaidKind::State).with("health", serde_json::to_value(self.health).unwrap_or_default())
    }

    /// The events one AEN calls for (none for AENs of other hosts, units or ports).
    pub fn observe_aen(&mut self, aen: &Aen) -> Vec<RaidEvent> {
        if !self.concerns(aen) {
            return Vec::new();
        }
        self.seen += 1;
        match (aen.kind, aen.port) {
            (AenKind::UnitDegraded | AenKind::IncompleteUnit, _) => self.degrade(None),
            (AenKind::RebuildStarted, _) => self.rebuild_started(false),
            (AenKind::RebuildComplete, _) => self.rebuild_complete(),
            (AenKind::RebuildFailed, _) => self.rebuild_failed(),
            (AenKind::UnitDeleted, _) => self.unit_deleted(),
            (AenKind::UncleanShutdown, _) => {
                self.unclean = true;
                Vec::new()
            }
            (AenKind::VerifyStarted, _) => {
                if self.verify.is_some() {
                    return Vec::new();
                }
                self.verify = Some(BTreeSet::new());
                vec![self.event(RaidKind::ScrubStarted)]
            }
            (AenKind::VerifyComplete, _) => {
                let failed: Vec<u32> = self.verify.take().unwrap_or_default().into_iter().collect();
                vec![self.event(RaidKind::ScrubFinished).with("ok", failed.is_empty()).with("failed-ports", failed)]
            }
            (AenKind::VerifyFailed, Some(port)) => {
                if let Some(v) = &mut self.verify {
                    v.insert(port);
                }
                self.disk_problem(port, aen.kind)
            }
            (AenKind::RebuildBadSector, Some(port)) => {
                if self.health == Health::Rebuilding && Some(port) != self.target() {
                    self.rebuild_bad_sectors = Some(port);
                }
                self.disk_problem(port, aen.kind)
            }
            (AenKind::DriveError | AenKind::PortTimeout | AenKind::EccError | AenKind::LostCachedWrite | AenKind::DcbError, Some(port)) => {
                self.suspect = Some((port, self.seen));
                self.disk_problem(port, aen.kind)
            }
            (AenKind::SmartThresholdExceeded | AenKind::SectorRepaired | AenKind::UdmaDowngrade, Some(port)) => self.disk_problem(port, aen.kind),
            (AenKind::ReplacementTooSmall | AenKind::DriveNotSupported, Some(port)) => self.disk_refused(port, aen.kind),
            _ => Vec::new(),
        }
    }

    /// The events one round of smartctl readings calls for. Pass the
    /// readings of every port asked in the round: a port of the unit missing
    /// from them while another answered is taken as not answering (the disk
    /// that left the mirror, when the controller did not name it).
    pub fn observe_smart(&mut self, readings: &[PortReading]) -> Vec<RaidEvent> {
        let mut out = Vec::new();
        let ours: Vec<&PortReading> = readings.iter().filter(|r| self.ports.contains_key(&r.port)).collect();
        if ours.is_empty() {
            // smartctl missing or the controller not answering at all: nothing learnt.
            return out;
        }
        for (number, port) in &mut self.ports {
            match ours.iter().find(|r| r.port == *number) {
                Some(r) => {
                    if r.serial.is_some() && port.serial.is_some() && r.serial != port.serial {
                        // Another disk in this port: its history is not the old disk's.
                        port.reported.clear();
                        self.replaced = Some(*number);
                    }
                    if r.serial.is_some() {
                        port.serial = r.serial.clone();
                    }
                    port.answering = Some(true);
                }
                None => port.answering = Some(false),
            }
        }
        if self.health == Health::Degraded {
            let silent = self.silent_port();
            let named_answers = self.failed.and_then(|f| self.ports.get(&f)).is_some_and(|p| p.answering == Some(true));
            match (self.failed, silent) {
                (None, Some(port)) => {
                    self.failed = Some(port);
                    out.push(self.member_failed(port));
                    self.failed_reported = true;
                }
                // The disk named from a drive error still answers and the other does not:
                // the guidance named the wrong disk, and pulling it would lose the mirror.
                (Some(named), Some(port)) if named != port && named_answers => {
                    self.failed = Some(port);
                    out.push(self.member_failed(port).with("corrects", member(named)));
                    // Again with the right disk, for whoever shows the degraded state.
                    out.push(self.degraded_event(Some(port), self.guidance_replace(Some(port))).with("corrects", member(named)));
                    self.failed_reported = true;
                }
                (Some(port), _) if !self.failed_reported => {
                    out.push(self.member_failed(port));
                    self.failed_reported = true;
                }
                _ => {}
            }
        }
        let disk_readings: Vec<DiskReading> = ours
            .iter()
            .map(|r| DiskReading { kname: member(r.port), serial: r.serial.clone(), counters: BTreeMap::new(), state: None, smart: Some(r.smart.clone()), completed: None, in_flight: None })
            .collect();
        for h in self.tracker.observe(&disk_readings) {
            let Some(port) = ours.iter().find(|r| member(r.port) == h.disk).map(|r| r.port) else { continue };
            out.push(self.port_event(h.kind, port).with("what", h.what).with("guidance", h.detail));
        }
        out
    }

    fn concerns(&self, aen: &Aen) -> bool {
        let host_ok = match (self.layout.host, aen.host) {
            (Some(ours), Some(theirs)) => ours == theirs,
            _ => true,
        };
        host_ok && aen.unit.is_none_or(|u| u == self.layout.unit) && aen.port.is_none_or(|p| self.ports.contains_key(&p))
    }

    fn event(&self, kind: RaidKind) -> RaidEvent {
        RaidEvent::of(kind).with("array", self.label())
    }

    fn bay(&self, port: Option<u32>) -> String {
        match port {
            Some(p) => self.layout.bays.get(p as usize).cloned().unwrap_or_else(|| format!("port {p}")),
            None => "unknown".into(),
        }
    }

    fn serial(&self, port: u32) -> Option<String> {
        self.ports.get(&port).and_then(|p| p.serial.clone())
    }

    /// An event about the disk on one port, with the fields md's events carry
    /// for a member (`slot` is the port: bays are counted by port).
    fn port_event(&self, kind: RaidKind, port: u32) -> RaidEvent {
        self.event(kind)
            .with("member", member(port))
            .with("disk", member(port))
            .with("port", port)
            .with("slot", port)
            .with("serial", self.serial(port))
            .with("bay", self.bay(Some(port)))
    }

    fn guidance_replace(&self, port: Option<u32>) -> String {
        let start = "then start the rebuild in the controller's BIOS (Alt-3 while the box boots)";
        match port {
            Some(p) => match self.serial(p) {
                Some(s) => format!("replace the disk with serial {s} in the {} bay with a blank disk at least as large, {start}", self.bay(Some(p))),
                None => format!("replace the disk in the {} bay with a blank disk at least as large, {start}", self.bay(Some(p))),
            },
            None => format!(
                "a disk left the mirror and the controller did not say which: replace the one that no longer answers smartctl with a blank disk at least as large, {start}"
            ),
        }
    }

    /// The one port of the unit that stopped answering smartctl while another answers.
    fn silent_port(&self) -> Option<u32> {
        let mut silent = self.ports.iter().filter(|(_, p)| p.answering == Some(false)).map(|(n, _)| *n);
        match (silent.next(), silent.next()) {
            (Some(port), None) => Some(port),
            _ => None,
        }
    }

    /// The port most likely out of the mirror: the one that stopped answering
    /// smartctl, else one that reported an error among the last few AENs. An
    /// older error does not count: a disk that timed out once last week is
    /// not the one that just left, and naming the survivor would have it pulled.
    fn culprit(&self) -> Option<u32> {
        self.silent_port().or_else(|| self.suspect.filter(|(_, at)| self.seen.saturating_sub(*at) <= SUSPECT_WINDOW).map(|(port, _)| port))
    }

    fn member_failed(&self, port: u32) -> RaidEvent {
        self.port_event(RaidKind::MemberFailed, port).with("guidance", self.guidance_replace(Some(port)))
    }

    /// The unit is degraded now; `guidance` replaces the usual "replace the disk".
    fn degrade(&mut self, guidance: Option<String>) -> Vec<RaidEvent> {
        if self.health == Health::Degraded {
            return Vec::new();
        }
        let mut out = Vec::new();
        self.failed = self.failed.or_else(|| self.culprit());
        if let Some(port) = self.failed
            && !self.failed_reported
        {
            out.push(self.member_failed(port));
            self.failed_reported = true;
        }
        let port = self.failed;
        let guidance = guidance.unwrap_or_else(|| {
            if port.is_none() && self.unclean {
                "after an unclean shutdown the controller re-mirrors the second disk by itself: nothing to replace unless a disk error follows".into()
            } else {
                self.guidance_replace(port)
            }
        });
        out.push(self.degraded_event(port, guidance));
        self.health = Health::Degraded;
        out
    }

    fn degraded_event(&self, port: Option<u32>, guidance: String) -> RaidEvent {
        self.event(RaidKind::Degraded)
            .with("missing", 1)
            .with("port", port)
            .with("slot", port)
            .with("member", port.map(member))
            .with("bay", self.bay(port))
            .with("serial", port.and_then(|p| self.serial(p)))
            .with("guidance", guidance)
    }

    /// The port being rebuilt: the one that left, else the one whose disk changed.
    fn target(&self) -> Option<u32> {
        self.failed.or(self.replaced)
    }

    fn rebuild_started(&mut self, between_looks: bool) -> Vec<RaidEvent> {
        if self.health == Health::Rebuilding {
            return Vec::new();
        }
        let target = self.target();
        let mut e = self.event(RaidKind::RebuildStarted);
        if let Some(port) = target {
            e = e.with("member", member(port)).with("port", port).with("serial", self.serial(port)).with("bay", self.bay(Some(port)));
        }
        if between_looks {
            e = e.with("between-looks", true);
        }
        if self.unclean && self.failed.is_none() {
            e = e.with("reason", "unclean-shutdown");
        }
        self.health = Health::Rebuilding;
        self.rebuild_bad_sectors = None;
        vec![e]
    }

    fn rebuild_complete(&mut self) -> Vec<RaidEvent> {
        let mut out = Vec::new();
        match self.health {
            Health::Healthy | Health::Syncing => return out,
            // The start was never seen (an AEN lost to a full queue, say).
            Health::Degraded | Health::Failed => out.extend(self.rebuild_started(true)),
            Health::Rebuilding => {}
        }
        out.push(self.event(RaidKind::RebuildFinished));
        if let Some(port) = self.target() {
            out.push(self.port_event(RaidKind::SpareActive, port));
            // The disk was written end to end: problems from now on are new.
            if let Some(p) = self.ports.get_mut(&port) {
                p.reported.clear();
            }
        }
        out.push(self.event(RaidKind::Healthy).with("resolved", true));
        self.health = Health::Healthy;
        self.failed = None;
        self.failed_reported = false;
        self.suspect = None;
        self.replaced = None;
        self.unclean = false;
        self.rebuild_bad_sectors = None;
        out
    }

    fn rebuild_failed(&mut self) -> Vec<RaidEvent> {
        let source_bad = self.rebuild_bad_sectors.take();
        if self.health == Health::Degraded {
            return Vec::new();
        }
        let target = self.target();
        self.failed = target;
        let guidance = match source_bad {
            Some(src) => {
                let disk = match self.serial(src) {
                    Some(s) => format!("the disk with serial {s} in the {} bay", self.bay(Some(src))),
                    None => format!("the disk in the {} bay", self.bay(Some(src))),
                };
                // The only complete copy is failing: rebuilding onto a new disk again meets the same sectors.
                self.failed_reported = true;
                Some(format!("the rebuild stopped at unreadable sectors on {disk}, the only complete copy: it is failing too; copy off what you need now, then replace it"))
            }
            None => {
                // The new disk failed: a failure of its own.
                self.failed_reported = false;
                None
            }
        };
        self.health = Health::Rebuilding;
        // From Rebuilding, so `degrade` reports the transition.
        self.degrade(guidance)
    }

    fn unit_deleted(&mut self) -> Vec<RaidEvent> {
        if self.health == Health::Failed {
            return Vec::new();
        }
        self.health = Health::Failed;
        vec![self.event(RaidKind::Failed).with(
            "guidance",
            "the controller no longer has the mirror's unit (deleted in its BIOS or by a tool): backups are refused; do not create a new unit on these disks, their data is still on them",
        )]
    }

    /// A disk problem, said once per disk and kind.
    fn disk_problem(&mut self, port: u32, kind: AenKind) -> Vec<RaidEvent> {
        let (code, what, guidance) = match kind {
            AenKind::DriveError => (RaidKind::DiskHealthWarning, "drive-error", "the controller reported a drive error: this disk may be failing; make sure backups are current and plan to replace it"),
            AenKind::PortTimeout => (RaidKind::DiskHealthWarning, "port-timeout", "the disk stopped answering for a while: check its cable and power, and replace it if this repeats"),
            AenKind::EccError => (RaidKind::DiskHealthWarning, "ecc-error", "the disk could not read a sector (ECC error): it may be failing; make sure backups are current and plan to replace it"),
            AenKind::VerifyFailed => (RaidKind::DiskHealthWarning, "verify-failed", "the controller's verify found errors on this disk: it may be failing; plan to replace it"),
            AenKind::SectorRepaired => (RaidKind::DiskHealthWarning, "sector-repaired", "the disk replaced a bad sector: watch it, and replace it if this repeats"),
            AenKind::RebuildBadSector => (RaidKind::DiskHealthWarning, "rebuild-bad-sector", "the rebuild met unreadable sectors on this disk: some data in them may be lost; plan to replace it"),
            AenKind::UdmaDowngrade => (RaidKind::DiskHealthWarning, "udma-downgrade", "the controller slowed the link to this disk after transfer errors: check or replace its cable"),
            AenKind::DcbError => (RaidKind::DiskHealthWarning, "dcb-error", "the controller cannot use this disk's configuration block, so the disk is not part of the mirror"),
            AenKind::SmartThresholdExceeded => (RaidKind::DiskHealthCritical, "smart-threshold", "SMART says the disk is failing: replace it now"),
            AenKind::LostCachedWrite => (RaidKind::DiskHealthCritical, "lost-cached-write", "a write held in the controller's cache never reached this disk: recent data may be damaged; replace the disk"),
            _ => return Vec::new(),
        };
        if !self.ports.get_mut(&port).is_some_and(|p| p.reported.insert(what)) {
            return Vec::new();
        }
        vec![self.port_event(code, port).with("what", what).with("guidance", guidance)]
    }

    /// A new disk the controller will not use.
    fn disk_refused(&mut self, port: u32, kind: AenKind) -> Vec<RaidEvent> {
        let (what, guidance) = match kind {
            AenKind::ReplacementTooSmall => ("too-small", "this disk is smaller than the mirror, so it is not used: put in a disk at least as large"),
            _ => ("not-supported", "the controller does not support this disk, so it is not used: put in another model"),
        };
        if !self.ports.get_mut(&port).is_some_and(|p| p.reported.insert(what)) {
            return Vec::new();
        }
        vec![self.port_event(RaidKind::DiskIgnored, port).with("what", what).with("guidance", guidance)]
    }
}

/// A port's name in events: `3ware-p1`.
fn member(port: u32) -> String {
    format!("3ware-p{port}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LedPattern, led_pattern};
    use proptest::prelude::*;

    const KMSG_SCENARIO: &str = include_str!("../tests/fixtures/3ware/kmsg-degrade-rebuild.log");
    const DMESG_MIXED: &str = include_str!("../tests/fixtures/3ware/dmesg-mixed.txt");
    const PORT0: &str = include_str!("../tests/fixtures/3ware/smartctl-port0.json");
    const PORT1: &str = include_str!("../tests/fixtures/3ware/smartctl-port1.json");
    const PORT1_FAILING: &str = include_str!("../tests/fixtures/3ware/smartctl-port1-failing.json");
    const PORT1_NEW: &str = include_str!("../tests/fixtures/3ware/smartctl-port1-new.json");
    const PORT1_EMPTY: &str = include_str!("../tests/fixtures/3ware/smartctl-port1-empty.json");

    fn aen(line: &str) -> Aen {
        parse_kmsg_line(line).unwrap_or_else(|| panic!("no AEN in {line:?}"))
    }

    fn reading(json: &str) -> PortReading {
        parse_smartctl_3ware(json).unwrap()
    }

    fn codes(events: &[RaidEvent]) -> Vec<&'static str> {
        events.iter().map(|e| e.kind.code()).collect()
    }

    fn field<'a>(e: &'a RaidEvent, key: &str) -> &'a Value {
        e.fields.get(key).unwrap_or(&Value::Null)
    }

    /// Feeds log lines (not AENs are skipped) and returns every event.
    fn feed(m: &mut ThreewareMonitor, lines: &str) -> Vec<RaidEvent> {
        lines.lines().filter_map(parse_kmsg_line).flat_map(|a| m.observe_aen(&a)).collect()
    }

    #[test]
    fn kmsg_lines() {
        use AenKind::*;
        /// (line, host, kind, unit, port, text)
        type Case = (&'static str, Option<u32>, AenKind, Option<u32>, Option<u32>, &'static str);
        let cases: &[Case] = &[
            ("4,1895,86125833004,-;3w-xxxx: scsi2: AEN: ERROR: Unit degraded: Unit #0.", Some(2), UnitDegraded, Some(0), None, "ERROR: Unit degraded: Unit #0"),
            ("4,1895,86125833004,-,caller=C0;3w-xxxx: scsi0: AEN: INFO: Rebuild started: Unit #1.\n", Some(0), RebuildStarted, Some(1), None, "INFO: Rebuild started: Unit #1"),
            ("[ 9874.213001] 3w-xxxx: scsi2: AEN: INFO: Rebuild complete: Unit #0.", Some(2), RebuildComplete, Some(0), None, "INFO: Rebuild complete: Unit #0"),
            ("3w-xxxx: scsi2: AEN: ERROR: Rebuild failed: Unit #0.", Some(2), RebuildFailed, Some(0), None, "ERROR: Rebuild failed: Unit #0"),
            ("3w-xxxx: scsi12: AEN: ERROR: Drive error: Port #1.", Some(12), DriveError, None, Some(1), "ERROR: Drive error: Port #1"),
            ("3w-xxxx: scsi2: AEN: WARNING: ATA port timeout: Port #0.", Some(2), PortTimeout, None, Some(0), "WARNING: ATA port timeout: Port #0"),
            ("3w-xxxx: scsi2: AEN: WARNING: SMART threshold exceeded: Port #1.", Some(2), SmartThresholdExceeded, None, Some(1), "WARNING: SMART threshold exceeded: Port #1"),
            ("3w-xxxx: AEN: ERROR: Incomplete unit detected: Unit #0.", None, IncompleteUnit, Some(0), None, "ERROR: Incomplete unit detected: Unit #0"),
            ("3w-xxxx: AEN: WARNING: Unclean shutdown detected: Unit #0.", None, UncleanShutdown, Some(0), None, "WARNING: Unclean shutdown detected: Unit #0"),
            ("3w-xxxx: scsi2: AEN: INFO: Verify started: Unit #0.", Some(2), VerifyStarted, Some(0), None, "INFO: Verify started: Unit #0"),
            ("3w-xxxx: scsi2: AEN: INFO: Verify complete: Unit #0.", Some(2), VerifyComplete, Some(0), None, "INFO: Verify complete: Unit #0"),
            ("3w-xxxx: scsi2: AEN: ERROR: Verify failed: Port #0.", Some(2), VerifyFailed, None, Some(0), "ERROR: Verify failed: Port #0"),
            ("3w-xxxx: scsi2: AEN: ERROR: Drive ECC error detected: Port #1.", Some(2), EccError, None, Some(1), "ERROR: Drive ECC error detected: Port #1"),
            ("3w-xxxx: scsi2: AEN: ERROR: Encountered bad sector during rebuild: Port #0.", Some(2), RebuildBadSector, None, Some(0), "ERROR: Encountered bad sector during rebuild: Port #0"),
            ("3w-xxxx: scsi2: AEN: ERROR: Replacement drive is too small: Port #1.", Some(2), ReplacementTooSmall, None, Some(1), "ERROR: Replacement drive is too small: Port #1"),
            ("3w-xxxx: scsi2: AEN: ERROR: SBUF integrity check failure.", Some(2), ControllerError, None, None, "ERROR: SBUF integrity check failure"),
            ("3w-xxxx: scsi2: AEN: INFO: Soft reset occurred.", Some(2), SoftReset, None, None, "INFO: Soft reset occurred"),
            ("3w-xxxx: scsi2: AEN: INFO: AEN queue overflow.", Some(2), QueueOverflow, None, None, "INFO: AEN queue overflow"),
            // Not a unit state: the number still belongs to the unit.
            ("3w-xxxx: scsi2: AEN: WARNING: Verify error: Unit not previously initialized: Unit #0.", Some(2), Other, Some(0), None, "WARNING: Verify error: Unit not previously initialized: Unit #0"),
            // Quoted from a 2004 boot log (drained at load: no host).
            ("3w-xxxx: AEN: ERROR: Unit degraded: Unit #1. ", None, UnitDegraded, Some(1), None, "ERROR: Unit degraded: Unit #1"),
            // Drivers before the severities, and before the 2002 spelling fix.
            ("3w-xxxx: AEN: Rebuild complete: Unit #0.", None, RebuildComplete, Some(0), None, "Rebuild complete: Unit #0"),
            ("3w-xxxx: AEN: Mirorr degraded: Unit #0.", None, UnitDegraded, Some(0), None, "Mirorr degraded: Unit #0"),
            ("Mar  3 02:14:07 coffer kernel: [86400.123456] 3w-xxxx: scsi2: AEN: WARNING: Sector repair occurred: Port #1.", Some(2), SectorRepaired, None, Some(1), "WARNING: Sector repair occurred: Port #1"),
            // Codes beyond the table: 0x131 = code 0x31, number 1 (unit or port: unknown).
            ("3w-xxxx: scsi2: Received AEN 305.", Some(2), Other, None, None, "Received AEN 305"),
            // A known code in the high-byte form: 0x10A = drive error on port 1.
            ("3w-xxxx: Received AEN 266.", None, DriveError, None, Some(1), "Received AEN 266"),
            ("3w-xxxx: scsi2: AEN: ERROR: Something new: Port #3.", Some(2), Other, None, Some(3), "ERROR: Something new: Port #3"),
        ];
        for (line, host, kind, unit, port, text) in cases {
            let want = Aen { host: *host, kind: *kind, unit: *unit, port: *port, text: text.to_string() };
            assert_eq!(parse_kmsg_line(line), Some(want), "{line}");
        }
        for line in [
            "6,512,3120411,-;3ware Storage Controller device driver for Linux v1.26.02.003.",
            "4,513,3398762,-;3w-xxxx: scsi2: Found a 3ware Storage Controller at 0xec00, IRQ: 17.",
            "3w-9xxx: scsi3: AEN: ERROR (0x04:0x0002): Degraded unit:unit=0.",
            " SUBSYSTEM=scsi",
            "3w-xxxx: scsi: AEN: INFO: Rebuild started: Unit #0.",
            "3w-xxxx: scsi2: Received AEN 99999999999999999999.",
            "",
        ] {
            assert_eq!(parse_kmsg_line(line), None, "{line}");
        }
    }

    #[test]
    fn kmsg_records() {
        assert_eq!(
            split_kmsg("4,1895,86125833004,-;3w-xxxx: scsi2: AEN: x\n"),
            KmsgRecord { seq: Some(1895), usec: Some(86125833004), message: "3w-xxxx: scsi2: AEN: x" }
        );
        let plain = "[ 12.3] a; b";
        assert_eq!(split_kmsg(plain), KmsgRecord { seq: None, usec: None, message: plain });
    }

    #[test]
    fn fixture_logs() {
        let kinds = |text: &str| text.lines().filter_map(parse_kmsg_line).map(|a| a.kind).collect::<Vec<_>>();
        use AenKind::*;
        assert_eq!(kinds(KMSG_SCENARIO), [PortTimeout, DriveError, UnitDegraded, RebuildStarted, RebuildComplete]);
        assert_eq!(
            kinds(DMESG_MIXED),
            [UncleanShutdown, UnitDegraded, VerifyStarted, VerifyFailed, VerifyComplete, SmartThresholdExceeded, Other, QueueOverflow]
        );
    }

    #[test]
    fn smartctl_readings() {
        let r = reading(PORT0);
        assert_eq!((r.port, r.serial.as_deref(), r.model.as_deref()), (0, Some("WD-WCANK1852390"), Some("WDC WD2500JS-00NCB1")));
        assert_eq!((r.smart.passed, r.smart.temperature), (Some(true), Some(38)));
        assert_eq!(r.smart.counters, [("offline-uncorrectable", 0), ("pending-sectors", 0), ("reallocated-sectors", 0)].into_iter().collect::<BTreeMap<_, _>>());
        let r = reading(PORT1_FAILING);
        assert_eq!((r.port, r.serial.as_deref(), r.smart.passed), (1, Some("5QE0JW4K"), Some(false)));
        assert_eq!((r.smart.counters["reallocated-sectors"], r.smart.counters["pending-sectors"], r.smart.counters["offline-uncorrectable"]), (1967, 8, 8));
        assert_eq!(parse_smartctl_3ware(PORT1_EMPTY), None, "empty port: IDENTIFY failed");
        assert_eq!(parse_smartctl_3ware("{}"), None);
        assert_eq!(parse_smartctl_3ware("not json"), None);
        // Not a 3ware device.
        assert_eq!(parse_smartctl_3ware(r#"{"smartctl":{"exit_status":0,"argv":["smartctl","-j","-a","/dev/sda"]},"device":{"name":"/dev/sda","info_name":"/dev/sda [SAT]","type":"sat"}}"#), None);
        // The port from `type` or the command line when `info_name` lacks it.
        let typed = r#"{"smartctl":{"exit_status":0},"device":{"name":"/dev/twe0","type":"3ware,1"},"serial_number":" S1 "}"#;
        assert_eq!(reading(typed).port, 1);
        assert_eq!(reading(typed).serial.as_deref(), Some("S1"));
        for argv in [r#"["smartctl","-a","-d","3ware,7","/dev/twe0"]"#, r#"["smartctl","--device=3ware,7","/dev/twe0"]"#, r#"["smartctl","-d3ware,7","/dev/twe0"]"#] {
            let json = format!(r#"{{"smartctl":{{"exit_status":0,"argv":{argv}}},"device":{{"name":"/dev/twe0","type":"3ware"}}}}"#);
            assert_eq!(reading(&json).port, 7, "{argv}");
        }
    }

    #[test]
    fn degrade_replace_rebuild_healthy() {
        let mut m = ThreewareMonitor::new(ThreewareLayout::default());
        assert!(m.observe_smart(&[reading(PORT0), reading(PORT1)]).is_empty(), "a baseline");
        assert_eq!(led_pattern(&[m.health()]), LedPattern::Steady);
        let mut lines = KMSG_SCENARIO.lines();

        // Port 1 times out, errors, and the unit degrades.
        let e: Vec<RaidEvent> = lines.by_ref().take_while(|l| !l.contains("Unit degraded")).filter_map(parse_kmsg_line).flat_map(|a| m.observe_aen(&a)).collect();
        assert_eq!(codes(&e), ["disk.health-warning", "disk.health-warning"]);
        assert_eq!((field(&e[0], "what"), field(&e[1], "what")), (&Value::from("port-timeout"), &Value::from("drive-error")));
        assert_eq!(field(&e[1], "serial"), "5QE0JW4K");
        let e = m.observe_aen(&aen("4,1895,86125833004,-;3w-xxxx: scsi2: AEN: ERROR: Unit degraded: Unit #0."));
        assert_eq!(codes(&e), ["raid.member-failed", "raid.degraded"]);
        for ev in &e {
            assert_eq!(field(ev, "array"), "3ware-u0");
            assert_eq!(field(ev, "member"), "3ware-p1");
            assert_eq!(field(ev, "port"), 1);
            assert_eq!(field(ev, "bay"), "right");
            assert_eq!(field(ev, "serial"), "5QE0JW4K");
            assert_eq!(
                field(ev, "guidance"),
                "replace the disk with serial 5QE0JW4K in the right bay with a blank disk at least as large, then start the rebuild in the controller's BIOS (Alt-3 while the box boots)"
            );
        }
        assert_eq!(m.health(), Health::Degraded);
        assert_eq!(led_pattern(&[m.health()]), LedPattern::SlowBlink);
        assert!(m.observe_aen(&aen("3w-xxxx: scsi2: AEN: ERROR: Unit degraded: Unit #0.")).is_empty(), "said once");

        // The disk is pulled (port 1 no longer answers), then a new one goes in.
        assert!(m.observe_smart(&[reading(PORT0)]).is_empty());
        assert!(m.observe_smart(&[reading(PORT0), reading(PORT1_NEW)]).is_empty());

        let e = feed(&mut m, KMSG_SCENARIO.lines().filter(|l| l.contains("Rebuild started")).collect::<Vec<_>>().join("\n").as_str());
        assert_eq!(codes(&e), ["raid.rebuild-started"]);
        assert_eq!((field(&e[0], "member"), field(&e[0], "serial"), field(&e[0], "bay")), (&Value::from("3ware-p1"), &Value::from("WD-WCAYU7310544"), &Value::from("right")));
        assert_eq!(m.health(), Health::Rebuilding);
        assert_eq!(led_pattern(&[m.health()]), LedPattern::FastBlink);

        let e = feed(&mut m, KMSG_SCENARIO.lines().filter(|l| l.contains("Rebuild complete")).collect::<Vec<_>>().join("\n").as_str());
        assert_eq!(codes(&e), ["raid.rebuild-finished", "raid.spare-active", "raid.healthy"]);
        assert_eq!((field(&e[1], "serial"), field(&e[1], "slot"), field(&e[1], "bay")), (&Value::from("WD-WCAYU7310544"), &Value::from(1), &Value::from("right")));
        assert_eq!(field(&e[2], "resolved"), true);
        assert_eq!(m.health(), Health::Healthy);
        assert_eq!(led_pattern(&[m.health()]), LedPattern::Steady);
        assert_eq!(field(&m.state_event(), "health"), "healthy");

        // The new disk's history starts clean: its first error is reported.
        let e = m.observe_aen(&aen("3w-xxxx: scsi2: AEN: ERROR: Drive error: Port #1."));
        assert_eq!((codes(&e), field(&e[0], "serial")), (vec!["disk.health-warning"], &Value::from("WD-WCAYU7310544")));
    }

    #[test]
    fn whole_log_replayed_at_once() {
        let mut m = ThreewareMonitor::new(ThreewareLayout::default());
        let e = feed(&mut m, KMSG_SCENARIO);
        assert_eq!(
            codes(&e),
            ["disk.health-warning", "disk.health-warning", "raid.member-failed", "raid.degraded", "raid.rebuild-started", "raid.rebuild-finished", "raid.spare-active", "raid.healthy"]
        );
        // No smartctl yet: the disk is named by port and bay only.
        assert_eq!(field(&e[3], "guidance"), "replace the disk in the right bay with a blank disk at least as large, then start the rebuild in the controller's BIOS (Alt-3 while the box boots)");
        assert_eq!(field(&e[3], "serial"), &Value::Null);
    }

    #[test]
    fn degraded_without_a_named_disk_learns_it_from_smartctl() {
        let mut m = ThreewareMonitor::new(ThreewareLayout::default());
        m.observe_smart(&[reading(PORT0), reading(PORT1)]);
        let e = m.observe_aen(&aen("3w-xxxx: AEN: ERROR: Unit degraded: Unit #0."));
        assert_eq!(codes(&e), ["raid.degraded"]);
        assert_eq!((field(&e[0], "port"), field(&e[0], "bay")), (&Value::Null, &Value::from("unknown")));
        assert!(field(&e[0], "guidance").as_str().unwrap().contains("did not say which"));
        // Port 1's smartctl fails (empty port): that is the disk.
        assert_eq!(parse_smartctl_3ware(PORT1_EMPTY), None);
        let e = m.observe_smart(&[reading(PORT0)]);
        assert_eq!(codes(&e), ["raid.member-failed"]);
        assert_eq!((field(&e[0], "serial"), field(&e[0], "bay")), (&Value::from("5QE0JW4K"), &Value::from("right")));
        assert!(m.observe_smart(&[reading(PORT0)]).is_empty(), "said once");
        // Neither port answering tells nothing.
        assert!(m.observe_smart(&[]).is_empty());
    }

    #[test]
    fn an_old_error_does_not_name_the_disk_and_smartctl_corrects() {
        let mut m = ThreewareMonitor::new(ThreewareLayout::default());
        m.observe_smart(&[reading(PORT0), reading(PORT1)]);
        feed(&mut m, "3w-xxxx: scsi2: AEN: WARNING: ATA port timeout: Port #0.");
        feed(&mut m, &"3w-xxxx: scsi2: AEN: INFO: Verify started: Unit #0.\n3w-xxxx: scsi2: AEN: INFO: Verify complete: Unit #0.\n".repeat(3));
        let e = feed(&mut m, "3w-xxxx: scsi2: AEN: ERROR: Unit degraded: Unit #0.");
        assert_eq!(codes(&e), ["raid.degraded"], "last week's timeout on port 0 says nothing about this");
        assert_eq!(field(&e[0], "port"), &Value::Null);

        // A fresh error on port 0 names it, but smartctl then finds port 0
        // answering and port 1 silent: the named disk was the survivor.
        let mut m = ThreewareMonitor::new(ThreewareLayout::default());
        m.observe_smart(&[reading(PORT0), reading(PORT1)]);
        let e = feed(&mut m, "3w-xxxx: scsi2: AEN: WARNING: ATA port timeout: Port #0.\n3w-xxxx: scsi2: AEN: ERROR: Unit degraded: Unit #0.");
        assert_eq!(codes(&e), ["disk.health-warning", "raid.member-failed", "raid.degraded"]);
        assert_eq!(field(&e[1], "member"), "3ware-p0");
        let e = m.observe_smart(&[reading(PORT0)]);
        assert_eq!(codes(&e), ["raid.member-failed", "raid.degraded"]);
        for ev in &e {
            assert_eq!((field(ev, "member"), field(ev, "serial"), field(ev, "corrects")), (&Value::from("3ware-p1"), &Value::from("5QE0JW4K"), &Value::from("3ware-p0")));
            assert!(field(ev, "guidance").as_str().unwrap().contains("serial 5QE0JW4K in the right bay"));
        }
        assert!(m.observe_smart(&[reading(PORT0)]).is_empty());
    }

    #[test]
    fn rebuild_failures() {
        // The new disk fails during the rebuild: replace it.
        let mut m = ThreewareMonitor::new(ThreewareLayout::default());
        m.observe_smart(&[reading(PORT0), reading(PORT1)]);
        feed(&mut m, "3w-xxxx: scsi2: AEN: ERROR: Drive error: Port #1.\n3w-xxxx: scsi2: AEN: ERROR: Unit degraded: Unit #0.");
        m.observe_smart(&[reading(PORT0), reading(PORT1_NEW)]);
        feed(&mut m, "3w-xxxx: scsi2: AEN: INFO: Rebuild started: Unit #0.");
        let e = feed(&mut m, "3w-xxxx: scsi2: AEN: ERROR: Rebuild failed: Unit #0.");
        assert_eq!(codes(&e), ["raid.member-failed", "raid.degraded"]);
        assert_eq!(field(&e[0], "serial"), "WD-WCAYU7310544");
        assert_eq!(m.health(), Health::Degraded);

        // The surviving disk has unreadable sectors: say so, not "replace the new disk".
        let mut m = ThreewareMonitor::new(ThreewareLayout::default());
        m.observe_smart(&[reading(PORT0), reading(PORT1)]);
        feed(&mut m, "3w-xxxx: scsi2: AEN: ERROR: Drive error: Port #1.\n3w-xxxx: scsi2: AEN: ERROR: Unit degraded: Unit #0.");
        m.observe_smart(&[reading(PORT0), reading(PORT1_NEW)]);
        let e = feed(
            &mut m,
            "3w-xxxx: scsi2: AEN: INFO: Rebuild started: Unit #0.\n3w-xxxx: scsi2: AEN: ERROR: Encountered bad sector during rebuild: Port #0.\n3w-xxxx: scsi2: AEN: ERROR: Rebuild failed: Unit #0.",
        );
        assert_eq!(codes(&e), ["raid.rebuild-started", "disk.health-warning", "raid.degraded"]);
        assert_eq!(field(&e[1], "serial"), "WD-WCANK1852390");
        assert_eq!(
            field(&e[2], "guidance"),
            "the rebuild stopped at unreadable sectors on the disk with serial WD-WCANK1852390 in the left bay, the only complete copy: it is failing too; copy off what you need now, then replace it"
        );
    }

    #[test]
    fn missed_rebuild_start_and_unclean_shutdown() {
        let mut m = ThreewareMonitor::new(ThreewareLayout::default());
        feed(&mut m, "3w-xxxx: AEN: ERROR: Unit degraded: Unit #0.");
        let e = feed(&mut m, "3w-xxxx: scsi2: AEN: INFO: Rebuild complete: Unit #0.");
        assert_eq!(codes(&e), ["raid.rebuild-started", "raid.rebuild-finished", "raid.healthy"]);
        assert_eq!(field(&e[0], "between-looks"), true);

        // After an unclean shutdown the controller re-mirrors by itself.
        let mut m = ThreewareMonitor::new(ThreewareLayout::default());
        let e = feed(&mut m, "[ 3.39] 3w-xxxx: AEN: WARNING: Unclean shutdown detected: Unit #0.\n[ 3.40] 3w-xxxx: AEN: ERROR: Unit degraded: Unit #0.");
        assert_eq!(codes(&e), ["raid.degraded"]);
        assert!(field(&e[0], "guidance").as_str().unwrap().starts_with("after an unclean shutdown"));
        let e = feed(&mut m, "3w-xxxx: scsi2: AEN: INFO: Rebuild started: Unit #0.");
        assert_eq!(field(&e[0], "reason"), "unclean-shutdown");
    }

    #[test]
    fn verify_is_a_scrub() {
        let mut m = ThreewareMonitor::new(ThreewareLayout::default());
        m.observe_smart(&[reading(PORT0), reading(PORT1)]);
        let e = feed(&mut m, DMESG_MIXED.lines().filter(|l| l.contains("Verify")).collect::<Vec<_>>().join("\n").as_str());
        assert_eq!(codes(&e), ["raid.scrub-started", "disk.health-warning", "raid.scrub-finished"]);
        assert_eq!((field(&e[1], "what"), field(&e[1], "bay")), (&Value::from("verify-failed"), &Value::from("left")));
        assert_eq!((field(&e[2], "ok"), field(&e[2], "failed-ports")), (&Value::from(false), &serde_json::json!([0])));
        assert_eq!(m.health(), Health::Healthy, "a verify does not change the unit's health");
    }

    #[test]
    fn disk_problems_once_and_others_ignored() {
        let mut m = ThreewareMonitor::new(ThreewareLayout { host: Some(2), ..ThreewareLayout::default() });
        m.observe_smart(&[reading(PORT0), reading(PORT1)]);
        let timeouts = "3w-xxxx: scsi2: AEN: WARNING: ATA port timeout: Port #0.\n".repeat(5);
        assert_eq!(codes(&feed(&mut m, &timeouts)), ["disk.health-warning"]);
        let e = feed(&mut m, "3w-xxxx: scsi2: AEN: WARNING: SMART threshold exceeded: Port #1.");
        assert_eq!((codes(&e), field(&e[0], "what")), (vec!["disk.health-critical"], &Value::from("smart-threshold")));
        let e = feed(&mut m, "3w-xxxx: scsi2: AEN: ERROR: Replacement drive is too small: Port #1.");
        assert_eq!((codes(&e), field(&e[0], "what")), (vec!["raid.disk-ignored"], &Value::from("too-small")));
        // Another host, another unit, another port, controller-wide notices: nothing.
        for line in [
            "3w-xxxx: scsi3: AEN: ERROR: Unit degraded: Unit #0.",
            "3w-xxxx: scsi2: AEN: ERROR: Unit degraded: Unit #1.",
            "3w-xxxx: scsi2: AEN: ERROR: Drive error: Port #3.",
            "3w-xxxx: scsi2: AEN: INFO: Soft reset occurred.",
            "3w-xxxx: scsi2: AEN: INFO: AEN queue overflow.",
            "3w-xxxx: scsi2: Received AEN 305.",
        ] {
            assert!(m.observe_aen(&aen(line)).is_empty(), "{line}");
        }
        assert_eq!(m.health(), Health::Healthy);
        let e = feed(&mut m, "3w-xxxx: scsi2: AEN: ERROR: Logical unit deleted: Unit #0.");
        assert_eq!(codes(&e), ["raid.failed"]);
        assert_eq!(led_pattern(&[m.health()]), LedPattern::Alarm);
    }

    #[test]
    fn smartctl_rising_counters_and_failing() {
        let mut m = ThreewareMonitor::new(ThreewareLayout::default());
        assert!(m.observe_smart(&[reading(PORT0), reading(PORT1)]).is_empty());
        let e = m.observe_smart(&[reading(PORT0), reading(PORT1_FAILING)]);
        let got: Vec<(&str, &Value)> = e.iter().map(|e| (e.kind.code(), field(e, "what"))).collect();
        assert_eq!(
            got,
            [
                ("disk.health-warning", &Value::from("offline-uncorrectable")),
                ("disk.health-warning", &Value::from("pending-sectors")),
                ("disk.health-warning", &Value::from("reallocated-sectors")),
                ("disk.health-critical", &Value::from("smart-failing")),
            ]
        );
        for ev in &e {
            assert_eq!((field(ev, "array"), field(ev, "member"), field(ev, "bay"), field(ev, "serial")), (&Value::from("3ware-u0"), &Value::from("3ware-p1"), &Value::from("right"), &Value::from("5QE0JW4K")));
        }
        assert!(m.observe_smart(&[reading(PORT0), reading(PORT1_FAILING)]).is_empty(), "said once while it lasts");
    }

    proptest! {
        #[test]
        fn kmsg_parser_never_panics(line in ".*") {
            let _ = parse_kmsg_line(&line);
        }

        #[test]
        fn kmsg_parser_never_panics_near_the_format(
            header in "([0-9]{1,3},[0-9]{1,25},[0-9]{0,25},[-c]{0,2};)?",
            host in "(scsi[0-9]{0,12}:?)?",
            text in proptest::sample::select(AEN_STRINGS.iter().map(|(_, s, _)| *s).collect::<Vec<_>>()),
            tail in "[0-9#.: ]{0,24}",
        ) {
            let line = format!("{header}3w-xxxx: {host} AEN: {text}{tail}");
            let _ = parse_kmsg_line(&line);
            let _ = parse_kmsg_line(&format!("{header}3w-xxxx: {host} Received AEN {tail}"));
        }

        #[test]
        fn monitor_never_panics(lines in proptest::collection::vec(
            (proptest::sample::select(AEN_STRINGS.iter().map(|(_, s, _)| *s).collect::<Vec<_>>()), 0u32..3),
            0..24,
        )) {
            let mut m = ThreewareMonitor::new(ThreewareLayout::default());
            for (text, n) in lines {
                let line = if text.ends_with('#') { format!("3w-xxxx: scsi2: AEN: {text}{n}.") } else { format!("3w-xxxx: scsi2: AEN: {text}.") };
                if let Some(a) = parse_kmsg_line(&line) {
                    let _ = m.observe_aen(&a);
                }
                let _ = led_pattern(&[m.health()]);
            }
        }
    }
}
