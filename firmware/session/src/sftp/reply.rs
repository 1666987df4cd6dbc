//! What lanes hand the writer, and the replies every kind of request shares:
//! errors as SFTP statuses, quota refusals, refused paths.

use std::io;

use coffer_sftp_proto::{Reply, StatusCode};
use coffer_storage::JailPath;

use super::pipes::SplicePipe;
use crate::quota::QuotaExceeded;
use crate::status::io_status;

/// What the writer sends: an encoded packet, or a DATA header whose
/// payload waits in a pipe.
pub(super) enum Outgoing {
    Packet(Vec<u8>),
    /// `spliced` bytes wait in the pipe; `tail` follows them (the part a
    /// pipe too small to grow could not take).
    Spliced { header: [u8; DATA_HEADER], pipe: SplicePipe, spliced: usize, tail: Vec<u8> },
}

/// A DATA packet's length(4) type(1) id(4) data-length(4), then the data.
pub(super) const DATA_HEADER: usize = 13;

pub(super) fn data_header(id: u32, len: usize) -> [u8; DATA_HEADER] {
    let n = u32::try_from(len).unwrap_or(u32::MAX);
    let mut h = [0u8; DATA_HEADER];
    h[..4].copy_from_slice(&(n.saturating_add(9)).to_be_bytes());
    h[4] = coffer_sftp_proto::packet_type::DATA;
    h[5..9].copy_from_slice(&id.to_be_bytes());
    h[9..13].copy_from_slice(&n.to_be_bytes());
    h
}

pub(super) fn err_reply(id: u32, e: &io::Error) -> Reply {
    let (code, message) = io_status(e);
    Reply::status(id, code, message)
}

/// OK, or the error as a status.
pub(super) fn io_reply(id: u32, r: io::Result<()>) -> Reply {
    match r {
        Ok(()) => Reply::ok(id),
        Err(e) => err_reply(id, &e),
    }
}

pub(super) fn quota_reply(id: u32, e: &QuotaExceeded) -> Reply {
    Reply::status(id, StatusCode::Failure, e.to_string())
}

/// A request's path, or the reply that refuses it. Reserved names (the
/// hidden upload temporaries) do not exist as far as clients can tell.
pub(super) fn parse_path(id: u32, p: &[u8]) -> Result<JailPath, Reply> {
    JailPath::parse(p).map_err(|e| match e {
        coffer_storage::PathError::Reserved => Reply::status(id, StatusCode::NoSuchFile, "No such file"),
        other => Reply::status(id, StatusCode::BadMessage, other.to_string()),
    })
}

/// Early return of the error reply from a `Result<T, Reply>`.
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}
pub(super) use tri;
