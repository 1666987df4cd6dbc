//! `session-worker`: what `serve` starts for each channel. It opens the
//! user's jail, confines itself, and runs SFTP or one exec command on its
//! stdio. In exec mode stderr belongs to the client, so nothing is logged.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

use coffer_session::confine::{self, Confinement};
use coffer_session::profile::Profile;
use coffer_session::quota::{QuotaClient, QuotaGate, Unlimited};
use coffer_session::sftp::SessionContext;
use coffer_storage::UserJail;

#[derive(Debug, clap::Args)]
pub(crate) struct WorkerArgs {
    #[arg(long)]
    jail: PathBuf,
    #[arg(long)]
    user: String,
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Key profile: full, append-only or read-only.
    #[arg(long, default_value = "full")]
    profile: String,
    /// Descriptor of the socket to the front end's quota ledger (none: no accounting).
    #[arg(long)]
    quota_fd: Option<i32>,
    #[command(subcommand)]
    mode: WorkerMode,
}

#[derive(Debug, clap::Subcommand)]
enum WorkerMode {
    Sftp,
    Exec {
        #[arg(allow_hyphen_values = true)]
        line: std::ffi::OsString,
    },
}

/// The most memory (`RLIMIT_DATA`: heap, anonymous mappings, thread
/// stacks) one worker may use. An SFTP session needs about 150 MiB at
/// worst: 4 lanes of 64 queued requests of up to 256 KiB, as many replies
/// waiting for the writer, 6 thread stacks of 2 MiB and 12 MiB to start;
/// listings are streamed and scp lines capped. Measured on a host: OpenSSH
/// `sftp` putting and getting 1 GB peaked at 56 MiB, a duplicity full
/// backup at 26 MiB. Past the limit an allocation fails and the worker
/// aborts, which ends that channel alone.
pub(crate) const WORKER_MEMORY_LIMIT: u64 = 256 << 20;

/// Sets [`WORKER_MEMORY_LIMIT`], soft and hard, never raising a lower limit.
fn limit_memory() -> std::io::Result<()> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let old = getrlimit(Resource::Data);
    let limit = [old.current, old.maximum].into_iter().flatten().fold(WORKER_MEMORY_LIMIT, u64::min);
    Ok(setrlimit(Resource::Data, Rlimit { current: Some(limit), maximum: Some(limit) })?)
}

pub(crate) fn run(args: WorkerArgs) -> ExitCode {
    // Before any input is read: whatever a client sends, this worker's
    // memory stays bounded.
    if let Err(e) = limit_memory() {
        let _ = writeln!(std::io::stderr(), "coffer: cannot limit the memory of the session worker of user {}: {e}", args.user);
        return ExitCode::from(1);
    }
    let sftp = matches!(args.mode, WorkerMode::Sftp);
    if sftp {
        let level = args.log_level.parse().unwrap_or(log::LevelFilter::Info);
        let config = simplelog::ConfigBuilder::new().set_time_level(log::LevelFilter::Off).build();
        let _ = simplelog::WriteLogger::init(level, config, std::io::stderr());
    }
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let jail = match UserJail::open(&args.jail) {
        Ok(j) => j,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "coffer: cannot open the data area of user {}: {e}", args.user);
            return ExitCode::from(1);
        }
    };
    let Some(profile) = Profile::parse(&args.profile) else {
        let _ = writeln!(std::io::stderr(), "coffer: unknown key profile {:?}", args.profile);
        return ExitCode::from(1);
    };
    let quota: Box<dyn QuotaGate> = match args.quota_fd.map(|fd| adopt_socket(fd).and_then(|s| QuotaClient::new(&args.user, s))) {
        Some(Ok(client)) => Box::new(client),
        Some(Err(e)) => {
            let _ = writeln!(std::io::stderr(), "coffer: the quota socket from the server is unusable: {e}");
            return ExitCode::from(1);
        }
        None => Box::new(Unlimited),
    };
    match confine::restrict_to(&args.jail) {
        Ok(Confinement::Full) => {}
        Ok(other) => log::debug!("landlock confinement: {other:?}"),
        Err(e) => log::debug!("landlock unavailable: {e}"),
    }
    // The standard streams as plain files: std's Stdout is line-buffered,
    // which would scan every megabyte of file data for newlines.
    let (stdin, stdout) = match (raw_stream(&std::io::stdin()), raw_stream(&std::io::stdout())) {
        (Ok(i), Ok(o)) => (i, o),
        (Err(e), _) | (_, Err(e)) => {
            let _ = writeln!(std::io::stderr(), "coffer: session worker has no usable stdio: {e}");
            return ExitCode::from(1);
        }
    };
    // Append-only rules are about which file a name denotes; links never redirect them.
    let jail = if profile == Profile::AppendOnly { jail.without_symlinks() } else { jail };
    let ctx = SessionContext { jail, user: args.user.clone(), profile, quota };
    match args.mode {
        WorkerMode::Sftp => match coffer_session::sftp::serve_fd(ctx, stdin, stdout) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                log::warn!("sftp session of {} ended: {e}", args.user);
                ExitCode::from(1)
            }
        },
        WorkerMode::Exec { line } => {
            let line = line.as_encoded_bytes().to_vec();
            let mut stdout = std::io::BufWriter::with_capacity(64 * 1024, stdout);
            let mut stderr = std::io::stderr().lock();
            let status = coffer_session::exec::run(&ctx, &line, stdin, &mut stdout, &mut stderr);
            let _ = stdout.flush();
            ExitCode::from(u8::try_from(status).unwrap_or(1))
        }
    }
}

/// A standard stream's descriptor as an unbuffered file.
fn raw_stream(stream: &impl AsFd) -> std::io::Result<File> {
    Ok(File::from(stream.as_fd().try_clone_to_owned()?))
}

/// Takes ownership of the quota socket the server passed down.
#[allow(unsafe_code)]
fn adopt_socket(fd: i32) -> std::io::Result<std::os::unix::net::UnixStream> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // The descriptor must be an open socket, or adopting it would be unsound.
    let target = std::fs::read_link(format!("/proc/self/fd/{fd}"))?;
    if fd < 3 || !target.to_string_lossy().starts_with("socket:") {
        return Err(std::io::Error::other(format!("descriptor {fd} is not a socket")));
    }
    // SAFETY: `serve` opened this descriptor for this process alone (see
    // `spawn_with_inherited`), it is an open socket (checked above) and nothing else in
    // this process owns it; it is adopted exactly once, at start-up.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(std::os::unix::net::UnixStream::from(owned))
}
