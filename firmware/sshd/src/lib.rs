//! The SSH front end of the backup endpoint.
//!
//! It speaks SSH (russh), accepts public keys only, throttles failed logins
//! per address, and refuses shells, ptys and every kind of forwarding. For
//! each exec or sftp request it starts a session worker process (see
//! `coffer-session`) under the user's uid when running as root, and relays
//! the channel to the worker's stdio. The front end never opens a user file.
//!
//! Modules by job: `endpoint` (the public types and shared state),
//! `protocol` (algorithms and russh settings), `accept` (the listener,
//! admission, login grace, the users.toml watcher, shutdown), `handler` (the
//! russh handler: login and channel requests), `request` (pure: what a
//! channel request becomes, and refusal messages), `spawn` (starting a
//! worker or an administrator command), `relay` (channel <-> process),
//! `slot` (a session's place in the limits), `disconnect` (cutting a
//! connection whose client ignores our disconnect). Beside them: `access`,
//! `admission`, `live`, `throttle` and `quota`.

mod accept;
mod access;
pub mod admission;
mod disconnect;
mod endpoint;
mod handler;
mod keys;
mod live;
mod protocol;
pub mod quota;
mod relay;
mod request;
mod slot;
mod spawn;
pub mod throttle;

pub use endpoint::{Endpoint, EndpointConfig, EndpointError, WorkerCommand};
pub use keys::{KeyPolicyError, accepted_key_algorithm, parse_authorized_key};
