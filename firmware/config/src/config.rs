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
    fn wrong_version_is_refused() {
        assert!(matches!(Config::parse("version = 2\n", Path::new("c")), Err(ConfigError::Version { .. })));
    }
}
