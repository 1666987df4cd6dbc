//! Which boot slot this is, and marking a trial slot good.
//!
//! At boot the ESP's slot record says whether this is the good slot, a trial
//! of a new one, or the good slot after a failed trial (the boot loader fell
//! back); the supervisor reports it in `Paths::slot` and events. A trial is
//! marked good once every watched service has been healthy for a grace
//! period; if that does not happen before a deadline the box reboots, and
//! the boot loader takes the good slot.

use std::time::Duration;

use coffer_hal::{KernelCmdline, SysRoot};
use coffer_runtime::Paths;
use coffer_runtime::alert::{raise, stamped};
use coffer_runtime::event::Event;
use coffer_slots::{EspMount, Slot, Verdict, edit, verdict};
use serde_json::json;

use crate::console::event;

/// The ESP's partition name in the image.
pub const ESP_PARTITION: &str = "coffer-boot";
const DEFAULT_GRACE: Duration = Duration::from_secs(60);
const DEFAULT_DEADLINE: Duration = Duration::from_secs(600);

pub(crate) struct SlotKeeper {
    sys: SysRoot,
    booted: Slot,
    verdict: Verdict,
    marked: bool,
    grace: Duration,
    deadline: Duration,
}

fn secs(cmdline: &KernelCmdline, key: &str, default: Duration) -> Duration {
    cmdline.get(key).and_then(|v| v.parse().ok()).map_or(default, Duration::from_secs)
}

fn publish(booted: Slot, state: &str, failed: Option<Slot>) {
    let text = json!({ "slot": booted.name(), "state": state, "failed": failed.map(Slot::name) }).to_string();
    // Read by `status` and `update status`.
    let file = Paths::appliance().slot();
    if let Err(e) = std::fs::write(&file, text) {
        log::warn!("writing {}: {e}", file.display());
    }
}

impl SlotKeeper {
    /// Reads the slot record at boot; after a failed trial, cleans up the
    /// trial's boot entries so the good slot is everyone's default again.
    pub(crate) fn at_boot(sys: &SysRoot, cmdline: &KernelCmdline) -> Option<SlotKeeper> {
        let booted = Slot::parse(cmdline.get("coffer.slot")?)?;
        let grace = secs(cmdline, "coffer.mark-good-after", DEFAULT_GRACE);
        let deadline = secs(cmdline, "coffer.trial-deadline", DEFAULT_DEADLINE);
        let device = sys.partition_named(ESP_PARTITION).ok().flatten().map(|d| sys.dev_node(&d.name));
        let Some(device) = device else {
            log::warn!("no {ESP_PARTITION} partition: slot {booted} is taken as good");
            publish(booted, "good", None);
            return None;
        };
        let result = (|| -> Result<Verdict, coffer_slots::EspError> {
            let mount = EspMount::mount(&device, &Paths::appliance().esp_mount_point(), true)?;
            let esp = mount.esp();
            let (v, record) = verdict(esp.record(), booted);
            match v {
                Verdict::Trial => {}
                Verdict::RolledBack { .. } => esp.apply(&edit::make_good(&esp.loader_files()?, booted, record))?,
                Verdict::Good if record != esp.record() => esp.apply(&[coffer_slots::EspChange::WriteRecord(record)])?,
                Verdict::Good => {}
            }
            Ok(v)
        })();
        let v = match result {
            Ok(v) => v,
            Err(e) => {
                log::error!("reading the boot slots: {e}");
                Verdict::Good
            }
        };
        match v {
            Verdict::Good => publish(booted, "good", None),
            Verdict::Trial => {
                event(&Event::UpdateTrial { slot: booted.name().to_string(), mark_good_after_secs: grace.as_secs() });
                publish(booted, "trial", None);
            }
            Verdict::RolledBack { failed } => {
                event(&Event::UpdateRolledBack { slot: booted.name().to_string(), failed: failed.name().to_string() });
                raise(
                    &Paths::appliance(),
                    &stamped(
                        "update:rolled-back",
                        coffer_alert::Severity::Warning,
                        &format!("the firmware update in slot {failed} did not come up"),
                        &format!("The box went back to slot {booted} by itself and runs as before. `ssh admin@coffer logs` and `update status` tell more."),
                        false,
                    ),
                );
                publish(booted, "good", Some(failed));
            }
        }
        Some(SlotKeeper { sys: sys.clone(), booted, verdict: v, marked: false, grace, deadline })
    }

    /// Called every tick: `healthy_for` is how long every watched service has
    /// been up. Returns true when the trial failed and the box must reboot.
    pub(crate) fn tick(&mut self, healthy_for: Option<Duration>, since_boot: Duration, services_ok: bool) -> bool {
        if self.verdict != Verdict::Trial || self.marked {
            return false;
        }
        if services_ok && healthy_for.is_some_and(|d| d >= self.grace) {
            // A failure (the ESP busy for a moment) is tried again next tick.
            match self.mark_good() {
                Ok(()) => {
                    self.marked = true;
                    event(&Event::UpdateMarkedGood { slot: self.booted.name().to_string() });
                    publish(self.booted, "good", None);
                    return false;
                }
                Err(e) => log::warn!("marking slot {} good: {e}; trying again", self.booted),
            }
        }
        if since_boot >= self.deadline {
            event(&Event::UpdateTrialFailed { slot: self.booted.name().to_string(), reason: "services were not healthy in time".to_string() });
            return true;
        }
        false
    }

    fn mark_good(&self) -> Result<(), coffer_slots::EspError> {
        let sys = &self.sys;
        let device = sys.partition_named(ESP_PARTITION).ok().flatten().map(|d| sys.dev_node(&d.name)).ok_or_else(|| {
            coffer_slots::EspError::Io { path: ESP_PARTITION.into(), source: std::io::Error::from(std::io::ErrorKind::NotFound) }
        })?;
        let mount = EspMount::mount(&device, &Paths::appliance().esp_mount_point(), true)?;
        let esp = mount.esp();
        esp.apply(&edit::make_good(&esp.loader_files()?, self.booted, esp.record()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial() -> SlotKeeper {
        SlotKeeper {
            sys: SysRoot::at("/nonexistent"),
            booted: Slot::B,
            verdict: Verdict::Trial,
            marked: false,
            grace: Duration::from_secs(60),
            deadline: Duration::from_secs(600),
        }
    }

    #[test]
    fn a_trial_that_never_gets_healthy_reboots_at_the_deadline() {
        let mut k = trial();
        assert!(!k.tick(None, Duration::from_secs(599), true));
        assert!(!k.tick(Some(Duration::from_secs(59)), Duration::from_secs(599), true), "not healthy long enough yet");
        assert!(k.tick(Some(Duration::from_secs(59)), Duration::from_secs(600), true));
    }

    #[test]
    fn a_trial_without_its_data_is_never_marked_good() {
        let mut k = trial();
        assert!(!k.tick(Some(Duration::from_secs(300)), Duration::from_secs(400), false));
        assert!(!k.marked);
        assert!(k.tick(Some(Duration::from_secs(500)), Duration::from_secs(600), false));
    }

    #[test]
    fn good_slots_are_left_alone() {
        let mut k = SlotKeeper { verdict: Verdict::Good, ..trial() };
        assert!(!k.tick(None, Duration::from_secs(10_000), true));
    }
}
