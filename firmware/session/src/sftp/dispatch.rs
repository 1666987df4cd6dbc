//! One request: decode it, route it to the module that does its work, and
//! encode the reply. The routing is a table; the rules live where the work
//! is done.

use coffer_sftp_proto::{MAX_PACKET, Reply, Request, RequestKind, StatusCode, encode_data, split_packet};

use super::reply::Outgoing;
use super::session::Session;
use super::{files, inspect, listing, names, read};

/// Decodes and executes one packet, returning the encoded reply.
pub(super) fn handle_packet(s: &Session, packet: &[u8]) -> Outgoing {
    let body = match split_packet(packet, MAX_PACKET) {
        Ok(Some((body, _))) => body,
        _ => return Outgoing::Packet(Reply::status(0, StatusCode::BadMessage, "malformed packet").encode()),
    };
    Outgoing::Packet(match Request::decode(body) {
        // READ builds its DATA packet in place, or leaves the data in a pipe.
        Ok(Request { id, kind: RequestKind::Read { handle, offset, len } }) => return read::read(s, id, handle, offset, len),
        Ok(req) => {
            let id = req.id;
            let reply = execute(s, req);
            if let Reply::Status { code, message, .. } = &reply
                && *code != StatusCode::Ok
                && *code != StatusCode::Eof
            {
                log::debug!("user {}: request {id} ({}) failed: {code:?} {message}", s.user, body[0]);
            }
            match reply {
                Reply::Data { id, data } => encode_data(id, &data),
                other => other.encode(),
            }
        }
        Err(e) => {
            // The id sits right after the type byte when the packet is long enough.
            let id = if body.len() >= 5 { u32::from_be_bytes([body[1], body[2], body[3], body[4]]) } else { 0 };
            log::warn!("user {}: undecodable request {id}: {e}", s.user);
            Reply::status(id, StatusCode::BadMessage, format!("bad request: {e}")).encode()
        }
    })
}

fn execute(s: &Session, req: Request<'_>) -> Reply {
    let id = req.id;
    match req.kind {
        RequestKind::Init { .. } => Reply::Version,
        RequestKind::Realpath { path } => inspect::realpath(id, path),
        RequestKind::Stat { path } => inspect::stat(s, id, path),
        RequestKind::Lstat { path } => inspect::lstat(s, id, path),
        RequestKind::Fstat { handle } => inspect::fstat(s, id, handle),
        RequestKind::Readlink { path } => inspect::readlink(s, id, path),
        RequestKind::Statvfs { .. } | RequestKind::Fstatvfs { .. } => inspect::statvfs(s, id),
        RequestKind::Limits => inspect::limits(id),
        RequestKind::Opendir { path } => listing::opendir(s, id, path),
        RequestKind::Readdir { handle } => listing::readdir(s, id, handle),
        RequestKind::Open { path, flags, attrs } => files::open(s, id, path, flags, &attrs),
        RequestKind::Write { handle, offset, data } => files::write(s, id, handle, offset, data),
        RequestKind::Close { handle } => files::close(s, id, handle),
        RequestKind::Fsync { handle } => files::fsync(s, id, handle),
        RequestKind::Setstat { path, attrs } => files::setstat(s, id, path, &attrs),
        RequestKind::Fsetstat { handle, attrs } => files::fsetstat(s, id, handle, &attrs),
        RequestKind::Remove { path } => names::remove(s, id, path),
        RequestKind::Mkdir { path, attrs } => names::mkdir(s, id, path, &attrs),
        RequestKind::Rmdir { path } => names::rmdir(s, id, path),
        RequestKind::Rename { from, to } => names::rename(s, id, from, to, false),
        RequestKind::PosixRename { from, to } => names::rename(s, id, from, to, true),
        RequestKind::Hardlink { from, to } => names::hardlink(s, id, from, to),
        RequestKind::Symlink { target, link } => names::symlink(s, id, target, link),
        // `handle_packet` sends READs to `read::read` before they get here.
        RequestKind::Read { .. } => Reply::status(id, StatusCode::Failure, "internal error: READ not routed"),
        RequestKind::UnknownExtension { name } => Reply::status(
            id,
            StatusCode::OpUnsupported,
            format!("extension {} is not supported", String::from_utf8_lossy(name)),
        ),
    }
}
