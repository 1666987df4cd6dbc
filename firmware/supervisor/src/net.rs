//! Networking: loopback, then the first Ethernet interface by DHCP (busybox
//! udhcpc, kept running to renew the lease), falling back to the static
//! address from `coffer.toml`. Runs beside the services: the endpoint
//! listens on every address, so it need not wait for a lease.

use coffer_config::NetworkConfig;
use coffer_hal::SysRoot;
use coffer_runtime::event::Event;

use crate::console::event;
use crate::reaper::Reaper;

const BUSYBOX: &str = "/bin/busybox";
/// Script udhcpc runs to apply a lease (from `rootfs-overlay/`).
fn dhcp_script() -> String {
    coffer_runtime::Paths::appliance().dhcp_script().to_string_lossy().into_owned()
}

/// How the interface got its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NetworkOutcome {
    /// A lease; `udhcpc` should keep running on `interface` to renew it.
    Dhcp { interface: String },
    Static { interface: String },
    /// No address: DHCP unanswered and no static fallback. Keep asking.
    Waiting { interface: String },
    NoInterface,
}

fn ip(reaper: &Reaper, args: &[&str]) -> bool {
    let mut full = vec!["ip"];
    full.extend_from_slice(args);
    match reaper.run(BUSYBOX, &full) {
        Ok(out) if out.exit.success() => true,
        Ok(out) => {
            log::warn!("ip {}: {}", args.join(" "), out.stderr.trim());
            false
        }
        Err(e) => {
            log::warn!("ip {}: {e}", args.join(" "));
            false
        }
    }
}

pub(crate) fn bring_up(sys: &SysRoot, reaper: &Reaper, config: &NetworkConfig) -> NetworkOutcome {
    ip(reaper, &["link", "set", "lo", "up"]);
    let Some(interface) = sys.network_interfaces().ok().and_then(|v| v.into_iter().next()) else {
        event(&Event::NetworkNoInterface);
        return NetworkOutcome::NoInterface;
    };
    ip(reaper, &["link", "set", &interface, "up"]);
    if config.dhcp {
        let lease = reaper.run(BUSYBOX, &["udhcpc", "-i", &interface, "-n", "-q", "-t", "5", "-T", "2", "-O", "ntpsrv", "-s", &dhcp_script()]);
        if matches!(&lease, Ok(out) if out.exit.success()) {
            event(&Event::NetworkUp { interface: interface.clone(), method: "dhcp".to_string(), address: None });
            return NetworkOutcome::Dhcp { interface };
        }
    }
    if let Some(address) = &config.address {
        let ok = ip(reaper, &["addr", "add", address, "dev", &interface])
            && config.gateway.as_deref().is_none_or(|gw| ip(reaper, &["route", "add", "default", "via", gw]));
        let resolv: String = config.dns.iter().map(|d| format!("nameserver {d}\n")).collect();
        if !resolv.is_empty() {
            let _ = std::fs::write("/etc/resolv.conf", resolv);
        }
        if ok {
            event(&Event::NetworkUp { interface: interface.clone(), method: "static".to_string(), address: Some(address.clone()) });
            return NetworkOutcome::Static { interface };
        }
    }
    event(&Event::NetworkWaiting { interface: interface.clone() });
    NetworkOutcome::Waiting { interface }
}

/// The long-running DHCP client that renews the lease (or keeps asking).
pub(crate) fn dhcp_client_argv(interface: &str) -> Vec<String> {
    [BUSYBOX, "udhcpc", "-f", "-i", interface, "-t", "0", "-T", "3", "-A", "10", "-O", "ntpsrv", "-s", &dhcp_script()]
        .iter()
        .map(|s| s.to_string())
        .collect()
}
