//! `coffer`: one binary for every job. The command grammar here is the
//! contract that tests, scripts and (later) `ssh admin@box` rely on.

mod serve;
mod state;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use coffer_config::KeyProfile;

#[derive(Debug, Parser)]
#[command(name = "coffer", version, about = "Coffer backup appliance")]
struct Cli {
    /// State directory (host key, coffer.toml, users.toml, data area).
    #[arg(long, global = true, env = "COFFER_STATE", default_value = "/var/lib/coffer")]
    state: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the state directory: host key, default coffer.toml, data area. Safe to repeat.
    Init,
    /// Manage users and their keys.
    #[command(subcommand)]
    User(UserCommand),
    /// Serve SSH/SFTP until SIGTERM or SIGINT.
    Serve {
        /// Address to listen on, for example 127.0.0.1:2222 (default: server.listen from coffer.toml).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Internal: one session channel, started by `serve`.
    #[command(hide = true)]
    SessionWorker(worker::WorkerArgs),
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user, or a further key to an existing user.
    Add {
        name: String,
        /// File with one or more OpenSSH public keys (authorized_keys format).
        #[arg(long)]
        key: PathBuf,
        /// What the key may do: full, append-only or read-only.
        #[arg(long, value_enum, default_value = "full")]
        profile: ProfileArg,
    },
    /// List users and their keys.
    List,
    /// Remove a user. Their data is kept unless --purge is given.
    Remove {
        name: String,
        /// Also delete the user's data.
        #[arg(long)]
        purge: bool,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ProfileArg {
    Full,
    AppendOnly,
    ReadOnly,
}

impl From<ProfileArg> for KeyProfile {
    fn from(p: ProfileArg) -> Self {
        match p {
            ProfileArg::Full => KeyProfile::Full,
            ProfileArg::AppendOnly => KeyProfile::AppendOnly,
            ProfileArg::ReadOnly => KeyProfile::ReadOnly,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Init => state::init(&cli.state),
        Command::User(UserCommand::Add { name, key, profile }) => state::user_add(&cli.state, &name, &key, profile.into()),
        Command::User(UserCommand::List) => state::user_list(&cli.state),
        Command::User(UserCommand::Remove { name, purge }) => state::user_remove(&cli.state, &name, purge),
        Command::Serve { listen } => serve::serve(&cli.state, listen.as_deref()),
        Command::SessionWorker(args) => return worker::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coffer: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
