//! The appliance's PID 1. `coffer` started as PID 1 runs [`run_as_init`]:
//! it does the init work (kernel file systems, modules, state partition,
//! host name, network, data mirror), supervises the services with restart
//! backoff, owns `waitpid`, pets the watchdog while healthy, and shuts down
//! in order on SIGTERM, Ctrl-Alt-Del or the power button.

mod boot;
mod console;
mod data;
mod net;
mod reaper;
mod run;
mod services;
mod slots;
mod watchdog;

pub use console::{LineWriter, event};
pub use run::run_as_init;
pub use slots::ESP_PARTITION;
pub use services::{Action, ExitOutcome, RestartPolicy, ServiceState, ServiceTable};

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{0}")]
    Boot(String),
}

impl SupervisorError {
    fn io(what: String, source: std::io::Error) -> Self {
        SupervisorError::Io { what, source }
    }
}
