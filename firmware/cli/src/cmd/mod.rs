//! The commands a person (or a script, or `ssh admin@box`) runs: one module
//! per command family. They finish and exit; the long-running jobs are in
//! `crate::svc`, and what both need sits at the top of the crate. The tidy
//! test keeps `cmd` and `svc` from importing each other.

pub(crate) mod admin;
pub(crate) mod alert;
pub(crate) mod board;
pub(crate) mod config;
pub(crate) mod config_bundle;
pub(crate) mod logs;
pub(crate) mod quota;
pub(crate) mod raid;
pub(crate) mod retention;
pub(crate) mod status;
pub(crate) mod update;
pub(crate) mod user;
