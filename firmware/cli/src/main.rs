//! `coffer`: one binary for every job. The command grammar here is the
//! contract that tests, scripts and (later) `ssh admin@box` rely on.

mod alert;
mod quota;
mod raid;
mod retention;
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
    /// Recount disk usage.
    #[command(subcommand)]
    Quota(QuotaCommand),
    /// Retention policies and runs.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Serve SSH/SFTP until SIGTERM or SIGINT.
    Serve {
        /// Address to listen on, for example 127.0.0.1:2222 (default: server.listen from coffer.toml).
        #[arg(long)]
        listen: Option<String>,
    },
    /// The data mirror.
    #[command(subcommand)]
    Raid(RaidCommand),
    /// Alerts by e-mail, webhook and syslog.
    #[command(subcommand)]
    Alert(AlertCommand),
    /// Internal: one session channel, started by `serve`.
    #[command(hide = true)]
    SessionWorker(worker::WorkerArgs),
}

#[derive(Debug, Subcommand)]
enum AlertCommand {
    /// Send a test message through every configured sink now.
    Test,
    /// Deliver queued alerts (the appliance runs this).
    Run,
}

#[derive(Debug, Subcommand)]
enum RaidCommand {
    /// Watch the mirror: events, pulled disks failed out at once, blank disks added (the appliance runs this).
    Watch,
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
        /// Byte limit, for example 50G (binary units; `none` for no limit).
        #[arg(long)]
        quota: Option<String>,
        /// File (inode) limit (`none` for no limit).
        #[arg(long)]
        files: Option<String>,
    },
    /// Change a user's limits.
    Set {
        name: String,
        /// Byte limit, for example 60G (`none` removes it).
        #[arg(long)]
        quota: Option<String>,
        /// File (inode) limit (`none` removes it).
        #[arg(long)]
        files: Option<String>,
    },
    /// Show a user's usage, limits, keys, warnings and retention.
    Show { name: String },
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

#[derive(Debug, Subcommand)]
enum QuotaCommand {
    /// Count every user's (or one user's) data on disk and correct the records.
    Rescan {
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum RetentionCommand {
    /// Set the default policy, or a user's policy with --user.
    Set {
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        policy: retention::PolicyArgs,
    },
    /// Show the default and per-user policies, or the one that applies to a user.
    Show {
        #[arg(long)]
        user: Option<String>,
    },
    /// Apply the policies now and print every decision.
    Run {
        #[arg(long)]
        user: Option<String>,
        /// Print what would be deleted without deleting.
        #[arg(long)]
        dry_run: bool,
        /// Pretend it is this time (20261127T052936Z, 2026-11-27 or @SECONDS).
        #[arg(long)]
        now: Option<String>,
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
    // The kernel starts the appliance's /init (this binary) as PID 1.
    if std::process::id() == 1 {
        let _ = simplelog::WriteLogger::init(
            log::LevelFilter::Info,
            simplelog::Config::default(),
            coffer_supervisor::LineWriter::default(),
        );
        coffer_supervisor::run_as_init();
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Init => state::init(&cli.state),
        Command::User(UserCommand::Add { name, key, profile, quota, files }) => {
            state::user_add(&cli.state, &name, &key, profile.into(), quota.as_deref(), files.as_deref())
        }
        Command::User(UserCommand::Set { name, quota, files }) => state::user_set(&cli.state, &name, quota.as_deref(), files.as_deref()),
        Command::User(UserCommand::Show { name }) => quota::show_user(&cli.state, &name),
        Command::Quota(QuotaCommand::Rescan { user }) => quota::rescan(&cli.state, user.as_deref()),
        Command::Retention(RetentionCommand::Set { user, policy }) => retention::set(&cli.state, user.as_deref(), &policy),
        Command::Retention(RetentionCommand::Show { user }) => retention::show(&cli.state, user.as_deref()),
        Command::Retention(RetentionCommand::Run { user, dry_run, now }) => match now.as_deref().map(retention::parse_now).transpose() {
            Ok(t) => retention::run(&cli.state, user.as_deref(), dry_run, t.unwrap_or_else(retention::wall_clock)),
            Err(e) => Err(e),
        },
        Command::User(UserCommand::List) => state::user_list(&cli.state),
        Command::User(UserCommand::Remove { name, purge }) => state::user_remove(&cli.state, &name, purge),
        Command::Serve { listen } => serve::serve(&cli.state, listen.as_deref()),
        Command::Raid(RaidCommand::Watch) => raid::watch(&cli.state),
        Command::Alert(AlertCommand::Test) => alert::test(&cli.state),
        Command::Alert(AlertCommand::Run) => alert::run(&cli.state),
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
