//! `coffer-client`: backs a machine up into archives in duplicity's format
//! (so stock duplicity restores, verifies and continues them), restores,
//! verifies, lists, and keeps the machine's OpenPGP keys. The command
//! grammar here is the contract that tests, schedules and people rely on;
//! it uses duplicity's words where duplicity has them.

mod background;
mod backup;
mod chain;
mod plan;
mod prompt;
mod status;
mod time_arg;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "coffer-client", version, about = "Coffer's backup client: duplicity's archive format, many times faster")]
struct Cli {
    /// The SSH key to log in with (default: as OpenSSH's client finds them in ~/.ssh).
    #[arg(long, global = true)]
    ssh_key: Option<PathBuf>,
    /// More output: -v for each file, -vv for debugging.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Back SOURCE up to URL: a full backup the first time, then incrementals.
    Backup {
        /// Start a new chain with a full backup.
        #[arg(long)]
        full: bool,
        /// Start a new chain when the newest full backup is older than this (1M, 2W, 30D).
        #[arg(long, value_name = "AGE")]
        full_if_older_than: Option<String>,
        /// Leave out paths matching GLOB (duplicity's patterns; relative ones start at SOURCE).
        #[arg(long, value_name = "GLOB")]
        exclude: Vec<String>,
        /// Leave out directories that contain a file of this name.
        #[arg(long, value_name = "NAME")]
        exclude_if_present: Vec<String>,
        /// Leave out directories tagged with a valid CACHEDIR.TAG.
        #[arg(long)]
        exclude_caches: bool,
        /// Volume size in MB (duplicity's default: 200).
        #[arg(long, value_name = "MB", default_value_t = 200)]
        volsize: u64,
        /// Encrypt to this OpenPGP key (fingerprint or key id).
        #[arg(long, value_name = "FPR")]
        encrypt_key: Vec<String>,
        /// Sign with this secret key.
        #[arg(long, value_name = "FPR")]
        sign_key: Option<String>,
        /// Store volumes gzipped, not encrypted (for targets that encrypt by themselves).
        #[arg(long, conflicts_with_all = ["encrypt_key", "sign_key"])]
        no_encryption: bool,
        source: PathBuf,
        url: String,
    },
    /// Restore the backup (or one path of it) as it was at a time.
    Restore {
        /// The backup's time (now, 3D, 2026-11-27, …): the newest set at or before it.
        #[arg(long, short)]
        time: Option<String>,
        /// Restore only this path, relative to the backed-up directory.
        #[arg(long, visible_alias = "file-to-restore")]
        path: Option<String>,
        url: String,
        dest: PathBuf,
    },
    /// Compare a backup with SOURCE: metadata, and with --compare-data the contents.
    Verify {
        #[arg(long)]
        compare_data: bool,
        #[arg(long, short)]
        time: Option<String>,
        url: String,
        source: PathBuf,
    },
    /// The files in the backup at a time.
    List {
        #[arg(long, short)]
        time: Option<String>,
        url: String,
    },
    /// Chains, sets and volumes at URL, as `duplicity collection-status` shows them.
    Status { url: String },
    /// The machine's OpenPGP keys.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Import an armored secret key (gpg --export-secret-keys --armor FPR); passphrase from PASSPHRASE or a prompt.
    Import { file: PathBuf },
    /// The keys in the store.
    List,
    /// Make a new key for NAME.
    Generate { name: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    };
    // russh's own notes on protocol details are not the user's business.
    let config = simplelog::ConfigBuilder::new().add_filter_ignore_str("russh").build();
    let _ = simplelog::TermLogger::init(level, config, simplelog::TerminalMode::Stderr, simplelog::ColorChoice::Never);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("coffer-client: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Backup {
            full,
            full_if_older_than,
            exclude,
            exclude_if_present,
            exclude_caches,
            volsize,
            encrypt_key,
            sign_key,
            no_encryption,
            source,
            url,
        } => {
            let now = now();
            let full_if_older_than = full_if_older_than
                .map(|age| coffer_duplicity::parse_age(&age).with_context(|| format!("--full-if-older-than {age}: use an age such as 1M, 2W or 30D")))
                .transpose()?;
            if !no_encryption && encrypt_key.is_empty() {
                anyhow::bail!("give --encrypt-key FPR (see `coffer-client key list`), or --no-encryption for a target that encrypts by itself");
            }
            anyhow::ensure!(volsize > 0, "--volsize must be at least 1 (MB)");
            let store = open_store()?;
            let protection = if no_encryption {
                backup::Protection::Gzip
            } else {
                let recipients = encrypt_key.iter().map(|q| store.find(q)).collect::<Result<Vec<_>, _>>()?;
                let signer = match sign_key {
                    Some(q) => Some(Box::new(store.find(&q)?.signing_key(passphrase("SIGN_PASSPHRASE").or_else(|| passphrase("PASSPHRASE")).as_ref())?)),
                    None => None,
                };
                backup::Protection::Pgp { recipients, signer }
            };
            let args = backup::BackupArgs {
                source,
                options: plan::BackupOptions { force_full: full, full_if_older_than },
                excludes: exclude,
                exclude_if_present,
                exclude_caches,
                volsize_mb: volsize,
                protection,
                opener: backup::Opener { keys: store.keys(), passphrase: passphrase("PASSPHRASE") },
            };
            let remote = coffer_remote::open(&url, &ssh_options(cli.ssh_key))?;
            let outcome = backup::run(remote.as_ref(), &args, now)?;
            println!(
                "{}: {} new, {} changed, {} deleted, {} unchanged; {} volume(s), {} bytes stored",
                outcome.set_name, outcome.new, outcome.changed, outcome.deleted, outcome.unchanged, outcome.volumes, outcome.bytes
            );
            if outcome.skipped > 0 {
                eprintln!("coffer-client: {} path(s) could not be read and are not in this backup (see the warnings above)", outcome.skipped);
                return Ok(ExitCode::from(2));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { url } => {
            let remote = coffer_remote::open(&url, &ssh_options(cli.ssh_key))?;
            let files: Vec<coffer_duplicity::FileInfo> =
                remote.list()?.into_iter().map(|e| coffer_duplicity::FileInfo { name: e.name, mtime: 0, ctime: 0, size: e.size }).collect();
            print!("{}", status::render(&coffer_duplicity::Collection::from_files(&files)));
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore { time, path, url, dest } => {
            let remote = coffer_remote::open(&url, &ssh_options(cli.ssh_key))?;
            let collection = chain::collection(remote.as_ref())?;
            let sets = chain::sets_at(&collection, time_arg::parse_time(time.as_deref(), now())?)?;
            let opener = opener()?;
            let manifests = chain::read_chain(remote.as_ref(), &opener, &sets)?;
            let selection = path.as_deref().map(|p| coffer_archive::Index::from_bytes(p.trim_matches('/').as_bytes()));
            let mut volumes = chain::RemoteVolumes::new(remote.as_ref(), &opener, sets, &manifests);
            let report = coffer_restore::restore(&manifests, &mut volumes, &dest, selection.as_ref(), &coffer_restore::Limits::default())?;
            println!(
                "restored {} file(s), {} hard link(s), {} director(ies), {} other(s) into {}",
                report.files,
                report.hard_links,
                report.directories,
                report.others,
                dest.display()
            );
            report_problems(&report.volumes, &report.paths, &report.uncertain);
            Ok(if report.is_complete() { ExitCode::SUCCESS } else { ExitCode::from(2) })
        }
        Command::List { time, url } => {
            let remote = coffer_remote::open(&url, &ssh_options(cli.ssh_key))?;
            let collection = chain::collection(remote.as_ref())?;
            let sets = chain::sets_at(&collection, time_arg::parse_time(time.as_deref(), now())?)?;
            let opener = opener()?;
            let files = coffer_restore::list(chain::sigtars(remote.as_ref(), &opener, &sets)?)?;
            let mut out = std::io::stdout().lock();
            for (index, meta) in files {
                let name = if index.is_root() { b".".to_vec() } else { index.as_bytes().to_vec() };
                std::io::Write::write_all(&mut out, format!("{} ", coffer_duplicity::format_stamp(i64::try_from(meta.mtime).unwrap_or(0))).as_bytes())?;
                std::io::Write::write_all(&mut out, &name)?;
                std::io::Write::write_all(&mut out, b"\n")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { compare_data, time, url, source } => {
            let remote = coffer_remote::open(&url, &ssh_options(cli.ssh_key))?;
            let collection = chain::collection(remote.as_ref())?;
            let sets = chain::sets_at(&collection, time_arg::parse_time(time.as_deref(), now())?)?;
            let opener = opener()?;
            let manifests = chain::read_chain(remote.as_ref(), &opener, &sets)?;
            let mut volumes = chain::RemoteVolumes::new(remote.as_ref(), &opener, sets, &manifests);
            let report = coffer_restore::verify(&manifests, &mut volumes, &source, compare_data, &coffer_restore::Limits::default())?;
            for d in &report.differences {
                println!("{}", d.message);
            }
            for u in &report.unreadable {
                eprintln!("coffer-client: could not read {u}");
            }
            report_problems(&report.volumes, &report.paths, &report.uncertain);
            println!("verify: {} path(s) compared, {} difference(s)", report.compared, report.differences.len());
            Ok(if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Key(KeyCommand::List) => {
            let store = open_store()?;
            for info in store.list() {
                println!("{} {} {} {}", info.fingerprint, info.capabilities, if info.secret { "secret" } else { "public" }, info.user_ids.join(", "));
            }
            if store.keys().is_empty() {
                eprintln!("coffer-client: no keys in {}; `coffer-client key import FILE` or `key generate NAME`", store.dir().display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Key(KeyCommand::Import { file }) => {
            let mut store = open_store()?;
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let secret = passphrase("PASSPHRASE").map_or_else(|| prompt::passphrase(&format!("passphrase of the key in {}", file.display())), Ok)?;
            let info = store.import(&bytes, Some(&secret))?;
            println!("imported {} {}", info.fingerprint, info.user_ids.join(", "));
            Ok(ExitCode::SUCCESS)
        }
        Command::Key(KeyCommand::Generate { name }) => {
            let mut store = open_store()?;
            let info = store.generate(&name, passphrase("PASSPHRASE").as_ref(), std::time::SystemTime::now())?;
            println!("generated {} {}", info.fingerprint, info.user_ids.join(", "));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// SSH as OpenSSH's client would log in, with `--ssh-key` if given.
fn ssh_options(key: Option<PathBuf>) -> coffer_remote::SshOptions {
    let mut options = coffer_remote::SshOptions::from_env();
    if key.is_some() {
        options.key_file = key;
    }
    options
}

/// The machine's OpenPGP keys: `$XDG_CONFIG_HOME/coffer/keys`, or
/// `~/.config/coffer/keys`.
fn open_store() -> anyhow::Result<coffer_pgp::KeyStore> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .context("neither XDG_CONFIG_HOME nor HOME is set: no place for the key store")?;
    Ok(coffer_pgp::KeyStore::open(&config.join("coffer/keys"))?)
}

/// The key store for reading archives back, kept for the whole run: the
/// volume streams the restore opens borrow its keys.
fn opener() -> anyhow::Result<backup::Opener<'static>> {
    let store: &'static coffer_pgp::KeyStore = Box::leak(Box::new(open_store()?));
    Ok(backup::Opener { keys: store.keys(), passphrase: passphrase("PASSPHRASE") })
}


/// What a restore or verify could not do, on standard error.
fn report_problems(volumes: &[coffer_restore::VolumeProblem], paths: &[coffer_restore::PathProblem], uncertain: &[coffer_archive::Index]) {
    for v in volumes {
        eprintln!("coffer-client: {} (set {}, volume {}) could not be read: {}; the paths from {:?} to {:?} may be missing", v.name, v.set, v.volume, v.error, v.start.index, v.end.index);
    }
    for p in paths {
        eprintln!("coffer-client: {:?}: {}", p.index, p.error);
    }
    if !uncertain.is_empty() {
        eprintln!("coffer-client: {} path(s) restored from an older set because a lost volume may have held a newer version", uncertain.len());
    }
}

/// A passphrase from the environment, as duplicity reads `PASSPHRASE` and
/// `SIGN_PASSPHRASE`.
fn passphrase(var: &str) -> Option<coffer_pgp::Password> {
    std::env::var(var).ok().map(coffer_pgp::Password::from)
}


/// Seconds since the epoch.
fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
