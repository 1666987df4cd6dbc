//! What an administrator may run over SSH, and the grammar they see there.
//!
//! `coffer admin` parses a line from `ssh admin@box …` with the local
//! grammar ([`Cli`]), less `--state` and less the commands that only the
//! appliance itself (or a build host) runs. One table, [`APPLIANCE_ONLY`],
//! both refuses those commands and hides them from the SSH help, so what
//! `help` shows over SSH is exactly what runs there.

use clap::{ArgMatches, CommandFactory};

use crate::Cli;

/// Commands, by their words, that the appliance runs itself or that belong
/// to a build host; everything below them is refused over SSH too.
const APPLIANCE_ONLY: &[&[&str]] = &[
    &["init"],
    &["serve"],
    &["session-worker"],
    &["admin"],
    &["power-request"],
    &["raid", "watch"],
    &["alert", "run"],
    &["time"],
    &["mdns"],
    &["update", "keygen"],
    &["update", "make-bundle"],
    &["board"],
];

/// How help and usage name the program over SSH.
const SSH_PROGRAM: &str = "ssh admin@box";

/// The grammar an administrator sees over SSH: the local one with the
/// appliance's own commands and `--state` hidden, usage in the SSH form,
/// and `user add --key` described as what it is there (standard input).
pub(crate) fn ssh_command() -> clap::Command {
    let mut command = Cli::command().bin_name(SSH_PROGRAM).mut_arg("state", |a| a.hide(true));
    for path in APPLIANCE_ONLY {
        command = hide(command, path);
    }
    command.mut_subcommand("user", |user| {
        user.mut_subcommand("add", |add| {
            add.mut_arg("key", |key| key.help("`-` over SSH: one or more OpenSSH public keys on standard input (authorized_keys format)"))
                .override_usage(format!("{SSH_PROGRAM} user add <NAME> --key - [OPTIONS] < NAME.pub"))
                .after_help(format!("Example: {SSH_PROGRAM} user add bob --key - --quota 50G < bob.pub"))
        })
    })
}

fn hide(command: clap::Command, path: &[&str]) -> clap::Command {
    match path {
        [] => command,
        [name] => command.mut_subcommand(name, |c| c.hide(true)),
        [name, rest @ ..] => command.mut_subcommand(name, |c| hide(c, rest)),
    }
}

/// Whether `words` (a line without the program name) name an appliance
/// command, asked for help included (`raid watch --help`, `help raid watch`):
/// decided before parsing, so such a line never prints that command's help.
pub(crate) fn names_appliance_only(words: &[String]) -> bool {
    let root = Cli::command();
    let mut node = &root;
    let mut path = Vec::new();
    for word in words {
        if word == "help" && node.has_subcommands() {
            continue;
        }
        let Some(sub) = node.find_subcommand(word) else { break };
        path.push(sub.get_name().to_string());
        node = sub;
    }
    is_appliance_only(&path)
}

/// Whether a parsed line is an appliance command: the check that holds
/// whatever spelling clap accepted.
pub(crate) fn parsed_appliance_only(matches: &ArgMatches) -> bool {
    let mut path = Vec::new();
    let mut node = matches;
    while let Some((name, sub)) = node.subcommand() {
        path.push(name.to_string());
        node = sub;
    }
    is_appliance_only(&path)
}

fn is_appliance_only(path: &[String]) -> bool {
    APPLIANCE_ONLY.iter().any(|refused| refused.len() <= path.len() && refused.iter().zip(path).all(|(r, p)| r == p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    fn help(line: &str) -> String {
        let mut args = vec!["coffer".to_string()];
        args.extend(words(line));
        let e = ssh_command().try_get_matches_from(args).expect_err("help is printed as an error");
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp, "{line}");
        e.render().to_string()
    }

    #[test]
    fn every_refused_path_exists_in_the_grammar() {
        // `mut_subcommand` panics on a name the grammar does not have.
        ssh_command().debug_assert();
    }

    #[test]
    fn appliance_commands_are_told_apart_before_parsing() {
        for line in
            ["serve", "raid watch", "raid watch --help", "help raid watch", "raid help watch", "alert run -h", "time sync", "time", "update keygen --help", "init", "board check /etc/coffer/board.toml"]
        {
            assert!(names_appliance_only(&words(line)), "{line}");
        }
        for line in ["raid", "raid --help", "help raid", "raid scrub", "alert test", "update apply --reboot", "status", "user add watch --key -", "help", ""] {
            assert!(!names_appliance_only(&words(line)), "{line}");
        }
    }

    #[test]
    fn parsed_appliance_commands_are_refused() {
        for (line, refused) in [("raid watch", true), ("alert run", true), ("time sync", true), ("raid scrub", false), ("status", false), ("update status", false)] {
            let matches = ssh_command().try_get_matches_from(["coffer", "--state", "/s"].into_iter().chain(line.split(' '))).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(parsed_appliance_only(&matches), refused, "{line}");
        }
    }

    #[test]
    fn help_over_ssh_shows_only_what_runs_there() {
        let top = help("--help");
        for word in ["status", "user", "retention", "config", "update", "reboot", "poweroff", "host-keys", "ssh admin@box"] {
            assert!(top.contains(word), "{word} missing:\n{top}");
        }
        for word in ["--state", "COFFER_STATE", "serve", "mdns", "time", "init", "session-worker", "power-request", "board"] {
            assert!(!top.contains(word), "{word} shown:\n{top}");
        }
        let raid = help("raid --help");
        assert!(raid.contains("replace") && raid.contains("scrub") && !raid.contains("watch"), "{raid}");
        let alert = help("alert --help");
        assert!(alert.contains("test") && !alert.contains("run"), "{alert}");
        let update = help("update --help");
        assert!(update.contains("apply") && !update.contains("keygen") && !update.contains("make-bundle"), "{update}");
        let add = help("user add --help");
        assert!(add.contains("Usage: ssh admin@box user add") && add.contains("--key -") && add.contains("standard input"), "{add}");
        assert!(!add.contains("--state"), "{add}");
    }

    #[test]
    fn usage_on_a_parse_error_is_the_ssh_form() {
        let e = ssh_command().try_get_matches_from(["coffer", "--state", "/s", "user", "add"]).expect_err("a name is required");
        let text = e.render().to_string();
        assert!(text.contains("Usage: ssh admin@box user add") && !text.contains("--state"), "{text}");
    }

    /// The endpoint routes a line to `coffer admin` by its first word
    /// ([`coffer_command::ADMIN_WORDS`]); those words are the commands the
    /// SSH help lists, plus the ways to ask for help.
    #[test]
    fn the_endpoints_admin_words_are_the_visible_commands() {
        let mut visible: Vec<&str> = Vec::new();
        let command = ssh_command();
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            visible.push(sub.get_name());
        }
        visible.extend(["help", "--help", "-h"]);
        visible.sort_unstable();
        let mut words = coffer_command::ADMIN_WORDS.to_vec();
        words.sort_unstable();
        assert_eq!(visible, words);
    }
}
