//! The russh server: connections, authentication, channels, workers.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use coffer_config::{KeyProfile, UserDb};
use russh::keys::{PrivateKey, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelMsg, MethodKind, MethodSet, Preferred, cipher, kex, mac};
use serde_json::json;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::access::{Access, access};
use crate::admission::{AdmissionLimits, Occupancy};
use crate::disconnect::cut;
use crate::event;
use crate::keys::accepted_key_algorithm;
use crate::live::{LiveSessions, profile_word};
use crate::quota::QuotaBook;
use crate::throttle::{Admission, LoginThrottle, ThrottlePolicy};

/// Errors that stop the endpoint (not a single connection).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EndpointError {
    #[error("accepting connections failed: {0}")]
    Accept(#[source] std::io::Error),
}

/// How to start a session worker: the program and the arguments before the
/// per-channel ones (`sftp` or `exec LINE`).
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// Everything the endpoint needs, resolved from the state directory.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub host_key: PrivateKey,
    pub users_file: PathBuf,
    pub data_dir: PathBuf,
    pub worker: WorkerCommand,
    /// How to run an administrator's command line (`status`, `user add …`):
    /// the program and its leading arguments; `--user NAME -- LINE` follows.
    pub admin: WorkerCommand,
    /// Run workers under each user's uid/gid (requires root).
    pub drop_privileges: bool,
    pub throttle: ThrottlePolicy,
    pub idle_timeout: Duration,
    /// A connection must log in within this time or is closed (and counts
    /// as a failed login for the throttle).
    pub login_grace: Duration,
    pub max_connections: usize,
    pub admission: AdmissionLimits,
    pub log_level: String,
    /// Every user's quota ledger.
    pub quota: Arc<QuotaBook>,
}

struct Shared {
    config: EndpointConfig,
    throttle: Mutex<LoginThrottle>,
    connections: AtomicUsize,
    occupancy: Mutex<Occupancy>,
    live: LiveSessions,
    shutdown: watch::Receiver<bool>,
}

/// The running endpoint.
pub struct Endpoint {
    shared: Arc<Shared>,
    ssh: Arc<russh::server::Config>,
}

/// Cipher order: modern AEADs first; the CTR modes stay because paramiko
/// 2.12 (duplicity's sftp:// and scp://) offers nothing else.
const CIPHERS: &[cipher::Name] = &[
    cipher::CHACHA20_POLY1305,
    cipher::AES_128_GCM,
    cipher::AES_256_GCM,
    cipher::AES_128_CTR,
    cipher::AES_192_CTR,
    cipher::AES_256_CTR,
];

const MACS: &[mac::Name] = &[mac::HMAC_SHA256_ETM, mac::HMAC_SHA512_ETM, mac::HMAC_SHA256, mac::HMAC_SHA512];

/// Key exchanges: every supported client has curve25519 (OpenSSH since 6.5,
/// paramiko since 2.9 for duplicity, Go's x/crypto for restic and rclone),
/// and OpenSSH 9.9+ prefers the post-quantum hybrid. The finite-field
/// Diffie-Hellman groups are absent: no supported client needs them, and a
/// group-18 exchange cost ~380 ms of server CPU, which an attacker could
/// repeat without ever logging in.
const KEX: &[kex::Name] = &[
    kex::MLKEM768X25519_SHA256,
    kex::CURVE25519,
    kex::CURVE25519_PRE_RFC_8731,
    kex::EXTENSION_SUPPORT_AS_SERVER,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];

/// Host-key and public-key algorithms. `ssh-rsa` (SHA-1) and DSA are absent,
/// so `server-sig-algs` steers RSA clients to rsa-sha2-256/512.
const KEY_ALGORITHMS: &[russh::keys::Algorithm] = &[
    russh::keys::Algorithm::Ed25519,
    russh::keys::Algorithm::Ecdsa { curve: russh::keys::EcdsaCurve::NistP256 },
    russh::keys::Algorithm::Ecdsa { curve: russh::keys::EcdsaCurve::NistP384 },
    russh::keys::Algorithm::Rsa { hash: Some(russh::keys::HashAlg::Sha512) },
    russh::keys::Algorithm::Rsa { hash: Some(russh::keys::HashAlg::Sha256) },
];

impl Endpoint {
    pub fn new(config: EndpointConfig, shutdown: watch::Receiver<bool>) -> Self {
        let ssh = russh::server::Config {
            server_id: russh::SshId::Standard(format!("SSH-2.0-Coffer_{}", env!("CARGO_PKG_VERSION")).into()),
            methods: MethodSet::from(&[MethodKind::PublicKey][..]),
            auth_rejection_time: Duration::from_millis(300),
            auth_rejection_time_initial: Some(Duration::ZERO),
            keys: vec![config.host_key.clone()],
            // Large windows and packets, so one stream is never window-bound.
            window_size: 16 * 1024 * 1024,
            maximum_packet_size: 256 * 1024,
            channel_buffer_size: 64,
            preferred: Preferred {
                kex: KEX.into(),
                key: KEY_ALGORITHMS.into(),
                cipher: CIPHERS.into(),
                mac: MACS.into(),
                ..Preferred::default()
            },
            max_auth_attempts: 10,
            inactivity_timeout: Some(config.idle_timeout),
            keepalive_interval: None,
            nodelay: true,
            ..Default::default()
        };
        let throttle = LoginThrottle::new(config.throttle);
        let occupancy = Occupancy::new(config.admission);
        Endpoint {
            shared: Arc::new(Shared {
                config,
                throttle: Mutex::new(throttle),
                connections: AtomicUsize::new(0),
                occupancy: Mutex::new(occupancy),
                live: LiveSessions::default(),
                shutdown,
            }),
            ssh: Arc::new(ssh),
        }
    }

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
            let admission = self.shared.throttle.lock().map(|mut t| t.admit(peer.ip(), Instant::now()));
            if let Ok(Admission::Banned { remaining }) = admission {
                log::info!("refused connection from banned address {} ({}s of the ban left)", peer.ip(), remaining.as_secs());
                continue;
            }
            let active = self.shared.connections.load(Ordering::Relaxed);
            if active >= self.shared.config.max_connections {
                log::warn!("refused connection from {peer}: {active} connections open (server.max-connections)");
                continue;
            }
            if let Err(refusal) = self.shared.occupancy.lock().map_or(Ok(()), |mut o| o.open_unauthenticated(peer.ip())) {
                log::warn!("refused connection from {peer}: {refusal}");
                continue;
            }
            let _ = stream.set_nodelay(true);
            // A second descriptor of the socket, to cut a connection whose
            // client ignores our disconnect (russh waits for the client to
            // close its side, up to the idle time-out).
            let Some((stream, cutter)) = stream.into_std().and_then(|s| Ok((s.try_clone()?, s))).ok().and_then(|(s, cutter)| {
                tokio::net::TcpStream::from_std(s).ok().map(|s| (s, cutter))
            }) else {
                log::warn!("refused connection from {peer}: cannot duplicate its socket");
                if let Ok(mut o) = self.shared.occupancy.lock() {
                    o.close_unauthenticated(peer.ip());
                }
                continue;
            };
            let relays = Arc::new(RelayCount::default());
            let conn = self.shared.live.open(peer);
            let logged_in = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let handler = ConnHandler::new(Arc::clone(&self.shared), peer, conn, Arc::clone(&logged_in), Arc::clone(&relays));
            let ssh = Arc::clone(&self.ssh);
            let shared = Arc::clone(&self.shared);
            let mut stop = self.shared.shutdown.clone();
            let login_grace = self.shared.config.login_grace;
            tasks.spawn(async move {
                let _registered = LiveGuard(Arc::clone(&shared), conn);
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
                        let _ = handle
                            .disconnect(russh::Disconnect::ByApplication, "server shutting down".into(), "en".into())
                            .await;
                        session.await
                    }
                };
                if let Err(e) = result {
                    log::debug!("connection from {peer} ended: {e}");
                }
            });
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

/// How often users.toml is checked for changes. Every command that changes
/// it replaces it whole, so a change of inode, size or time is a change.
const USERS_CHECK_EVERY: Duration = Duration::from_millis(500);

/// Applies every change of users.toml to the connections already open
/// (see [`LiveSessions::apply`]), within [`USERS_CHECK_EVERY`].
async fn watch_users(shared: Arc<Shared>) {
    let mut seen = None;
    let mut tick = tokio::time::interval(USERS_CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let path = shared.config.users_file.clone();
        let now = std::fs::metadata(&path).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.ino(), m.size(), m.mtime(), m.mtime_nsec(), m.ctime_nsec())
        });
        if now == seen {
            continue;
        }
        let first = seen.is_none();
        seen = now;
        let loaded = tokio::task::spawn_blocking(move || UserDb::load(&path)).await;
        match loaded {
            Ok(Ok(db)) => shared.live.apply(&db, &shared.config.quota),
            Ok(Err(e)) if !first => log::error!("users.toml changed but cannot be read ({e}); open sessions keep their rights"),
            _ => {}
        }
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    // EMFILE/ENFILE/ECONNABORTED and friends: the listener itself is fine.
    matches!(e.raw_os_error(), Some(23 | 24 | 103 | 105 | 12)) || e.kind() == std::io::ErrorKind::ConnectionAborted
}

/// Relays running on one connection, so shutdown can wait for their workers.
#[derive(Default)]
struct RelayCount {
    active: AtomicUsize,
    idle: tokio::sync::Notify,
}

impl RelayCount {
    fn start(self: &Arc<Self>) -> RelayGuard {
        self.active.fetch_add(1, Ordering::SeqCst);
        RelayGuard(Arc::clone(self))
    }

    async fn wait_idle(&self) {
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

/// Forgets a connection in the live registry when its task ends.
struct LiveGuard(Arc<Shared>, u64);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.close(self.1);
    }
}

/// The logged-in user of a connection and the key they logged in with. What
/// the key may do is looked up again for every channel ([`access`]).
#[derive(Debug, Clone)]
struct LoggedIn {
    name: String,
    key: PublicKey,
}

struct ConnHandler {
    shared: Arc<Shared>,
    peer: SocketAddr,
    /// This connection's id in the live registry.
    conn: u64,
    user: Option<LoggedIn>,
    /// Set once a login succeeded, read by the login grace timer.
    logged_in: Arc<std::sync::atomic::AtomicBool>,
    /// A login refused because the user holds too many connections: not a
    /// failure for the throttle.
    refused_busy: bool,
    channels: HashMap<ChannelId, Channel<Msg>>,
    /// Channels whose client asked for a terminal (administrators only).
    terminals: HashSet<ChannelId>,
    reject_delay: Duration,
    relays: Arc<RelayCount>,
}

impl ConnHandler {
    fn new(
        shared: Arc<Shared>,
        peer: SocketAddr,
        conn: u64,
        logged_in: Arc<std::sync::atomic::AtomicBool>,
        relays: Arc<RelayCount>,
    ) -> Self {
        shared.connections.fetch_add(1, Ordering::Relaxed);
        let reject_delay = match shared.throttle.lock().map(|mut t| t.admit(peer.ip(), Instant::now())) {
            Ok(Admission::Allow { reject_delay }) => reject_delay,
            _ => Duration::ZERO,
        };
        ConnHandler {
            shared,
            peer,
            conn,
            user: None,
            logged_in,
            refused_busy: false,
            channels: HashMap::new(),
            terminals: HashSet::new(),
            reject_delay,
            relays,
        }
    }

    /// What `key` may do as `user` now, from the current users.toml.
    fn lookup(&self, user: &str, key: &PublicKey) -> Option<Access> {
        let db = match UserDb::load(&self.shared.config.users_file) {
            Ok(db) => db,
            Err(e) => {
                log::error!("cannot check logins: {e}");
                return None;
            }
        };
        match access(&db, user, key) {
            Ok(a) => Some(a),
            Err(why) => {
                log::debug!("login as {user:?} from {} refused: {why}", self.peer);
                None
            }
        }
    }

    async fn reject(&self) -> Result<Auth, russh::Error> {
        if !self.reject_delay.is_zero() {
            tokio::time::sleep(self.reject_delay).await;
        }
        Ok(Auth::Reject { proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey][..])), partial_success: false })
    }

    /// Starts a worker for `channel` and relays between them.
    fn start_worker(&mut self, channel_id: ChannelId, request: WorkerRequest, session: &mut Session) {
        if let Ok(why) = std::fs::read_to_string(DATA_UNAVAILABLE_MARKER)
            && !matches!(request, WorkerRequest::Admin(_))
        {
            // The data area is gone (both mirror disks): refuse clearly rather than fail on I/O errors.
            log::warn!("refused a session from {}: {}", self.peer, why.trim());
            if let Some(ch) = self.channels.remove(&channel_id) {
                let _ = session.channel_success(channel_id);
                finish_with_message(ch, format!("coffer: {}\r\n", why.trim()), 1);
            } else {
                let _ = session.channel_failure(channel_id);
            }
            return;
        }
        let (Some(user), Some(channel)) = (self.user.clone(), self.channels.remove(&channel_id)) else {
            let _ = session.channel_failure(channel_id);
            return;
        };
        // The key's rights now, not at login: locking, removing, a key
        // removal, a narrower profile or a new quota also hold for a
        // connection that logged in before (multiplexed clients open
        // channels for hours).
        let rights = match UserDb::load(&self.shared.config.users_file).map(|db| access(&db, &user.name, &user.key)) {
            Ok(Ok(rights)) => rights,
            Ok(Err(why)) => {
                log::warn!("user {} from {}: {why}; channel refused", user.name, self.peer);
                finish_with_message(channel, format!("coffer: this key may no longer log in ({why})\r\n"), 1);
                let _ = session.channel_success(channel_id);
                return;
            }
            Err(e) => {
                log::error!("user {} from {}: cannot read the user database: {e}; channel refused", user.name, self.peer);
                let _ = session.channel_failure(channel_id);
                return;
            }
        };
        let slot = match WorkerSlot::take(&self.shared, &user.name, self.conn, rights.profile) {
            Ok(slot) => slot,
            Err(refusal) => {
                log::warn!("user {} from {}: {refusal}; channel refused", user.name, self.peer);
                let _ = session.channel_success(channel_id);
                finish_with_message(channel, format!("coffer: {refusal}\r\n"), 1);
                return;
            }
        };
        if let WorkerRequest::Admin(line) = &request {
            // An administrator's append-only or read-only key (a backup job's)
            // must not administer: a stolen server would undo what the profile protects.
            if rights.admin && rights.profile == KeyProfile::Full {
                self.start_admin(channel, line.clone(), user, slot, session);
            } else {
                log::warn!("user {} from {}: refused administrator command {:?}", user.name, self.peer, coffer_command::admin_command_summary(line));
                let _ = session.channel_success(channel_id);
                let word = coffer_command::words(line).ok().and_then(|w| w.into_iter().next()).unwrap_or_default();
                let msg = format!(
                    "coffer: `{}` is an administrator command; this key may only back up (log in with an administrator's full key, for example ssh admin@…)\r\n",
                    String::from_utf8_lossy(&word)
                );
                finish_with_message(channel, msg, 1);
            }
            return;
        }
        let cfg = &self.shared.config;
        let area = cfg.data_dir.join(&user.name);
        // A user whose count failed waits for the scheduled retry: counting
        // again for every channel would let them make the server walk at will.
        if !cfg.quota.knows(&user.name) && !cfg.quota.retry_scheduled(&user.name) {
            // A walk of the user's whole area: other connections go on meanwhile.
            match tokio::task::block_in_place(|| coffer_storage::UserJail::open(&area).and_then(|j| j.usage())) {
                Ok((bytes, files)) => {
                    cfg.quota.recount(&user.name, rights.limits, bytes, files);
                }
                // The worker still starts (reading and listing need no count), but the
                // book refuses every write until a retry of the count succeeds.
                Err(e) => cfg.quota.count_failed(&user.name, &format!("counting {}: {e}", area.display())),
            }
        }
        cfg.quota.set_limits(&user.name, rights.limits);
        let (ours, theirs) = match std::os::unix::net::UnixStream::pair() {
            Ok(pair) => pair,
            Err(e) => {
                log::error!("user {}: cannot create the quota socket: {e}", user.name);
                let _ = session.channel_failure(channel_id);
                return;
            }
        };
        let profile = profile_word(rights.profile);
        let mut cmd = tokio::process::Command::new(&cfg.worker.program);
        cmd.args(&cfg.worker.args)
            .arg("--jail")
            .arg(&area)
            .arg("--user")
            .arg(&user.name)
            .arg("--profile")
            .arg(profile)
            .arg("--quota-fd")
            .arg(std::os::fd::AsRawFd::as_raw_fd(&theirs).to_string())
            .arg("--log-level")
            .arg(&cfg.log_level);
        match &request {
            WorkerRequest::Sftp => {
                cmd.arg("sftp");
            }
            WorkerRequest::Exec(line) | WorkerRequest::Admin(line) => {
                cmd.arg("exec").arg("--").arg(std::ffi::OsStr::from_bytes_compat(line));
            }
        }
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if cfg.drop_privileges {
            cmd.uid(rights.uid).gid(rights.gid);
        }
        let child = match spawn_with_inherited(&mut cmd, &theirs) {
            Ok(c) => c,
            Err(e) => {
                log::error!("user {}: cannot start session worker {}: {e}", user.name, cfg.worker.program.display());
                let _ = session.channel_failure(channel_id);
                return;
            }
        };
        let _ = session.channel_success(channel_id);
        log::info!("user {} from {}: {}", user.name, self.peer, request.describe());
        drop(theirs);
        match ours.set_nonblocking(true).and_then(|()| tokio::net::UnixStream::from_std(ours)) {
            Ok(stream) => {
                tokio::spawn(Arc::clone(&cfg.quota).serve_worker(user.name.clone(), stream));
            }
            Err(e) => log::error!("user {}: quota socket: {e}", user.name),
        }
        let shutdown = self.shared.shutdown.clone();
        let guard = self.relays.start();
        tokio::spawn(async move {
            relay(channel, child, request, user.name, shutdown, false, slot).await;
            drop(guard);
        });
    }
}

impl ConnHandler {
    /// Runs an administrator's command line as root through `coffer admin`,
    /// which parses it with the same grammar as the local command line.
    fn start_admin(&mut self, channel: Channel<Msg>, line: Vec<u8>, user: LoggedIn, slot: WorkerSlot, session: &mut Session) {
        let cfg = &self.shared.config;
        let channel_id = channel.id();
        let mut cmd = tokio::process::Command::new(&cfg.admin.program);
        cmd.args(&cfg.admin.args)
            .arg("--user")
            .arg(&user.name)
            .arg("--")
            .arg(std::ffi::OsStr::from_bytes_compat(&line))
            .env_clear()
            .env("PATH", "/usr/bin:/bin:/sbin:/usr/sbin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if self.terminals.contains(&channel_id) {
            cmd.env("COFFER_TERMINAL", "1");
        }
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                log::error!("user {}: cannot start {}: {e}", user.name, cfg.admin.program.display());
                let _ = session.channel_failure(channel_id);
                return;
            }
        };
        let _ = session.channel_success(channel_id);
        let request = WorkerRequest::Admin(line);
        log::info!("administrator {} from {}: {}", user.name, self.peer, request.describe());
        let shutdown = self.shared.shutdown.clone();
        let guard = self.relays.start();
        let terminal = self.terminals.contains(&channel_id);
        tokio::spawn(async move {
            relay(channel, child, request, user.name, shutdown, terminal, slot).await;
            drop(guard);
        });
    }
}

/// A session's place in the endpoint's limits and in the live registry,
/// given back when the session ends.
struct WorkerSlot {
    shared: Arc<Shared>,
    user: String,
    conn: u64,
    id: u64,
    /// Turns true when a change to users.toml no longer allows the session.
    stop: watch::Receiver<bool>,
}

impl WorkerSlot {
    fn take(shared: &Arc<Shared>, user: &str, conn: u64, profile: KeyProfile) -> Result<Self, crate::admission::Refusal> {
        shared.occupancy.lock().unwrap_or_else(std::sync::PoisonError::into_inner).start_worker(user)?;
        let (id, stop) = shared.live.start_session(conn, profile);
        Ok(WorkerSlot { shared: Arc::clone(shared), user: user.into(), conn, id, stop })
    }
}

impl Drop for WorkerSlot {
    fn drop(&mut self) {
        self.shared.occupancy.lock().unwrap_or_else(std::sync::PoisonError::into_inner).end_worker(&self.user);
        self.shared.live.end_session(self.conn, self.id);
    }
}

/// Sends `msg` on stderr, then the exit status, and closes the channel.
fn finish_with_message(channel: Channel<Msg>, msg: String, status: u32) {
    tokio::spawn(async move {
        let _ = channel.extended_data_bytes(1, Bytes::from(msg)).await;
        let _ = channel.exit_status(status).await;
        let _ = channel.eof().await;
        let _ = channel.close().await;
    });
}

impl Drop for ConnHandler {
    fn drop(&mut self) {
        self.shared.connections.fetch_sub(1, Ordering::Relaxed);
        {
            let mut o = self.shared.occupancy.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match &self.user {
                Some(u) => o.close_connection(&u.name),
                None => o.close_unauthenticated(self.peer.ip()),
            }
        }
        // A connection that ends without logging in counts as a failure,
        // whether it tried a key or only held a slot (a banner, a key
        // exchange, keepalives) until the login grace time ran out.
        if self.user.is_none() && !self.refused_busy {
            let ban = self.shared.throttle.lock().ok().and_then(|mut t| t.record_failure(self.peer.ip(), Instant::now()));
            log::info!("failed login from {}", self.peer);
            if let Some(ban) = ban {
                log::warn!("banning {} for {}s after {} failed logins", self.peer.ip(), ban.length.as_secs(), ban.failures);
                event::emit(
                    "login.banned",
                    &[("address", json!(self.peer.ip().to_string())), ("seconds", json!(ban.length.as_secs()))],
                );
            }
        }
    }
}

/// Spawns `cmd` with `fd` inherited (all other descriptors stay close-on-exec).
/// The descriptor is made inheritable only while holding a lock that every
/// spawn takes, so no other user's worker can inherit it.
fn spawn_with_inherited(cmd: &mut tokio::process::Command, fd: &impl std::os::fd::AsFd) -> std::io::Result<tokio::process::Child> {
    static SPAWN: Mutex<()> = Mutex::new(());
    let _guard = SPAWN.lock().map_err(|_| std::io::Error::other("spawn lock poisoned"))?;
    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
    let child = cmd.spawn();
    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
    child
}

/// What a channel asked the worker to run.
#[derive(Debug, Clone)]
enum WorkerRequest {
    Sftp,
    Exec(Vec<u8>),
    /// An administrator command (`status`, `user …`), not a backup client's.
    Admin(Vec<u8>),
}

impl WorkerRequest {
    fn describe(&self) -> String {
        match self {
            WorkerRequest::Sftp => "sftp".into(),
            WorkerRequest::Exec(line) => format!("exec {:?}", String::from_utf8_lossy(line)),
            // Arguments may hold secrets (`config set alerts.email.password …`): log the command words only.
            WorkerRequest::Admin(line) => format!("admin {:?}", coffer_command::admin_command_summary(line)),
        }
    }
}

/// `OsStr` from raw bytes (Unix).
trait OsStrBytes {
    fn from_bytes_compat(b: &[u8]) -> &std::ffi::OsStr;
}

impl OsStrBytes for std::ffi::OsStr {
    fn from_bytes_compat(b: &[u8]) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}

impl russh::server::Handler for ConnHandler {
    type Error = russh::Error;

    async fn auth_publickey_offered(&mut self, user: &str, offer: PublicKeyOffer<'_>) -> Result<Auth, Self::Error> {
        if let Err(e) = accepted_key_algorithm(offer.algorithm) {
            log::warn!("refused key offered by {} for user {user:?}: {e}", self.peer);
            return self.reject().await;
        }
        if self.lookup(user, offer.public_key).is_some() {
            Ok(Auth::Accept)
        } else {
            log::debug!("key {} from {} is not a key of user {user:?}", offer.public_key.fingerprint(Default::default()), self.peer);
            self.reject().await
        }
    }

    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        if let Err(e) = accepted_key_algorithm(key.algorithm) {
            log::warn!("refused signature from {} for user {user:?}: {e}", self.peer);
            return self.reject().await;
        }
        match self.lookup(user, key.public_key) {
            Some(found) => {
                let opened = self.shared.occupancy.lock().unwrap_or_else(std::sync::PoisonError::into_inner).open_connection(user);
                if let Err(refusal) = opened {
                    log::warn!("login of {user} from {} refused: {refusal}", self.peer);
                    self.refused_busy = true;
                    return self.reject().await;
                }
                self.shared.occupancy.lock().unwrap_or_else(std::sync::PoisonError::into_inner).close_unauthenticated(self.peer.ip());
                log::info!(
                    "user {user} logged in from {} with key {} (profile {:?})",
                    self.peer,
                    key.public_key.fingerprint(Default::default()),
                    found.profile
                );
                self.user = Some(LoggedIn { name: user.to_string(), key: key.public_key.clone() });
                self.logged_in.store(true, Ordering::SeqCst);
                self.shared.live.logged_in(self.conn, user, key.public_key.clone());
                if let Ok(mut t) = self.shared.throttle.lock() {
                    t.record_success(self.peer.ip(), Instant::now());
                }
                Ok(Auth::Accept)
            }
            None => self.reject().await,
        }
    }

    async fn auth_password(&mut self, user: &str, _password: &str) -> Result<Auth, Self::Error> {
        log::info!("refused password login for {user:?} from {} (only public keys are accepted)", self.peer);
        self.reject().await
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Channels waiting for a request and channels running a session both
        // count: each running one is a process and four descriptors here.
        let open = self.channels.len() + self.shared.live.sessions_of(self.conn);
        if self.user.is_some() && open < self.shared.config.admission.channels_per_connection {
            self.channels.insert(channel.id(), channel);
            reply.accept().await;
        } else if self.user.is_some() {
            log::warn!(
                "user {} from {}: channel refused, {open} open on this connection (server.max-sessions-per-connection)",
                self.user.as_ref().map_or("?", |u| u.name.as_str()),
                self.peer
            );
        }
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // No pseudo-terminal is ever allocated. An administrator's `ssh -t`
        // is acknowledged so their commands can use colour and alignment
        // (output then ends lines with CR LF, as a terminal in raw mode needs).
        if self.user.as_ref().and_then(|u| self.lookup(&u.name, &u.key)).is_some_and(|a| a.admin) {
            self.terminals.insert(channel);
            session.channel_success(channel)?;
        } else {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        let user = self.user.as_ref().map_or("?", |u| u.name.as_str()).to_string();
        log::info!("refused shell for {user} from {}", self.peer);
        if let Some(ch) = self.channels.remove(&channel) {
            session.channel_success(channel)?;
            tokio::spawn(async move {
                let msg = "This Coffer account serves backups only (SFTP, scp, rsync-free); no shell is available.\r\n";
                let _ = ch.extended_data_bytes(1, Bytes::from(msg)).await;
                let _ = ch.exit_status(1).await;
                let _ = ch.eof().await;
                let _ = ch.close().await;
            });
        } else {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Clients send LANG and LC_* by default; none reach the worker.
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single: bool,
        _proto: &str,
        _cookie: &str,
        _screen: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn agent_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<bool, Self::Error> {
        session.channel_failure(channel)?;
        Ok(false)
    }

    async fn exec_request(&mut self, channel: ChannelId, data: &[u8], session: &mut Session) -> Result<(), Self::Error> {
        if data.contains(&0) {
            session.channel_failure(channel)?;
            return Ok(());
        }
        let request = if coffer_command::is_admin_command(data) {
            WorkerRequest::Admin(data.to_vec())
        } else {
            WorkerRequest::Exec(data.to_vec())
        };
        self.start_worker(channel, request, session);
        Ok(())
    }

    async fn subsystem_request(&mut self, channel: ChannelId, name: &str, session: &mut Session) -> Result<(), Self::Error> {
        if name == "sftp" {
            self.start_worker(channel, WorkerRequest::Sftp, session);
        } else {
            log::info!("refused subsystem {name:?} from {}", self.peer);
            session.channel_failure(channel)?;
        }
        Ok(())
    }
}

/// While this file exists the data area is unusable (the mirror has failed);
/// its text says why, and every session is refused with it. The mirror
/// watcher writes and removes it.
pub const DATA_UNAVAILABLE_MARKER: &str = "/run/coffer/data-unavailable";

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

/// Pipe buffer size between the front end and a worker.
const PIPE_SIZE: usize = 1024 * 1024;

/// How long a worker whose session was revoked may take to end after its
/// stdin closed (finishing a request in progress) before it is killed.
const REVOKED_WORKER_GRACE: Duration = Duration::from_secs(1);

/// Moves bytes between the channel and the worker until both are done, then
/// reports the worker's exit status. On shutdown the worker's stdin is closed,
/// which makes it discard unfinished uploads and exit. A session that
/// users.toml no longer allows is ended the same way, and killed if its
/// worker does not end within [`REVOKED_WORKER_GRACE`].
async fn relay(
    channel: Channel<Msg>,
    mut child: tokio::process::Child,
    request: WorkerRequest,
    user: String,
    mut shutdown: watch::Receiver<bool>,
    terminal: bool,
    mut slot: WorkerSlot,
) {
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
    let is_exec = matches!(request, WorkerRequest::Exec(_) | WorkerRequest::Admin(_));
    let err_user = user.clone();
    let stderr_task = tokio::spawn(async move {
        let Some(mut stderr) = stderr else { return };
        let mut buf = vec![0u8; 16 * 1024];
        let mut pending = Vec::new();
        loop {
            match stderr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) if is_exec => {
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
