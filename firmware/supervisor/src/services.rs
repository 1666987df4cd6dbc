//! What the supervisor decides about its services, as a pure state machine:
//! given the table and the time, which services to start, and whether the
//! appliance is healthy enough to pet the watchdog. Effects (spawning,
//! signalling) happen in `run.rs`.

use std::time::{Duration, Instant};

/// Exponential restart backoff with a cap, reset after a stable run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub initial: Duration,
    pub max: Duration,
    /// A run at least this long counts as stable and resets the delay.
    pub stable_after: Duration,
    /// How long a watched service may be down before the appliance counts as unhealthy.
    pub unhealthy_after: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            stable_after: Duration::from_secs(30),
            unhealthy_after: Duration::from_secs(90),
        }
    }
}

impl RestartPolicy {
    /// The delay before restart number `failures` (1 for the first restart).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures.saturating_sub(1)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceState {
    /// Not started yet, or waiting for its restart time.
    Waiting { start_at: Instant },
    Running { pid: i32, since: Instant, ready: bool },
    /// Stopped on purpose (shutdown); never restarted.
    Stopped,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub argv: Vec<String>,
    /// A line on the service's output that says it is ready (`None`: ready once running).
    pub ready_marker: Option<String>,
    /// The watchdog is petted only while every watched service is up.
    pub watched: bool,
    pub state: ServiceState,
    /// Consecutive unstable runs; decides the next delay.
    pub failures: u32,
    /// When the service was last up (or first scheduled), for health.
    pub last_up: Instant,
}

/// What the supervisor does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Start(String),
}

/// What the table concludes from an exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitOutcome {
    pub service: String,
    pub restart_in: Option<Duration>,
    /// The delay hit the cap: worth an alert.
    pub at_cap: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ServiceTable {
    pub policy: RestartPolicy,
    pub services: Vec<Service>,
}

impl ServiceTable {
    pub fn new(policy: RestartPolicy) -> Self {
        ServiceTable { policy, services: Vec::new() }
    }

    pub fn add(&mut self, name: &str, argv: Vec<String>, ready_marker: Option<&str>, watched: bool, now: Instant) {
        self.services.push(Service {
            name: name.into(),
            argv,
            ready_marker: ready_marker.map(str::to_string),
            watched,
            state: ServiceState::Waiting { start_at: now },
            failures: 0,
            last_up: now,
        });
    }

    pub fn get(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut Service> {
        self.services.iter_mut().find(|s| s.name == name)
    }

    /// Services whose start time has come.
    pub fn plan(&self, now: Instant) -> Vec<Action> {
        self.services
            .iter()
            .filter(|s| matches!(s.state, ServiceState::Waiting { start_at } if start_at <= now))
            .map(|s| Action::Start(s.name.clone()))
            .collect()
    }

    /// The earliest pending start, so the main loop knows how long it may sleep.
    pub fn next_start(&self) -> Option<Instant> {
        self.services
            .iter()
            .filter_map(|s| match s.state {
                ServiceState::Waiting { start_at } => Some(start_at),
                _ => None,
            })
            .min()
    }

    pub fn started(&mut self, name: &str, pid: i32, now: Instant) {
        if let Some(s) = self.get_mut(name) {
            let ready = s.ready_marker.is_none();
            s.state = ServiceState::Running { pid, since: now, ready };
            if ready {
                s.last_up = now;
            }
        }
    }

    /// A service could not even be spawned: treat it as an immediate exit.
    pub fn spawn_failed(&mut self, name: &str, now: Instant) -> Option<ExitOutcome> {
        let s = self.get_mut(name)?;
        s.state = ServiceState::Running { pid: 0, since: now, ready: false };
        self.exited(0, now)
    }

    /// Marks a running service ready when its output shows the marker.
    pub fn output_line(&mut self, name: &str, line: &str, now: Instant) -> bool {
        let Some(s) = self.get_mut(name) else { return false };
        let marker_seen = s.ready_marker.as_deref().is_some_and(|m| line.contains(m));
        match &mut s.state {
            ServiceState::Running { ready, .. } if !*ready && marker_seen => {
                *ready = true;
                s.last_up = now;
                true
            }
            _ => false,
        }
    }

    /// The service owning `pid`, if any.
    pub fn by_pid(&self, pid: i32) -> Option<&Service> {
        self.services.iter().find(|s| matches!(s.state, ServiceState::Running { pid: p, .. } if p == pid))
    }

    /// A service process exited: schedule its restart.
    pub fn exited(&mut self, pid: i32, now: Instant) -> Option<ExitOutcome> {
        let policy = self.policy;
        let s = self.services.iter_mut().find(|s| matches!(s.state, ServiceState::Running { pid: p, .. } if p == pid))?;
        let ServiceState::Running { since, ready, .. } = s.state else { return None };
        if ready {
            s.last_up = now;
        }
        if now.duration_since(since) >= policy.stable_after {
            s.failures = 0;
        }
        s.failures = s.failures.saturating_add(1);
        let delay = policy.delay(s.failures);
        s.state = ServiceState::Waiting { start_at: now + delay };
        Some(ExitOutcome { service: s.name.clone(), restart_in: Some(delay), at_cap: delay >= policy.max })
    }

    /// Marks every service stopped (shutdown) and returns the pids to signal.
    pub fn stop_all(&mut self) -> Vec<(String, i32)> {
        let mut pids = Vec::new();
        for s in &mut self.services {
            if let ServiceState::Running { pid, .. } = s.state
                && pid > 0 {
                    pids.push((s.name.clone(), pid));
                }
            s.state = ServiceState::Stopped;
        }
        pids
    }

    /// Healthy when every watched service is ready, or has been down for
    /// less than `unhealthy_after` (a quick restart is not a sick box).
    pub fn healthy(&self, now: Instant) -> bool {
        self.services.iter().filter(|s| s.watched).all(|s| match s.state {
            ServiceState::Running { ready: true, .. } => true,
            ServiceState::Stopped => false,
            _ => now.duration_since(s.last_up) < self.policy.unhealthy_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn table(now: Instant) -> ServiceTable {
        let mut t = ServiceTable::new(RestartPolicy::default());
        t.add("endpoint", vec!["coffer".into(), "serve".into()], Some("listening on"), true, now);
        t
    }

    #[test]
    fn starts_then_restarts_with_growing_delay_and_resets_after_a_stable_run() {
        let t0 = Instant::now();
        let mut t = table(t0);
        assert_eq!(t.plan(t0), vec![Action::Start("endpoint".into())]);
        t.started("endpoint", 10, t0);
        assert!(t.plan(t0).is_empty());
        let mut now = t0;
        let mut delays = Vec::new();
        for pid in 10..18 {
            now += Duration::from_millis(100);
            let out = t.exited(pid, now).unwrap();
            delays.push(out.restart_in.unwrap().as_secs());
            now = t.next_start().unwrap();
            assert_eq!(t.plan(now).len(), 1);
            t.started("endpoint", pid + 1, now);
        }
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        now += Duration::from_secs(31);
        assert_eq!(t.exited(18, now).unwrap().restart_in, Some(Duration::from_secs(1)));
        assert!(t.exited(999, now).is_none(), "unknown pids are orphans, not services");
    }

    #[test]
    fn ready_marker_and_health() {
        let t0 = Instant::now();
        let mut t = table(t0);
        t.started("endpoint", 7, t0);
        assert!(t.healthy(t0 + Duration::from_secs(5)), "starting counts as healthy for a while");
        assert!(!t.healthy(t0 + Duration::from_secs(91)), "never became ready");
        assert!(!t.output_line("endpoint", "something else", t0));
        assert!(t.output_line("endpoint", "coffer: listening on 0.0.0.0:22", t0 + Duration::from_secs(2)));
        assert!(t.healthy(t0 + Duration::from_secs(500)));
        t.exited(7, t0 + Duration::from_secs(600));
        assert!(t.healthy(t0 + Duration::from_secs(650)));
        assert!(!t.healthy(t0 + Duration::from_secs(700)), "down for more than 90 s");
        assert_eq!(t.stop_all(), vec![]);
        assert!(t.plan(t0 + Duration::from_secs(10_000)).is_empty(), "stopped services stay stopped");
    }

    proptest! {
        #[test]
        fn delay_is_monotonic_and_capped(a in 0u32..200, b in 0u32..200) {
            let p = RestartPolicy::default();
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(p.delay(lo) <= p.delay(hi));
            prop_assert!(p.delay(hi) <= p.max);
            prop_assert!(p.delay(hi) >= p.initial.min(p.max));
        }
    }
}
