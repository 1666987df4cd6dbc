//! One session channel of one authenticated user.
//!
//! The SSH front end starts a session worker process per channel (under the
//! user's own uid when it runs as root), confines it with Landlock, and wires
//! the channel to the worker's stdin/stdout/stderr. The worker runs either
//! [`sftp::serve`] or [`exec::run`] over a [`coffer_storage::UserJail`].
//! Both are plain blocking code over `Read`/`Write`, so tests drive them
//! through pipes without any SSH.

pub mod confine;
pub mod exec;
pub mod profile;
pub mod quota;
pub mod sftp;
mod status;

pub use status::io_status;
