//! SFTP version 3 (draft-ietf-secsh-filexfer-02) plus the OpenSSH extensions
//! that backup clients use, as pure data, in both directions: the server
//! decodes [`Request`]s and encodes [`Reply`]s, the client (`coffer-remote`)
//! encodes requests and decodes replies. Nothing here touches a file or a socket, so
//! every byte a client can send is covered by property tests and a fuzzer.

mod attrs;
mod codec;
mod request;
mod reply;

pub use attrs::{Attrs, FileKind};
pub use codec::{DecodeError, Reader, Writer, split_packet};
pub use reply::{Limits, NameEntry, Reply, ServerVersion, StatVfs, encode_data};
pub use request::{OpenFlags, Request, RequestKind};

/// The protocol version Coffer speaks (and the highest any client needs).
pub const VERSION: u32 = 3;

/// The largest packet accepted from a client. OpenSSH clients size their
/// requests from `limits@openssh.com`, which advertises a bit less than this.
pub const MAX_PACKET: u32 = 256 * 1024 + 1024;

/// The largest READ or WRITE payload advertised through `limits@openssh.com`
/// (OpenSSH's sftp-server uses the same 255 KiB).
pub const MAX_IO: u32 = 255 * 1024;

/// Extension pairs announced in the VERSION packet.
pub const EXTENSIONS: &[(&str, &str)] = &[
    ("posix-rename@openssh.com", "1"),
    ("statvfs@openssh.com", "2"),
    ("fstatvfs@openssh.com", "2"),
    ("hardlink@openssh.com", "1"),
    ("fsync@openssh.com", "1"),
    ("limits@openssh.com", "1"),
];

/// Status codes of SSH_FXP_STATUS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum StatusCode {
    Ok = 0,
    Eof = 1,
    NoSuchFile = 2,
    PermissionDenied = 3,
    Failure = 4,
    BadMessage = 5,
    OpUnsupported = 8,
}

/// Packet type numbers.
pub mod packet_type {
    pub const INIT: u8 = 1;
    pub const VERSION: u8 = 2;
    pub const OPEN: u8 = 3;
    pub const CLOSE: u8 = 4;
    pub const READ: u8 = 5;
    pub const WRITE: u8 = 6;
    pub const LSTAT: u8 = 7;
    pub const FSTAT: u8 = 8;
    pub const SETSTAT: u8 = 9;
    pub const FSETSTAT: u8 = 10;
    pub const OPENDIR: u8 = 11;
    pub const READDIR: u8 = 12;
    pub const REMOVE: u8 = 13;
    pub const MKDIR: u8 = 14;
    pub const RMDIR: u8 = 15;
    pub const REALPATH: u8 = 16;
    pub const STAT: u8 = 17;
    pub const RENAME: u8 = 18;
    pub const READLINK: u8 = 19;
    pub const SYMLINK: u8 = 20;
    pub const STATUS: u8 = 101;
    pub const HANDLE: u8 = 102;
    pub const DATA: u8 = 103;
    pub const NAME: u8 = 104;
    pub const ATTRS: u8 = 105;
    pub const EXTENDED: u8 = 200;
    pub const EXTENDED_REPLY: u8 = 201;
}
