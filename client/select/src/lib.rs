//! Which files a backup takes, and in what order.
//!
//! - [`Glob`]: duplicity's `--exclude` patterns (`?`, `*`, `**`, `[…]`),
//!   matched against whole paths as bytes; a pattern that matches a
//!   directory excludes everything in it.
//! - [`Selection`]: the exclusion rules of one run (globs,
//!   `--exclude-if-present NAME`, `--exclude-caches`).
//! - [`Walk`]: the source tree in duplicity's order (each directory's
//!   entries sorted bytewise, depth first, a directory before its
//!   contents), skipping what the selection excludes, with every unreadable
//!   directory reported by path while the walk goes on.

mod glob;
mod selection;
mod walk;

pub use glob::{Glob, GlobError};
pub use selection::{CACHEDIR_TAG, Selection};
pub use walk::{Entry, Walk, WalkError};
