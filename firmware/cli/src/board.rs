//! The board the image installed (`/etc/coffer/board.toml`, a
//! `coffer_board::Board`): the names of the disk bays and of the status
//! LED, and the board's name. Off the appliance the file is missing and
//! the defaults apply.


use anyhow::Result;
use coffer_board::Board;
use coffer_raid::RaidPolicy;
use coffer_runtime::Paths;

/// The installed board, or `None` off the appliance. A file the build
/// checked cannot fail here; if it does anyway, the services keep to the
/// defaults rather than stop, and say why.
fn installed() -> Option<Board> {
    let path = Paths::appliance().board();
    if !path.exists() {
        return None;
    }
    Board::read(&path).inspect_err(|e| log::warn!("{e}; using the default bays and no status LED")).ok()
}

/// The bays in the order of the mirror's member slots.
pub(crate) fn bays() -> Vec<String> {
    installed().map_or_else(|| RaidPolicy::default().bays, |board| board.disks.bays)
}

/// The status LED's name (or `*suffix`), if the board has one.
pub(crate) fn status_led() -> Option<String> {
    installed().and_then(|board| board.status_led().map(str::to_string))
}

/// The installed board's name (update bundles are made for one board).
pub(crate) fn name(paths: &Paths) -> Result<String> {
    Ok(Board::read(&paths.board())?.name)
}
