//! `mdns`, the service that advertises `NAME.local` and the SSH/SFTP
//! services on the local network, with new records for a new address.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use coffer_config::{Config, StatePaths};
use coffer_runtime::event::{self, Event};

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
