//! Rebooting or powering off the appliance: only the supervisor (PID 1)
//! does it, in order (services stop, disks are synced, the mirror is
//! stopped), so every command that ends in a reboot asks it here. It is
//! asked only after the command that wants it has ended, so over SSH its exit
//! status reaches the administrator before the endpoint stops.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use coffer_runtime::Paths;

/// How long after the asking command has ended the supervisor is asked:
/// time for the endpoint to send that command's exit status and close its
/// channel, and for the client to close its side, before services stop.
const POWER_REQUEST_DELAY: Duration = Duration::from_secs(1);

/// How long the request waits at most for the asking command to end: one
/// that hangs after asking still gets the box rebooted.
const ASKER_WAIT_LIMIT: Duration = Duration::from_secs(10);

/// Asks the supervisor (PID 1) for an orderly reboot or power-off, through
/// a helper (`coffer power-request`) that asks once this command has ended.
pub(crate) fn request(reboot: bool) -> Result<()> {
    let paths = Paths::appliance();
    if !paths.on_appliance() {
        bail!("not a Coffer appliance ({} is missing): refusing to {} this machine", paths.board().display(), if reboot { "reboot" } else { "power off" });
    }
    let exe = std::env::current_exe().context("finding this program to ask for the reboot")?;
    power_request_command(&exe, reboot, std::process::id()).spawn().context("starting the reboot request")?;
    println!("coffer: {} now: services stop, disks are synced and the mirror is stopped first", if reboot { "rebooting" } else { "powering off" });
    Ok(())
}

/// The helper that asks for `power`. It has no standard streams, since the
/// endpoint relays a command's output until every holder of its pipes has
/// closed them, and a process group of its own, so signals for the
/// command's group (the endpoint's, over SSH) do not end it.
fn power_request_command(exe: &Path, reboot: bool, asker: u32) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new(exe);
    command.arg("power-request").arg("--after-pid").arg(asker.to_string());
    if !reboot {
        command.arg("--poweroff");
    }
    command.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).process_group(0);
    command
}

/// `coffer power-request`: waits until `asker` (this process's parent) has
/// ended, then [`POWER_REQUEST_DELAY`], then signals the supervisor.
pub(crate) fn power_request(reboot: bool, asker: i32) -> Result<()> {
    let asker = rustix::process::Pid::from_raw(asker).context("--after-pid must be a process id")?;
    let give_up = Instant::now() + ASKER_WAIT_LIMIT;
    // An ended parent leaves this process to another (PID 1 or a subreaper).
    while rustix::process::getppid() == Some(asker) && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(POWER_REQUEST_DELAY);
    let signal = if reboot { rustix::process::Signal::USR2 } else { rustix::process::Signal::TERM };
    let init = rustix::process::Pid::from_raw(1).context("PID 1")?;
    rustix::process::kill_process(init, signal).context("signalling the supervisor")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_power_request_is_the_hidden_command_and_names_its_asker() {
        use clap::Parser;
        for (reboot, poweroff) in [(true, false), (false, true)] {
            let helper = power_request_command(Path::new("/sbin/coffer"), reboot, 4242);
            assert_eq!(helper.get_program(), "/sbin/coffer");
            let args = std::iter::once(helper.get_program()).chain(helper.get_args());
            let cli = crate::Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                matches!(cli.command, crate::Command::PowerRequest { poweroff: p, after_pid: 4242 } if p == poweroff),
                "{:?}",
                cli.command
            );
        }
    }

    /// Over SSH the endpoint sends the exit status once the command has
    /// ended and its output pipes are closed; a helper holding them, or
    /// stopped with the endpoint's process group, would undo that.
    #[test]
    fn the_power_request_holds_no_output_and_has_a_group_of_its_own() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("coffer");
        let record = dir.path().join("record");
        let script = format!(
            "#!/bin/sh\nexec 3> {}\necho \"$*\" >&3\nfds=$(readlink /proc/$$/fd/0 /proc/$$/fd/1 /proc/$$/fd/2)\necho \"$fds\" >&3\n[ \"$(cut -d' ' -f5 /proc/$$/stat)\" = $$ ] && echo own-group >&3\n",
            record.display()
        );
        std::fs::write(&exe, script).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let status = power_request_command(&exe, false, 77).status().unwrap();
        assert!(status.success());
        let seen = std::fs::read_to_string(&record).unwrap();
        assert_eq!(seen, "power-request --after-pid 77 --poweroff\n/dev/null\n/dev/null\n/dev/null\nown-group\n");
    }
}
