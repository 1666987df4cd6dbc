//! Server replies: encoded into complete packets by the server, decoded
//! from packet bodies by the client. Decoding never trusts a count or a
//! length beyond the bytes actually present.

use crate::attrs::Attrs;
use crate::codec::{DecodeError, Reader, Writer};
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
    /// An EXTENDED_REPLY as received: its meaning depends on the request it
    /// answers, so the client decodes `data` with [`StatVfs::decode`] or
    /// [`Limits::decode`].
    Extended { id: u32, data: Vec<u8> },
}

/// The server's VERSION packet: its protocol version and extension pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    pub version: u32,
    pub extensions: Vec<(Vec<u8>, Vec<u8>)>,
}

impl ServerVersion {
    /// Decodes a VERSION packet body (type byte onwards).
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let kind = r.u8()?;
        if kind != t::VERSION {
            return Err(DecodeError::UnknownType(kind));
        }
        let version = r.u32()?;
        let mut extensions = Vec::new();
        while r.remaining() > 0 {
            extensions.push((r.string()?.to_vec(), r.string()?.to_vec()));
        }
        Ok(ServerVersion { version, extensions })
    }

    /// Whether the server announced extension `name`.
    pub fn has(&self, name: &str) -> bool {
        self.extensions.iter().any(|(n, _)| n == name.as_bytes())
    }
}

impl StatVfs {
    /// Decodes the data of a `statvfs@openssh.com` EXTENDED_REPLY.
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(data);
        Ok(StatVfs {
            bsize: r.u64()?,
            frsize: r.u64()?,
            blocks: r.u64()?,
            bfree: r.u64()?,
            bavail: r.u64()?,
            files: r.u64()?,
            ffree: r.u64()?,
            favail: r.u64()?,
            fsid: r.u64()?,
            flag: r.u64()?,
            namemax: r.u64()?,
        })
    }
}

impl Limits {
    /// Decodes the data of a `limits@openssh.com` EXTENDED_REPLY.
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(data);
        Ok(Limits { max_packet: r.u64()?, max_read: r.u64()?, max_write: r.u64()?, max_open_handles: r.u64()? })
    }
}

impl StatusCode {
    /// The code for a number on the wire. Codes this crate has no name for
    /// (later drafts' additions) read as `Failure`: the message still says
    /// what happened.
    pub fn from_u32(code: u32) -> Self {
        match code {
            0 => StatusCode::Ok,
            1 => StatusCode::Eof,
            2 => StatusCode::NoSuchFile,
            3 => StatusCode::PermissionDenied,
            5 => StatusCode::BadMessage,
            8 => StatusCode::OpUnsupported,
            _ => StatusCode::Failure,
        }
    }
}

impl Reply {
    pub fn ok(id: u32) -> Self {
        Reply::Status { id, code: StatusCode::Ok, message: "Success".into() }
    }

    pub fn status(id: u32, code: StatusCode, message: impl Into<String>) -> Self {
        Reply::Status { id, code, message: message.into() }
    }

    /// Decodes one reply packet body (type byte onwards, without the
    /// length), as a client receives it. A VERSION packet decodes to
    /// [`Reply::Version`]; [`ServerVersion::decode`] reads its contents.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let kind = r.u8()?;
        if kind == t::VERSION {
            ServerVersion::decode(body)?;
            return Ok(Reply::Version);
        }
        let id = r.u32()?;
        Ok(match kind {
            t::STATUS => {
                let code = StatusCode::from_u32(r.u32()?);
                // Version 3 servers send a message and a language tag; some
                // older ones send neither.
                let message = if r.remaining() > 0 { String::from_utf8_lossy(r.string()?).into_owned() } else { String::new() };
                Reply::Status { id, code, message }
            }
            t::HANDLE => Reply::Handle { id, handle: r.string()?.to_vec() },
            t::DATA => Reply::Data { id, data: r.string()?.to_vec() },
            t::NAME => {
                let count = r.u32()?;
                // No capacity from `count`: each entry must be present.
                let mut entries = Vec::new();
                for _ in 0..count {
                    let filename = r.string()?.to_vec();
                    let longname = r.string()?.to_vec();
                    let attrs = Attrs::decode(&mut r)?;
                    entries.push(NameEntry { filename, longname, attrs });
                }
                Reply::Name { id, entries }
            }
            t::ATTRS => Reply::Attrs { id, attrs: Attrs::decode(&mut r)? },
            t::EXTENDED_REPLY => {
Reply::Extended { id, data: r.rest().to_vec() }
            }
            other => return Err(DecodeError::UnknownType(other)),
        })
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
            Reply::Extended { id, data } => {
                let mut w = Writer::packet_with_capacity(t::EXTENDED_REPLY, data.len() + 4);
                w.u32(*id).raw(data);
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
