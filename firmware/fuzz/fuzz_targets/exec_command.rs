//! Exec request command lines: shell-word splitting and command recognition.
#![no_main]

use coffer_command::{ExecCommand, words};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = words(data);
    let _ = ExecCommand::parse(data);
});
