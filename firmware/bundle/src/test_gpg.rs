//! A throwaway GnuPG for interop tests: what the box writes must be what
//! GnuPG 2.2 (Debian 12) reads, and the other way round. Tests skip, with a
//! note, where /usr/bin/gpg is absent.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A throwaway GnuPG home; the agent it starts is stopped on drop.
pub(crate) struct Gpg {
    home: tempfile::TempDir,
}

impl Gpg {
    pub(crate) fn new() -> Option<Gpg> {
        if !Path::new("/usr/bin/gpg").exists() {
            eprintln!("note: /usr/bin/gpg is absent; skipping the GnuPG interop test");
            return None;
        }
        Some(Gpg {
            home: tempfile::tempdir().expect("tempdir"),
        })
    }

    pub(crate) fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = Command::new("/usr/bin/gpg")
            .env("GNUPGHOME", self.home.path())
            .args(["--batch", "--no-tty", "--pinentry-mode", "loopback"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gpg");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin)
            .expect("feed gpg");
        let out = child.wait_with_output().expect("gpg output");
        assert!(
            out.status.success(),
            "gpg {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "all"])
            .status();
    }
}
