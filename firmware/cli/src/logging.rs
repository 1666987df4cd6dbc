//! Logging for every command and service of the binary: the `log` facade to
//! standard error (the supervisor captures it into the appliance's log).

/// Starts logging at `level` (from coffer.toml), unless `RUST_LOG` says
/// otherwise. russh's own chatter is left out.
pub(crate) fn init(level: &str) {
    let filter = std::env::var("RUST_LOG").ok().unwrap_or_else(|| level.to_string());
    let level = filter.parse().unwrap_or(log::LevelFilter::Info);
    let config = simplelog::ConfigBuilder::new()
        .set_time_format_rfc3339()
        .add_filter_ignore_str("russh")
        .build();
    let _ = simplelog::WriteLogger::init(level, config, std::io::stderr());
}
