//! Client requests, decoded from a packet body.

use crate::attrs::Attrs;
use crate::codec::{DecodeError, Reader, Writer};
use crate::packet_type as t;

/// SSH_FXF_* open flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenFlags(pub u32);

impl OpenFlags {
    pub const READ: u32 = 0x01;
    pub const WRITE: u32 = 0x02;
    pub const APPEND: u32 = 0x04;
    pub const CREAT: u32 = 0x08;
    pub const TRUNC: u32 = 0x10;
    pub const EXCL: u32 = 0x20;

    pub fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
}

/// One request with its id. INIT has no id and is `RequestKind::Init` with id 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub id: u32,
    pub kind: RequestKind<'a>,
}

/// What the client asks for. Paths and handles borrow from the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKind<'a> {
    Init { version: u32 },
    Open { path: &'a [u8], flags: OpenFlags, attrs: Attrs },
    Close { handle: &'a [u8] },
    Read { handle: &'a [u8], offset: u64, len: u32 },
    Write { handle: &'a [u8], offset: u64, data: &'a [u8] },
    Lstat { path: &'a [u8] },
    Fstat { handle: &'a [u8] },
    Setstat { path: &'a [u8], attrs: Attrs },
    Fsetstat { handle: &'a [u8], attrs: Attrs },
    Opendir { path: &'a [u8] },
    Readdir { handle: &'a [u8] },
    Remove { path: &'a [u8] },
    Mkdir { path: &'a [u8], attrs: Attrs },
    Rmdir { path: &'a [u8] },
    Realpath { path: &'a [u8] },
    Stat { path: &'a [u8] },
    Rename { from: &'a [u8], to: &'a [u8] },
    Readlink { path: &'a [u8] },
    /// In OpenSSH's order: the link's target first, then the link's own path.
    Symlink { target: &'a [u8], link: &'a [u8] },
    PosixRename { from: &'a [u8], to: &'a [u8] },
    Statvfs { path: &'a [u8] },
    Fstatvfs { handle: &'a [u8] },
    Hardlink { from: &'a [u8], to: &'a [u8] },
    Fsync { handle: &'a [u8] },
    Limits,
    /// An extension Coffer does not implement; answered OP_UNSUPPORTED.
    UnknownExtension { name: &'a [u8] },
}

impl<'a> Request<'a> {
    /// Decodes one packet body (type byte onwards, without the length).
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let kind_byte = r.u8()?;
        if kind_byte == t::INIT {
            let version = r.u32()?;
            // INIT may carry extension pairs; none matter to the server.
            return Ok(Request { id: 0, kind: RequestKind::Init { version } });
        }
        let id = r.u32()?;
        let kind = match kind_byte {
            t::OPEN => RequestKind::Open {
                path: r.string()?,
                flags: OpenFlags(r.u32()?),
                attrs: Attrs::decode(&mut r)?,
            },
            t::CLOSE => RequestKind::Close { handle: r.string()? },
            t::READ => RequestKind::Read { handle: r.string()?, offset: r.u64()?, len: r.u32()? },
            t::WRITE => RequestKind::Write { handle: r.string()?, offset: r.u64()?, data: r.string()? },
            t::LSTAT => RequestKind::Lstat { path: r.string()? },
            t::FSTAT => RequestKind::Fstat { handle: r.string()? },
            t::SETSTAT => RequestKind::Setstat { path: r.string()?, attrs: Attrs::decode(&mut r)? },
            t::FSETSTAT => RequestKind::Fsetstat { handle: r.string()?, attrs: Attrs::decode(&mut r)? },
            t::OPENDIR => RequestKind::Opendir { path: r.string()? },
            t::READDIR => RequestKind::Readdir { handle: r.string()? },
            t::REMOVE => RequestKind::Remove { path: r.string()? },
            t::MKDIR => RequestKind::Mkdir { path: r.string()?, attrs: Attrs::decode(&mut r)? },
            t::RMDIR => RequestKind::Rmdir { path: r.string()? },
            t::REALPATH => {
                let path = r.string()?;
                // Version 6 clients may append a control byte and compose paths; ignore them.
                while r.remaining() > 0 {
                    r.u8()?;
                }
                RequestKind::Realpath { path }
            }
            t::STAT => RequestKind::Stat { path: r.string()? },
            t::RENAME => {
                let from = r.string()?;
                let to = r.string()?;
                // Version 5+ adds a flags word; tolerated, not used.
                if r.remaining() >= 4 {
                    r.u32()?;
                }
                RequestKind::Rename { from, to }
            }
            t::READLINK => RequestKind::Readlink { path: r.string()? },
            t::SYMLINK => RequestKind::Symlink { target: r.string()?, link: r.string()? },
            t::EXTENDED => decode_extended(&mut r)?,
            other => return Err(DecodeError::UnknownType(other)),
        };
        // Bytes after the last field are ignored, as OpenSSH's sftp-server
        // does: rclone's client (pkg/sftp) sends WRITE packets padded past
        // the data it declares.
        Ok(Request { id, kind })
    }
}

impl Request<'_> {
    /// Encodes the request as one length-prefixed packet, as a client sends
    /// it. `Init` carries no id; the OpenSSH extensions go out as EXTENDED
    /// packets under their names.
    pub fn encode(&self) -> Vec<u8> {
        let id = self.id;
        let simple = |kind: u8, field: &[u8]| {
            let mut w = Writer::packet_with_capacity(kind, field.len() + 8);
            w.u32(id).string(field);
            w.finish()
        };
        let extended = |name: &[u8], fields: &[&[u8]]| {
            let mut w = Writer::packet(t::EXTENDED);
            w.u32(id).string(name);
            for f in fields {
                w.string(f);
            }
            w.finish()
        };
        match &self.kind {
            RequestKind::Init { version } => {
                let mut w = Writer::packet(t::INIT);
                w.u32(*version);
                w.finish()
            }
            RequestKind::Open { path, flags, attrs } => {
                let mut w = Writer::packet(t::OPEN);
                w.u32(id).string(path).u32(flags.0);
                attrs.encode(&mut w);
                w.finish()
            }
            RequestKind::Close { handle } => simple(t::CLOSE, handle),
            RequestKind::Read { handle, offset, len } => {
                let mut w = Writer::packet(t::READ);
                w.u32(id).string(handle).u64(*offset).u32(*len);
                w.finish()
            }
            RequestKind::Write { handle, offset, data } => {
                let mut w = Writer::packet_with_capacity(t::WRITE, data.len() + handle.len() + 20);
                w.u32(id).string(handle).u64(*offset).string(data);
                w.finish()
            }
            RequestKind::Lstat { path } => simple(t::LSTAT, path),
            RequestKind::Fstat { handle } => simple(t::FSTAT, handle),
            RequestKind::Setstat { path, attrs } => with_attrs(t::SETSTAT, id, path, attrs),
            RequestKind::Fsetstat { handle, attrs } => with_attrs(t::FSETSTAT, id, handle, attrs),
            RequestKind::Opendir { path } => simple(t::OPENDIR, path),
            RequestKind::Readdir { handle } => simple(t::READDIR, handle),
            RequestKind::Remove { path } => simple(t::REMOVE, path),
            RequestKind::Mkdir { path, attrs } => with_attrs(t::MKDIR, id, path, attrs),
            RequestKind::Rmdir { path } => simple(t::RMDIR, path),
            RequestKind::Realpath { path } => simple(t::REALPATH, path),
            RequestKind::Stat { path } => simple(t::STAT, path),
            RequestKind::Rename { from, to } => {
                let mut w = Writer::packet(t::RENAME);
                w.u32(id).string(from).string(to);
                w.finish()
            }
            RequestKind::Readlink { path } => simple(t::READLINK, path),
            RequestKind::Symlink { target, link } => {
                let mut w = Writer::packet(t::SYMLINK);
                w.u32(id).string(target).string(link);
                w.finish()
            }
            RequestKind::PosixRename { from, to } => extended(b"posix-rename@openssh.com", &[from, to]),
            RequestKind::Statvfs { path } => extended(b"statvfs@openssh.com", &[path]),
            RequestKind::Fstatvfs { handle } => extended(b"fstatvfs@openssh.com", &[handle]),
            RequestKind::Hardlink { from, to } => extended(b"hardlink@openssh.com", &[from, to]),
            RequestKind::Fsync { handle } => extended(b"fsync@openssh.com", &[handle]),
            RequestKind::Limits => extended(b"limits@openssh.com", &[]),
            RequestKind::UnknownExtension { name } => extended(name, &[]),
        }
    }
}

fn with_attrs(kind: u8, id: u32, field: &[u8], attrs: &Attrs) -> Vec<u8> {
    let mut w = Writer::packet(kind);
    w.u32(id).string(field);
    attrs.encode(&mut w);
    w.finish()
}

fn decode_extended<'a>(r: &mut Reader<'a>) -> Result<RequestKind<'a>, DecodeError> {
    let name = r.string()?;
    Ok(match name {
        b"posix-rename@openssh.com" => RequestKind::PosixRename { from: r.string()?, to: r.string()? },
        b"statvfs@openssh.com" => RequestKind::Statvfs { path: r.string()? },
        b"fstatvfs@openssh.com" => RequestKind::Fstatvfs { handle: r.string()? },
        b"hardlink@openssh.com" => RequestKind::Hardlink { from: r.string()?, to: r.string()? },
        b"fsync@openssh.com" => RequestKind::Fsync { handle: r.string()? },
        b"limits@openssh.com" => RequestKind::Limits,
        _ => {
            // Unknown extensions carry arbitrary data.
            while r.remaining() > 0 {
                r.u8()?;
            }
            RequestKind::UnknownExtension { name }
        }
    })
}
