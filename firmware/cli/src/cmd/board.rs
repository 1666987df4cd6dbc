//! `coffer board check FILE`: the image build runs it, with the binary it
//! is about to install, on the merged board file, so a typo in `board/*/`
//! fails the build rather than the box.

use std::path::Path;

use anyhow::Result;
use coffer_board::Board;

/// `coffer board check FILE`: parses and validates a merged board file.
pub(crate) fn check(file: &Path) -> Result<()> {
    let board = Board::read(file)?;
    println!("{}: board {} is valid (bays {}; status LED {})", file.display(), board.name, board.disks.bays.join(", "), board.status_led().unwrap_or("none"));
    Ok(())
}
