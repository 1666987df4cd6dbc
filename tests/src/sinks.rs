//! The host side of alert tests: a real SMTP server (aiosmtpd) and an HTTP
//! server on loopback (`tests/clients/alert_sinks.py`) recording what they
//! receive. The QEMU guest reaches them as 10.0.2.2.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The ports the test image's alert config names (see scripts/build-test-image).
pub const SMTP_PORT: u16 = 47025;
pub const HTTP_PORT: u16 = 47080;

pub struct AlertSinks {
    child: Child,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl AlertSinks {
    pub fn start(smtp_port: u16, http_port: u16) -> Self {
        Self::start_with_tls(smtp_port, http_port, None)
    }

    /// With `Some((cert, key))` the SMTP server requires STARTTLS with that certificate.
    pub fn start_with_tls(smtp_port: u16, http_port: u16, tls: Option<(&std::path::Path, &std::path::Path)>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("received.jsonl");
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/alert_sinks.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .args([smtp_port.to_string(), http_port.to_string()])
            .arg(&out)
            .args(tls.iter().flat_map(|(cert, key)| [cert.as_os_str(), key.as_os_str()]))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start alert_sinks.py (python3-aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("ready line");
        assert_eq!(line.trim(), "ready", "alert_sinks.py did not start (ports {smtp_port}/{http_port} in use?)");
        AlertSinks { child, out, _dir: dir }
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits for a message on `sink` (`smtp` or `http`) whose text contains `needle`.
    pub fn wait_for(&self, sink: &str, needle: &str, within: Duration) -> Value {
        self.wait_for_where(sink, needle, within, |_| true)
    }

    pub fn wait_for_where(&self, sink: &str, needle: &str, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            if let Some(v) = self.received().into_iter().find(|v| v["sink"] == sink && v.to_string().contains(needle) && pred(v)) {
                return v;
            }
            assert!(Instant::now() < deadline, "no {sink} message containing {needle:?} within {within:?}; got {:?}", self.received());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for AlertSinks {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
