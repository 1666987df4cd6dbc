//! Asking the running server to recount a user: a `quota/NAME.rescan` file
//! that `serve`'s quota housekeeping picks up within seconds.

use anyhow::{Context, Result};
use coffer_config::QuotaRecord;

use crate::state::State;

/// Asks a running server to recount `user`.
pub(crate) fn request(state: &State, user: &str) -> Result<()> {
    let qdir = state.paths.quota_dir();
    std::fs::create_dir_all(&qdir).with_context(|| format!("creating {}", qdir.display()))?;
    std::fs::write(QuotaRecord::rescan_request(&qdir, user), b"").with_context(|| format!("writing a rescan request in {}", qdir.display()))?;
    Ok(())
}
