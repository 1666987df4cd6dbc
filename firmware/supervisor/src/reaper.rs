//! The single owner of `waitpid`. PID 1 inherits every orphan, so one
//! thread reaps all children; a process started through [`Reaper::spawn`]
//! gets its exit status delivered to whoever started it, and nobody else
//! ever calls `wait` (which would steal statuses). Spawning happens under
//! the table lock, so a child that exits at once is still registered first.

use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Sender, channel};

use rustix::process::{WaitOptions, WaitStatus, wait};

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exit {
    pub(crate) pid: i32,
    pub(crate) code: Option<i32>,
    pub(crate) signal: Option<i32>,
}

impl Exit {
    fn from_status(pid: i32, status: WaitStatus) -> Self {
        Exit { pid, code: status.exit_status(), signal: status.terminating_signal() }
    }

    pub(crate) fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub(crate) fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit status {c}"),
            (_, Some(s)) => format!("signal {s}"),
            _ => "unknown status".into(),
        }
    }
}

/// Output and status of a helper program (mdadm, mke2fs, udhcpc ...).
#[derive(Debug)]
pub(crate) struct HelperOutput {
    pub(crate) exit: Exit,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

#[derive(Default)]
pub(crate) struct Reaper {
    waiting: Mutex<HashMap<i32, Sender<Exit>>>,
}

impl Reaper {
    /// Starts `cmd` and registers where its exit goes.
    pub(crate) fn spawn(&self, cmd: &mut Command, notify: Sender<Exit>) -> std::io::Result<Child> {
        let mut waiting = self.waiting.lock().map_err(|_| std::io::Error::other("process table poisoned"))?;
        let child = cmd.spawn()?;
        waiting.insert(child.id() as i32, notify);
        Ok(child)
    }

    /// Collects every exited child; returns the orphans nobody registered.
    pub(crate) fn reap(&self) -> Vec<Exit> {
        let Ok(mut waiting) = self.waiting.lock() else { return Vec::new() };
        let mut orphans = Vec::new();
        // `wait`, not `waitpid(None)`: the latter is pid 0, only our own process group.
        while let Ok(Some((pid, status))) = wait(WaitOptions::NOHANG) {
            if !(status.exited() || status.signaled()) {
                continue;
            }
            let exit = Exit::from_status(pid.as_raw_nonzero().get(), status);
            match waiting.remove(&exit.pid) {
                Some(tx) => {
                    let _ = tx.send(exit);
                }
                None => orphans.push(exit),
            }
        }
        orphans
    }

    /// Runs a helper to completion and returns its output. The reaper thread
    /// must be running (it delivers the exit status).
    pub(crate) fn run(&self, program: &str, args: &[&str]) -> std::io::Result<HelperOutput> {
        let (tx, rx) = channel();
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = self.spawn(&mut cmd, tx)?;
        let stderr_pipe = child.stderr.take();
        let stderr_reader = std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = stderr_pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        });
        let mut stdout = String::new();
        if let Some(mut pipe) = child.stdout.take() {
            let _ = pipe.read_to_string(&mut stdout);
        }
        let stderr = stderr_reader.join().unwrap_or_default();
        let exit = rx.recv().map_err(|_| std::io::Error::other(format!("{program}: exit status lost")))?;
        Ok(HelperOutput { exit, stdout, stderr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};

    /// Services run in their own process group; their exits must still reach the reaper.
    #[test]
    #[allow(clippy::zombie_processes, reason = "the reaper waits for it, which is what is tested")]
    fn reaps_children_in_other_process_groups() {
        let reaper = Reaper::default();
        let (tx, rx) = channel();
        let child = reaper.spawn(Command::new("sh").args(["-c", "exit 3"]).process_group(0), tx).unwrap();
        let pid = child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(10);
        let exit = loop {
            reaper.reap();
            if let Ok(exit) = rx.try_recv() {
                break exit;
            }
            assert!(Instant::now() < deadline, "exit never delivered");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(exit, Exit { pid, code: Some(3), signal: None });
    }
}
