//! The scheduled retention run while serving: every user once the clock is
//! trusted, logged, with an event per user that lost anything.

use std::path::Path;

use anyhow::Result;
use coffer_config::RetentionFile;
use coffer_runtime::Paths;
use coffer_runtime::event::{self, Event};

use crate::retention_run::{run_user, wall_clock};
use crate::state::State;

/// Runs retention for every user; failures are logged, never fatal.
pub(crate) fn scheduled(dir: &Path) {
    if !coffer_runtime::clock::trusted(&Paths::appliance()) {
        log::info!("retention waits: the clock has not been set from a time server yet");
        return;
    }
    let result = (|| -> Result<()> {
        let state = State::open(dir)?;
        let file = RetentionFile::load(&state.paths.retention())?;
        for u in state.users()?.users {
            let name = u.name.to_string();
            let (policy, _) = file.effective(&name);
            let mut lines = Vec::new();
            let summary = run_user(&state, &name, &policy, wall_clock(), false, &mut lines);
            for line in String::from_utf8_lossy(&lines).lines() {
                log::info!("retention: {line}");
            }
            let summary = match summary {
                Ok(s) => s,
                Err(e) => {
                    log::error!("retention of {name} failed: {e:#}");
                    continue;
                }
            };
            if summary.deleted_files > 0 {
                event::emit(&Event::RetentionDeleted { user: name.to_string(), sets: summary.deleted_sets as u64, bytes: summary.freed_bytes });
                crate::rescan::request(&state, &name)?;
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        log::error!("scheduled retention failed: {e:#}");
    }
}
