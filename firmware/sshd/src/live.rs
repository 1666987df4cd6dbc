//! The logged-in connections and the sessions they run, so that a change to
//! `users.toml` reaches connections that are already open: a removed key, a
//! locked or removed user ends them, a narrower profile ends the sessions it
//! no longer allows, and new quota limits apply to the next request for credit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::sync::atomic::{AtomicU64, Ordering};

use coffer_config::{KeyProfile, UserDb};
use coffer_runtime::event::{self, Event};
use russh::keys::PublicKey;
use russh::server::Handle;
use tokio::sync::watch;

use crate::access::{access, exceeds};
use crate::quota::QuotaBook;

/// Every connection of the endpoint, by an id of our own.
#[derive(Default)]
pub(crate) struct LiveSessions {
    next: AtomicU64,
    conns: Mutex<HashMap<u64, LiveConn>>,
}

#[derive(Default)]
struct LiveConn {
    peer: Option<SocketAddr>,
    handle: Option<(Handle, Arc<std::net::TcpStream>)>,
    login: Option<(String, PublicKey)>,
    sessions: HashMap<u64, LiveSession>,
}

struct LiveSession {
    profile: KeyProfile,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for LiveSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveSessions")
    }
}

impl LiveSessions {
    /// A new connection id.
    pub(crate) fn open(&self, peer: SocketAddr) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut c) = self.conns.lock() {
            c.entry(id).or_default().peer = Some(peer);
        }
        id
    }

    /// The handle that can disconnect connection `conn`, and its socket.
    pub(crate) fn set_handle(&self, conn: u64, handle: Handle, socket: Arc<std::net::TcpStream>) {
        if let Ok(mut c) = self.conns.lock() {
            c.entry(conn).or_default().handle = Some((handle, socket));
        }
    }

    pub(crate) fn logged_in(&self, conn: u64, user: &str, key: PublicKey) {
        if let Ok(mut c) = self.conns.lock() {
            c.entry(conn).or_default().login = Some((user.into(), key));
        }
    }

    pub(crate) fn close(&self, conn: u64) {
        if let Ok(mut c) = self.conns.lock() {
            c.remove(&conn);
        }
    }

    /// Registers a session running under `profile`; the receiver turns true
    /// when the session must end.
    pub(crate) fn start_session(&self, conn: u64, profile: KeyProfile) -> (u64, watch::Receiver<bool>) {
        let (stop, stopped) = watch::channel(false);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut c) = self.conns.lock() {
            c.entry(conn).or_default().sessions.insert(id, LiveSession { profile, stop });
        }
        (id, stopped)
    }

    pub(crate) fn end_session(&self, conn: u64, id: u64) {
        if let Ok(mut c) = self.conns.lock()
            && let Some(conn) = c.get_mut(&conn)
        {
            conn.sessions.remove(&id);
        }
    }

    /// Number of sessions running on connection `conn`.
    pub(crate) fn sessions_of(&self, conn: u64) -> usize {
        self.conns.lock().ok().and_then(|c| c.get(&conn).map(|c| c.sessions.len())).unwrap_or(0)
    }

    /// Applies the current user database to every open connection: ends
    /// what it no longer allows and gives the quota book the current limits.
    pub(crate) fn apply(&self, db: &UserDb, quota: &QuotaBook) {
        for u in &db.users {
            quota.set_limits(u.name.as_str(), coffer_quota::Limits { bytes: u.quota_bytes, files: u.quota_files });
        }
        let mut disconnect = Vec::new();
        let Ok(mut conns) = self.conns.lock() else { return };
        let mut revoked = Vec::new();
        for (&conn_id, conn) in conns.iter_mut() {
            let Some((user, key)) = &conn.login else { continue };
            let peer = conn.peer.map(|p| p.to_string()).unwrap_or_default();
            let fingerprint = key.fingerprint(Default::default()).to_string();
            match access(db, user, key) {
                Err(why) => {
                    log::warn!("user {user} from {peer}: {why}; ending the connection (key {fingerprint})");
                    event::emit(&Event::SessionRevoked { user: user.to_string(), key: fingerprint.clone(), reason: why.word().to_string(), address: peer.clone() });
                    for s in conn.sessions.values() {
                        let _ = s.stop.send(true);
                    }
                    if let Some(h) = conn.handle.clone() {
                        disconnect.push((h, format!("coffer: {why}")));
                    }
                    revoked.push(conn_id);
                }
                Ok(now) => {
                    let narrowed: Vec<&LiveSession> = conn.sessions.values().filter(|s| !*s.stop.borrow() && exceeds(s.profile, now.profile)).collect();
                    if narrowed.is_empty() {
                        continue;
                    }
                    log::warn!(
                        "user {user} from {peer}: key {fingerprint} is now {:?}; ending {} session(s) it no longer allows",
                        now.profile,
                        narrowed.len()
                    );
                    event::emit(&Event::SessionNarrowed {
                        user: user.to_string(),
                        key: fingerprint.clone(),
                        profile: profile_word(now.profile).to_string(),
                        sessions: narrowed.len() as u64,
                    });
                    for s in narrowed {
                        let _ = s.stop.send(true);
                    }
                }
            }
        }
        // A revoked connection is being cut; later changes need not revoke it again.
        for id in revoked {
            if let Some(conn) = conns.get_mut(&id) {
                conn.login = None;
            }
        }
        drop(conns);
        for ((handle, socket), why) in disconnect {
            crate::disconnect::cut(handle, socket, why);
        }
    }
}

/// The profile as users.toml and the worker's command line spell it.
pub(crate) fn profile_word(p: KeyProfile) -> &'static str {
    match p {
        KeyProfile::Full => "full",
        KeyProfile::AppendOnly => "append-only",
        KeyProfile::ReadOnly => "read-only",
    }
}
