//! Rebooting or powering off the appliance: only the supervisor (PID 1)
//! does it, in order (services stop, disks are synced, the mirror is
//! stopped), so every command that ends in a reboot asks it here.

use std::path::Path;

use anyhow::{Context, Result, bail};

/// Present only on the appliance's image.
const APPLIANCE_MARKER: &str = "/etc/coffer/board";

/// Asks the supervisor (PID 1) for an orderly reboot or power-off.
pub(crate) fn request(reboot: bool) -> Result<()> {
    if !Path::new(APPLIANCE_MARKER).exists() {
        bail!("not a Coffer appliance ({APPLIANCE_MARKER} is missing): refusing to {} this machine", if reboot { "reboot" } else { "power off" });
    }
    let signal = if reboot { rustix::process::Signal::USR2 } else { rustix::process::Signal::TERM };
    let init = rustix::process::Pid::from_raw(1).context("PID 1")?;
    println!("coffer: {} now: services stop, disks are synced and the mirror is stopped first", if reboot { "rebooting" } else { "powering off" });
    rustix::process::kill_process(init, signal).context("signalling the supervisor")?;
    Ok(())
}
