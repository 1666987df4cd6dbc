//! What to send when, as a pure state machine over time. It is saved
//! between runs (JSON), so open problems, pending deliveries and retries
//! survive restarts and power cuts.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::Alert;

const RETRY_FIRST_SECS: u64 = 30;
const RETRY_MAX_SECS: u64 = 3600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Open {
    alert: Alert,
    last_sent: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Queued {
    id: u64,
    alert: Alert,
    reminder: bool,
    /// Sinks that still have to get it.
    sinks: BTreeSet<String>,
    attempts: u32,
    next_try: u64,
    /// Counted against the hourly limit once its first delivery was tried.
    started: bool,
}

/// One message to one sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: u64,
    pub sink: String,
    pub alert: Alert,
    pub reminder: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispatcher {
    open: BTreeMap<String, Open>,
    queue: Vec<Queued>,
    started_at: VecDeque<u64>,
    next_id: u64,
}

impl Dispatcher {
    fn enqueue(&mut self, alert: Alert, reminder: bool, sinks: &[String], now: u64) {
        self.next_id += 1;
        self.queue.push(Queued {
            id: self.next_id,
            alert,
            reminder,
            sinks: sinks.iter().cloned().collect(),
            attempts: 0,
            next_try: now,
            started: false,
        });
    }

    /// Takes an alert in. A problem already open is not sent again (its
    /// reminders are); "resolved" for a problem not open is dropped.
    /// Returns whether it will be sent.
    pub fn accept(&mut self, alert: Alert, sinks: &[String], now: u64) -> bool {
        if alert.resolved {
            if self.open.remove(&alert.key).is_none() {
                return false;
            }
        } else {
            if self.open.contains_key(&alert.key) {
                return false;
            }
            self.open.insert(alert.key.clone(), Open { alert: alert.clone(), last_sent: now });
        }
        self.enqueue(alert, false, sinks, now);
        true
    }

    /// Queues a reminder for every problem open for `every` seconds since it was last sent.
    pub fn remind(&mut self, now: u64, every: u64, sinks: &[String]) {
        let due: Vec<Alert> = self
            .open
            .values_mut()
            .filter(|o| now >= o.last_sent.saturating_add(every) || o.last_sent > now)
            .map(|o| {
                o.last_sent = now;
                o.alert.clone()
            })
            .collect();
        for alert in due {
            self.enqueue(alert, true, sinks, now);
        }
    }

    /// Deliveries to try now, in order, within `max_per_hour` new alerts per hour.
    pub fn due(&mut self, now: u64, max_per_hour: u32) -> Vec<Delivery> {
        // Times from a clock that has since gone backwards (RTC reset) would block sending for good.
        self.started_at.retain(|t| *t <= now && now - *t < 3600);
        for q in &mut self.queue {
            q.next_try = q.next_try.min(now + RETRY_MAX_SECS);
        }
        let mut out = Vec::new();
        for q in &mut self.queue {
            if q.next_try > now {
                continue;
            }
            if !q.started {
                if self.started_at.len() >= max_per_hour as usize {
                    continue;
                }
                q.started = true;
                self.started_at.push_back(now);
            }
            for sink in &q.sinks {
                out.push(Delivery { id: q.id, sink: sink.clone(), alert: q.alert.clone(), reminder: q.reminder });
            }
        }
        out
    }

    pub fn delivered(&mut self, d: &Delivery) {
        if let Some(q) = self.queue.iter_mut().find(|q| q.id == d.id) {
            q.sinks.remove(&d.sink);
        }
        self.queue.retain(|q| !q.sinks.is_empty());
    }

    /// A sink failed: try that alert again later (30 s, doubling to an hour).
    pub fn failed(&mut self, d: &Delivery, now: u64) {
        if let Some(q) = self.queue.iter_mut().find(|q| q.id == d.id) {
            q.attempts = q.attempts.saturating_add(1);
            let delay = RETRY_FIRST_SECS.saturating_mul(1 << q.attempts.min(7).saturating_sub(1)).min(RETRY_MAX_SECS);
            q.next_try = now + delay;
        }
    }

    /// Alerts still waiting for some sink.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Keys of problems still open.
    pub fn open_keys(&self) -> Vec<&str> {
        self.open.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;
    use proptest::prelude::*;

    fn alert(key: &str, resolved: bool) -> Alert {
        Alert { key: key.into(), severity: Severity::Critical, title: key.into(), body: String::new(), resolved, time: 0 }
    }

    fn sinks() -> Vec<String> {
        vec!["email".into(), "webhook".into()]
    }

    #[test]
    fn one_message_per_problem_reminders_and_resolved() {
        let mut d = Dispatcher::default();
        assert!(d.accept(alert("raid:degraded", false), &sinks(), 100));
        assert!(!d.accept(alert("raid:degraded", false), &sinks(), 150), "same problem again: not re-sent");
        let out = d.due(100, 20);
        assert_eq!(out.len(), 2);
        for x in &out {
            d.delivered(x);
        }
        assert_eq!(d.pending(), 0);
        d.remind(100 + 3600, 86_400, &sinks());
        assert_eq!(d.pending(), 0, "not yet a day");
        d.remind(100 + 86_400, 86_400, &sinks());
        let out = d.due(100 + 86_400, 20);
        assert!(out.iter().all(|x| x.reminder) && out.len() == 2);
        out.iter().for_each(|x| d.delivered(x));
        assert!(d.accept(alert("raid:degraded", true), &sinks(), 200_000));
        assert!(d.open_keys().is_empty());
        assert!(!d.accept(alert("raid:degraded", true), &sinks(), 200_001), "nothing left to resolve");
    }

    #[test]
    fn failed_sinks_retry_with_backoff_and_others_are_not_resent() {
        let mut d = Dispatcher::default();
        d.accept(alert("a", false), &sinks(), 0);
        let out = d.due(0, 20);
        d.delivered(&out[0]);
        d.failed(&out[1], 0);
        assert!(d.due(10, 20).is_empty(), "waits 30 s");
        let again = d.due(30, 20);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].sink, "webhook");
        d.failed(&again[0], 30);
        assert!(d.due(89, 20).is_empty(), "then 60 s");
        assert_eq!(d.due(90, 20).len(), 1);
    }

    #[test]
    fn hourly_limit_delays_but_never_drops() {
        let mut d = Dispatcher::default();
        for i in 0..5 {
            d.accept(alert(&format!("k{i}"), false), &sinks()[..1], 0);
        }
        let first = d.due(0, 2);
        assert_eq!(first.len(), 2);
        first.iter().for_each(|x| d.delivered(x));
        assert!(d.due(1000, 2).is_empty());
        let later = d.due(3600, 2);
        assert_eq!(later.len(), 2);
        later.iter().for_each(|x| d.delivered(x));
        let last = d.due(7200, 2);
        assert_eq!(last.len(), 1);
        last.iter().for_each(|x| d.delivered(x));
        assert_eq!(d.pending(), 0);
    }

    proptest! {
        /// Whatever happens, every accepted alert reaches every sink once the
        /// sinks work again, and a saved dispatcher reloads equal.
        #[test]
        fn accepted_alerts_are_eventually_delivered(ops in prop::collection::vec((0u8..4, 0u8..3, any::<bool>()), 1..40)) {
            let mut d = Dispatcher::default();
            let mut now = 0;
            for (op, key, flag) in ops {
                now += 97;
                match op {
                    0 => { d.accept(alert(&format!("k{key}"), flag), &sinks(), now); }
                    1 => d.remind(now, 500, &sinks()),
                    _ => {
                        for x in d.due(now, 3) {
                            if flag { d.delivered(&x) } else { d.failed(&x, now) }
                        }
                    }
                }
                let saved = serde_json::to_string(&d).unwrap();
                prop_assert_eq!(&serde_json::from_str::<Dispatcher>(&saved).unwrap(), &d);
            }
            for _ in 0..200 {
                now += 3600;
                for x in d.due(now, 3) { d.delivered(&x) }
            }
            prop_assert_eq!(d.pending(), 0);
        }
    }
}
