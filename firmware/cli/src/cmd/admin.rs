//! `coffer admin`: one administrator command line from `ssh admin@box …`.
//!
//! The endpoint starts this (as root) for users with the admin role. The
//! line is split like a shell would, without one, and parsed by the same
//! grammar as the local command line as seen over SSH
//! ([`admin_grammar::ssh_command`]): commands that only the appliance
//! itself runs (`serve`, `raid watch`, …) and `--state` are refused, and
//! help and usage show only what runs there.

use std::path::Path;
use std::process::ExitCode;

use clap::FromArgMatches;

use crate::admin_grammar;
use crate::{Cli, Command, UserCommand};

/// Why a line is not run.
enum Refusal {
    /// Coffer's own reason, printed as `coffer: …`.
    Coffer(String),
    /// Clap's: a parse error with the SSH usage, or the help that was asked for.
    Grammar(clap::Error),
}

pub(crate) fn run(state: &Path, line: &str) -> ExitCode {
    match parse(state, line) {
        Ok(cli) => crate::finish(crate::dispatch(&cli.state, cli.command)),
        Err(Refusal::Coffer(why)) => {
            eprintln!("coffer: {why}");
            ExitCode::from(2)
        }
        Err(Refusal::Grammar(e)) => {
            let _ = e.print();
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
        }
    }
}

fn parse(state: &Path, line: &str) -> Result<Cli, Refusal> {
    const APPLIANCE_ONLY: &str = "this command is run by the appliance itself, not over SSH";
    let words = coffer_command::words(line.as_bytes()).map_err(|e| Refusal::Coffer(e.to_string()))?;
    let mut words = words
        .into_iter()
        .map(String::from_utf8)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Refusal::Coffer("the command line is not valid UTF-8".into()))?;
    if words.iter().any(|w| w == "--state" || w.starts_with("--state=")) {
        return Err(Refusal::Coffer("--state cannot be given over SSH".into()));
    }
    if admin_grammar::names_appliance_only(&words) {
        return Err(Refusal::Coffer(APPLIANCE_ONLY.into()));
    }
    if words == ["help"] {
        words[0] = "--help".into();
    }
    let args = ["coffer".to_string(), "--state".into(), state.to_string_lossy().into_owned()].into_iter().chain(words);
    let matches = admin_grammar::ssh_command().try_get_matches_from(args).map_err(Refusal::Grammar)?;
    if admin_grammar::parsed_appliance_only(&matches) {
        return Err(Refusal::Coffer(APPLIANCE_ONLY.into()));
    }
    let cli = Cli::from_arg_matches(&matches).map_err(Refusal::Grammar)?;
    if let Some(why) = refused_over_ssh(&cli.command) {
        return Err(Refusal::Coffer(why));
    }
    Ok(cli)
}

/// Options that name a file on the appliance. This process runs as root,
/// so reading a path an administrator chose would let them read any file
/// on the box (and error messages could show its content); over SSH the
/// data comes on standard input instead.
fn refused_over_ssh(c: &Command) -> Option<String> {
    match c {
        Command::User(UserCommand::Add { name, key, .. }) if key.as_os_str() != "-" => Some(format!(
            "--key {} cannot be given over SSH: the appliance does not read its own files for you; pipe the public key on standard input instead: ssh ADMIN@BOX user add {name} --key - < {name}.pub",
            key.display()
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(line: &str) -> Result<Command, String> {
        match parse(Path::new("/s"), line) {
            Ok(cli) => {
                assert_eq!(cli.state, Path::new("/s"));
                Ok(cli.command)
            }
            Err(Refusal::Coffer(why)) => Err(why),
            Err(Refusal::Grammar(e)) => Err(e.to_string()),
        }
    }

    #[test]
    fn the_ssh_grammar_is_the_local_one() {
        for line in [
            "status",
            "status --json",
            "user add bob --key - --quota 50G --role admin",
            "user lock bob",
            "user key-remove bob SHA256:abc",
            "retention set --keep-daily 7",
            "retention adopt --user bob",
            "raid replace WD-123",
            "raid scrub --stop",
            "config set alerts.email.server smtp.example.org alerts.email.port 587",
            "config unset alerts.webhook",
            "logs --follow --since 2h",
            "events",
            "reboot",
            "update apply --allow-downgrade --reboot",
        ] {
            if let Err(why) = command(line) {
                panic!("{line}: {why}");
            }
        }
    }

    #[test]
    fn key_files_on_the_appliance_are_refused() {
        for line in ["user add bob --key /etc/shadow", "user add bob --key=./k.pub --profile read-only", "user add bob --key /dev/stdin"] {
            let Err(refusal) = command(line) else { panic!("{line} accepted") };
            assert!(refusal.contains("--key -") && refusal.contains("standard input"), "{refusal}");
        }
    }

    #[test]
    fn appliance_internals_and_state_are_refused() {
        for line in ["serve", "raid watch", "alert run", "init", "session-worker sftp", "time sync", "mdns", "power-request --after-pid 1", "help raid watch", "raid watch --help"]
        {
            let Err(why) = command(line) else { panic!("{line} accepted") };
            assert!(why.contains("not over SSH"), "{line}: {why}");
        }
        for line in ["status --state /tmp", "--state=/tmp status"] {
            let Err(why) = command(line) else { panic!("{line} accepted") };
            assert!(why.contains("--state"), "{line}: {why}");
        }
        assert!(command("frobnicate").is_err());
    }

    #[test]
    fn help_is_the_ssh_grammars() {
        for line in ["help", "--help", "-h", "user --help", "help user", "user add -h"] {
            let Err(Refusal::Grammar(e)) = parse(Path::new("/s"), line) else { panic!("{line}: no help") };
            assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp, "{line}");
            let text = e.render().to_string();
            assert!(text.contains("ssh admin@box") && !text.contains("--state"), "{line}: {text}");
        }
    }
}
