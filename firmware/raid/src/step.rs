//! One look of the mirror's watcher as a pure step. [`WatchState::step`]
//! takes what `raid watch` gathered (the md snapshot, the mirror disks'
//! health readings, a 3ware controller's events, a scrub request, the time)
//! and returns the effects to apply, in the order they are applied: events
//! to print, alerts to raise, md writes, the LED pattern, the view `status`
//! shows, mdadm actions. Every decision of the watcher is made here; the
//! watcher only reads the world and applies the answer.

use std::collections::{BTreeMap, BTreeSet};

use coffer_alert::Alert;
use coffer_hal::MdArray;
use serde_json::{Value, json};

use crate::alerts::{alerts_for, disk_health_alert, mismatch_alert};
use crate::scrub::{ScrubChange, ScrubRecord, ScrubView};
use crate::{DiskReading, Health, HealthEvent, HealthTracker, LedPattern, Monitor, RaidAction, RaidEvent, RaidKind, RaidPolicy, Snapshot, array_label, health, led_pattern};

/// What the watcher remembers between looks.
#[derive(Debug, Clone)]
pub struct WatchState {
    monitor: Monitor,
    health: HealthTracker,
    scrub: ScrubRecord,
    /// Seconds between scheduled checks; `None`: only checks asked for.
    scrub_every: Option<i64>,
    /// Disks (serial, or kernel name) whose health turned critical: the
    /// alarm stays on until they leave the mirror (replaced).
    critical: BTreeSet<String>,
    /// Each disk's health problems since the watcher started, for `status`.
    problems: BTreeMap<String, BTreeSet<String>>,
    shown: Option<LedPattern>,
    published: Value,
}

/// What `raid scrub` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScrubRequest {
    Check,
    Stop,
}

/// A RAID controller's own look (a 3ware card's kernel log and SMART), made
/// by its backend before the step.
#[derive(Debug, Clone, PartialEq)]
pub struct ControllerLook {
    pub events: Vec<RaidEvent>,
    pub health: Health,
}

/// Everything one look gathered.
#[derive(Debug, Clone, Copy)]
pub struct WatchInput<'a> {
    pub snapshot: &'a Snapshot,
    /// Health readings of the mirror disks present now.
    pub readings: &'a [DiskReading],
    pub controller: Option<&'a ControllerLook>,
    pub scrub_request: Option<ScrubRequest>,
    /// Whether the clock can be trusted for the scrub schedule.
    pub clock_trusted: bool,
    /// Seconds since the epoch.
    pub now: u64,
}

/// One thing to do, in the order the step decided it.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Print as a `coffer-event` line.
    Event(RaidEvent),
    /// Put in the alert spool.
    Alert(Alert),
    /// Whether the endpoint must refuse sessions because the mirror failed
    /// (said on every look; the marker is written or removed when it differs).
    DataUnavailable(bool),
    /// Stop the check md runs on `array` (an administrator asked).
    StopScrub { array: String },
    /// Set `array` idle after its check finished.
    FinishScrub { array: String },
    /// Start (or resume) a check of `array` at `from_sector`; once md took
    /// it, [`WatchState::scrub_started`] records it and gives the event.
    StartScrub { array: String, label: String, from_sector: u64 },
    /// Show this pattern on the status LED (only when it changes).
    Led(LedPattern),
    /// Publish this view for `status` (only when it changes).
    Publish(Value),
    /// Run mdadm.
    Md(RaidAction),
    /// Log a warning: something asked for could not be done now.
    Warn(String),
}

/// The answer to one look.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    /// Applied in order (the order of the console's lines).
    pub list: Vec<Effect>,
    /// Look again soon: md is syncing, or an mdadm action was just taken (a rebuild is about to start).
    pub look_soon: bool,
    /// Save the scrub record at once rather than at most twice a minute (a check was stopped).
    pub save_scrub_now: bool,
}

impl Effects {
    pub fn events(&self) -> impl Iterator<Item = &RaidEvent> {
        self.list.iter().filter_map(|e| if let Effect::Event(e) = e { Some(e) } else { None })
    }

    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.list.iter().filter_map(|e| if let Effect::Alert(a) = e { Some(a) } else { None })
    }

    pub fn actions(&self) -> impl Iterator<Item = &RaidAction> {
        self.list.iter().filter_map(|e| if let Effect::Md(a) = e { Some(a) } else { None })
    }

    /// The LED pattern to show now, if it changed.
    pub fn led(&self) -> Option<LedPattern> {
        self.list.iter().find_map(|e| if let Effect::Led(p) = e { Some(*p) } else { None })
    }

    fn say(&mut self, event: RaidEvent, now: u64) {
        let alerts = alerts_for(&event, now);
        self.list.push(Effect::Event(event));
        self.list.extend(alerts.into_iter().map(Effect::Alert));
    }
}

impl WatchState {
    /// `scrub`: the record saved by the last watcher (see [`ScrubRecord::at_start`]).
    pub fn new(policy: RaidPolicy, scrub: ScrubRecord, scrub_every: Option<i64>) -> Self {
        WatchState {
            monitor: Monitor::new(policy),
            health: HealthTracker::default(),
            scrub,
            scrub_every,
            critical: BTreeSet::new(),
            problems: BTreeMap::new(),
            shown: None,
            published: Value::Null,
        }
    }

    /// The scrub record as it stands, to be saved.
    pub fn scrub_record(&self) -> &ScrubRecord {
        &self.scrub
    }

    /// What one look calls for.
    pub fn step(&mut self, input: WatchInput<'_>) -> Effects {
        let snap = input.snapshot;
        let now = input.now;
        let mut out = Effects::default();
        let (events, actions) = self.monitor.observe(snap);
        for e in events {
            out.say(e, now);
        }
        let failed = mirrors(snap).any(|a| health(a) == Health::Failed);
        out.list.push(Effect::DataUnavailable(failed));
        for h in self.health.observe(input.readings) {
            let id = h.serial.clone().unwrap_or_else(|| h.disk.clone());
            if h.kind == RaidKind::DiskHealthCritical {
                self.critical.insert(id.clone());
            }
            self.problems.entry(id).or_default().insert(h.what.clone());
            let alert = disk_health_alert(&h, now);
            out.list.push(Effect::Event(health_event(h)));
            out.list.push(Effect::Alert(alert));
        }
        let members: BTreeSet<String> = snap
            .arrays
            .iter()
            .flat_map(|a| &a.members)
            .filter(|m| m.present)
            .map(|m| snap.serials.get(&m.kname).cloned().unwrap_or_else(|| m.kname.clone()))
            .collect();
        self.critical.retain(|id| members.contains(id));
        if let Some(a) = mirrors(snap).next() {
            self.scrub_step(&mut out, a, input.scrub_request, input.clock_trusted, now);
        }
        let mut healths: Vec<Health> = mirrors(snap).map(health).collect();
        if let Some(c) = input.controller {
            for e in &c.events {
                out.say(e.clone(), now);
            }
            healths.push(c.health);
        }
        // A disk that is about to fail is as urgent as a failed mirror.
        let pattern = if self.critical.is_empty() { led_pattern(&healths) } else { LedPattern::Alarm };
        if self.shown != Some(pattern) {
            out.list.push(Effect::Led(pattern));
            self.shown = Some(pattern);
        }
        let view = json!({ "led": pattern, "problems": self.problems });
        if view != self.published {
            out.list.push(Effect::Publish(view.clone()));
            self.published = view;
        }
        let syncing = snap.arrays.iter().any(|a| !matches!(a.sync_action.as_str(), "idle" | ""));
        out.look_soon = !actions.is_empty() || syncing;
        out.list.extend(actions.into_iter().map(Effect::Md));
        out
    }

    /// Records a check md accepted ([`Effect::StartScrub`]) and gives its event.
    pub fn scrub_started(&mut self, label: &str, from_sector: u64, now: u64) -> RaidEvent {
        self.scrub.started(from_sector, now as i64);
        scrub_event(RaidKind::ScrubStarted, label).with("from-sector", from_sector)
    }

    /// The scheduled, resumable check of the mirror `a`: requests, md's
    /// progress, when to start.
    fn scrub_step(&mut self, out: &mut Effects, a: &MdArray, request: Option<ScrubRequest>, clock_trusted: bool, now: u64) {
        let label = array_label(a);
        if request == Some(ScrubRequest::Stop) {
            // Only a check is stopped, never a rebuild or resync.
            if a.sync_action == "check" {
                out.list.push(Effect::StopScrub { array: a.kname.clone() });
            }
            self.scrub.cancel();
            out.list.push(Effect::Event(scrub_event(RaidKind::ScrubStopped, &label)));
            out.save_scrub_now = true;
            return;
        }
        let view = ScrubView { sync_action: &a.sync_action, sync_completed: a.sync_completed, mismatch_cnt: a.mismatch_cnt, redundant: health(a) == Health::Healthy };
        let was_running = self.scrub.running && !self.scrub.awaiting_resume;
        match self.scrub.observe(view, now as i64) {
            Some(ScrubChange::Finished { mismatches }) => {
                out.list.push(Effect::FinishScrub { array: a.kname.clone() });
                out.list.push(Effect::Event(scrub_event(RaidKind::ScrubFinished, &label).with("mismatches", mismatches)));
                if mismatches > 0 {
                    out.list.push(Effect::Alert(mismatch_alert(&label, mismatches, now)));
                }
            }
            Some(ScrubChange::Interrupted { position }) => {
                out.list.push(Effect::Event(scrub_event(RaidKind::ScrubInterrupted, &label).with("sector", position)));
            }
            None if !was_running && self.scrub.running && !self.scrub.awaiting_resume => {
                out.list.push(Effect::Event(scrub_event(RaidKind::ScrubStarted, &label).with("from-sector", self.scrub.position)));
            }
            None => {}
        }
        let requested = request == Some(ScrubRequest::Check);
        if let Some(start) = crate::scrub::plan(&self.scrub, view, now as i64, self.scrub_every, clock_trusted, requested) {
            out.list.push(Effect::StartScrub { array: a.kname.clone(), label, from_sector: start.from_sector });
        } else if requested {
            out.list.push(Effect::Warn(format!("a check of {label} was asked for, but the mirror is busy ({}) or not whole", a.sync_action)));
        }
    }
}

/// The mirrors among the arrays (the watcher looks after raid1 only).
fn mirrors(snap: &Snapshot) -> impl Iterator<Item = &MdArray> {
    snap.arrays.iter().filter(|a| a.level == "raid1")
}

fn scrub_event(kind: RaidKind, label: &str) -> RaidEvent {
    RaidEvent::of(kind).with("array", label)
}

/// A disk's health change as the event printed for it.
fn health_event(h: HealthEvent) -> RaidEvent {
    RaidEvent::of(h.kind).with("disk", h.disk).with("serial", h.serial).with("what", h.what).with("guidance", h.detail)
}

#[cfg(test)]
mod tests;
