//! A session's place in the endpoint's limits and in the live registry,
//! taken when its process starts and given back when the session ends.

use std::sync::Arc;

use coffer_config::KeyProfile;
use tokio::sync::watch;

use crate::admission::Refusal;
use crate::endpoint::Shared;

/// One running session, counted until dropped.
pub(crate) struct WorkerSlot {
    shared: Arc<Shared>,
    user: String,
    conn: u64,
    id: u64,
    /// Turns true when a change to users.toml no longer allows the session.
    pub(crate) stop: watch::Receiver<bool>,
}

impl WorkerSlot {
    /// Counts a session of `user` on connection `conn`, or refuses it when
    /// a session limit is reached.
    pub(crate) fn take(shared: &Arc<Shared>, user: &str, conn: u64, profile: KeyProfile) -> Result<Self, Refusal> {
        shared.occupancy().start_worker(user)?;
        let (id, stop) = shared.live.start_session(conn, profile);
        Ok(WorkerSlot { shared: Arc::clone(shared), user: user.into(), conn, id, stop })
    }
}

impl Drop for WorkerSlot {
    fn drop(&mut self) {
        self.shared.occupancy().end_worker(&self.user);
        self.shared.live.end_session(self.conn, self.id);
    }
}
