//! What one SFTP session works with: the context it is given, and the
//! state its lanes share.

use std::io;

use coffer_sftp_proto::{Reply, StatusCode};
use coffer_storage::{FileId, JailPath, UserJail};

use super::buffers::BufferPool;
use super::created::CreatedFiles;
use super::handles::Handles;
use super::pipes::PipePool;
use crate::profile::Profile;
use crate::quota::QuotaGate;

/// Everything a session worker is given: whose area, under which key
/// profile, accounted against which ledger.
pub struct SessionContext {
    pub jail: UserJail,
    pub user: String,
    pub profile: Profile,
    pub quota: Box<dyn QuotaGate>,
}

/// State shared by the lanes of one session.
pub(super) struct Session {
    pub(super) jail: UserJail,
    pub(super) user: String,
    pub(super) profile: Profile,
    pub(super) quota: Box<dyn QuotaGate>,
    /// What an append-only session created and may still change.
    pub(super) created: CreatedFiles,
    pub(super) handles: Handles,
    pub(super) buffers: BufferPool,
    /// Present when the output is a pipe that READ can splice into.
    pub(super) pipes: Option<PipePool>,
}

impl Session {
    pub(super) fn new(ctx: SessionContext, buffers: BufferPool, pipes: Option<PipePool>) -> Self {
        Session {
            jail: ctx.jail,
            user: ctx.user,
            profile: ctx.profile,
            quota: ctx.quota,
            created: CreatedFiles::default(),
            handles: Handles::new(),
            buffers,
            pipes,
        }
    }

    /// Did this session create the inode that `p` names (not following a final link)?
    pub(super) fn created_here(&self, p: &JailPath) -> bool {
        self.jail.identity(p).is_ok_and(|id| self.created.holds(&id))
    }

    /// Records a file or directory this session made. Only append-only
    /// sessions ask later; the others keep nothing.
    pub(super) fn mark_created(&self, id: io::Result<FileId>) {
        if self.profile != Profile::AppendOnly {
            return;
        }
        match id {
            Ok(id) => self.created.record(id),
            Err(e) => log::warn!("user {}: cannot record a file this session created ({e}); it cannot be changed later", self.user),
        }
    }

    /// The refusal of `what` under this key's profile.
    pub(super) fn deny(&self, id: u32, what: &str) -> Reply {
        Reply::status(id, StatusCode::PermissionDenied, self.profile.denied(what))
    }
}
