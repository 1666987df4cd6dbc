//! The endpoint's public face: its configuration, the state its connections
//! share, and [`Endpoint`], which `coffer serve` builds and runs. The work
//! itself lives by job in `accept` (the listener), `handler` (one
//! connection's SSH requests), `spawn` (session processes) and `relay`.

use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::keys::PrivateKey;
use thiserror::Error;
use tokio::sync::watch;

use crate::admission::{AdmissionLimits, Occupancy};
use crate::live::LiveSessions;
use crate::protocol;
use crate::quota::QuotaBook;
use crate::throttle::{LoginThrottle, ThrottlePolicy};

/// Errors that stop the endpoint (not a single connection).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EndpointError {
    #[error("accepting connections failed: {0}")]
    Accept(#[source] std::io::Error),
}

/// How to start a session worker: the program and the arguments before the
/// per-channel ones (`sftp` or `exec LINE`).
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// Everything the endpoint needs, resolved from the state directory.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub host_key: PrivateKey,
    pub users_file: PathBuf,
    pub data_dir: PathBuf,
    pub worker: WorkerCommand,
    /// How to run an administrator's command line (`status`, `user add …`):
    /// the program and its leading arguments; `--user NAME -- LINE` follows.
    pub admin: WorkerCommand,
    /// Run workers under each user's uid/gid (requires root).
    pub drop_privileges: bool,
    pub throttle: ThrottlePolicy,
    pub idle_timeout: Duration,
    /// A connection must log in within this time or is closed (and counts
    /// as a failed login for the throttle).
    pub login_grace: Duration,
    pub max_connections: usize,
    pub admission: AdmissionLimits,
    pub log_level: String,
    /// Every user's quota ledger.
    pub quota: Arc<QuotaBook>,
}

/// What every connection of the endpoint shares.
pub(crate) struct Shared {
    pub(crate) config: EndpointConfig,
    pub(crate) throttle: Mutex<LoginThrottle>,
    /// Connections open now, for `server.max-connections`.
    pub(crate) connections: AtomicUsize,
    pub(crate) occupancy: Mutex<Occupancy>,
    pub(crate) live: LiveSessions,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl Shared {
    /// The admission book; a panic elsewhere while it was held leaves counts
    /// that are still the best ones known.
    pub(crate) fn occupancy(&self) -> std::sync::MutexGuard<'_, Occupancy> {
        self.occupancy.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The running endpoint.
pub struct Endpoint {
    pub(crate) shared: Arc<Shared>,
    pub(crate) ssh: Arc<russh::server::Config>,
}

impl Endpoint {
    pub fn new(config: EndpointConfig, shutdown: watch::Receiver<bool>) -> Self {
        let ssh = protocol::server_config(&config.host_key, config.idle_timeout);
        let throttle = LoginThrottle::new(config.throttle);
        let occupancy = Occupancy::new(config.admission);
        Endpoint {
            shared: Arc::new(Shared {
                config,
                throttle: Mutex::new(throttle),
                connections: AtomicUsize::new(0),
                occupancy: Mutex::new(occupancy),
                live: LiveSessions::default(),
                shutdown,
            }),
            ssh: Arc::new(ssh),
        }
    }
}
