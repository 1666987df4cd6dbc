//! `logs`, `events`, `reboot`, `poweroff`: the appliance's own log and power.
//!
//! A reboot or power-off is asked of the supervisor only after the command
//! that wants it has ended, so over SSH its exit status reaches the
//! administrator before the endpoint stops.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The supervisor's log (lines `@SECONDS TEXT`), rotated to `log.1`.
const LOG_FILE: &str = "/run/coffer/log";

/// Present only on the appliance's image.
const APPLIANCE_MARKER: &str = "/etc/coffer/board";

/// `30m`, `2h`, `1d`, `45s` or plain seconds.
pub(crate) fn parse_since(text: &str) -> Result<u64> {
    let text = text.trim();
    let (num, unit) = text.find(|c: char| !c.is_ascii_digit()).map_or((text, ""), |i| text.split_at(i));
    let n: u64 = num.parse().with_context(|| format!("invalid --since {text:?}: use 30m, 2h, 1d or seconds"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("invalid --since {text:?}: the unit must be s, m, h or d"),
    };
    Ok(n.saturating_mul(mult))
}

/// One log line as shown: `2026-11-27 10:00:00 TEXT`, or for events the JSON alone.
fn shown(line: &str, cutoff: Option<u64>, events_only: bool) -> Option<String> {
    let (stamp, text) = line.strip_prefix('@').and_then(|l| l.split_once(' ')).map_or((None, line), |(s, t)| (s.parse::<u64>().ok(), t));
    if let (Some(cut), Some(t)) = (cutoff, stamp)
        && t < cut
    {
        return None;
    }
    if events_only {
        // Only the line's own start: a logged user name may contain the marker.
        let json = text.strip_prefix("coffer-event ")?;
        return Some(json.to_string());
    }
    let when = stamp.map_or_else(String::new, |t| {
        let (y, mo, d, h, mi, s) = coffer_duplicity::civil_from_unix(t as i64);
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} ")
    });
    Some(format!("{when}{text}"))
}

pub(crate) fn logs(follow: bool, since: Option<&str>, events_only: bool) -> Result<()> {
    let cutoff = match since {
        Some(s) => Some((crate::alert::now()).saturating_sub(parse_since(s)?)),
        None => None,
    };
    let path = Path::new(LOG_FILE);
    if !path.exists() {
        bail!("no appliance log at {LOG_FILE}: this command reads the log of a running Coffer appliance");
    }
    let mut out = std::io::stdout().lock();
    let older = path.with_extension("1");
    for p in [older.as_path(), path] {
        if let Ok(f) = std::fs::File::open(p) {
            for line in BufReader::new(f).lines().map_while(Result::ok) {
                if let Some(l) = shown(&line, cutoff, events_only) {
                    std::io::Write::write_all(&mut out, format!("{l}\n").as_bytes())?;
                }
            }
        }
    }
    std::io::Write::flush(&mut out)?;
    if !follow {
        return Ok(());
    }
    // Follow: poll for growth; a rotation (the file shrank) starts over at 0.
    let mut pos = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut pending = String::new();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let Ok(mut f) = std::fs::File::open(path) else { continue };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < pos {
            pos = 0;
        }
        if len == pos {
            continue;
        }
        f.seek(SeekFrom::Start(pos))?;
        let mut chunk = String::new();
        let n = std::io::Read::read_to_string(&mut f, &mut chunk)?;
        pos += n as u64;
        pending.push_str(&chunk);
        while let Some(i) = pending.find('\n') {
            let line: String = pending.drain(..=i).collect();
            if let Some(l) = shown(line.trim_end_matches('\n'), None, events_only) {
                std::io::Write::write_all(&mut out, format!("{l}\n").as_bytes())?;
            }
        }
        // A closed connection ends the follow (the write fails).
        std::io::Write::flush(&mut out)?;
    }
}

/// How long after the asking command has ended the supervisor is asked:
/// time for the endpoint to send that command's exit status and close its
/// channel, and for the client to close its side, before services stop.
const POWER_REQUEST_DELAY: Duration = Duration::from_secs(1);

/// How long the request waits at most for the asking command to end: one
/// that hangs after asking still gets the box rebooted.
const ASKER_WAIT_LIMIT: Duration = Duration::from_secs(10);

/// Asks the supervisor (PID 1) for an orderly reboot or power-off, through
/// a helper (`coffer power-request`) that asks once this command has ended.
pub(crate) fn power(reboot: bool) -> Result<()> {
    if !Path::new(APPLIANCE_MARKER).exists() {
        bail!("not a Coffer appliance ({APPLIANCE_MARKER} is missing): refusing to {} this machine", if reboot { "reboot" } else { "power off" });
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

    #[test]
    fn since_values() {
        assert_eq!(parse_since("90").unwrap(), 90);
        assert_eq!(parse_since("30m").unwrap(), 1800);
        assert_eq!(parse_since("2h").unwrap(), 7200);
        assert_eq!(parse_since("1d").unwrap(), 86_400);
        assert!(parse_since("2 weeks").is_err());
        assert!(parse_since("h").is_err());
    }

    #[test]
    fn lines_are_shown_with_their_time() {
        assert_eq!(shown("@0 coffer: hello", None, false).as_deref(), Some("1970-01-01 00:00:00 coffer: hello"));
        assert_eq!(shown("@10 x", Some(11), false), None);
        assert_eq!(shown("@10 coffer-event {\"kind\":\"a\"}", None, true).as_deref(), Some("{\"kind\":\"a\"}"));
        assert_eq!(shown("@10 plain", None, true), None);
        assert_eq!(shown("no stamp", Some(5), false).as_deref(), Some("no stamp"));
    }
}
