//! A minimal mDNS responder (RFC 6762) with DNS-SD (RFC 6763), so clients
//! on the LAN find the box as `NAME.local` and see its SSH and SFTP
//! services without configuration.
//!
//! - [`message`]: DNS messages as data; the parser never panics and is
//!   fuzzed, names are decompressed with loop and length guards.
//! - [`Responder`]: the box's records and the pure decision of what to
//!   answer to a query, and where.
//! - [`serve`], [`serve_on`]: the blocking UDP loop.
//!
//! Deliberately absent: probing and conflict resolution (§8.1, §9), the
//! random response delay for shared records (§6), NSEC negative answers,
//! IPv6. It answers only for its own names and never forwards or caches.

pub mod message;
mod name;
mod responder;
mod serve;

pub use message::{EncodeError, Message, ParseError, Question, RData, Record};
pub use name::{MAX_LABEL, MAX_NAME, Name, NameError};
pub use responder::{
    Destination, HOST_TTL, LEGACY_TTL, MDNS_GROUP, MDNS_PORT, OTHER_TTL, Reply, Responder,
    SERVICE_TYPES,
};
pub use serve::{group_addr, multicast_socket, serve, serve_on};
