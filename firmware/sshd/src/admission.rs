//! How much of the endpoint one address or one user may hold: connections
//! that have not logged in yet, logged-in connections, channels and session
//! workers. Pure bookkeeping over counts, so every limit and the reserve that
//! keeps the other users served are table-tested without sockets.
//!
//! A stolen key is an attacker with a valid login: every channel it opens is
//! a process and four descriptors in the front end, so the limits are per
//! user as well as in total, and the last few worker slots are kept for users
//! who hold almost none.

use std::collections::HashMap;
use std::net::IpAddr;

/// Limits from `[server]` in coffer.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Connections that have not logged in yet, in total.
    pub unauthenticated: usize,
    /// Connections that have not logged in yet, per source address.
    pub unauthenticated_per_address: usize,
    /// Logged-in connections of one user.
    pub connections_per_user: usize,
    /// Open channels (running or not) on one connection.
    pub channels_per_connection: usize,
    /// Session workers of one user.
    pub workers_per_user: usize,
    /// Session workers in total.
    pub workers: usize,
    /// Worker slots that only users holding fewer than
    /// [`RESERVE_HOLDER_LIMIT`] workers may take.
    pub workers_reserve: usize,
}

/// A user holding fewer workers than this may use the reserve.
pub const RESERVE_HOLDER_LIMIT: usize = 2;

impl Default for AdmissionLimits {
    fn default() -> Self {
        AdmissionLimits {
            unauthenticated: 32,
            unauthenticated_per_address: 16,
            connections_per_user: 24,
            channels_per_connection: 10,
            workers_per_user: 32,
            workers: 128,
            workers_reserve: 16,
        }
    }
}

/// Why something was not admitted; the text is what the log and the client see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{held} connections from {address} have not logged in yet (server.max-unauthenticated-per-address is {limit})")]
    AddressBusy { address: IpAddr, held: usize, limit: usize },
    #[error("{held} connections have not logged in yet (server.max-unauthenticated is {limit})")]
    TooManyUnauthenticated { held: usize, limit: usize },
    #[error("user {user} already has {held} connections open (server.max-connections-per-user is {limit})")]
    UserConnections { user: String, held: usize, limit: usize },
    #[error("user {user} already runs {held} sessions (server.max-sessions-per-user is {limit}); close some and retry")]
    UserWorkers { user: String, held: usize, limit: usize },
    #[error("the server runs {held} sessions, its limit (server.max-sessions is {limit}); retry later")]
    ServerWorkers { held: usize, limit: usize },
}

/// What is held right now.
#[derive(Debug, Default)]
pub struct Occupancy {
    limits: AdmissionLimits,
    unauthenticated: HashMap<IpAddr, usize>,
    unauthenticated_total: usize,
    connections: HashMap<String, usize>,
    workers: HashMap<String, usize>,
    workers_total: usize,
}

impl Occupancy {
    pub fn new(limits: AdmissionLimits) -> Self {
        Occupancy { limits, ..Occupancy::default() }
    }

    pub fn limits(&self) -> AdmissionLimits {
        self.limits
    }

    /// A new connection from `address` before it logs in.
    pub fn open_unauthenticated(&mut self, address: IpAddr) -> Result<(), Refusal> {
        let held = self.unauthenticated.get(&address).copied().unwrap_or(0);
        if held >= self.limits.unauthenticated_per_address {
            return Err(Refusal::AddressBusy { address, held, limit: self.limits.unauthenticated_per_address });
        }
        if self.unauthenticated_total >= self.limits.unauthenticated {
            return Err(Refusal::TooManyUnauthenticated { held: self.unauthenticated_total, limit: self.limits.unauthenticated });
        }
        *self.unauthenticated.entry(address).or_default() += 1;
        self.unauthenticated_total += 1;
        Ok(())
    }

    /// A connection from `address` that had not logged in ended or logged in.
    pub fn close_unauthenticated(&mut self, address: IpAddr) {
        if let Some(n) = self.unauthenticated.get_mut(&address) {
            *n -= 1;
            if *n == 0 {
                self.unauthenticated.remove(&address);
            }
            self.unauthenticated_total = self.unauthenticated_total.saturating_sub(1);
        }
    }

    /// A connection logging in as `user`.
    pub fn open_connection(&mut self, user: &str) -> Result<(), Refusal> {
        let held = self.connections.get(user).copied().unwrap_or(0);
        if held >= self.limits.connections_per_user {
            return Err(Refusal::UserConnections { user: user.into(), held, limit: self.limits.connections_per_user });
        }
        *self.connections.entry(user.into()).or_default() += 1;
        Ok(())
    }

    pub fn close_connection(&mut self, user: &str) {
        release(&mut self.connections, user);
    }

    /// A session worker for `user`. The last `workers_reserve` slots go only
    /// to users holding fewer than [`RESERVE_HOLDER_LIMIT`], so one user
    /// (or a few) filling the box still leaves every other user a session.
    pub fn start_worker(&mut self, user: &str) -> Result<(), Refusal> {
        let held = self.workers.get(user).copied().unwrap_or(0);
        let l = self.limits;
        if held >= l.workers_per_user {
            return Err(Refusal::UserWorkers { user: user.into(), held, limit: l.workers_per_user });
        }
        let ceiling = if held < RESERVE_HOLDER_LIMIT { l.workers } else { l.workers.saturating_sub(l.workers_reserve) };
        if self.workers_total >= ceiling {
            return Err(Refusal::ServerWorkers { held: self.workers_total, limit: l.workers });
        }
        *self.workers.entry(user.into()).or_default() += 1;
        self.workers_total += 1;
        Ok(())
    }

    pub fn end_worker(&mut self, user: &str) {
        if release(&mut self.workers, user) {
            self.workers_total = self.workers_total.saturating_sub(1);
        }
    }

    /// (unauthenticated, logged-in connections, workers) held right now.
    pub fn totals(&self) -> (usize, usize, usize) {
        (self.unauthenticated_total, self.connections.values().sum(), self.workers_total)
    }
}

fn release(counts: &mut HashMap<String, usize>, user: &str) -> bool {
    let Some(n) = counts.get_mut(user) else { return false };
    *n -= 1;
    if *n == 0 {
        counts.remove(user);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> AdmissionLimits {
        AdmissionLimits {
            unauthenticated: 4,
            unauthenticated_per_address: 2,
            connections_per_user: 2,
            channels_per_connection: 3,
            workers_per_user: 5,
            workers: 8,
            workers_reserve: 3,
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn unauthenticated_connections_are_capped_per_address_and_in_total() {
        let mut o = Occupancy::new(small());
        assert!(o.open_unauthenticated(ip(1)).is_ok());
        assert!(o.open_unauthenticated(ip(1)).is_ok());
        assert!(matches!(o.open_unauthenticated(ip(1)), Err(Refusal::AddressBusy { held: 2, .. })));
        assert!(o.open_unauthenticated(ip(2)).is_ok());
        assert!(o.open_unauthenticated(ip(3)).is_ok());
        assert!(matches!(o.open_unauthenticated(ip(4)), Err(Refusal::TooManyUnauthenticated { held: 4, .. })));
        o.close_unauthenticated(ip(1));
        assert!(o.open_unauthenticated(ip(4)).is_ok());
        assert_eq!(o.totals().0, 4);
    }

    #[test]
    fn closing_what_was_never_opened_changes_nothing() {
        let mut o = Occupancy::new(small());
        o.close_unauthenticated(ip(9));
        o.close_connection("nobody");
        o.end_worker("nobody");
        assert_eq!(o.totals(), (0, 0, 0));
    }

    #[test]
    fn connections_are_capped_per_user() {
        let mut o = Occupancy::new(small());
        assert!(o.open_connection("alice").is_ok());
        assert!(o.open_connection("alice").is_ok());
        assert!(matches!(o.open_connection("alice"), Err(Refusal::UserConnections { held: 2, .. })));
        assert!(o.open_connection("bob").is_ok());
        o.close_connection("alice");
        assert!(o.open_connection("alice").is_ok());
    }

    #[test]
    fn one_user_cannot_take_the_reserve() {
        let mut o = Occupancy::new(small());
        for _ in 0..5 {
            o.start_worker("alice").expect("below the per-user limit");
        }
        assert!(matches!(o.start_worker("alice"), Err(Refusal::UserWorkers { held: 5, .. })));
        // 5 of 8 held, the reserve is 3: a second heavy user gets none of it.
        o.start_worker("mallory").expect("first");
        o.start_worker("mallory").expect("second, still below the reserve holder limit");
        assert!(matches!(o.start_worker("mallory"), Err(Refusal::ServerWorkers { .. })));
        // A user with no session still gets one.
        o.start_worker("bob").expect("bob is served from the reserve");
        assert!(matches!(o.start_worker("carol"), Err(Refusal::ServerWorkers { held: 8, .. })));
        o.end_worker("alice");
        o.start_worker("carol").expect("a slot came free");
    }

    #[test]
    fn messages_name_the_setting() {
        let e = Refusal::UserWorkers { user: "mallory".into(), held: 32, limit: 32 };
        assert_eq!(e.to_string(), "user mallory already runs 32 sessions (server.max-sessions-per-user is 32); close some and retry");
    }
}
