//! `serve`: run the backup endpoint until SIGTERM/SIGINT.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use coffer_sshd::admission::AdmissionLimits;
use coffer_sshd::quota::QuotaBook;
use coffer_sshd::throttle::ThrottlePolicy;
use coffer_runtime::event::{self, Event};
use coffer_runtime::Paths;
use coffer_sshd::{Endpoint, EndpointConfig, WorkerCommand};

use crate::state::{State, chown_tree};

/// How often the arrival of new backup sets is recorded. A set's arrival is
/// its files' earliest ctime, so a late look records the same time; looking
/// often keeps it before anything (a chmod, a hard link) moves the ctime.
const ARRIVALS_EVERY: Duration = Duration::from_secs(600);

/// How long open sessions get to finish after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

pub(crate) fn serve(dir: &Path, listen: Option<&str>) -> Result<()> {
    let state = State::open(dir)?;
    crate::logging::init(&state.config.log.level);
    let host_key = russh::keys::load_secret_key(state.paths.host_key(), None)
        .with_context(|| format!("reading host key {}", state.paths.host_key().display()))?;
    let data_dir = state.data_dir();
    let root = rustix::process::geteuid().is_root();
    let users = state.users()?;
    for user in &users.users {
        let home = data_dir.join(user.name.as_str());
        if !home.is_dir() {
            std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
        }
        if root {
            chown_tree(&home, user.uid, user.gid, false)?;
        }
    }
    raise_descriptor_limit();
    let swept = sweep_unfinished_uploads(&data_dir);
    crate::arrivals::observe_all(&state);
    let quota = Arc::new(QuotaBook::default());
    let default_files = crate::file_limits::default_limit(&state.data_dir());
    match default_files {
        Some(n) => log::info!("users without a file limit of their own may keep {n} files (1/{} of the data area's inodes)", coffer_quota::DEFAULT_FILES_DIVISOR),
        None => log::warn!("the data area's file system reports no inode count: users without a file limit of their own have none"),
    }
    quota.set_default_files(default_files);
    for user in &users.users {
        crate::quota_book::count_at_start(&state, &quota, user);
    }
    if swept > 0 {
        log::info!("removed {swept} unfinished upload(s) left by an earlier run");
    }
    if root {
        log::info!("sessions run as each user's own uid, confined with Landlock where the kernel has it");
    } else {
        log::warn!(
            "not running as root: sessions run as this user (uid {}) with path confinement and Landlock only, not under per-user uids",
            rustix::process::geteuid().as_raw()
        );
    }

    let exe = std::env::current_exe().context("finding the coffer binary")?;
    let addr = listen.unwrap_or(&state.config.server.listen).to_string();
    let t = &state.config.login_throttle;
    let config = EndpointConfig {
        host_key,
        users_file: state.paths.users(),
        data_dir: data_dir.clone(),
        worker: WorkerCommand { program: exe.clone(), args: vec!["session-worker".into()] },
        admin: WorkerCommand {
            program: exe,
            args: vec!["--state".into(), std::path::absolute(dir)?.to_string_lossy().into_owned(), "admin".into()],
        },
        drop_privileges: root,
        throttle: ThrottlePolicy {
            max_failures: t.max_failures.max(1),
            window: Duration::from_secs(t.window_secs),
            ban: Duration::from_secs(t.ban_secs),
            max_ban: Duration::from_secs(t.max_ban_secs),
        },
        idle_timeout: Duration::from_secs(state.config.server.idle_timeout_secs.max(1)),
        login_grace: Duration::from_secs(state.config.server.login_grace_secs.max(1)),
        max_connections: state.config.server.max_connections.max(1),
        admission: admission_limits(&state.config.server),
        log_level: state.config.log.level.clone(),
        quota: Arc::clone(&quota),
    };
    let retention_every = state.config.retention.enabled.then(|| Duration::from_secs(state.config.retention.interval_secs.max(1)));

    // One thread runs every connection: it encrypts over 1 GB/s, far more
    // than the appliance's network carries, while handing each packet
    // between two threads cost a download 15 % more front-end CPU and 20 %
    // more wall time (README, Performance). Blocking work goes to the
    // blocking pool (`spawn_blocking`, `block_in_place`).
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().context("starting the runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("listening on {addr}"))?;
        let local = listener.local_addr()?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            log::info!("stop requested");
            let _ = stop_tx.send(true);
        });
        let book = Arc::clone(&quota);
        let state_dir = dir.to_path_buf();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                let (dir, book) = (state_dir.clone(), Arc::clone(&book));
                let _ = tokio::task::spawn_blocking(move || crate::quota_book::housekeeping(&dir, &book)).await;
            }
        });
        let state_dir = dir.to_path_buf();
        tokio::spawn(async move {
            // Users without a recent backup: `StaleCheckTimer` says when;
            // alerted once while it lasts.
            let mut raised = std::collections::BTreeMap::new();
            let mut timer = coffer_status::StaleCheckTimer::default();
            let start = tokio::time::Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tick.tick().await;
                if !timer.due(coffer_runtime::clock::trusted(&Paths::appliance()), start.elapsed()) {
                    continue;
                }
                let dir = state_dir.clone();
                raised = tokio::task::spawn_blocking(move || {
                    crate::svc::stale_backups::check_stale_backups(&dir, &mut raised);
                    raised
                })
                .await
                .unwrap_or_default();
            }
        });
        let state_dir = dir.to_path_buf();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + ARRIVALS_EVERY, ARRIVALS_EVERY);
            loop {
                tick.tick().await;
                let dir = state_dir.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Ok(state) = State::open(&dir) {
                        crate::arrivals::observe_all(&state);
                    }
                })
                .await;
            }
        });
        if let Some(every) = retention_every {
            let state_dir = dir.to_path_buf();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                loop {
                    tick.tick().await;
                    let dir = state_dir.clone();
                    let _ = tokio::task::spawn_blocking(move || crate::svc::retention_schedule::scheduled(&dir)).await;
                }
            });
        }
        let endpoint = Endpoint::new(config, stop_rx);
        println!("coffer: listening on {local}");
        std::io::stdout().flush().ok();
        event::emit(&Event::ServerListening { address: local.to_string() });
        endpoint.run(listener, SHUTDOWN_GRACE).await?;
        crate::quota_book::housekeeping(dir, &quota);
        event::emit(&Event::ServerStopped);
        Ok(())
    })
}

/// The endpoint's limits from `[server]`; zero means one, never unlimited.
fn admission_limits(s: &coffer_config::ServerConfig) -> AdmissionLimits {
    let sessions = s.max_sessions.max(1);
    AdmissionLimits {
        unauthenticated: s.max_unauthenticated.max(1),
        unauthenticated_per_address: s.max_unauthenticated_per_address.max(1),
        connections_per_user: s.max_connections_per_user.max(1),
        channels_per_connection: s.max_sessions_per_connection.max(1),
        workers_per_user: s.max_sessions_per_user.max(1),
        workers: sessions,
        workers_reserve: sessions / 8,
    }
}

/// Descriptors the server asks for at start: each session costs the front
/// end a few (socket, pipes, quota socket), and Linux's default soft limit
/// of 1,024 is low for a box serving a household.
const WANTED_DESCRIPTORS: u64 = 65_536;

/// Raises the soft descriptor limit towards the hard one.
fn raise_descriptor_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let now = getrlimit(Resource::Nofile);
    let want = now.maximum.map_or(WANTED_DESCRIPTORS, |hard| hard.min(WANTED_DESCRIPTORS));
    if now.current.is_some_and(|soft| soft >= want) {
        return;
    }
    match setrlimit(Resource::Nofile, Rlimit { current: Some(want), maximum: now.maximum }) {
        Ok(()) => log::info!("open file limit raised to {want}"),
        Err(e) => log::warn!("cannot raise the open file limit to {want} (it stays {:?}): {e}", now.current),
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        log::error!("cannot install signal handlers; stop the server with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Removes hidden in-progress upload files left by a crash or power cut:
/// they never became visible, so no client can be relying on them.
fn sweep_unfinished_uploads(dir: &Path) -> usize {
    let mut removed = 0;
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    for entry in entries.flatten() {
        let Ok(ft) = entry.file_type() else { continue };
        let path = entry.path();
        if ft.is_dir() {
            removed += sweep_unfinished_uploads(&path);
        } else if entry.file_name().as_encoded_bytes().starts_with(coffer_storage::UPLOAD_PREFIX)
            && std::fs::remove_file(&path).is_ok()
        {
            removed += 1;
        }
    }
    removed
}
