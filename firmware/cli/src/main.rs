//! `coffer`: one binary for every job. The command grammar here is the
//! contract that tests, scripts and (later) `ssh admin@box` rely on.

mod admin_grammar;
mod arrivals;
mod board;
mod cmd;
mod file_limits;
mod logging;
mod mirror;
mod power;
mod quota_book;
mod rescan;
mod retention_run;
mod slot_record;
mod state;
mod status_gather;
mod svc;
mod watch_status;

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
    /// The appliance at a glance: health, mirror, disks, slot, space, users.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// The appliance's log (services, supervisor, events).
    Logs {
        /// Keep printing new lines until interrupted.
        #[arg(long, short)]
        follow: bool,
        /// Only lines from the last DURATION (30m, 2h, 1d).
        #[arg(long)]
        since: Option<String>,
    },
    /// State changes only (`coffer-event` lines, as JSON).
    Events {
        #[arg(long, short)]
        follow: bool,
        #[arg(long)]
        since: Option<String>,
    },
    /// Firmware updates (signed bundles, A/B slots).
    #[command(subcommand)]
    Update(UpdateCommand),
    /// Show or change coffer.toml.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Restart the appliance.
    Reboot,
    /// Shut the appliance down and power off.
    Poweroff,
    /// Print the firmware version.
    Version,
    /// Print the SSH host key fingerprints (check them on the first connection).
    HostKeys,
    /// Keep the clock set from SNTP servers (the appliance runs this).
    #[command(subcommand)]
    Time(TimeCommand),
    /// Advertise the box over mDNS as NAME.local (the appliance runs this).
    Mdns,
    /// The board file an image installs (the image build runs this).
    #[command(subcommand)]
    Board(BoardCommand),
    /// Internal: one session channel, started by `serve`.
    #[command(hide = true)]
    SessionWorker(svc::session_worker::WorkerArgs),
    /// Internal: an administrator's command line from SSH, started by `serve`.
    #[command(hide = true)]
    Admin {
        /// Who runs it (the endpoint logs it; kept here for `ps`).
        #[arg(long)]
        user: String,
        #[arg(last = true)]
        line: String,
    },
    /// Internal: asks the supervisor for a reboot or power-off once the command that wants it has ended
    /// (started by `reboot`, `poweroff` and every `--reboot`).
    #[command(hide = true)]
    PowerRequest {
        /// Power off instead of rebooting.
        #[arg(long)]
        poweroff: bool,
        /// The command that asked: its end (and its exit status on SSH) comes first.
        #[arg(long)]
        after_pid: i32,
    },
}

#[derive(Debug, Subcommand)]
enum BoardCommand {
    /// Parse and validate a merged board.toml; the error names the key and what is wrong.
    Check { file: PathBuf },
}

#[derive(Debug, Subcommand)]
enum TimeCommand {
    /// Set the clock from the configured (and DHCP-named) SNTP servers, then keep it set.
    Sync,
}

#[derive(Debug, Subcommand)]
enum UpdateCommand {
    /// The running slot, both slots' versions and which is good.
    Status,
    /// Verify a signed bundle from standard input and write it to the other slot for one trial boot.
    Apply {
        /// Reboot into the new slot at once.
        #[arg(long)]
        reboot: bool,
        /// Install a bundle older than the running firmware (or one whose version cannot be compared).
        #[arg(long)]
        allow_downgrade: bool,
    },
    /// Make the other slot the default again.
    Rollback {
        #[arg(long)]
        reboot: bool,
    },
    /// Build host: make an update signing key (secret and public halves) in DIR.
    Keygen {
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// Build host: sign a slot's vmlinuz and initrd.zst into an update bundle.
    MakeBundle {
        #[arg(long)]
        board: String,
        #[arg(long)]
        version: String,
        /// Directory with vmlinuz and initrd.zst (build-image's OUT/coffer-BOARD-boot).
        #[arg(long)]
        boot_dir: PathBuf,
        /// The secret update key (update-key.secret.asc).
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print coffer.toml (secrets hidden).
    Show,
    /// Write the box's identity (host key, users, settings) to standard output, OpenPGP-encrypted.
    Export {
        /// Encrypt with a passphrase read as the first line of standard input.
        #[arg(long, conflicts_with = "recipient_stdin", required_unless_present = "recipient_stdin")]
        passphrase_stdin: bool,
        /// Encrypt to an OpenPGP certificate (armored) read from standard input.
        #[arg(long)]
        recipient_stdin: bool,
    },
    /// Restore an exported identity from standard input (onto a freshly flashed boot disk).
    Import {
        /// The first line of standard input is the passphrase, the bundle follows.
        #[arg(long)]
        passphrase_stdin: bool,
        /// Reboot afterwards so every service uses the restored identity.
        #[arg(long)]
        reboot: bool,
    },
    /// Change settings together: `config set alerts.webhook.url https://ntfy.sh/me alerts.webhook.kind ntfy`.
    Set {
        /// KEY VALUE pairs. Keys are dotted, as in coffer.toml (`raid.auto-add-blank`); values are
        /// TOML (true, 42, "text", ["a", "b"]) or bare text.
        #[arg(required = true, num_args = 2.., value_names = ["KEY", "VALUE"])]
        pairs: Vec<String>,
    },
    /// Remove settings, so their defaults apply again: `config unset alerts.webhook`.
    Unset {
        /// Dotted keys or whole sections (`alerts.email`).
        #[arg(required = true)]
        keys: Vec<String>,
    },
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
    /// Take the disk with this serial number out of the mirror so it can be pulled; a new blank disk in its bay rebuilds by itself.
    Replace { serial: String },
    /// Check the mirror now (reads both disks, counts mismatches); `--stop` ends a running check.
    Scrub {
        #[arg(long)]
        stop: bool,
    },
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
        /// File (inode) limit (`none` for the default: a tenth of the data area's inodes).
        #[arg(long)]
        files: Option<String>,
        /// `admin` lets the user run these commands over SSH.
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
    },
    /// Change a user's limits.
    Set {
        name: String,
        /// Byte limit, for example 60G (`none` removes it).
        #[arg(long)]
        quota: Option<String>,
        /// File (inode) limit (`none` returns to the default: a tenth of the data area's inodes).
        #[arg(long)]
        files: Option<String>,
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
    },
    /// Stop a user's keys from logging in (data and keys kept).
    Lock { name: String },
    /// Let a locked user log in again.
    Unlock { name: String },
    /// List a user's keys with fingerprints and profiles.
    Keys { name: String },
    /// Remove one key, named by its SHA256 fingerprint.
    KeyRemove { name: String, fingerprint: String },
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
        policy: cmd::retention::PolicyArgs,
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
    /// Confirm a user's unconfirmed sets (named for a time that does not fit when they arrived:
    /// archives migrated onto the box, back-dated tests) and accept every set that has arrived, which ends a hold.
    Adopt {
        #[arg(long)]
        user: String,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    User,
    Admin,
}

impl From<RoleArg> for coffer_config::Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::User => coffer_config::Role::User,
            RoleArg::Admin => coffer_config::Role::Admin,
        }
    }
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
    if let Command::SessionWorker(args) = cli.command {
        return svc::session_worker::run(args);
    }
    if let Command::Admin { user: _, line } = cli.command {
        return cmd::admin::run(&cli.state, &line);
    }
    finish(dispatch(&cli.state, cli.command))
}

/// Commands that read the state, change it and write it back (users, keys,
/// settings, retention policies, an import, the boot slots). They hold the
/// state's lock one at a time, so two administrators, or a command beside
/// an import, never lose each other's change. `serve` and the services read
/// without it: every file is replaced whole (`write_atomically`).
fn changes_state(command: &Command) -> bool {
    matches!(
        command,
        Command::Init
            | Command::User(
                UserCommand::Add { .. }
                    | UserCommand::Set { .. }
                    | UserCommand::Lock { .. }
                    | UserCommand::Unlock { .. }
                    | UserCommand::KeyRemove { .. }
                    | UserCommand::Remove { .. }
            )
            | Command::Retention(RetentionCommand::Set { .. } | RetentionCommand::Adopt { .. })
            | Command::Config(ConfigCommand::Import { .. } | ConfigCommand::Set { .. } | ConfigCommand::Unset { .. })
            | Command::Update(UpdateCommand::Apply { .. } | UpdateCommand::Rollback { .. })
    )
}

/// An exclusive `flock` on `STATE/.lock`, held until the returned file is
/// dropped. Without a state directory (and not making one) there is nothing
/// to lock: the command itself says what is missing.
fn lock_state(dir: &std::path::Path, create_dir: bool) -> anyhow::Result<Option<std::fs::File>> {
    use anyhow::Context;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if !create_dir && !dir.is_dir() {
        return Ok(None);
    }
    if create_dir {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(dir)
            .with_context(|| format!("creating the state directory {}", dir.display()))?;
    }
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening the state lock {} (is {} a Coffer state directory?)", path.display(), dir.display()))?;
    use rustix::fs::{FlockOperation, flock};
    if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        eprintln!("coffer: waiting for another command that is changing {}", dir.display());
        flock(&file, FlockOperation::LockExclusive).with_context(|| format!("locking {}", path.display()))?;
    }
    Ok(Some(file))
}

/// Prints an error the way every command does and turns it into the exit status.
fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coffer: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command; the same for the local command line and `ssh admin@box`.
fn dispatch(state: &std::path::Path, command: Command) -> anyhow::Result<()> {
    let _lock = if changes_state(&command) { lock_state(state, matches!(command, Command::Init))? } else { None };
    match command {
        Command::Init => state::init(state),
        Command::User(UserCommand::Add { name, key, profile, quota, files, role }) => cmd::user::user_add(
            state,
            &name,
            &key,
            cmd::user::NewKey { profile: profile.into(), quota: quota.as_deref(), files: files.as_deref(), role: role.map(Into::into) },
        ),
        Command::User(UserCommand::Set { name, quota, files, role }) => {
            cmd::user::user_set(state, &name, quota.as_deref(), files.as_deref(), role.map(Into::into))
        }
        Command::User(UserCommand::Show { name }) => cmd::quota::show_user(state, &name),
        Command::User(UserCommand::Lock { name }) => cmd::user::user_lock(state, &name, true),
        Command::User(UserCommand::Unlock { name }) => cmd::user::user_lock(state, &name, false),
        Command::User(UserCommand::Keys { name }) => cmd::user::user_keys(state, &name),
        Command::User(UserCommand::KeyRemove { name, fingerprint }) => cmd::user::user_key_remove(state, &name, &fingerprint),
        Command::Quota(QuotaCommand::Rescan { user }) => cmd::quota::rescan(state, user.as_deref()),
        Command::Retention(RetentionCommand::Set { user, policy }) => cmd::retention::set(state, user.as_deref(), &policy),
        Command::Retention(RetentionCommand::Show { user }) => cmd::retention::show(state, user.as_deref()),
        Command::Retention(RetentionCommand::Run { user, dry_run, now }) => {
            let t = now.as_deref().map(cmd::retention::parse_now).transpose()?;
            cmd::retention::run(state, user.as_deref(), dry_run, t.unwrap_or_else(retention_run::wall_clock))
        }
        Command::Retention(RetentionCommand::Adopt { user }) => cmd::retention::adopt(state, &user),
        Command::User(UserCommand::List) => cmd::user::user_list(state),
        Command::User(UserCommand::Remove { name, purge }) => cmd::user::user_remove(state, &name, purge),
        Command::Serve { listen } => svc::serve::serve(state, listen.as_deref()),
        Command::Raid(RaidCommand::Watch) => svc::raid_watch::watch(state),
        Command::Raid(RaidCommand::Replace { serial }) => cmd::raid::replace(&serial),
        Command::Raid(RaidCommand::Scrub { stop }) => cmd::raid::scrub_now(stop),
        Command::Alert(AlertCommand::Test) => cmd::alert::test(state),
        Command::Alert(AlertCommand::Run) => svc::alert_run::run(state),
        Command::Status { json } => cmd::status::show(state, json),
        Command::Logs { follow, since } => cmd::logs::logs(follow, since.as_deref(), false),
        Command::Events { follow, since } => cmd::logs::logs(follow, since.as_deref(), true),
        Command::Config(ConfigCommand::Show) => cmd::config::show(state),
        Command::Config(ConfigCommand::Export { passphrase_stdin, recipient_stdin: _ }) => cmd::config_bundle::export(
            state,
            if passphrase_stdin { cmd::config_bundle::Protection::Passphrase } else { cmd::config_bundle::Protection::Recipient },
        ),
        Command::Config(ConfigCommand::Import { passphrase_stdin, reboot }) => cmd::config_bundle::import(state, passphrase_stdin, reboot),
        Command::Config(ConfigCommand::Set { pairs }) => cmd::config::set(state, &pairs),
        Command::Config(ConfigCommand::Unset { keys }) => cmd::config::unset(state, &keys),
        Command::Reboot => power::request(true),
        Command::Poweroff => power::request(false),
        Command::PowerRequest { poweroff, after_pid } => power::power_request(!poweroff, after_pid),
        Command::Update(UpdateCommand::Status) => cmd::update::status(),
        Command::Update(UpdateCommand::Apply { reboot, allow_downgrade }) => cmd::update::apply(reboot, allow_downgrade),
        Command::Update(UpdateCommand::Rollback { reboot }) => cmd::update::rollback(reboot),
        Command::Update(UpdateCommand::Keygen { out_dir }) => cmd::update::keygen(&out_dir),
        Command::Update(UpdateCommand::MakeBundle { board, version, boot_dir, key, out }) => {
            cmd::update::make_bundle(&board, &version, &boot_dir, &key, &out)
        }
        Command::Time(TimeCommand::Sync) => svc::time_sync::time_sync(state),
        Command::Mdns => svc::mdns::mdns(state),
        Command::Board(BoardCommand::Check { file }) => cmd::board::check(&file),
        Command::HostKeys => state::host_keys(state),
        Command::Version => {
            println!("coffer {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::SessionWorker(_) | Command::Admin { .. } => anyhow::bail!("internal command; `serve` starts it"),
    }
}
