//! `coffer.toml`: server settings. Unknown keys are errors that name the key,
//! so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ConfigError;

pub const CONFIG_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    pub version: u32,
    pub server: ServerConfig,
    pub login_throttle: LoginThrottleConfig,
    pub retention: RetentionSchedule,
    pub log: LogConfig,
    pub network: NetworkConfig,
    pub raid: RaidConfig,
    pub alerts: AlertsConfig,
    pub time: TimeConfig,
}

/// A secret from the config (a password, a token): never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

/// Where alerts go. Syslog (the console and the log) always; e-mail and a
/// webhook when configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct AlertsConfig {
    /// While a problem stays (a degraded mirror), remind this often (hours).
    pub reminder_hours: u64,
    /// At most this many alerts are sent per hour; the rest wait, none is dropped.
    pub max_per_hour: u32,
    /// Remote syslog server (`host:port`, UDP), besides the local log.
    pub syslog_server: Option<String>,
    pub email: Option<EmailConfig>,
    pub webhook: Option<WebhookConfig>,
    /// A user with no backup for this many days is marked in `status` and raises an alert; 0 turns it off.
    pub no_backup_days: u32,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig { reminder_hours: 24, max_per_hour: 20, syslog_server: None, email: None, webhook: None, no_backup_days: 7 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587); refused if the server cannot.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption (a relay on a trusted network only).
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EmailConfig {
    pub server: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    #[serde(default = "default_smtp_security")]
    pub security: SmtpSecurity,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: Secret,
    pub from: String,
    pub to: Vec<String>,
    /// PEM file with the CA certificate(s) that signed the server's
    /// certificate (a private CA); without it the public web CAs are trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

fn default_smtp_port() -> u16 {
    587
}

fn default_smtp_security() -> SmtpSecurity {
    SmtpSecurity::Starttls
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WebhookKind {
    /// ntfy: the message as the body, title and priority as headers.
    Ntfy,
    /// Gotify: `POST /message` with the application token.
    Gotify,
    /// The alert as a JSON object.
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    pub kind: WebhookKind,
    /// Gotify application token, or a bearer token for ntfy and JSON.
    #[serde(default)]
    pub token: Secret,
}

/// The data mirror (on the appliance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct RaidConfig {
    /// A blank disk put in while the mirror is degraded joins it and the rebuild starts.
    pub auto_add_blank: bool,
    /// Also add disks holding other data (they are wiped). Off: such disks need an admin command.
    pub auto_add_foreign: bool,
    /// Cap on rebuild and resync speed in KiB/s, so backups stay fast while a disk rebuilds (0: the kernel's default).
    pub rebuild_speed_max_kib: u64,
    /// Days between full checks of the mirror (md `check`); 0 turns the schedule off.
    pub scrub_interval_days: u32,
}

impl Default for RaidConfig {
    fn default() -> Self {
        RaidConfig { auto_add_blank: true, auto_add_foreign: false, rebuild_speed_max_kib: 0, scrub_interval_days: 30 }
    }
}

/// How the appliance joins the network (ignored by `serve` on a host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct NetworkConfig {
    /// Host name, also the mDNS name later.
    pub hostname: String,
    /// Ask DHCP for an address first.
    pub dhcp: bool,
    /// Static address in CIDR form (`192.168.1.50/24`), used when DHCP is off or gets no answer.
    pub address: Option<String>,
    /// Default gateway for the static address.
    pub gateway: Option<String>,
    /// Name servers for the static address.
    pub dns: Vec<String>,
    /// Advertise `HOSTNAME.local` and the SSH/SFTP services over mDNS.
    pub mdns: bool,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig { hostname: "coffer".into(), dhcp: true, address: None, gateway: None, dns: Vec::new(), mdns: true }
    }
}

/// Setting the clock (the appliance's time service).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct TimeConfig {
    /// SNTP servers (`host` or `host:port`), tried in order after any the DHCP server names.
    pub servers: Vec<String>,
    /// Seconds between synchronisations once the clock is set.
    pub interval_secs: u64,
}

impl Default for TimeConfig {
    fn default() -> Self {
        TimeConfig { servers: vec!["pool.ntp.org".into()], interval_secs: 3600 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct RetentionSchedule {
    /// Run retention for every user while serving.
    pub enabled: bool,
    /// Seconds between runs (the first run is one interval after start; at least 1).
    pub interval_secs: u64,
}

impl Default for RetentionSchedule {
    fn default() -> Self {
        RetentionSchedule { enabled: true, interval_secs: 86_400 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on when `serve` is given no `--listen`.
    pub listen: String,
    /// Where user data lives; relative to the state directory unless absolute.
    pub data_dir: PathBuf,
    /// Seconds without traffic after which a connection is closed.
    pub idle_timeout_secs: u64,
    /// Most connections served at once; further ones are refused at once.
    pub max_connections: usize,
    /// Seconds a connection has to log in (OpenSSH's LoginGraceTime is 120).
    pub login_grace_secs: u64,
    /// Connections that have not logged in yet, in total and per address.
    pub max_unauthenticated: usize,
    pub max_unauthenticated_per_address: usize,
    /// Logged-in connections of one user.
    pub max_connections_per_user: usize,
    /// Sessions (sftp, exec: one worker process each) per connection, per
    /// user and in total; an eighth of the total is kept for users running
    /// fewer than two.
    pub max_sessions_per_connection: usize,
    pub max_sessions_per_user: usize,
    pub max_sessions: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct LoginThrottleConfig {
    /// Failed logins from one address within `window-secs` that trigger a ban.
    pub max_failures: u32,
    pub window_secs: u64,
    /// First ban length; each further ban of the same address doubles it.
    pub ban_secs: u64,
    pub max_ban_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct LogConfig {
    /// error, warn, info, debug or trace (`RUST_LOG` overrides).
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: CONFIG_VERSION,
            server: ServerConfig::default(),
            login_throttle: LoginThrottleConfig::default(),
            retention: RetentionSchedule::default(),
            log: LogConfig::default(),
            network: NetworkConfig::default(),
            raid: RaidConfig::default(),
            alerts: AlertsConfig::default(),
            time: TimeConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "0.0.0.0:22".into(),
            data_dir: PathBuf::from("data"),
            idle_timeout_secs: 900,
            max_connections: 64,
            login_grace_secs: 30,
            max_unauthenticated: 32,
            max_unauthenticated_per_address: 16,
            max_connections_per_user: 24,
            max_sessions_per_connection: 10,
            max_sessions_per_user: 32,
            max_sessions: 128,
        }
    }
}

impl Default for LoginThrottleConfig {
    fn default() -> Self {
        LoginThrottleConfig { max_failures: 10, window_secs: 900, ban_secs: 900, max_ban_secs: 86_400 }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".into() }
    }
}

impl Config {
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string().trim_end().to_string() })?;
        if config.version != CONFIG_VERSION {
            return Err(ConfigError::Version { path: path.into(), found: config.version, expected: CONFIG_VERSION });
        }
        if !matches!(config.log.level.as_str(), "error" | "warn" | "info" | "debug" | "trace") {
            return Err(ConfigError::Parse {
                path: path.into(),
                message: format!("log.level {:?} is not one of error, warn, info, debug, trace", config.log.level),
            });
        }
        if let Some(address) = &config.network.address {
            parse_cidr(address).ok_or_else(|| ConfigError::Parse {
                path: path.into(),
                message: format!("network.address {address:?} is not an IPv4 address with a prefix length, like 192.168.1.50/24"),
            })?;
        }
        for (key, value) in config.network.gateway.iter().map(|g| ("gateway", g)).chain(config.network.dns.iter().map(|d| ("dns", d))) {
            if value.parse::<std::net::Ipv4Addr>().is_err() {
                return Err(ConfigError::Parse {
                    path: path.into(),
                    message: format!("network.{key} {value:?} is not an IPv4 address"),
                });
            }
        }
        if config.network.hostname.is_empty()
            || config.network.hostname.len() > 63
            || !config.network.hostname.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(ConfigError::Parse {
                path: path.into(),
                message: format!("network.hostname {:?} must be 1-63 letters, digits or '-'", config.network.hostname),
            });
        }
        if let Some(email) = &config.alerts.email
            && (email.to.is_empty() || email.server.is_empty() || !email.from.contains('@') || email.to.iter().any(|t| !t.contains('@'))) {
                return Err(ConfigError::Parse {
                    path: path.into(),
                    message: "alerts.email needs server, from and at least one to address (user@host)".into(),
                });
            }
        if let Some(hook) = &config.alerts.webhook
            && !(hook.url.starts_with("http://") || hook.url.starts_with("https://")) {
                return Err(ConfigError::Parse {
                    path: path.into(),
                    message: format!("alerts.webhook.url {:?} must start with http:// or https://", hook.url),
                });
            }
        if !config.network.dhcp && config.network.address.is_none() {
            return Err(ConfigError::Parse {
                path: path.into(),
                message: "network.dhcp is false but network.address is not set: the appliance would have no address".into(),
            });
        }
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::parse(&text, path)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

/// `a.b.c.d/len` as (address, prefix length).
pub fn parse_cidr(text: &str) -> Option<(std::net::Ipv4Addr, u8)> {
    let (addr, len) = text.split_once('/')?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
    Some((addr.parse().ok()?, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_roundtrip() {
        let c = Config::default();
        assert_eq!(Config::parse(&c.to_toml(), Path::new("x")).unwrap(), c);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse("version = 1\n[server]\nlisten = \"x\"\ndata-dri = \"y\"\n", Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("data-dri"), "{err}");
        let err = Config::parse("version = 1\nbogus = 3\n", Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn network_values_are_checked() {
        let ok = "version = 1\n[network]\ndhcp = false\naddress = \"192.168.1.50/24\"\ngateway = \"192.168.1.1\"\ndns = [\"192.168.1.1\"]\n";
        assert_eq!(Config::parse(ok, Path::new("c")).unwrap().network.address.as_deref(), Some("192.168.1.50/24"));
        for bad in [
            "version = 1\n[network]\naddress = \"192.168.1.50\"\n",
            "version = 1\n[network]\ngateway = \"router\"\n",
            "version = 1\n[network]\nhostname = \"my box\"\n",
            "version = 1\n[network]\ndhcp = false\n",
        ] {
            assert!(Config::parse(bad, Path::new("c")).is_err(), "{bad}");
        }
    }

    #[test]
    fn alert_sinks_parse_and_secrets_stay_hidden() {
        let text = "version = 1\n[alerts.email]\nserver = \"127.0.0.1\"\nport = 2525\nsecurity = \"none\"\nusername = \"u\"\npassword = \"hunter2\"\nfrom = \"coffer@box\"\nto = [\"me@home\"]\n[alerts.webhook]\nurl = \"http://10.0.2.2:8080/topic\"\nkind = \"ntfy\"\ntoken = \"tk_secret\"\n";
        let c = Config::parse(text, Path::new("c")).unwrap();
        let email = c.alerts.email.as_ref().unwrap();
        assert_eq!((email.port, email.security), (2525, SmtpSecurity::None));
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("tk_secret"), "{shown}");
        assert_eq!(Config::parse(&c.to_toml(), Path::new("c")).unwrap(), c);
        assert!(Config::parse("version = 1\n[alerts.webhook]\nurl = \"ftp://x\"\nkind = \"json\"\n", Path::new("c")).is_err());
        assert!(Config::parse("version = 1\n[alerts.email]\nserver = \"s\"\nfrom = \"a@b\"\nto = []\n", Path::new("c")).is_err());
    }

    #[test]
    fn wrong_version_is_refused() {
        assert!(matches!(Config::parse("version = 2\n", Path::new("c")), Err(ConfigError::Version { .. })));
    }
}
