//! The listener: accepts connections, admits them (login throttle,
//! connection limits), runs each one's SSH session with its login grace
//! time, keeps open sessions in step with users.toml, and drains on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use coffer_config::UserDb;
use tokio::net::{TcpListener, TcpStream};

use crate::disconnect::cut;
use crate::endpoint::{Endpoint, EndpointError, Shared};
use crate::handler::ConnHandler;
use crate::relay::RelayCount;
use crate::throttle::Admission;

impl Endpoint {
    /// Serves connections from `listener` until shutdown is signalled, then
    /// waits (up to `grace`) for open sessions to finish their work.
    pub async fn run(&self, listener: TcpListener, grace: Duration) -> Result<(), EndpointError> {
        let mut shutdown = self.shared.shutdown.clone();
        let mut tasks = tokio::task::JoinSet::new();
        let watcher = tokio::spawn(watch_users(Arc::clone(&self.shared)));
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.changed() => break,
            };
            let (stream, peer) = match accepted {
                Ok(x) => x,
                Err(e) if is_transient(&e) => {
                    log::warn!("accept failed (will retry): {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(e) => return Err(EndpointError::Accept(e)),
            };
            while tasks.try_join_next().is_some() {}
            let Some((stream, cutter)) = admit(&self.shared, stream, peer) else { continue };
            // Registered and counted now, before the next accept looks at the counts.
            let connection = Connection::open(&self.shared, stream, cutter, peer);
            tasks.spawn(connection.serve(Arc::clone(&self.shared), Arc::clone(&self.ssh)));
        }
        drop(listener);
        watcher.abort();
        log::info!("shutting down: {} connection(s) open", tasks.len());
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            log::warn!("connections still open after {}s; closing them", grace.as_secs());
            tasks.abort_all();
        }
        Ok(())
    }
}

/// Admits a new connection, or refuses it (closing the socket) when its
/// address is banned or a connection limit is reached. An admitted one holds
/// a pre-login place in the occupancy book and comes with a second
/// descriptor of its socket, to cut a connection whose client ignores our
/// disconnect (russh waits for the client to close its side, up to the idle
/// time-out).
fn admit(shared: &Shared, stream: TcpStream, peer: SocketAddr) -> Option<(TcpStream, std::net::TcpStream)> {
    let admission = shared.throttle.lock().map(|mut t| t.admit(peer.ip(), Instant::now()));
    if let Ok(Admission::Banned { remaining }) = admission {
        log::info!("refused connection from banned address {} ({}s of the ban left)", peer.ip(), remaining.as_secs());
        return None;
    }
    let active = shared.connections.load(Ordering::Relaxed);
    if active >= shared.config.max_connections {
        log::warn!("refused connection from {peer}: {active} connections open (server.max-connections)");
        return None;
    }
    if let Err(refusal) = shared.occupancy().open_unauthenticated(peer.ip()) {
        log::warn!("refused connection from {peer}: {refusal}");
        return None;
    }
    let _ = stream.set_nodelay(true);
    let duplicated = stream
        .into_std()
        .and_then(|s| Ok((s.try_clone()?, s)))
        .ok()
        .and_then(|(s, cutter)| TcpStream::from_std(s).ok().map(|s| (s, cutter)));
    if duplicated.is_none() {
        log::warn!("refused connection from {peer}: cannot duplicate its socket");
        shared.occupancy().close_unauthenticated(peer.ip());
    }
    duplicated
}

/// An admitted connection, registered in the live registry and counted,
/// whose SSH session has not started yet.
struct Connection {
    peer: SocketAddr,
    /// Its id in the live registry.
    conn: u64,
    stream: TcpStream,
    cutter: std::net::TcpStream,
    handler: ConnHandler,
    logged_in: Arc<AtomicBool>,
    relays: Arc<RelayCount>,
}

impl Connection {
    fn open(shared: &Arc<Shared>, stream: TcpStream, cutter: std::net::TcpStream, peer: SocketAddr) -> Self {
        let relays = Arc::new(RelayCount::default());
        let conn = shared.live.open(peer);
        let logged_in = Arc::new(AtomicBool::new(false));
        let handler = ConnHandler::new(Arc::clone(shared), peer, conn, Arc::clone(&logged_in), Arc::clone(&relays));
        Connection { peer, conn, stream, cutter, handler, logged_in, relays }
    }

    /// Runs the connection's SSH session to its end: closes it if it has not
    /// logged in within the login grace time, and on shutdown waits for its
    /// sessions' workers before telling the client why it is disconnected.
    async fn serve(self, shared: Arc<Shared>, ssh: Arc<russh::server::Config>) {
        let Connection { peer, conn, stream, cutter, handler, logged_in, relays } = self;
        let _registered = LiveGuard(Arc::clone(&shared), conn);
        let mut stop = shared.shutdown.clone();
        let login_grace = shared.config.login_grace;
        let started = tokio::time::Instant::now();
        // The version exchange too is bounded by the login grace time:
        // a socket that never sends its banner holds a slot otherwise.
        let mut session = match tokio::time::timeout(login_grace, russh::server::run_stream(ssh, stream, handler)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                log::debug!("connection from {peer} failed during setup: {e}");
                return;
            }
            Err(_) => {
                log::info!("connection from {peer} sent no SSH banner within {}s; closed", login_grace.as_secs());
                return;
            }
        };
        let handle = session.handle();
        let cutter = Arc::new(cutter);
        shared.live.set_handle(conn, handle.clone(), Arc::clone(&cutter));
        let grace_over = tokio::time::sleep_until(started + login_grace);
        tokio::pin!(grace_over);
        let mut grace_pending = true;
        let ended = loop {
            tokio::select! {
                r = &mut session => break Some(r),
                _ = stop.changed() => break None,
                () = &mut grace_over, if grace_pending => {
                    grace_pending = false;
                    if !logged_in.load(Ordering::SeqCst) {
                        // Keepalives and SSH_MSG_IGNORE reset russh's idle timer; this one they do not.
                        log::info!("connection from {peer} did not log in within {}s (server.login-grace-secs); closing it", login_grace.as_secs());
                        cut(handle.clone(), Arc::clone(&cutter), "login grace time exceeded".into());
                    }
                }
            }
        };
        let result = match ended {
            Some(r) => r,
            None => {
                // The relays close their workers on the same signal; once
                // they have, the client is told why it is disconnected.
                relays.wait_idle().await;
                let _ = handle.disconnect(russh::Disconnect::ByApplication, "server shutting down".into(), "en".into()).await;
                session.await
            }
        };
        if let Err(e) = result {
            log::debug!("connection from {peer} ended: {e}");
        }
    }
}

/// Forgets a connection in the live registry when its task ends.
struct LiveGuard(Arc<Shared>, u64);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.close(self.1);
    }
}

/// How often users.toml is checked for changes. Every command that changes
/// it replaces it whole, so a change of inode, size or time is a change.
const USERS_CHECK_EVERY: Duration = Duration::from_millis(500);

/// Applies every change of users.toml to the connections already open
/// (see [`LiveSessions::apply`](crate::live::LiveSessions::apply)), within
/// [`USERS_CHECK_EVERY`].
async fn watch_users(shared: Arc<Shared>) {
    // The version last applied, and the one whose failure was last logged:
    // a change is applied only once it could be read, so a failed read (out
    // of descriptors, say) is retried at the next tick rather than forgotten.
    let mut applied = None;
    let mut reported = None;
    let mut tick = tokio::time::interval(USERS_CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let path = shared.config.users_file.clone();
        let now = std::fs::metadata(&path).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.ino(), m.size(), m.mtime(), m.mtime_nsec(), m.ctime_nsec())
        });
        if now.is_some() && now == applied {
            continue;
        }
        let loaded = tokio::task::spawn_blocking(move || UserDb::load(&path)).await;
        match loaded {
            Ok(Ok(db)) => {
                shared.live.apply(&db, &shared.config.quota);
                applied = now;
            }
            Ok(Err(e)) if reported != now => {
                log::error!("users.toml cannot be read ({e}); retrying, open sessions keep their rights until it can");
                reported = now;
            }
            Err(e) if reported != now => {
                log::error!("reading users.toml failed ({e}); retrying");
                reported = now;
            }
            _ => {}
        }
    }
}

/// Whether an accept error leaves the listener itself fine (EMFILE, ENFILE,
/// ENOMEM, ECONNABORTED, ENOBUFS and the like), so accepting goes on.
fn is_transient(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24 | 103 | 105 | 12)) || e.kind() == std::io::ErrorKind::ConnectionAborted
}
