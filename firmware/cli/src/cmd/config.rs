//! `config show` and `config set`: coffer.toml over SSH, validated before
//! it is written, secrets never printed.

use std::path::Path;

use anyhow::{Context, Result, bail};
use coffer_config::{Config, StatePaths};

/// Keys whose values are secrets.
const SECRET_KEYS: &[&str] = &["password", "token"];

fn mask(value: &mut toml::Value) {
    if let toml::Value::Table(t) = value {
        for (k, v) in t.iter_mut() {
            if SECRET_KEYS.contains(&k.as_str()) && v.as_str().is_some_and(|s| !s.is_empty()) {
                *v = toml::Value::String("(hidden)".into());
            } else if k == "url"
                && let Some(url) = v.as_str()
            {
                // A webhook's path is often its secret (an ntfy topic): show the host only.
                let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
                let host = rest.split(['/', '?', '#']).next().unwrap_or("").rsplit('@').next().unwrap_or("");
                *v = toml::Value::String(format!("{scheme}://{host}/(hidden)"));
            } else {
                mask(v);
            }
        }
    }
}

/// The effective configuration (defaults included), secrets hidden.
pub(crate) fn show(dir: &Path) -> Result<()> {
    let config = Config::load(&StatePaths::new(dir).config())?;
    let mut value: toml::Value = toml::from_str(&config.to_toml()).context("re-reading the configuration")?;
    mask(&mut value);
    print!("{}", toml::to_string_pretty(&value).context("printing the configuration")?);
    Ok(())
}

/// A value as TOML when it parses as one (`true`, `42`, `"x"`, `["a"]`), else text.
fn parse_value(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}")).ok().and_then(|mut t| t.remove("v")).unwrap_or_else(|| toml::Value::String(text.to_string()))
}

/// What to do with one dotted key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Edit<'a> {
    Set(&'a str),
    Remove,
}

/// Applies one edit to a dotted key and returns the new text.
pub(crate) fn edited(text: &str, key: &str, edit: Edit) -> Result<String> {
    let mut root: toml::Table = toml::from_str(text).context("coffer.toml does not parse")?;
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) || key == "version" {
        bail!("invalid key {key:?}: give a dotted key such as raid.auto-add-blank (`config show` lists them)");
    }
    let (last, parents) = parts.split_last().context("empty key")?;
    let mut table = &mut root;
    for p in parents {
        let entry = table.entry((*p).to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry.as_table_mut().with_context(|| format!("{p} in {key} is a value, not a section"))?;
    }
    match edit {
        Edit::Set(value) => {
            table.insert((*last).to_string(), parse_value(value));
        }
        Edit::Remove => {
            if table.remove(*last).is_none() {
                bail!("{key} is not set in coffer.toml (`config show` lists the settings); nothing changed");
            }
        }
    }
    toml::to_string_pretty(&root).context("writing the configuration")
}

/// Sets KEY VALUE pairs together: a section that needs several keys (a
/// webhook's url and kind) is written whole or not at all.
pub(crate) fn set(dir: &Path, pairs: &[String]) -> Result<()> {
    if !pairs.len().is_multiple_of(2) {
        bail!("give KEY VALUE pairs; {:?} has no value", pairs.last().map(String::as_str).unwrap_or(""));
    }
    let edits: Vec<(&str, Edit)> = pairs.chunks(2).map(|p| (p[0].as_str(), Edit::Set(&p[1]))).collect();
    apply(dir, &edits)?;
    for pair in pairs.chunks(2) {
        let (key, value) = (&pair[0], &pair[1]);
        let shown = if SECRET_KEYS.iter().any(|s| key.ends_with(s)) { "(hidden)" } else { value.as_str() };
        println!("coffer: {key} = {shown}");
    }
    println!("coffer: services read coffer.toml when they start; `reboot` applies it everywhere");
    Ok(())
}

/// Removes keys or sections together, so their defaults apply again.
pub(crate) fn unset(dir: &Path, keys: &[String]) -> Result<()> {
    let edits: Vec<(&str, Edit)> = keys.iter().map(|k| (k.as_str(), Edit::Remove)).collect();
    apply(dir, &edits)?;
    for key in keys {
        println!("coffer: {key} removed (its default applies)");
    }
    println!("coffer: services read coffer.toml when they start; `reboot` applies it everywhere");
    Ok(())
}

/// Applies edits to coffer.toml all together or not at all.
fn apply(dir: &Path, edits: &[(&str, Edit)]) -> Result<()> {
    let path = StatePaths::new(dir).config();
    let mut text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let before = Config::parse(&text, &path)?.server.data_dir;
    for (key, edit) in edits {
        text = edited(&text, key, *edit)?;
    }
    // The whole file must still be a valid configuration: unknown keys and bad values are refused here.
    let after = Config::parse(&text, &path).context("nothing changed")?;
    // Pointing the data area elsewhere would let an administrator hand any
    // directory (and its owner) to a user: that stays a change on the state disk.
    if after.server.data_dir != before {
        bail!("server.data-dir cannot be changed with config set (it decides where every user's data lives); nothing changed");
    }
    coffer_config::write_atomically(&path, text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_keep_other_keys_and_type_values() {
        let t = edited("version = 1\n[raid]\nauto-add-blank = true\n", "raid.auto-add-blank", Edit::Set("false")).unwrap();
        assert!(t.contains("auto-add-blank = false"), "{t}");
        let t = edited(&t, "alerts.email.server", Edit::Set("smtp.example.org")).unwrap();
        assert!(t.contains("server = \"smtp.example.org\""), "{t}");
        let t = edited(&t, "alerts.email.to", Edit::Set("[\"a@b.c\"]")).unwrap();
        assert!(t.contains("to = [\"a@b.c\"]"), "{t}");
        // `none` is a value (alerts.email.security = "none"), never a removal.
        let t = edited(&t, "alerts.email.security", Edit::Set("none")).unwrap();
        assert!(t.contains("security = \"none\""), "{t}");
        let t = edited(&t, "alerts.email.server", Edit::Remove).unwrap();
        assert!(!t.contains("smtp.example.org"), "{t}");
        assert!(edited(&t, "alerts.email.server", Edit::Remove).is_err(), "removing what is not there is said");
        let t = edited(&t, "alerts.email", Edit::Remove).unwrap();
        assert!(!t.contains("a@b.c"), "a whole section goes: {t}");
        assert!(edited(&t, "raid.auto-add-blank.x", Edit::Set("1")).is_err());
        assert!(edited(&t, "version", Edit::Set("2")).is_err());
        assert!(edited(&t, "a..b", Edit::Set("2")).is_err());
    }

    #[test]
    fn secrets_are_hidden() {
        let mut v: toml::Value = toml::from_str("[alerts.email]\npassword = \"hunter2\"\nserver = \"x\"\n").unwrap();
        mask(&mut v);
        let text = toml::to_string(&v).unwrap();
        assert!(!text.contains("hunter2") && text.contains("server = \"x\""), "{text}");
    }
}
