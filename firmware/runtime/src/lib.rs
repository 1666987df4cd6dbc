//! The runtime contract between Coffer's processes, in one place: which
//! files they share under `/run/coffer`, `/etc/coffer` and the state
//! directory ([`Paths`]), how a state change is printed ([`event`]), what
//! time it is and whether that time can be trusted ([`clock`]), and how an
//! alert is raised ([`alert`]).
//!
//! No other crate names a `/run/coffer` or `/etc/coffer` path or reads the
//! system clock (the tidy test checks it): a newcomer finds every file the
//! supervisor, the services and the commands exchange here. This crate
//! holds no policy; it never decides what to write, only where and how.

pub mod alert;
pub mod clock;
pub mod event;
mod paths;

pub use paths::Paths;
