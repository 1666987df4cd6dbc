//! Which exec lines are the appliance's administrator commands.
//!
//! `ssh admin@box status` and a backup client's `mkdir -p backup` arrive the
//! same way. The first word decides: these words are Coffer's own command
//! grammar (run for administrators, refused for everyone else), every other
//! line goes to the backup-client emulation.

use crate::words;

/// First words of administrator commands (the `coffer` CLI's subcommands
/// that make sense over SSH, plus help). The binary's tests keep them equal
/// to the commands `ssh admin@box help` lists.
pub const ADMIN_WORDS: &[&str] = &[
    "status", "logs", "events", "user", "quota", "retention", "alert", "raid", "config", "update", "reboot", "poweroff",
    "version", "host-keys", "help", "--help", "-h",
];

/// True when `line`'s first word is one of [`ADMIN_WORDS`].
pub fn is_admin_command(line: &[u8]) -> bool {
    first_word(line).is_some_and(|w| ADMIN_WORDS.contains(&w.as_str()))
}

/// The command words of an administrator line without its operands and
/// option values, for logs: `config set alerts.email.password SECRET` must
/// not put the secret in the log.
pub fn admin_command_summary(line: &[u8]) -> String {
    let Ok(words) = words(line) else { return "(unparsable)".into() };
    let mut kept = Vec::new();
    for w in words.iter().take(2) {
        let w = String::from_utf8_lossy(w);
        if w.starts_with('-') || !w.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
            break;
        }
        kept.push(w.into_owned());
    }
    let rest = words.len().saturating_sub(kept.len());
    if rest > 0 { format!("{} (+{rest} argument(s))", kept.join(" ")) } else { kept.join(" ") }
}

fn first_word(line: &[u8]) -> Option<String> {
    let words = words(line).ok()?;
    words.first().map(|w| String::from_utf8_lossy(w).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_lines_are_told_apart_from_backup_clients() {
        for (line, admin) in [
            ("status", true),
            ("status --json", true),
            ("user add bob --key -", true),
            ("'config' show", true),
            ("mkdir -p backup/home", false),
            ("scp -t backup", false),
            ("ls -1 status", false),
            ("", false),
            ("statusx", false),
            ("sha256sum x", false),
        ] {
            assert_eq!(is_admin_command(line.as_bytes()), admin, "{line:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn summaries_never_show_operands(words in proptest::collection::vec("[a-z0-9=-]{1,10}", 1..8)) {
            let line = words.join(" ");
            let summary = admin_command_summary(line.as_bytes());
            for w in words.iter().skip(2) {
                let shown = summary.split(' ').any(|s| s == w);
                proptest::prop_assert!(!shown || words[..2].contains(w), "{summary:?} shows {w:?}");
            }
        }

        #[test]
        fn any_bytes_are_classified_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = is_admin_command(&bytes);
            let _ = admin_command_summary(&bytes);
        }
    }

    #[test]
    fn summaries_hide_operands() {
        assert_eq!(admin_command_summary(b"config set alerts.email.password hunter2"), "config set (+2 argument(s))");
        assert_eq!(admin_command_summary(b"status --json"), "status (+1 argument(s))");
        assert_eq!(admin_command_summary(b"reboot"), "reboot");
        assert_eq!(admin_command_summary(b"user add bob"), "user add (+1 argument(s))");
    }
}
