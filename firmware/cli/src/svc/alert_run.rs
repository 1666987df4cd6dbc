//! `coffer alert run`, the appliance's alert service: it takes alerts from
//! the spool, lets the dispatcher decide, sends through the configured
//! sinks, and saves the dispatcher after every change so nothing is lost
//! across restarts.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use coffer_alert::{Dispatcher, Spool, configured_sinks};
use coffer_config::{Config, StatePaths};
use coffer_runtime::event::{self, Event};

const TICK: Duration = Duration::from_secs(2);

fn load(path: &Path) -> Dispatcher {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            log::error!("{} is unreadable ({e}); starting with no open problems", path.display());
            Dispatcher::default()
        }),
        Err(_) => Dispatcher::default(),
    }
}

fn save(path: &Path, d: &Dispatcher) -> Result<()> {
    let text = serde_json::to_vec_pretty(d)?;
    coffer_config::write_atomically(path, &text).with_context(|| format!("saving {}", path.display()))
}

pub(crate) fn run(state: &Path) -> Result<()> {
    let paths = StatePaths::new(state);
    let config = Config::load(&paths.config())?;
    crate::logging::init(&config.log.level);
    let host = config.network.hostname.clone();
    let sinks = configured_sinks(&config.alerts);
    let names: Vec<String> = sinks.iter().map(|s| s.name().to_string()).collect();
    let dir = coffer_runtime::Paths::appliance().with_state(state).alert_spool();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let spool = Spool::new(&dir);
    let saved = dir.join("dispatch.json");
    let mut dispatcher = load(&saved);
    event::emit(&Event::AlertRunning { sinks: names.clone() });
    loop {
        let t = coffer_runtime::clock::now();
        for (file, alert) in spool.list()? {
            let queued = dispatcher.accept(alert.clone(), &names, t);
            save(&saved, &dispatcher)?;
            spool.remove(&file)?;
            if !queued {
                log::debug!("alert {} not sent again (duplicate, or nothing open to resolve)", alert.key);
            }
        }
        dispatcher.remind(t, config.alerts.reminder_hours.max(1) * 3600, &names);
        for delivery in dispatcher.due(t, config.alerts.max_per_hour) {
            let Some(sink) = sinks.iter().find(|s| s.name() == delivery.sink) else {
                // A sink removed from the config since: nothing more to do for it.
                dispatcher.delivered(&delivery);
                continue;
            };
            match sink.send(&delivery.alert, &host, delivery.reminder) {
                Ok(()) => {
                    dispatcher.delivered(&delivery);
                    event::emit(&Event::AlertSent {
                        key: delivery.alert.key.clone(),
                        sink: delivery.sink.clone(),
                        resolved: delivery.alert.resolved,
                        reminder: delivery.reminder,
                    });
                }
                Err(e) => {
                    dispatcher.failed(&delivery, t);
                    event::emit(&Event::AlertFailed { key: delivery.alert.key.clone(), sink: delivery.sink.clone(), error: e.to_string() });
                }
            }
            save(&saved, &dispatcher)?;
        }
        std::thread::sleep(TICK);
    }
}
