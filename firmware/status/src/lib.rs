//! The appliance's status at a glance.
//!
//! [`Status`] is a snapshot gathered by the binary (arrays, disks, users,
//! slot, clock); everything here is a pure function of it: the one-word
//! [`Overall`] health, which users count as stale, and [`render`], the
//! screen `ssh admin@box status` prints. `--json` serialises the same
//! snapshot, so scripts and people see the same facts.
//!
//! [`StaleCheckTimer`] decides when `serve` looks for users without a recent
//! backup.

mod stale_check;

use serde::Serialize;

pub use stale_check::{STALE_CHECK_EVERY, StaleCheckTimer};

/// Seconds in a day.
const DAY: i64 = 86_400;

/// Usage at or above this share of a quota is worth a mark on the screen.
const QUOTA_WARN_PERCENT: u64 = 90;

/// Unconfirmed sets listed per user on the screen (`--json` has them all).
const UNCONFIRMED_SHOWN: usize = 10;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Status {
    /// Unix time the snapshot was taken.
    pub now: i64,
    pub hostname: String,
    pub version: String,
    /// Boot slot (`a`/`b`) and whether it is marked good or still on trial.
    pub slot: Option<String>,
    pub slot_state: Option<String>,
    pub uptime_secs: u64,
    /// SHA256 fingerprints of the host keys, as `ssh` shows them on first connection.
    pub host_keys: Vec<String>,
    /// Whether the clock was set from a time server (schedules wait for it).
    pub clock_trusted: bool,
    pub arrays: Vec<ArrayStatus>,
    pub disks: Vec<DiskStatus>,
    pub led: Option<String>,
    pub space: Option<Space>,
    pub users: Vec<UserStatus>,
    /// A user without a backup for this many days is marked stale.
    pub stale_after_days: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ArrayStatus {
    pub name: String,
    pub device: String,
    /// `healthy`, `syncing`, `degraded`, `rebuilding`, `failed`.
    pub health: String,
    pub sync_action: String,
    pub progress_percent: Option<f64>,
    pub mismatches: u64,
    pub last_scrub: Option<ScrubStatus>,
    pub members: Vec<MemberStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ScrubStatus {
    pub finished_at: i64,
    pub mismatches: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct MemberStatus {
    pub serial: Option<String>,
    pub bay: Option<String>,
    pub device: String,
    /// md's state words for the member (`in_sync`, `faulty`, `spare`).
    pub state: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DiskStatus {
    pub serial: Option<String>,
    pub device: String,
    /// Open health conditions (`io-errors`, `smart-failing`, ...); empty when fine.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Space {
    pub total_bytes: u64,
    pub free_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct UserStatus {
    pub name: String,
    pub admin: bool,
    pub locked: bool,
    pub used_bytes: u64,
    pub quota_bytes: Option<u64>,
    pub used_files: u64,
    pub quota_files: Option<u64>,
    /// Unix time of the newest complete Duplicity manifest, or else of the newest upload.
    pub last_backup: Option<i64>,
    /// No backup for `stale_after_days` (computed by [`Status::mark_stale`]).
    pub stale: bool,
    /// Sets whose names do not fit when they arrived: kept, counted by no
    /// retention rule until `retention adopt`.
    pub unconfirmed: Vec<UnconfirmedSet>,
    /// The last retention run deleted nothing because a burst of new sets
    /// would have pushed older ones out.
    pub retention_held: bool,
}

/// A backup set that retention does not count until an administrator adopts it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct UnconfirmedSet {
    /// The directory as the client sees it (`/backup/home`).
    pub directory: String,
    /// `full 20991201T000000Z`, `inc A to B`.
    pub set: String,
    /// Unix time its first file arrived.
    pub arrived: i64,
}

/// The appliance's health in one word, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overall {
    Failed,
    Degraded,
    Rebuilding,
    Warning,
    Ok,
}

impl Overall {
    pub fn word(self) -> &'static str {
        match self {
            Overall::Failed => "FAILED",
            Overall::Degraded => "DEGRADED",
            Overall::Rebuilding => "REBUILDING",
            Overall::Warning => "WARNING",
            Overall::Ok => "OK",
        }
    }
}

impl UserStatus {
    /// Whether the user has had no backup for `days` at `now`.
    pub fn is_stale(&self, now: i64, days: u32) -> bool {
        // An administrator who never backed up uses the box only to run it.
        if self.locked || days == 0 || (self.admin && self.last_backup.is_none()) {
            return false;
        }
        match self.last_backup {
            Some(t) => now - t > i64::from(days) * DAY,
            None => true,
        }
    }

    fn quota_percent(&self) -> Option<u64> {
        let q = self.quota_bytes.filter(|q| *q > 0)?;
        Some(self.used_bytes.saturating_mul(100) / q)
    }
}

impl Status {
    /// Sets every user's `stale` flag from `now` and `stale_after_days`.
    pub fn mark_stale(&mut self) {
        let (now, days) = (self.now, self.stale_after_days);
        for u in &mut self.users {
            u.stale = u.is_stale(now, days);
        }
    }

    /// The worst of: arrays, disk problems, stale users, nearly full quotas,
    /// unconfirmed sets and held retention.
    pub fn overall(&self) -> Overall {
        let mut worst = Overall::Ok;
        for a in &self.arrays {
            let o = match a.health.as_str() {
                "failed" => Overall::Failed,
                "degraded" => Overall::Degraded,
                "rebuilding" => Overall::Rebuilding,
                _ => Overall::Ok,
            };
            worst = worst.min(o);
        }
        let warned = self.disks.iter().any(|d| !d.problems.is_empty())
            || self.users.iter().any(|u| {
                u.stale || u.retention_held || !u.unconfirmed.is_empty() || u.quota_percent().is_some_and(|p| p >= QUOTA_WARN_PERCENT)
            });
        if warned {
            worst = worst.min(Overall::Warning);
        }
        worst
    }
}

/// How to draw: colour only for a terminal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    pub colour: bool,
}

impl Style {
    fn paint(self, text: &str, code: &str) -> String {
        if self.colour { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }

    fn health(self, word: &str) -> String {
        let code = match word {
            "OK" | "healthy" => "1;32",
            "WARNING" | "syncing" | "rebuilding" | "REBUILDING" => "1;33",
            _ => "1;31",
        };
        self.paint(word, code)
    }
}

/// The status screen. Lines end with `\n`; the caller turns them into CR LF
/// for a client terminal in raw mode.
pub fn render(s: &Status, style: Style) -> String {
    let mut out = String::new();
    let mut line = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    let overall = s.overall();
    line(format!("{}  {}", style.paint(&s.hostname, "1"), style.health(overall.word())));
    let slot = match (&s.slot, &s.slot_state) {
        (Some(slot), Some(state)) => format!(", slot {slot} ({state})"),
        (Some(slot), None) => format!(", slot {slot}"),
        _ => String::new(),
    };
    line(format!("  firmware  {}{slot}, up {}", s.version, duration(s.uptime_secs)));
    line(format!("  clock     {}", if s.clock_trusted { "set from a time server" } else { "not yet set from a time server (schedules wait)" }));
    for k in &s.host_keys {
        line(format!("  host key  {k}"));
    }
    if let Some(sp) = s.space {
        let used = sp.total_bytes.saturating_sub(sp.free_bytes);
        line(format!("  space     {} free of {} ({} used)", size(sp.free_bytes), size(sp.total_bytes), size(used)));
    }
    if let Some(led) = &s.led {
        line(format!("  LED       {led}"));
    }
    line(String::new());
    if s.arrays.is_empty() {
        line("mirror  none (no data disks assembled)".into());
    }
    for a in &s.arrays {
        let mut head = format!("mirror {} ({})  {}", a.name, a.device, style.health(&a.health));
        if let Some(p) = a.progress_percent {
            head.push_str(&format!("  {} {p:.1} %", a.sync_action));
        }
        line(head);
        for m in &a.members {
            line(format!(
                "  {:<6} {:<20} {:<8} {}",
                m.bay.as_deref().unwrap_or("?"),
                m.serial.as_deref().unwrap_or("(no serial)"),
                m.device,
                m.state.join(",")
            ));
        }
        match &a.last_scrub {
            Some(sc) => line(format!("  last scrub {} ago, {} mismatches", duration_since(s.now, sc.finished_at), sc.mismatches)),
            None => line("  last scrub never".into()),
        }
    }
    for d in s.disks.iter().filter(|d| !d.problems.is_empty()) {
        line(format!(
            "  {} disk {} ({}): {}",
            style.paint("!", "1;31"),
            d.serial.as_deref().unwrap_or("?"),
            d.device,
            d.problems.join(", ")
        ));
    }
    line(String::new());
    let width = s.users.iter().map(|u| u.name.len()).max().unwrap_or(4).max(4);
    line(format!("{:<width$}  {:>10}  {:>10}  {:>8}  last backup", "user", "used", "quota", "files"));
    for u in &s.users {
        let quota = u.quota_bytes.map_or("-".into(), size);
        let mut mark = String::new();
        if u.stale {
            mark.push_str(&format!("  {}", style.paint(&format!("! no backup for {}+ days", s.stale_after_days), "1;33")));
        }
        if u.quota_percent().is_some_and(|p| p >= QUOTA_WARN_PERCENT) {
            mark.push_str(&format!("  {}", style.paint(&format!("! {} % of quota", u.quota_percent().unwrap_or(0)), "1;33")));
        }
        if u.retention_held {
            mark.push_str(&format!("  {}", style.paint("! retention held", "1;31")));
        }
        if !u.unconfirmed.is_empty() {
            mark.push_str(&format!("  {}", style.paint(&format!("! {} unconfirmed set(s)", u.unconfirmed.len()), "1;33")));
        }
        if u.locked {
            mark.push_str("  (locked)");
        }
        if u.admin {
            mark.push_str("  (admin)");
        }
        let last = u.last_backup.map_or("never".into(), |t| format!("{} ago", duration_since(s.now, t)));
        line(format!("{:<width$}  {:>10}  {:>10}  {:>8}  {last}{mark}", u.name, size(u.used_bytes), quota, u.used_files));
        for set in u.unconfirmed.iter().take(UNCONFIRMED_SHOWN) {
            line(format!("  unconfirmed {} {}, arrived {} ago", set.directory, set.set, duration_since(s.now, set.arrived)));
        }
        if u.unconfirmed.len() > UNCONFIRMED_SHOWN {
            line(format!("  … and {} more (`retention show --user {}`)", u.unconfirmed.len() - UNCONFIRMED_SHOWN, u.name));
        }
        if !u.unconfirmed.is_empty() || u.retention_held {
            line(format!("  `retention adopt --user {}` confirms them if they are genuine", u.name));
        }
    }
    out
}

/// `12.3 GiB` style sizes (binary units, as quotas are given).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

/// `3d 4h`, `5h 2m`, `42s`: the two largest units.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

fn duration_since(now: i64, then: i64) -> String {
    duration(u64::try_from(now - then).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Status {
        let mut s = Status {
            now: 1_800_000_000,
            hostname: "coffer".into(),
            version: "0.1.0".into(),
            slot: Some("a".into()),
            slot_state: Some("good".into()),
            uptime_secs: 93_784,
            host_keys: vec!["ED25519 SHA256:abc".into()],
            clock_trusted: true,
            arrays: vec![ArrayStatus {
                name: "data".into(),
                device: "md127".into(),
                health: "rebuilding".into(),
                sync_action: "recover".into(),
                progress_percent: Some(42.25),
                mismatches: 0,
                last_scrub: Some(ScrubStatus { finished_at: 1_800_000_000 - 3 * DAY, mismatches: 0 }),
                members: vec![
                    MemberStatus { serial: Some("WD-1".into()), bay: Some("left".into()), device: "sda".into(), state: vec!["in_sync".into()] },
                    MemberStatus { serial: Some("WD-2".into()), bay: Some("right".into()), device: "sdb".into(), state: vec!["spare".into()] },
                ],
            }],
            disks: vec![DiskStatus { serial: Some("WD-1".into()), device: "sda".into(), problems: vec!["io-errors".into()] }],
            led: Some("fast-blink".into()),
            space: Some(Space { total_bytes: 4 << 40, free_bytes: 3 << 40 }),
            users: vec![
                UserStatus { name: "alice".into(), used_bytes: 95 << 30, quota_bytes: Some(100 << 30), used_files: 12, last_backup: Some(1_800_000_000 - 3600), ..UserStatus::default() },
                UserStatus { name: "bob".into(), used_bytes: 0, last_backup: Some(1_800_000_000 - 9 * DAY), ..UserStatus::default() },
                UserStatus { name: "admin".into(), admin: true, ..UserStatus::default() },
            ],
            stale_after_days: 7,
        };
        s.mark_stale();
        s
    }

    #[test]
    fn screen_for_people() {
        let expected = "\
coffer  REBUILDING
  firmware  0.1.0, slot a (good), up 1d 2h
  clock     set from a time server
  host key  ED25519 SHA256:abc
  space     3.0 TiB free of 4.0 TiB (1.0 TiB used)
  LED       fast-blink

mirror data (md127)  rebuilding  recover 42.2 %
  left   WD-1                 sda      in_sync
  right  WD-2                 sdb      spare
  last scrub 3d 0h ago, 0 mismatches
  ! disk WD-1 (sda): io-errors

user         used       quota     files  last backup
alice    95.0 GiB   100.0 GiB        12  1h 0m ago  ! 95 % of quota
bob           0 B           -         0  9d 0h ago  ! no backup for 7+ days
admin         0 B           -         0  never  (admin)
";
        assert_eq!(render(&sample(), Style::default()), expected);
    }

    #[test]
    fn colour_only_when_asked() {
        assert!(!render(&sample(), Style::default()).contains('\x1b'));
        assert!(render(&sample(), Style { colour: true }).contains("\x1b[1;33mREBUILDING\x1b[0m"));
    }

    #[test]
    fn overall_is_the_worst_part() {
        let mut s = sample();
        assert_eq!(s.overall(), Overall::Rebuilding);
        s.arrays[0].health = "healthy".into();
        assert_eq!(s.overall(), Overall::Warning);
        s.disks.clear();
        s.users.clear();
        assert_eq!(s.overall(), Overall::Ok);
        s.arrays[0].health = "failed".into();
        assert_eq!(s.overall(), Overall::Failed);
    }

    #[test]
    fn staleness() {
        let u = UserStatus { last_backup: Some(0), ..UserStatus::default() };
        assert!(!u.is_stale(7 * DAY, 7));
        assert!(u.is_stale(7 * DAY + 1, 7));
        assert!(!u.is_stale(100 * DAY, 0), "0 days turns the check off");
        assert!(!UserStatus { locked: true, ..UserStatus::default() }.is_stale(0, 7));
        assert!(UserStatus::default().is_stale(0, 7), "never backed up");
    }

    #[test]
    fn json_uses_kebab_case() {
        let v = serde_json::to_value(sample()).unwrap();
        assert_eq!(v["stale-after-days"], 7);
        assert_eq!(v["users"][1]["stale"], true);
        assert_eq!(v["arrays"][0]["members"][0]["bay"], "left");
    }

    #[test]
    fn unconfirmed_sets_and_held_retention_are_shown() {
        let mut s = sample();
        s.arrays.clear();
        s.disks.clear();
        s.users = vec![UserStatus {
            name: "carol".into(),
            last_backup: Some(s.now - 60),
            unconfirmed: vec![UnconfirmedSet { directory: "/backup".into(), set: "full 20991201T000000Z".into(), arrived: s.now - 120 }],
            retention_held: true,
            ..UserStatus::default()
        }];
        assert_eq!(s.overall(), Overall::Warning);
        let screen = render(&s, Style::default());
        assert!(screen.contains("carol  ") && screen.contains("! retention held  ! 1 unconfirmed set(s)"), "{screen}");
        assert!(screen.contains("  unconfirmed /backup full 20991201T000000Z, arrived 2m 0s ago\n"), "{screen}");
        assert!(screen.contains("`retention adopt --user carol`"), "{screen}");
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["users"][0]["unconfirmed"][0]["set"], "full 20991201T000000Z");
        assert_eq!(v["users"][0]["retention-held"], true);
        s.users[0].unconfirmed = vec![UnconfirmedSet::default(); 12];
        assert!(render(&s, Style::default()).contains("… and 2 more (`retention show --user carol`)"));
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(3600 * 25), "1d 1h");
    }
}
