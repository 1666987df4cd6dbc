//! A user's data area as the backup endpoint sees it.
//!
//! [`UserJail`] holds a directory file descriptor for the user's area and
//! resolves every client path with `openat2(RESOLVE_IN_ROOT)`, so `..`,
//! absolute paths and symlinks (whoever made them, whenever they appear) are
//! resolved by the kernel *inside* the area: there is no check-then-use
//! window to race. Final path components are handled with `*at` calls on a
//! parent descriptor that never follow a symlink. Uploads go to a hidden
//! temporary name and reach their final name only on [`Upload::commit`],
//! after an fsync, so a cut-off upload never looks complete.
//!
//! Later layers (quotas, append-only profiles) wrap this type; it is the only
//! place the endpoint touches user files.

mod jail;
mod path;
mod upload;

pub use jail::{DirEntry, DirStream, FileId, Meta, NEW_DIR_BYTES, UserJail};
pub use path::{JailPath, PathError, UPLOAD_PREFIX};
pub use upload::Upload;
