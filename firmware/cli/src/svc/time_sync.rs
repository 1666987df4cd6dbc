//! `time sync`, the appliance's clock service: SNTP, then the system clock
//! and the RTC, and the trust record other services wait for.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use coffer_config::{Config, StatePaths};
use coffer_runtime::Paths;
use coffer_runtime::clock::system_now;
use coffer_runtime::event::{self, Event};
use coffer_time::{ClockState, SyncLoop};

/// The hardware clock the time is written back to (a node under `/dev`).
const RTC: &str = "rtc0";
/// How long to wait for one server's answer.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

fn servers(config: &Config) -> Vec<String> {
    // NTP servers the DHCP server named (udhcpc's hook writes them).
    server_list(&std::fs::read_to_string(Paths::appliance().dhcp_ntp()).unwrap_or_default(), &config.time.servers)
}

/// The servers to try, in order: the DHCP server's (udhcpc's space-separated
/// `$ntpsrv`), then the configured ones, each once.
fn server_list(dhcp: &str, configured: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in dhcp.split_whitespace().map(str::to_string).chain(configured.iter().cloned()) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// Asks the servers, lets [`SyncLoop`] decide, and applies its decision:
/// the system clock, the RTC, the trust record and the event.
pub(crate) fn time_sync(state: &Path) -> Result<()> {
    let config = Config::load(&StatePaths::new(state).config())?;
    crate::logging::init(&config.log.level);
    let interval = Duration::from_secs(config.time.interval_secs);
    let mut sync = SyncLoop::default();
    event::emit(&Event::TimeRunning { servers: servers(&config) });
    loop {
        let answer = coffer_time::query_any(&servers(&config), QUERY_TIMEOUT);
        if let Err(e) = &answer {
            log::warn!("setting the clock: {e}");
        }
        let decision = sync.step(answer.as_ref().ok().map(|(_, sample)| sample.offset_ms()), interval);
        if let Ok((server, sample)) = answer {
            let offset = sample.offset_ms();
            if decision.step_clock {
                let t = sample.corrected(system_now()).context("the server's time is out of range")?;
                coffer_time::set_system_clock(t).context("setting the system clock")?;
            }
            let rtc = match coffer_time::write_rtc(&coffer_hal::SysRoot::system().dev_node(RTC), system_now()) {
                Ok(()) => true,
                Err(e) => {
                    log::debug!("writing the hardware clock {RTC}: {e}");
                    false
                }
            };
            if decision.record {
                let text = serde_json::to_vec(&ClockState::synced(system_now(), &server, offset))?;
                coffer_config::write_atomically(&Paths::appliance().clock(), &text)?;
            }
            if decision.announce {
                event::emit(&Event::TimeSynced { server: server.to_string(), offset_ms: offset, rtc });
            }
        }
        std::thread::sleep(decision.wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dhcp_servers_come_first_and_each_once() {
        let configured = vec!["pool.ntp.org".to_string(), "10.0.0.1".to_string()];
        assert_eq!(server_list("10.0.0.1 192.168.1.1\n", &configured), ["10.0.0.1", "192.168.1.1", "pool.ntp.org"]);
        assert_eq!(server_list("", &configured), ["pool.ntp.org", "10.0.0.1"]);
    }
}
