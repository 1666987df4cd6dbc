//! The SSH front end of the backup endpoint.
//!
//! It speaks SSH (russh), accepts public keys only, throttles failed logins
//! per address, and refuses shells, ptys and every kind of forwarding. For
//! each exec or sftp request it starts a session worker process (see
//! `coffer-session`) under the user's uid when running as root, and relays
//! the channel to the worker's stdio. The front end never opens a user file.

mod access;
pub mod admission;
mod disconnect;
pub mod event;
mod keys;
mod live;
pub mod quota;
mod server;
pub mod throttle;

pub use keys::{KeyPolicyError, accepted_key_algorithm, parse_authorized_key};
pub use server::{DATA_UNAVAILABLE_MARKER, Endpoint, EndpointConfig, EndpointError, WorkerCommand};
