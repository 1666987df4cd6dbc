//! Where the appliance's words go: every line (the supervisor's own log,
//! the services' output, `coffer-event {json}` lines) is written whole to
//! the serial console and to a size-capped log under `/run`, which admin
//! commands read later. One lock keeps lines from different threads whole.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use coffer_runtime::event::Event;

/// The log file rotates to `<name>.1` beyond this size, so it never fills RAM.
const RING_BYTES: u64 = 1 << 20;

struct Ring {
    path: PathBuf,
    file: File,
    bytes: u64,
}

static RING: OnceLock<Mutex<Option<Ring>>> = OnceLock::new();

fn ring() -> &'static Mutex<Option<Ring>> {
    RING.get_or_init(|| Mutex::new(None))
}

/// Starts copying lines into `path` (once `/run` is mounted).
pub(crate) fn open_log(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let bytes = file.metadata()?.len();
    if let Ok(mut guard) = ring().lock() {
        *guard = Some(Ring { path: path.to_path_buf(), file, bytes });
    }
    Ok(())
}

/// Writes one line to the console and the log.
pub(crate) fn line(text: &str) {
    let Ok(mut guard) = ring().lock() else { return };
    let mut out = std::io::stdout().lock();
    // The console is best effort: a missing or full console must not stop the appliance.
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
    if let Some(ring) = guard.as_mut() {
        if ring.bytes > RING_BYTES {
            let old = ring.path.with_extension("1");
            let _ = std::fs::rename(&ring.path, old);
            if let Ok(file) = OpenOptions::new().create(true).append(true).open(&ring.path) {
                ring.file = file;
                ring.bytes = 0;
            }
        }
        // The log file's lines carry the time, for `logs --since`.
        let stamped = format!("{} {text}", log_time());
        if writeln!(ring.file, "{stamped}").is_ok() {
            ring.bytes += stamped.len() as u64 + 1;
        }
    }
}

/// `@SECONDS` since the epoch: the prefix of every line in the log file.
fn log_time() -> String {
    format!("@{}", coffer_runtime::clock::now())
}

/// Writes the event's line (`coffer-event {"kind":KIND, ...fields}`,
/// formatted by `coffer_runtime::event`) to the console and the log.
pub fn event(event: &Event) {
    line(&coffer_runtime::event::line(event));
}

/// A `Write` for the binary's logger: buffers until a newline, then writes the line whole.
#[derive(Default)]
pub struct LineWriter {
    pending: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let rest = self.pending.split_off(end + 1);
            let text = String::from_utf8_lossy(&self.pending[..end]).into_owned();
            self.pending = rest;
            line(&text);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Commands accepted on the serial console when the kernel command line has
/// `coffer.debug=1` (test images): they let a test provoke failures that a
/// real box meets by accident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DebugCommand {
    /// SIGKILL a service's process group.
    Kill(String),
    /// Stop the main loop (and so the watchdog pets) for good.
    Hang,
    PowerOff,
    Reboot,
}

impl DebugCommand {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let mut words = text.split_whitespace();
        let cmd = match (words.next()?, words.next()) {
            ("kill", Some(name)) => DebugCommand::Kill(name.to_string()),
            ("hang", None) => DebugCommand::Hang,
            ("poweroff", None) => DebugCommand::PowerOff,
            ("reboot", None) => DebugCommand::Reboot,
            _ => return None,
        };
        words.next().is_none().then_some(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_commands() {
        assert_eq!(DebugCommand::parse("kill endpoint\n"), Some(DebugCommand::Kill("endpoint".into())));
        assert_eq!(DebugCommand::parse(" hang "), Some(DebugCommand::Hang));
        assert_eq!(DebugCommand::parse("hang now"), None);
        assert_eq!(DebugCommand::parse("kill"), None);
        assert_eq!(DebugCommand::parse("rm -rf /"), None);
        assert_eq!(DebugCommand::parse(""), None);
    }

    #[test]
    fn log_file_gets_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/log");
        open_log(&path).unwrap();
        let mut w = LineWriter::default();
        w.write_all(b"first half ").unwrap();
        w.write_all(b"and rest\nsecond\n").unwrap();
        event(&Event::ServerStopped);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().map(|l| l.split_once(' ').unwrap().1).collect();
        assert!(text.lines().all(|l| l.starts_with('@')), "every line has its time: {text}");
        assert_eq!(&lines[..2], ["first half and rest", "second"], "{text}");
        assert!(text.contains("coffer-event {\"kind\":\"server.stopped\"}\n"), "{text}");
    }
}
