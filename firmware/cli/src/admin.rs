//! `coffer admin`: one administrator command line from `ssh admin@box …`.
//!
//! The endpoint starts this (as root) for users with the admin role. The
//! line is split like a shell would, without one, and parsed by the same
//! grammar as the local command line; commands that only the appliance
//! itself runs (`serve`, `raid watch`, …) and `--state` are refused.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

use crate::{AlertCommand, Cli, Command, RaidCommand, UpdateCommand, UserCommand};

pub(crate) fn run(state: &Path, line: &str) -> ExitCode {
    let words = match coffer_command::words(line.as_bytes()) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("coffer: {e}");
            return ExitCode::from(2);
        }
    };
    let mut args = vec!["coffer".to_string(), "--state".into(), state.to_string_lossy().into_owned()];
    for w in words {
        let Ok(w) = String::from_utf8(w) else {
            eprintln!("coffer: the command line is not valid UTF-8");
            return ExitCode::from(2);
        };
        if w == "--state" || w.starts_with("--state=") {
            eprintln!("coffer: --state cannot be given over SSH");
            return ExitCode::from(2);
        }
        args.push(w);
    }
    if args.get(3).map(String::as_str) == Some("help") && args.len() == 4 {
        args[3] = "--help".into();
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    if !allowed_over_ssh(&cli.command) {
        eprintln!("coffer: this command is run by the appliance itself, not over SSH");
        return ExitCode::from(2);
    }
    if let Some(refusal) = refused_over_ssh(&cli.command) {
        eprintln!("coffer: {refusal}");
        return ExitCode::from(2);
    }
    crate::finish(crate::dispatch(&cli.state, cli.command))
}

fn allowed_over_ssh(c: &Command) -> bool {
    !matches!(
        c,
        Command::Init
            | Command::Serve { .. }
            | Command::SessionWorker(_)
            | Command::Admin { .. }
            | Command::Raid(RaidCommand::Watch)
            | Command::Alert(AlertCommand::Run)
            | Command::Time(_)
            | Command::Mdns
            | Command::Update(UpdateCommand::Keygen { .. } | UpdateCommand::MakeBundle { .. })
    )
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

/// Whether output goes to a person's terminal (`ssh -t`): colour and alignment then.
pub(crate) fn terminal() -> bool {
    std::env::var_os("COFFER_TERMINAL").is_some() || std::io::IsTerminal::is_terminal(&std::io::stdout())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Command, String> {
        let mut args = vec!["coffer".to_string(), "--state".into(), "/s".into()];
        args.extend(coffer_command::words(line.as_bytes()).unwrap().into_iter().map(|w| String::from_utf8(w).unwrap()));
        Cli::try_parse_from(args).map(|c| c.command).map_err(|e| e.to_string())
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
            let c = parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert!(allowed_over_ssh(&c), "{line}");
            assert_eq!(refused_over_ssh(&c), None, "{line}");
        }
    }

    #[test]
    fn key_files_on_the_appliance_are_refused() {
        for line in ["user add bob --key /etc/shadow", "user add bob --key=./k.pub --profile read-only", "user add bob --key /dev/stdin"] {
            let c = parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            let refusal = refused_over_ssh(&c).unwrap_or_else(|| panic!("{line} accepted"));
            assert!(refusal.contains("--key -") && refusal.contains("standard input"), "{refusal}");
        }
    }

    #[test]
    fn appliance_internals_are_refused() {
        for line in ["serve", "raid watch", "alert run", "init", "session-worker sftp"] {
            if let Ok(c) = parse(line) {
                assert!(!allowed_over_ssh(&c), "{line}");
            }
        }
        assert!(parse("frobnicate").is_err());
    }
}
