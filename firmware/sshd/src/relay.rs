//! The relay between a channel and its session process: client data into
//! the process's stdin, its stdout and stderr back, then its exit status.
//! Shutdown and revocation end a session by closing its stdin; a revoked
//! one is killed if it does not end in time. Output for a client terminal
//! in raw mode gets CR LF line ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use russh::server::Msg;
use russh::{Channel, ChannelMsg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::slot::WorkerSlot;

/// Pipe buffer size between the front end and a worker.
const PIPE_SIZE: usize = 1024 * 1024;

/// How long a worker whose session was revoked may take to end after its
/// stdin closed (finishing a request in progress) before it is killed.
const REVOKED_WORKER_GRACE: Duration = Duration::from_secs(1);

/// What the process's output is and where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// An SFTP worker: stdout is the protocol, stderr is its log.
    Sftp,
    /// A command: stdout and stderr go to the client as they are.
    Command,
    /// A command for a client terminal in raw mode: CR LF line ends, and a
    /// lone Ctrl-C byte is delivered as SIGINT.
    Terminal,
}

/// Relays between `channel` and `child` in a task of its own, counted in
/// `relays` until it ends; `slot` is given back then.
pub(crate) fn spawn_relay(
    channel: Channel<Msg>,
    child: tokio::process::Child,
    user: String,
    output: Output,
    shutdown: watch::Receiver<bool>,
    slot: WorkerSlot,
    relays: &Arc<RelayCount>,
) {
    let guard = relays.start();
    tokio::spawn(async move {
        relay(channel, child, user, output, shutdown, slot).await;
        drop(guard);
    });
}

/// Moves bytes between the channel and the worker until both are done, then
/// reports the worker's exit status. On shutdown the worker's stdin is closed,
/// which makes it discard unfinished uploads and exit. A session that
/// users.toml no longer allows is ended the same way, and killed if its
/// worker does not end within [`REVOKED_WORKER_GRACE`].
async fn relay(
    channel: Channel<Msg>,
    mut child: tokio::process::Child,
    user: String,
    output: Output,
    mut shutdown: watch::Receiver<bool>,
    mut slot: WorkerSlot,
) {
    let terminal = output == Output::Terminal;
    let (mut reader, writer) = channel.split();
    let writer = Arc::new(writer);
    let mut stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    // Larger pipes mean fewer wake-ups of the worker per megabyte.
    if let Some(s) = &stdin {
        let _ = rustix::pipe::fcntl_setpipe_size(s, PIPE_SIZE);
    }
    if let Some(s) = &stdout {
        let _ = rustix::pipe::fcntl_setpipe_size(s, PIPE_SIZE);
    }

    let out_writer = Arc::clone(&writer);
    let stdout_task = tokio::spawn(async move {
        let Some(mut stdout) = stdout else { return };
        let mut buf = BytesMut::with_capacity(PIPE_SIZE);
        loop {
            buf.reserve(PIPE_SIZE);
            match stdout.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let data = if terminal { crlf(&buf.split()) } else { buf.split().freeze() };
                    if out_writer.data_bytes(data).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    let err_writer = Arc::clone(&writer);
    let err_user = user.clone();
    let stderr_task = tokio::spawn(async move {
        let Some(mut stderr) = stderr else { return };
        let mut buf = vec![0u8; 16 * 1024];
        let mut pending = Vec::new();
        loop {
            match stderr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) if output != Output::Sftp => {
                    let data = if terminal { crlf(&buf[..n]) } else { Bytes::copy_from_slice(&buf[..n]) };
                    if err_writer.extended_data_bytes(1, data).await.is_err() {
                        break;
                    }
                }
                Ok(n) => {
                    // An SFTP worker's stderr is its log; pass it on line by line.
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(pos) = pending.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=pos).collect();
                        log::info!("[{err_user} sftp] {}", String::from_utf8_lossy(&line).trim_end());
                    }
                }
            }
        }
    });

    // Channel → worker stdin until the client's EOF; the worker's exit (or
    // shutdown) ends the session either way.
    let mut reading = true;
    let mut stopping = false;
    let mut watching_access = true;
    // Armed only when a revoked worker is given its grace.
    let kill_at = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(kill_at);
    let mut kill_armed = false;
    let exit = loop {
        tokio::select! {
            msg = reader.wait(), if reading => {
                // Gather what has already arrived into one write to the worker.
                let mut batch = BytesMut::new();
                let mut next = msg;
                let mut ended = false;
                loop {
                    match next {
                        Some(ChannelMsg::Data { data }) => batch.extend_from_slice(&data),
                        Some(ChannelMsg::Eof) | Some(ChannelMsg::Close) | None => {
                            ended = true;
                            break;
                        }
                        Some(_) => {}
                    }
                    if batch.len() >= PIPE_SIZE {
                        break;
                    }
                    match reader.wait().now_or_never() {
                        Some(m) => next = m,
                        None => break,
                    }
                }
                if terminal && batch.as_ref() == [0x03] {
                    // Ctrl-C typed at a client terminal in raw mode (a lone byte,
                    // not one inside piped data): deliver it as SIGINT.
                    if let Some(pid) = child.id().and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
                    }
                }
                if !batch.is_empty() {
                    let ok = match stdin.as_mut() {
                        Some(s) => s.write_all(&batch).await.is_ok(),
                        None => false,
                    };
                    if !ok {
                        stdin = None;
                    }
                }
                if ended {
                    stdin = None;
                    reading = false;
                }
            },
            status = child.wait() => break status,
            changed = slot.stop.changed(), if watching_access => {
                if changed.is_err() {
                    // The registry forgot the session (its connection ended); nothing will revoke it now.
                    watching_access = false;
                } else if *slot.stop.borrow() {
                    log::info!("user {user}: ending a session its key no longer allows");
                    watching_access = false;
                    stdin = None;
                    reading = false;
                    stopping = true;
                    kill_at.as_mut().reset(tokio::time::Instant::now() + REVOKED_WORKER_GRACE);
                    kill_armed = true;
                }
            }
            () = &mut kill_at, if kill_armed => {
                kill_armed = false;
                log::warn!("user {user}: killing a revoked session's worker that did not end");
                let _ = child.start_kill();
            }
            _ = shutdown.changed(), if !stopping => {
                log::info!("user {user}: closing session for shutdown");
                stdin = None;
                reading = false;
                stopping = true;
            }
        }
    };
    drop(stdin);
    let status = match exit {
        Ok(s) => s.code().map_or(255, |c| u32::try_from(c).unwrap_or(255)),
        Err(e) => {
            log::warn!("user {user}: waiting for worker failed: {e}");
            255
        }
    };
    let _ = stdout_task.await;
    let _ = stderr_task.await;
    let _ = writer.exit_status(status).await;
    let _ = writer.eof().await;
    let _ = writer.close().await;
}

/// Line ends for a client terminal in raw mode, which moves down on LF
/// without returning to the first column.
fn crlf(data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32);
    for &b in data {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    Bytes::from(out)
}

/// Sends `msg` on stderr, then the exit status, and closes the channel.
pub(crate) fn finish_with_message(channel: Channel<Msg>, msg: String, status: u32) {
    tokio::spawn(async move {
        let _ = channel.extended_data_bytes(1, Bytes::from(msg)).await;
        let _ = channel.exit_status(status).await;
        let _ = channel.eof().await;
        let _ = channel.close().await;
    });
}

/// Relays running on one connection, so shutdown can wait for their workers.
#[derive(Default)]
pub(crate) struct RelayCount {
    active: AtomicUsize,
    idle: tokio::sync::Notify,
}

impl RelayCount {
    fn start(self: &Arc<Self>) -> RelayGuard {
        self.active.fetch_add(1, Ordering::SeqCst);
        RelayGuard(Arc::clone(self))
    }

    /// Returns once no relay of the connection runs.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.active.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Counts one relay as running until dropped.
struct RelayGuard(Arc<RelayCount>);

impl Drop for RelayGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_lines_end_in_cr_lf() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"no newline", b"no newline"),
            (b"a\nb\n", b"a\r\nb\r\n"),
            (b"\n\n", b"\r\n\r\n"),
            // Output is not inspected: a CR already there stays, before the added one.
            (b"x\r\n", b"x\r\r\n"),
        ];
        for (input, expect) in cases {
            assert_eq!(crlf(input).as_ref(), *expect, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn waiting_for_idle_returns_once_every_relay_ended() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let relays = Arc::new(RelayCount::default());
            relays.wait_idle().await;
            let first = relays.start();
            let second = relays.start();
            let waiting = tokio::spawn({
                let relays = Arc::clone(&relays);
                async move { relays.wait_idle().await }
            });
            drop(first);
            tokio::task::yield_now().await;
            assert!(!waiting.is_finished());
            drop(second);
            tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("idle in time").expect("joined");
        });
    }
}
