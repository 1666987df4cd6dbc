//! The SFTP server of one channel.
//!
//! Threads, not tasks: one reader splits packets off the input, lanes do the
//! file work, one writer sends replies (`lanes`). Each request is decoded
//! and routed by `dispatch` to the module that does its work: `files`
//! (open, write, close, setstat: the quota and profile rules for a file's
//! contents), `names` (remove, rename, mkdir, links), `listing`
//! (directories), `inspect` (stat and the like) and `read` (downloads).
//! `access` and `created` say what an append-only key may still change;
//! `session`, `handles`, `buffers` and `pipes` hold what the lanes share.
//!
//! When the output is a pipe (the worker's stdout), READ moves file pages
//! into a pipe of its own with splice(2) and the writer moves them on to the
//! output: a download's bytes are never copied through this process.

mod access;
mod buffers;
mod created;
mod dispatch;
mod files;
mod handles;
mod inspect;
mod lanes;
mod listing;
mod names;
mod pipes;
mod read;
mod reply;
mod session;
#[cfg(test)]
mod test_session;

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use buffers::BufferPool;
use pipes::{PIPE_GROW_LIMIT, PipePool};
pub use session::SessionContext;
use session::Session;

/// Serves SFTP on `input`/`output` until the client closes its side.
/// Uploads that were never closed are discarded, never left looking complete.
pub fn serve(ctx: SessionContext, input: impl Read, output: impl Write + Send + 'static) -> io::Result<()> {
    serve_with(ctx, input, output, None, 0)
}

/// [`serve`] onto a file descriptor; when it is a pipe, downloads are
/// spliced into it rather than copied.
pub fn serve_fd(ctx: SessionContext, input: impl Read, output: File) -> io::Result<()> {
    let is_pipe = rustix::fs::fstat(&output).is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Fifo);
    let splice_to = if is_pipe { Some(OwnedFd::from(output.try_clone()?)) } else { None };
    serve_with(ctx, input, output, splice_to, PIPE_GROW_LIMIT)
}

fn serve_with(
    ctx: SessionContext,
    input: impl Read,
    output: impl Write + Send + 'static,
    splice_to: Option<OwnedFd>,
    pipe_grow_limit: usize,
) -> io::Result<()> {
    let pipes = splice_to.as_ref().map(|_| PipePool::new(pipe_grow_limit));
    let session = Arc::new(Session::new(ctx, BufferPool::new(lanes::QUEUED_PACKETS), pipes));
    let result = lanes::run(&session, input, output, splice_to);
    // Whatever is still open was never closed by the client: drop it, which
    // discards unfinished uploads.
    let leftover = files::discard_unclosed(&session);
    if leftover > 0 {
        log::info!("user {}: session ended with {leftover} handle(s) open; unfinished uploads discarded", session.user);
    }
    result
}
