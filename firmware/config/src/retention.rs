//! `retention.toml`: the default retention policy and per-user policies.
//! Durations are written as users know them from duplicity (`2M`, `10D`).

use std::collections::BTreeMap;
use std::path::Path;

use coffer_retention::{RetentionPolicy, format_duration, parse_duration};
use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::users::write_atomically;

const RETENTION_VERSION: u32 = 1;

/// One policy as written in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct PolicyText {
    pub keep_within: Option<String>,
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    pub incomplete_grace: Option<String>,
    pub max_age: Option<String>,
}

impl PolicyText {
    pub fn to_policy(&self) -> Result<RetentionPolicy, String> {
        let d = |v: &Option<String>| v.as_deref().map(parse_duration).transpose().map_err(|e| e.to_string());
        Ok(RetentionPolicy {
            keep_within: d(&self.keep_within)?,
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
            incomplete_grace: d(&self.incomplete_grace)?,
            max_age: d(&self.max_age)?,
        })
    }

    pub fn from_policy(p: &RetentionPolicy) -> Self {
        PolicyText {
            keep_within: p.keep_within.map(format_duration),
            keep_last: p.keep_last,
            keep_hourly: p.keep_hourly,
            keep_daily: p.keep_daily,
            keep_weekly: p.keep_weekly,
            keep_monthly: p.keep_monthly,
            keep_yearly: p.keep_yearly,
            incomplete_grace: p.incomplete_grace.map(format_duration),
            max_age: p.max_age.map(format_duration),
        }
    }
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RetentionFile {
    pub version: u32,
    #[serde(default)]
    pub default: PolicyText,
    #[serde(default)]
    pub user: BTreeMap<String, PolicyText>,
}

impl Default for RetentionFile {
    fn default() -> Self {
        RetentionFile { version: RETENTION_VERSION, default: PolicyText::default(), user: BTreeMap::new() }
    }
}

impl RetentionFile {
    /// Loads the file; a missing file is the empty default (keep everything).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(ConfigError::Read { path: path.into(), source }),
        };
        let file: RetentionFile = toml::from_str(&text)
            .map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string().trim_end().to_string() })?;
        if file.version != RETENTION_VERSION {
            return Err(ConfigError::Version { path: path.into(), found: file.version, expected: RETENTION_VERSION });
        }
        for (who, p) in std::iter::once(("default", &file.default)).chain(file.user.iter().map(|(k, v)| (k.as_str(), v))) {
            p.to_policy().map_err(|message| ConfigError::Parse { path: path.into(), message: format!("policy of {who}: {message}") })?;
        }
        Ok(file)
    }

    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let text = toml::to_string_pretty(self).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })?;
        write_atomically(path, text.as_bytes())
    }

    /// The policy that applies to `user`, and whether it is the user's own.
    pub fn effective(&self, user: &str) -> (RetentionPolicy, bool) {
        match self.user.get(user) {
            Some(p) => (p.to_policy().unwrap_or_default(), true),
            None => (self.default.to_policy().unwrap_or_default(), false),
        }
    }
}
