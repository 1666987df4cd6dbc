//! Asking a person for a passphrase: on the terminal with echo off, so it
//! never shows on screen or in a recording of the session; from a pipe,
//! one line as it comes.

use std::io::{BufRead, IsTerminal};

use anyhow::Context;
use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};

/// Asks for `what` on standard error and reads one line from standard input.
pub(crate) fn passphrase(what: &str) -> anyhow::Result<coffer_pgp::Password> {
    eprint!("{what} (or set PASSPHRASE): ");
    let stdin = std::io::stdin();
    let quiet = stdin
        .is_terminal()
        .then(|| EchoOff::new(&stdin))
        .transpose()
        .context("turning the terminal's echo off")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    drop(quiet);
    read.context("reading the passphrase")?;
    Ok(coffer_pgp::Password::from(
        line.trim_end_matches(['\n', '\r']),
    ))
}

/// The terminal's echo, off until dropped.
struct EchoOff<'a> {
    stdin: &'a std::io::Stdin,
    before: rustix::termios::Termios,
}

impl<'a> EchoOff<'a> {
    fn new(stdin: &'a std::io::Stdin) -> rustix::io::Result<Self> {
        let before = tcgetattr(stdin)?;
        let mut quiet = before.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        // Still echo the newline, so the answer ends as typed.
        quiet.local_modes.insert(LocalModes::ECHONL);
        tcsetattr(stdin, OptionalActions::Flush, &quiet)?;
        Ok(EchoOff { stdin, before })
    }
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        let _ = tcsetattr(self.stdin, OptionalActions::Flush, &self.before);
    }
}
