//! A/B boot slots on the ESP.
//!
//! Each slot is a kernel and initramfs under `/coffer/a` or `/coffer/b`.
//! Both boot loaders' configurations name the *good* slot as their default:
//! `DEFAULT a` in `syslinux.cfg` (BIOS) and `default coffer-a.conf` in
//! `loader.conf` (UEFI). A new slot is tried once:
//!
//! - BIOS: syslinux's boot-once label in its ADV (two 512-byte copies at the
//!   end of `ldlinux.sys`, cleared by syslinux itself as it boots the label),
//!   so any failure of the trial boot (panic, hang and watchdog reset, a
//!   reboot) lands on the default, good slot.
//! - UEFI: systemd-boot boot counting: the trial slot's entry is renamed
//!   `coffer-b+1.conf` and made the default; systemd-boot counts the try
//!   down in the file name and skips an entry with no tries left.
//!
//! Our own record, `/coffer/slots` (`good a` / `trying b`), says which slot
//! was good and which is on trial, so the supervisor knows after boot
//! whether it runs a trial (mark it good once healthy), the good slot, or
//! the good slot after a failed trial (clean up, report the rollback).
//!
//! Decisions ([`verdict`], [`edit`]) are pure; [`Esp`] applies them to a
//! mounted ESP with writes that a power cut leaves old or new.

mod adv;
mod esp;
mod mount;

pub use adv::{ADV_BYTES, adv_boot_once, adv_with_boot_once};
pub use esp::{Esp, EspError};
pub use mount::EspMount;

use std::fmt;

/// One of the two boot slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn parse(s: &str) -> Option<Slot> {
        match s.trim() {
            "a" => Some(Slot::A),
            "b" => Some(Slot::B),
            _ => None,
        }
    }

    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `/coffer/slots`: which slot is good, which is being tried, which failed last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotRecord {
    pub good: Option<Slot>,
    pub trying: Option<Slot>,
    pub failed: Option<Slot>,
}

impl SlotRecord {
    /// Parses `good a`, `trying b`, `failed b` lines; unknown lines are ignored
    /// so an older firmware can read a newer record.
    pub fn parse(text: &str) -> SlotRecord {
        let mut r = SlotRecord::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(key), Some(slot)) = (words.next(), words.next().and_then(Slot::parse)) else { continue };
            match key {
                "good" => r.good = Some(slot),
                "trying" => r.trying = Some(slot),
                "failed" => r.failed = Some(slot),
                _ => {}
            }
        }
        r
    }

    pub fn to_text(self) -> String {
        let mut out = String::new();
        for (key, slot) in [("good", self.good), ("trying", self.trying), ("failed", self.failed)] {
            if let Some(s) = slot {
                out.push_str(&format!("{key} {s}\n"));
            }
        }
        out
    }
}

/// What this boot is, from the record and the slot the kernel was booted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The good slot, nothing pending.
    Good,
    /// A trial boot of a new slot: mark it good once healthy.
    Trial,
    /// A trial of `failed` did not come up and the boot loader fell back here.
    RolledBack { failed: Slot },
}

/// Decides what this boot is and the record to write for it.
pub fn verdict(record: SlotRecord, booted: Slot) -> (Verdict, SlotRecord) {
    match record.trying {
        Some(t) if t == booted => (Verdict::Trial, record),
        Some(t) => (Verdict::RolledBack { failed: t }, SlotRecord { good: Some(booted), trying: None, failed: Some(t) }),
        // No trial pending: whatever booted is good (also after a manual switch).
        None => (Verdict::Good, SlotRecord { good: Some(booted), ..record }),
    }
}

/// The boot loaders' files, as text and names, to be edited together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderFiles {
    pub syslinux_cfg: Option<String>,
    pub loader_conf: Option<String>,
    /// File names in `/loader/entries`.
    pub entries: Vec<String>,
}

/// One change to the ESP, applied in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EspChange {
    WriteSyslinuxCfg(String),
    WriteLoaderConf(String),
    RenameEntry { from: String, to: String },
    /// Set (Some) or clear (None) syslinux's boot-once label.
    BootOnce(Option<Slot>),
    WriteRecord(SlotRecord),
}

/// How the ESP must change for a state of the slots.
pub mod edit {
    use super::*;

    /// `DEFAULT x` in syslinux.cfg.
    pub fn syslinux_default(cfg: &str, slot: Slot) -> String {
        replace_line(cfg, "DEFAULT ", &format!("DEFAULT {slot}"))
    }

    /// `default coffer-x.conf` in loader.conf.
    pub fn loader_default(conf: &str, slot: Slot) -> String {
        replace_line(conf, "default ", &format!("default coffer-{slot}.conf"))
    }

    fn replace_line(text: &str, prefix: &str, with: &str) -> String {
        let mut found = false;
        let mut out: Vec<String> = text
            .lines()
            .map(|l| {
                if !found && l.trim_start().to_ascii_lowercase().starts_with(&prefix.to_ascii_lowercase()) {
                    found = true;
                    with.to_string()
                } else {
                    l.to_string()
                }
            })
            .collect();
        if !found {
            out.insert(0, with.to_string());
        }
        out.join("\n") + "\n"
    }

    /// The entry file of `slot`, whatever its boot counter says.
    pub fn entry_of(entries: &[String], slot: Slot) -> Option<&String> {
        let plain = format!("coffer-{slot}.conf");
        let counted = format!("coffer-{slot}+");
        entries.iter().find(|e| **e == plain || (e.starts_with(&counted) && e.ends_with(".conf")))
    }

    fn rename_entry(files: &LoaderFiles, slot: Slot, to: String) -> Option<EspChange> {
        let from = entry_of(&files.entries, slot)?;
        (from != &to).then(|| EspChange::RenameEntry { from: from.clone(), to })
    }

    /// Makes `slot` the good default of both loaders, with no trial pending.
    pub fn make_good(files: &LoaderFiles, slot: Slot, record: SlotRecord) -> Vec<EspChange> {
        let mut out = Vec::new();
        if let Some(cfg) = &files.syslinux_cfg {
            out.push(EspChange::WriteSyslinuxCfg(syslinux_default(cfg, slot)));
        }
        if let Some(conf) = &files.loader_conf {
            out.push(EspChange::WriteLoaderConf(loader_default(conf, slot)));
        }
        for s in [Slot::A, Slot::B] {
            out.extend(rename_entry(files, s, format!("coffer-{s}.conf")));
        }
        out.push(EspChange::BootOnce(None));
        out.push(EspChange::WriteRecord(SlotRecord { good: Some(slot), trying: None, ..record }));
        out
    }

    /// Arms `slot` for one trial boot under either firmware; `good` stays
    /// the fallback. The record is written first, so a trial that starts
    /// is always known as one.
    pub fn arm_trial(files: &LoaderFiles, slot: Slot, good: Slot) -> Vec<EspChange> {
        let mut out = vec![EspChange::WriteRecord(SlotRecord { good: Some(good), trying: Some(slot), failed: None })];
        if files.syslinux_cfg.is_some() {
            out.push(EspChange::BootOnce(Some(slot)));
        }
        if let Some(conf) = &files.loader_conf {
            out.extend(rename_entry(files, slot, format!("coffer-{slot}+1.conf")));
            out.push(EspChange::WriteLoaderConf(loader_default(conf, slot)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::edit::*;
    use super::*;

    fn files() -> LoaderFiles {
        LoaderFiles {
            syslinux_cfg: Some("SERIAL 0 115200\nDEFAULT a\nPROMPT 0\nLABEL a\n  LINUX /coffer/a/vmlinuz\n".into()),
            loader_conf: Some("default coffer-a.conf\ntimeout 0\n".into()),
            entries: vec!["coffer-a.conf".into(), "coffer-b.conf".into()],
        }
    }

    #[test]
    fn record_round_trip_and_tolerance() {
        let r = SlotRecord { good: Some(Slot::A), trying: Some(Slot::B), failed: None };
        assert_eq!(SlotRecord::parse(&r.to_text()), r);
        assert_eq!(SlotRecord::parse("good b\nfuture-key x\ntrying z\n"), SlotRecord { good: Some(Slot::B), ..SlotRecord::default() });
        assert_eq!(SlotRecord::parse(""), SlotRecord::default());
    }

    #[test]
    fn verdicts() {
        let trying_b = SlotRecord { good: Some(Slot::A), trying: Some(Slot::B), failed: None };
        assert_eq!(verdict(trying_b, Slot::B).0, Verdict::Trial);
        let (v, r) = verdict(trying_b, Slot::A);
        assert_eq!(v, Verdict::RolledBack { failed: Slot::B });
        assert_eq!(r, SlotRecord { good: Some(Slot::A), trying: None, failed: Some(Slot::B) });
        assert_eq!(verdict(SlotRecord::default(), Slot::B), (Verdict::Good, SlotRecord { good: Some(Slot::B), ..SlotRecord::default() }));
    }

    #[test]
    fn arming_then_marking_good() {
        let f = files();
        let armed = arm_trial(&f, Slot::B, Slot::A);
        assert_eq!(armed[0], EspChange::WriteRecord(SlotRecord { good: Some(Slot::A), trying: Some(Slot::B), failed: None }));
        assert!(armed.contains(&EspChange::BootOnce(Some(Slot::B))));
        assert!(armed.contains(&EspChange::RenameEntry { from: "coffer-b.conf".into(), to: "coffer-b+1.conf".into() }));
        assert!(armed.contains(&EspChange::WriteLoaderConf("default coffer-b.conf\ntimeout 0\n".into())));
        assert!(!armed.iter().any(|c| matches!(c, EspChange::WriteSyslinuxCfg(_))), "BIOS default stays on the good slot");

        let during = LoaderFiles { entries: vec!["coffer-a.conf".into(), "coffer-b+0-1.conf".into()], ..f.clone() };
        let good = make_good(&during, Slot::B, SlotRecord { good: Some(Slot::A), trying: Some(Slot::B), failed: None });
        assert!(good.contains(&EspChange::RenameEntry { from: "coffer-b+0-1.conf".into(), to: "coffer-b.conf".into() }));
        assert!(good.iter().any(|c| matches!(c, EspChange::WriteSyslinuxCfg(t) if t.contains("\nDEFAULT b\n"))));
        assert_eq!(good.last(), Some(&EspChange::WriteRecord(SlotRecord { good: Some(Slot::B), ..SlotRecord::default() })));
    }

    #[test]
    fn defaults_are_rewritten_in_place() {
        assert_eq!(syslinux_default("DEFAULT a\nLABEL a\n", Slot::B), "DEFAULT b\nLABEL a\n");
        assert_eq!(syslinux_default("LABEL a\n", Slot::B), "DEFAULT b\nLABEL a\n");
        assert_eq!(loader_default("timeout 0\ndefault coffer-b.conf\n", Slot::A), "timeout 0\ndefault coffer-a.conf\n");
        assert_eq!(entry_of(&["coffer-ab.conf".into(), "coffer-b+2-1.conf".into()], Slot::B), Some(&"coffer-b+2-1.conf".to_string()));
        assert_eq!(entry_of(&["coffer-ab.conf".into()], Slot::A), None);
    }
}
