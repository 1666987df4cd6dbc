//! The appliance's small network services: `time sync` (SNTP, then the
//! system clock and the RTC, and the trust record other services wait for)
//! and `mdns` (advertising `NAME.local` and the SSH/SFTP services).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use coffer_config::{Config, StatePaths};
use coffer_runtime::Paths;
use coffer_runtime::clock::system_now;
use coffer_runtime::event::{self, Event};
use coffer_time::ClockState;

/// The hardware clock the time is written back to (a node under `/dev`).
const RTC: &str = "rtc0";
/// How long to wait for one server's answer.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// Until the first success, ask this often.
const RETRY: Duration = Duration::from_secs(20);
/// A correction smaller than this is not worth a jump of the clock.
const STEP_MS: i64 = 500;

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

pub(crate) fn time_sync(state: &Path) -> Result<()> {
    let config = Config::load(&StatePaths::new(state).config())?;
    crate::logging::init(&config.log.level);
    let mut synced = false;
    event::emit(&Event::TimeRunning { servers: servers(&config) });
    loop {
        let list = servers(&config);
        match coffer_time::query_any(&list, QUERY_TIMEOUT) {
            Ok((server, sample)) => {
                let offset = sample.offset_ms();
                if offset.abs() >= STEP_MS {
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
                let record = ClockState::synced(system_now(), &server, offset);
                let text = serde_json::to_vec(&record)?;
                coffer_config::write_atomically(&Paths::appliance().clock(), &text)?;
                if !synced || offset.abs() >= STEP_MS {
                    event::emit(&Event::TimeSynced { server: server.to_string(), offset_ms: offset, rtc });
                }
                synced = true;
            }
            Err(e) => log::warn!("setting the clock: {e}"),
        }
        std::thread::sleep(if synced { Duration::from_secs(config.time.interval_secs.max(60)) } else { RETRY });
    }
}

/// The first global IPv4 address (busybox `ip`), which mDNS advertises.
fn own_address() -> Option<std::net::Ipv4Addr> {
    let out = std::process::Command::new("/sbin/ip").args(["-o", "-4", "addr", "show", "scope", "global"]).output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next()?.parse().ok())
}

pub(crate) fn mdns(state: &Path) -> Result<()> {
    let config = Config::load(&StatePaths::new(state).config())?;
    crate::logging::init(&config.log.level);
    if !config.network.mdns {
        log::info!("mDNS is off (network.mdns = false)");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    let port = config.server.listen.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(22);
    loop {
        let Some(addr) = own_address() else {
            std::thread::sleep(Duration::from_secs(2));
            continue;
        };
        let responder = coffer_mdns::Responder::new(&config.network.hostname, addr, port)
            .with_context(|| format!("network.hostname {:?} is not a valid mDNS name", config.network.hostname))?;
        event::emit(&Event::MdnsAdvertising { name: format!("{}.local", config.network.hostname), address: addr.to_string() });
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                // A new address (a new lease) means new records.
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_secs(10));
                    if own_address() != Some(addr) {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            })
        };
        let result = coffer_mdns::serve(&responder, &stop);
        stop.store(true, Ordering::Relaxed);
        let _ = watcher.join();
        result.context("serving mDNS")?;
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
