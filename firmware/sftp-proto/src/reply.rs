//! Server replies, encoded into complete packets.

use crate::attrs::Attrs;
use crate::codec::Writer;
use crate::packet_type as t;
use crate::{EXTENSIONS, StatusCode, VERSION};

/// One directory entry or resolved path of a NAME reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameEntry {
    pub filename: Vec<u8>,
    pub longname: Vec<u8>,
    pub attrs: Attrs,
}

/// `statvfs@openssh.com` reply fields, as in `struct statvfs`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatVfs {
    pub bsize: u64,
    pub frsize: u64,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub favail: u64,
    pub fsid: u64,
    pub flag: u64,
    pub namemax: u64,
}

/// `limits@openssh.com` reply fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_packet: u64,
    pub max_read: u64,
    pub max_write: u64,
    pub max_open_handles: u64,
}

/// A reply to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Version,
    Status { id: u32, code: StatusCode, message: String },
    Handle { id: u32, handle: Vec<u8> },
    Data { id: u32, data: Vec<u8> },
    Name { id: u32, entries: Vec<NameEntry> },
    Attrs { id: u32, attrs: Attrs },
    StatVfs { id: u32, vfs: StatVfs },
    Limits { id: u32, limits: Limits },
}

impl Reply {
    pub fn ok(id: u32) -> Self {
        Reply::Status { id, code: StatusCode::Ok, message: "Success".into() }
    }

    pub fn status(id: u32, code: StatusCode, message: impl Into<String>) -> Self {
        Reply::Status { id, code, message: message.into() }
    }

    /// Encodes the reply as one length-prefixed packet.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Reply::Version => {
                let mut w = Writer::packet(t::VERSION);
                w.u32(VERSION);
                for (name, value) in EXTENSIONS {
                    w.string(name.as_bytes()).string(value.as_bytes());
                }
                w.finish()
            }
            Reply::Status { id, code, message } => {
                let mut w = Writer::packet(t::STATUS);
                w.u32(*id).u32(*code as u32).string(message.as_bytes()).string(b"en");
                w.finish()
            }
            Reply::Handle { id, handle } => {
                let mut w = Writer::packet(t::HANDLE);
                w.u32(*id).string(handle);
                w.finish()
            }
            Reply::Data { id, data } => encode_data(*id, data),
            Reply::Name { id, entries } => {
                let mut w = Writer::packet(t::NAME);
                w.u32(*id).u32(u32::try_from(entries.len()).unwrap_or(u32::MAX));
                for e in entries {
                    w.string(&e.filename).string(&e.longname);
                    e.attrs.encode(&mut w);
                }
                w.finish()
            }
            Reply::Attrs { id, attrs } => {
                let mut w = Writer::packet(t::ATTRS);
                w.u32(*id);
                attrs.encode(&mut w);
                w.finish()
            }
            Reply::StatVfs { id, vfs } => {
                let mut w = Writer::packet(t::EXTENDED_REPLY);
                w.u32(*id);
                for v in [
                    vfs.bsize, vfs.frsize, vfs.blocks, vfs.bfree, vfs.bavail, vfs.files, vfs.ffree,
                    vfs.favail, vfs.fsid, vfs.flag, vfs.namemax,
                ] {
                    w.u64(v);
                }
                w.finish()
            }
            Reply::Limits { id, limits } => {
                let mut w = Writer::packet(t::EXTENDED_REPLY);
                w.u32(*id)
                    .u64(limits.max_packet)
                    .u64(limits.max_read)
                    .u64(limits.max_write)
                    .u64(limits.max_open_handles);
                w.finish()
            }
        }
    }
}

/// Encodes a DATA reply straight from a buffer, the hot path of every download.
pub fn encode_data(id: u32, data: &[u8]) -> Vec<u8> {
    let mut w = Writer::packet_with_capacity(t::DATA, data.len() + 8);
    w.u32(id).string(data);
    w.finish()
}
