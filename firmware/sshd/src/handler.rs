//! One connection's SSH requests (the russh `Handler`): public-key login
//! against users.toml, channels, and what each channel request becomes.
//! The decisions are in `request`; this module applies them: it answers
//! russh, takes the session's slot, and starts the process and its relay.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use coffer_config::UserDb;
use coffer_runtime::event::{self, Event};
use russh::keys::PublicKey;
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId};

use crate::access::{Access, access};
use crate::endpoint::Shared;
use crate::keys::accepted_key_algorithm;
use crate::protocol::login_methods;
use crate::quota::QuotaBook;
use crate::relay::{Output, RelayCount, finish_with_message, spawn_relay};
use crate::request::{ChannelRequest, Refusal, acknowledge_terminal, check_rights, refuse_without_data};
use crate::slot::WorkerSlot;
use crate::spawn::{Launch, WorkerSession};
use crate::throttle::Admission;

/// The logged-in user of a connection and the key they logged in with. What
/// the key may do is looked up again for every channel ([`access`]).
#[derive(Debug, Clone)]
struct LoggedIn {
    name: String,
    key: PublicKey,
}

/// The russh handler of one connection.
pub(crate) struct ConnHandler {
    shared: Arc<Shared>,
    peer: SocketAddr,
    /// This connection's id in the live registry.
    conn: u64,
    user: Option<LoggedIn>,
    /// Set once a login succeeded, read by the login grace timer.
    logged_in: Arc<AtomicBool>,
    /// A login refused because the user holds too many connections: not a
    /// failure for the throttle.
    refused_busy: bool,
    /// Channels opened and waiting for their request.
    channels: HashMap<ChannelId, Channel<Msg>>,
    /// Channels whose client asked for a terminal (administrators only).
    terminals: HashSet<ChannelId>,
    /// How long a refused login waits, from the throttle.
    reject_delay: Duration,
    relays: Arc<RelayCount>,
}

impl ConnHandler {
    /// The handler of a connection just admitted, counted as open until dropped.
    pub(crate) fn new(shared: Arc<Shared>, peer: SocketAddr, conn: u64, logged_in: Arc<AtomicBool>, relays: Arc<RelayCount>) -> Self {
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
        Ok(Auth::Reject { proceed_with_methods: Some(login_methods()), partial_success: false })
    }

    /// Accepts the request on `channel_id` and ends its channel with
    /// `refusal`'s message and status 1; a channel that is not waiting for a
    /// request is answered with a plain failure.
    fn refuse(&mut self, channel_id: ChannelId, refusal: &Refusal, session: &mut Session) {
        match self.channels.remove(&channel_id) {
            Some(channel) => refuse_channel(channel, refusal, session),
            None => {
                let _ = session.channel_failure(channel_id);
            }
        }
    }

    /// Starts the process `request` asks for on `channel_id` and relays
    /// between them, or refuses it: when the data area is unusable, when
    /// users.toml no longer lets the key in, when a session limit is
    /// reached, or when the key may not run an administrator command.
    fn start_session(&mut self, channel_id: ChannelId, request: ChannelRequest, session: &mut Session) {
        // While the mirror watcher keeps this file (the mirror has failed), its text says why.
        let marker = std::fs::read_to_string(coffer_runtime::Paths::appliance().data_unavailable()).ok();
        if let Some(refusal) = refuse_without_data(&request, marker.as_deref()) {
            // The data area is gone (both mirror disks): refuse clearly rather than fail on I/O errors.
            log::warn!("refused a session from {}: {}", self.peer, marker.as_deref().unwrap_or_default().trim());
            self.refuse(channel_id, &refusal, session);
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
                refuse_channel(channel, &Refusal::Revoked(why), session);
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
                refuse_channel(channel, &Refusal::Busy(refusal), session);
                return;
            }
        };
        if let Err(refusal) = check_rights(&request, &rights) {
            if let ChannelRequest::Admin(line) = &request {
                log::warn!("user {} from {}: refused administrator command {:?}", user.name, self.peer, coffer_command::admin_command_summary(line));
            }
            refuse_channel(channel, &refusal, session);
            return;
        }
        let started = match &request {
            ChannelRequest::Admin(line) => {
                let terminal = self.terminals.contains(&channel_id);
                let cfg = &self.shared.config;
                Launch::admin(&cfg.admin, &user.name, line, terminal)
                    .spawn()
                    .map_err(|e| log::error!("user {}: cannot start {}: {e}", user.name, cfg.admin.program.display()))
                    .ok()
                    .map(|child| (child, if terminal { Output::Terminal } else { Output::Command }))
            }
            ChannelRequest::Sftp | ChannelRequest::Exec(_) => self
                .spawn_worker(&user.name, &rights, &request)
                .map(|child| (child, if request.is_command() { Output::Command } else { Output::Sftp })),
        };
        let Some((child, output)) = started else {
            let _ = session.channel_failure(channel_id);
            return;
        };
        let _ = session.channel_success(channel_id);
        match request {
            ChannelRequest::Admin(_) => log::info!("administrator {} from {}: {}", user.name, self.peer, request.describe()),
            _ => log::info!("user {} from {}: {}", user.name, self.peer, request.describe()),
        }
        spawn_relay(channel, child, user.name, output, self.shared.shutdown.clone(), slot, &self.relays);
    }

    /// Starts a session worker for `request`, connected to the quota book
    /// by a socket of its own; `None` (logged) when it cannot start.
    fn spawn_worker(&self, user: &str, rights: &Access, request: &ChannelRequest) -> Option<tokio::process::Child> {
        let cfg = &self.shared.config;
        let area = cfg.data_dir.join(user);
        count_usage_if_unknown(&cfg.quota, user, &area, rights.limits);
        cfg.quota.set_limits(user, rights.limits);
        let (ours, theirs) = match std::os::unix::net::UnixStream::pair() {
            Ok(pair) => pair,
            Err(e) => {
                log::error!("user {user}: cannot create the quota socket: {e}");
                return None;
            }
        };
        let session = WorkerSession {
            user,
            area: &area,
            profile: rights.profile,
            log_level: &cfg.log_level,
            credentials: cfg.drop_privileges.then_some((rights.uid, rights.gid)),
        };
        let child = match Launch::worker(&cfg.worker, &session, request, theirs.as_fd()).spawn() {
            Ok(child) => child,
            Err(e) => {
                log::error!("user {user}: cannot start session worker {}: {e}", cfg.worker.program.display());
                return None;
            }
        };
        drop(theirs);
        match ours.set_nonblocking(true).and_then(|()| tokio::net::UnixStream::from_std(ours)) {
            Ok(stream) => {
                tokio::spawn(Arc::clone(&cfg.quota).serve_worker(user.to_string(), stream));
            }
            Err(e) => log::error!("user {user}: quota socket: {e}"),
        }
        Some(child)
    }
}

/// Accepts the request on `channel` and ends it with `refusal`'s message
/// and status 1: the client sees why rather than a bare failure.
fn refuse_channel(channel: Channel<Msg>, refusal: &Refusal, session: &mut Session) {
    let _ = session.channel_success(channel.id());
    finish_with_message(channel, refusal.message(), 1);
}

/// Counts the usage of `user`'s data area for the quota book if it knows
/// none yet. A user whose count failed waits for the scheduled retry:
/// counting again for every channel would let them make the server walk at
/// will.
fn count_usage_if_unknown(quota: &QuotaBook, user: &str, area: &std::path::Path, limits: coffer_quota::Limits) {
    if quota.knows(user) || quota.retry_scheduled(user) {
        return;
    }
    // A walk of the user's whole area: other connections go on meanwhile.
    match tokio::task::block_in_place(|| coffer_storage::UserJail::open(area).and_then(|j| j.usage())) {
        Ok((bytes, files)) => {
            quota.recount(user, limits, bytes, files);
        }
        // The worker still starts (reading and listing need no count), but the
        // book refuses every write until a retry of the count succeeds.
        Err(e) => quota.count_failed(user, &format!("counting {}: {e}", area.display())),
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
        let Some(found) = self.lookup(user, key.public_key) else { return self.reject().await };
        let opened = self.shared.occupancy().open_connection(user);
        if let Err(refusal) = opened {
            log::warn!("login of {user} from {} refused: {refusal}", self.peer);
            self.refused_busy = true;
            return self.reject().await;
        }
        self.shared.occupancy().close_unauthenticated(self.peer.ip());
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
        let rights = self.user.as_ref().and_then(|u| self.lookup(&u.name, &u.key));
        if acknowledge_terminal(rights.as_ref()) {
            self.terminals.insert(channel);
            session.channel_success(channel)?;
        } else {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        let user = self.user.as_ref().map_or("?", |u| u.name.as_str());
        log::info!("refused shell for {user} from {}", self.peer);
        self.refuse(channel, &Refusal::Shell, session);
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
        match ChannelRequest::from_exec(data) {
            Some(request) => self.start_session(channel, request, session),
            None => {
                // A refused channel no longer counts toward the connection's channels.
                self.forget_channel(channel);
                session.channel_failure(channel)?;
            }
        }
        Ok(())
    }

    async fn subsystem_request(&mut self, channel: ChannelId, name: &str, session: &mut Session) -> Result<(), Self::Error> {
        match ChannelRequest::from_subsystem(name) {
            Some(request) => self.start_session(channel, request, session),
            None => {
                log::info!("refused subsystem {name:?} from {}", self.peer);
                self.forget_channel(channel);
                session.channel_failure(channel)?;
            }
        }
        Ok(())
    }

    /// A channel the client closes before (or instead of) a request that
    /// started a session must not hold one of the connection's channels.
    async fn channel_close(&mut self, channel: ChannelId, _session: &mut Session) -> Result<(), Self::Error> {
        self.forget_channel(channel);
        Ok(())
    }
}

impl ConnHandler {
    /// Drops a channel that runs no session from this connection's count.
    fn forget_channel(&mut self, channel: ChannelId) {
        self.channels.remove(&channel);
        self.terminals.remove(&channel);
    }
}

impl Drop for ConnHandler {
    fn drop(&mut self) {
        self.shared.connections.fetch_sub(1, Ordering::Relaxed);
        {
            let mut o = self.shared.occupancy();
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
                event::emit(&Event::LoginBanned { address: self.peer.ip().to_string(), seconds: ban.length.as_secs() });
            }
        }
    }
}
