//! The files an append-only session created itself, which it alone may
//! still change, rename or delete.
//!
//! Filed by (device, inode number) and matched on the full [`FileId`]:
//! entries go when the session unlinks or replaces the file; one that
//! another session removed stays, but the identity of a later file that
//! reuses the number never matches it.

use std::collections::HashMap;
use std::sync::Mutex;

use coffer_storage::FileId;

#[derive(Default)]
pub(super) struct CreatedFiles(Mutex<HashMap<(u64, u64), FileId>>);

impl CreatedFiles {
    /// Is `id` exactly a file this session recorded?
    pub(super) fn holds(&self, id: &FileId) -> bool {
        self.0.lock().is_ok_and(|c| c.get(&id.key()) == Some(id))
    }

    pub(super) fn record(&self, id: FileId) {
        if let Ok(mut c) = self.0.lock() {
            c.insert(id.key(), id);
        }
    }

    /// Forgets the inode `key` named before it was unlinked or replaced.
    pub(super) fn forget(&self, key: (u64, u64)) {
        if let Ok(mut c) = self.0.lock() {
            c.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ino: u64, generation: u32) -> FileId {
        FileId { dev: 7, ino, btime: Some((1_700_000_000, 5)), generation: Some(generation) }
    }

    /// A later file that reuses a recorded inode number is not the recorded
    /// file; forgetting a number forgets its file.
    #[test]
    fn identities_match_whole_and_are_forgotten() {
        let created = CreatedFiles::default();
        created.record(id(10, 1));
        assert!(created.holds(&id(10, 1)));
        assert!(!created.holds(&id(10, 2)), "same number, new generation");
        assert!(!created.holds(&FileId { btime: Some((1_700_000_001, 0)), ..id(10, 1) }), "same number, later birth");
        assert!(!created.holds(&id(11, 1)));
        created.forget((7, 10));
        assert!(!created.holds(&id(10, 1)));
    }
}
