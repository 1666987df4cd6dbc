//! `coffer alert test`: one test message through every configured sink, with
//! a verdict per sink.

use std::path::Path;

use anyhow::{Result, bail};
use coffer_alert::{Alert, Severity, Sink, configured_sinks};
use coffer_config::{Config, StatePaths};

/// Sends a test message through every sink now and says how each went.
pub(crate) fn test(state: &Path) -> Result<()> {
    let config = Config::load(&StatePaths::new(state).config())?;
    let alert = Alert {
        key: "test".into(),
        severity: Severity::Info,
        title: "Test alert".into(),
        body: "This is a test message from `coffer alert test`: this sink works.".into(),
        resolved: false,
        time: coffer_runtime::clock::now(),
    };
    let sinks: Vec<Box<dyn Sink>> = configured_sinks(&config.alerts);
    let mut failed = 0;
    for sink in &sinks {
        match sink.send(&alert, &config.network.hostname, false) {
            Ok(()) => println!("{}: sent", sink.name()),
            Err(e) => {
                failed += 1;
                println!("{}: FAILED: {e}", sink.name());
            }
        }
    }
    if sinks.len() == 1 {
        println!("(only the local log is configured; add [alerts.email] or [alerts.webhook] to coffer.toml)");
    }
    if failed > 0 {
        bail!("{failed} of {} alert sinks failed", sinks.len());
    }
    Ok(())
}
