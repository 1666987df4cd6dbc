//! Failed-login throttling per source address, as a pure state machine over
//! an explicit `now`: escalating delays while failures accumulate, then a
//! ban that doubles with each repeat. Numbers follow OpenSSH's
//! PerSourcePenalties and SFTPGo's defender (see the anchors note); bursts of
//! successful logins (duplicity's pexpect backends open one connection per
//! file) never count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Limits, from `[login-throttle]` in coffer.toml.
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub max_failures: u32,
    pub window: Duration,
    pub ban: Duration,
    pub max_ban: Duration,
}

/// What to do with a connection attempt from an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Serve it; delay each authentication rejection by this much.
    Allow { reject_delay: Duration },
    /// Refuse it until the ban ends.
    Banned { remaining: Duration },
}

/// A ban that a failure just triggered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    pub length: Duration,
    pub failures: u32,
}

#[derive(Debug, Default)]
struct Record {
    failures: Vec<Instant>,
    bans: u32,
    banned_until: Option<Instant>,
    last_seen: Option<Instant>,
}

/// Per-address state.
#[derive(Debug)]
pub struct LoginThrottle {
    policy: ThrottlePolicy,
    records: HashMap<IpAddr, Record>,
}

/// Records kept before old ones are pruned, so a flood of addresses cannot exhaust memory.
const MAX_RECORDS: usize = 10_000;
const MAX_DELAY: Duration = Duration::from_secs(5);

impl LoginThrottle {
    pub fn new(policy: ThrottlePolicy) -> Self {
        LoginThrottle { policy, records: HashMap::new() }
    }

    pub fn admit(&mut self, addr: IpAddr, now: Instant) -> Admission {
        let Some(r) = self.records.get_mut(&addr) else { return Admission::Allow { reject_delay: Duration::ZERO } };
        if let Some(until) = r.banned_until {
            if now < until {
                return Admission::Banned { remaining: until - now };
            }
            r.banned_until = None;
        }
        let window = self.policy.window;
        r.failures.retain(|t| now.saturating_duration_since(*t) < window);
        let n = u32::try_from(r.failures.len()).unwrap_or(u32::MAX);
        let reject_delay = if n == 0 { Duration::ZERO } else { (Duration::from_millis(100) * 2u32.saturating_pow(n.min(16))).min(MAX_DELAY) };
        Admission::Allow { reject_delay }
    }

    /// Records a connection that ended without logging in after trying to.
    pub fn record_failure(&mut self, addr: IpAddr, now: Instant) -> Option<Ban> {
        self.prune(now);
        let policy = self.policy;
        let r = self.records.entry(addr).or_default();
        r.last_seen = Some(now);
        r.failures.retain(|t| now.saturating_duration_since(*t) < policy.window);
        r.failures.push(now);
        let failures = u32::try_from(r.failures.len()).unwrap_or(u32::MAX);
        if failures < policy.max_failures {
            return None;
        }
        let length = (policy.ban * 2u32.saturating_pow(r.bans.min(20))).min(policy.max_ban);
        r.bans = r.bans.saturating_add(1);
        r.banned_until = Some(now + length);
        r.failures.clear();
        Some(Ban { length, failures })
    }

    /// A successful login clears the failures (not an active ban, nor the ban count).
    pub fn record_success(&mut self, addr: IpAddr, now: Instant) {
        if let Some(r) = self.records.get_mut(&addr) {
            r.failures.clear();
            r.last_seen = Some(now);
        }
    }

    fn prune(&mut self, now: Instant) {
        if self.records.len() < MAX_RECORDS {
            return;
        }
        let keep = self.policy.window.max(self.policy.max_ban);
        self.records.retain(|_, r| {
            r.banned_until.is_some_and(|u| u > now) || r.last_seen.is_some_and(|s| now.saturating_duration_since(s) < keep)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy { max_failures: 3, window: Duration::from_secs(60), ban: Duration::from_secs(100), max_ban: Duration::from_secs(250) }
    }

    #[test]
    fn escalates_then_bans_then_doubles() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        let mut t = LoginThrottle::new(policy());
        assert_eq!(t.admit(ip, t0), Admission::Allow { reject_delay: Duration::ZERO });
        assert_eq!(t.record_failure(ip, t0), None);
        let Admission::Allow { reject_delay: d1 } = t.admit(ip, t0) else { panic!() };
        assert_eq!(t.record_failure(ip, t0), None);
        let Admission::Allow { reject_delay: d2 } = t.admit(ip, t0) else { panic!() };
        assert!(d2 > d1 && d1 > Duration::ZERO);
        assert_eq!(t.record_failure(ip, t0), Some(Ban { length: Duration::from_secs(100), failures: 3 }));
        assert!(matches!(t.admit(ip, t0 + Duration::from_secs(99)), Admission::Banned { .. }));
        assert!(matches!(t.admit(other, t0), Admission::Allow { .. }));
        let t1 = t0 + Duration::from_secs(101);
        assert!(matches!(t.admit(ip, t1), Admission::Allow { .. }));
        for _ in 0..2 {
            assert_eq!(t.record_failure(ip, t1), None);
        }
        assert_eq!(t.record_failure(ip, t1), Some(Ban { length: Duration::from_secs(200), failures: 3 }));
        let t2 = t1 + Duration::from_secs(201);
        for _ in 0..2 {
            t.record_failure(ip, t2);
        }
        assert_eq!(t.record_failure(ip, t2).map(|b| b.length), Some(Duration::from_secs(250)));
    }

    #[test]
    fn failures_expire_and_success_clears() {
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let t0 = Instant::now();
        let mut t = LoginThrottle::new(policy());
        t.record_failure(ip, t0);
        t.record_failure(ip, t0);
        assert_eq!(t.record_failure(ip, t0 + Duration::from_secs(61)), None);
        t.record_success(ip, t0 + Duration::from_secs(62));
        assert_eq!(t.admit(ip, t0 + Duration::from_secs(62)), Admission::Allow { reject_delay: Duration::ZERO });
    }
}
