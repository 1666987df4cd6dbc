//! The merged `board.toml`: its keys as fields. The top level comes from
//! the boards' `board.toml` (the board's keys over `board/common/`'s, the
//! kernel command lines joined), `[disks]` from `disks.toml` and `[leds]`
//! from `leds.toml` (the board's file, or `board/common/`'s if it has none).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{BoardError, validate};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Board {
    /// The board's directory name under `board/`; update bundles name it.
    pub name: String,
    /// The CPU architecture as Rust names it (`x86_64`, `i686`).
    pub arch: String,
    /// The architecture as Debian names it, for the packages the tools come from.
    pub debian_arch: String,
    pub kernel_package: String,
    pub rust_target: String,
    /// A CPU older than the target's baseline: the standard library is rebuilt for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rust_cpu: Option<String>,
    /// The C compiler wrapper for `rust-cpu`, relative to the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c_compiler: Option<String>,
    pub bios: bool,
    pub uefi: bool,
    /// The kernel command line, common part first.
    pub cmdline: String,
    /// The watchdog driver the board's `modules` load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchdog: Option<String>,
    pub disks: Disks,
    pub leds: Leds,
}

/// The data bays (`disks.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Disks {
    /// Bay names in the order of the mirror's member slots.
    pub bays: Vec<String>,
    /// The bus the data disks sit on (a note for people; nothing reads it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
}

/// The front-panel LEDs (`leds.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Leds {
    /// The LED that shows the mirror's health: a kernel LED class name, or
    /// `*suffix` for a name whose prefix depends on probe order; empty when
    /// the board has none.
    #[serde(default)]
    pub status: String,
}

impl Board {
    /// Parses and validates a merged board file; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Board, BoardError> {
        let board: Board = toml::from_str(text).map_err(|e| BoardError::Syntax { path: path.to_path_buf(), message: e.to_string() })?;
        let problems = validate::problems(&board);
        if problems.is_empty() { Ok(board) } else { Err(BoardError::Invalid { path: path.to_path_buf(), problems }) }
    }

    /// Reads, parses and validates the board file at `path`.
    pub fn read(path: &Path) -> Result<Board, BoardError> {
        let text = std::fs::read_to_string(path).map_err(|error| BoardError::Read { path: path.to_path_buf(), error })?;
        Board::parse(&text, path)
    }

    /// The status LED's name (or `*suffix`), if the board has one.
    pub fn status_led(&self) -> Option<&str> {
        Some(self.leds.status.as_str()).filter(|s| !s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QEMU: &str = r#"
name = "qemu-x86_64"
arch = "x86_64"
debian-arch = "amd64"
kernel-package = "linux-image-amd64"
rust-target = "x86_64-unknown-linux-musl"
bios = true
uefi = true
cmdline = "panic=10 console=ttyS0,115200"
watchdog = "i6300esb"

[disks]
bays = ["left", "right"]
bus = "virtio"

[leds]
status = "*::capslock"
"#;

    fn error(text: &str) -> String {
        Board::parse(text, Path::new("out/board.toml")).expect_err("refused").to_string()
    }

    #[test]
    fn a_merged_board_parses_and_round_trips() {
        let board = Board::parse(QEMU, Path::new("board.toml")).expect("valid");
        assert_eq!(board.disks.bays, ["left", "right"]);
        assert_eq!(board.status_led(), Some("*::capslock"));
        assert_eq!(board.watchdog.as_deref(), Some("i6300esb"));
        let again = toml::to_string(&board).expect("serialises");
        assert_eq!(Board::parse(&again, Path::new("again.toml")).expect("valid"), board);
    }

    #[test]
    fn an_empty_status_led_is_none() {
        let board = Board::parse(&QEMU.replace("*::capslock", ""), Path::new("b")).expect("valid");
        assert_eq!(board.status_led(), None);
        let board = Board::parse(&QEMU.replace("status = \"*::capslock\"", ""), Path::new("b")).expect("valid");
        assert_eq!(board.status_led(), None);
    }

    #[test]
    fn errors_name_the_file_the_key_and_what_is_wrong() {
        let typo = error(&QEMU.replace("status =", "staus ="));
        assert!(typo.starts_with("out/board.toml: ") && typo.contains("unknown field `staus`") && typo.contains("expected `status`"), "{typo}");
        let top = error(&QEMU.replace("watchdog =", "watchdgo ="));
        assert!(top.contains("unknown field `watchdgo`"), "{top}");
        let missing = error(&QEMU.replace("rust-target = \"x86_64-unknown-linux-musl\"\n", ""));
        assert!(missing.contains("missing field `rust-target`"), "{missing}");
        let wrong_type = error(&QEMU.replace("bios = true", "bios = \"yes\""));
        assert!(wrong_type.contains("bios") && wrong_type.contains("line 7"), "{wrong_type}");
        let invalid = error(&QEMU.replace("\"right\"", "\"left\""));
        assert_eq!(invalid, "out/board.toml: disks.bays: \"left\" is named twice");
    }

    #[test]
    fn a_missing_file_is_a_read_error() {
        let e = Board::read(Path::new("/nonexistent/board.toml")).expect_err("missing");
        assert!(matches!(&e, BoardError::Read { error, .. } if error.kind() == std::io::ErrorKind::NotFound), "{e}");
    }
}
