//! The client's directions: every request a client encodes decodes back to
//! itself, every reply a server encodes decodes back to itself, and no
//! reply bytes, however damaged, panic the client's decoder.

use coffer_sftp_proto::{
    Attrs, Limits, NameEntry, OpenFlags, Reply, Request, RequestKind, ServerVersion, StatVfs, StatusCode, split_packet,
};
use proptest::prelude::*;

fn attrs() -> impl Strategy<Value = Attrs> {
    (
        proptest::option::of(any::<u64>()),
        proptest::option::of((any::<u32>(), any::<u32>())),
        proptest::option::of(any::<u32>()),
        proptest::option::of((any::<u32>(), any::<u32>())),
    )
        .prop_map(|(size, uid_gid, permissions, times)| Attrs { size, uid_gid, permissions, times })
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// Owned inputs for one request of every kind, borrowed by [`kinds`].
#[derive(Debug, Clone)]
struct Fields {
    a: Vec<u8>,
    b: Vec<u8>,
    attrs: Attrs,
    offset: u64,
    len: u32,
    flags: u32,
}

fn kinds(f: &Fields) -> Vec<RequestKind<'_>> {
    let (a, b) = (&f.a[..], &f.b[..]);
    vec![
        RequestKind::Open { path: a, flags: OpenFlags(f.flags), attrs: f.attrs.clone() },
        RequestKind::Close { handle: a },
        RequestKind::Read { handle: a, offset: f.offset, len: f.len },
        RequestKind::Write { handle: a, offset: f.offset, data: b },
        RequestKind::Lstat { path: a },
        RequestKind::Fstat { handle: a },
        RequestKind::Setstat { path: a, attrs: f.attrs.clone() },
        RequestKind::Fsetstat { handle: a, attrs: f.attrs.clone() },
        RequestKind::Opendir { path: a },
        RequestKind::Readdir { handle: a },
        RequestKind::Remove { path: a },
        RequestKind::Mkdir { path: a, attrs: f.attrs.clone() },
        RequestKind::Rmdir { path: a },
        RequestKind::Realpath { path: a },
        RequestKind::Stat { path: a },
        RequestKind::Rename { from: a, to: b },
        RequestKind::Readlink { path: a },
        RequestKind::Symlink { target: a, link: b },
        RequestKind::PosixRename { from: a, to: b },
        RequestKind::Statvfs { path: a },
        RequestKind::Fstatvfs { handle: a },
        RequestKind::Hardlink { from: a, to: b },
        RequestKind::Fsync { handle: a },
        RequestKind::Limits,
    ]
}

fn fields() -> impl Strategy<Value = Fields> {
    (bytes(300), bytes(300), attrs(), any::<u64>(), any::<u32>(), any::<u32>())
        .prop_map(|(a, b, attrs, offset, len, flags)| Fields { a, b, attrs, offset, len, flags })
}

fn status_code() -> impl Strategy<Value = StatusCode> {
    prop::sample::select(vec![
        StatusCode::Ok,
        StatusCode::Eof,
        StatusCode::NoSuchFile,
        StatusCode::PermissionDenied,
        StatusCode::Failure,
        StatusCode::BadMessage,
        StatusCode::OpUnsupported,
    ])
}

fn decode_packet(packet: &[u8]) -> Reply {
    let (body, used) = split_packet(packet, u32::MAX).expect("frame").expect("whole packet");
    assert_eq!(used, packet.len());
    Reply::decode(body).expect("decode")
}

proptest! {
    #[test]
    fn every_request_roundtrips(f in fields(), id in any::<u32>()) {
        for kind in kinds(&f) {
            let packet = Request { id, kind: kind.clone() }.encode();
            let (body, used) = split_packet(&packet, u32::MAX).unwrap().unwrap();
            prop_assert_eq!(used, packet.len());
            let back = Request::decode(body).unwrap();
            prop_assert_eq!(back, Request { id, kind });
        }
    }

    #[test]
    fn init_roundtrips(version in any::<u32>()) {
        let packet = Request { id: 0, kind: RequestKind::Init { version } }.encode();
        prop_assert_eq!(Request::decode(&packet[4..]).unwrap().kind, RequestKind::Init { version });
    }

    #[test]
    fn replies_roundtrip(
        id in any::<u32>(), code in status_code(), message in "\\PC{0,40}", blob in bytes(2000),
        names in proptest::collection::vec((bytes(40), bytes(60), attrs()), 0..20), a in attrs(),
    ) {
        let entries: Vec<NameEntry> = names.into_iter().map(|(filename, longname, attrs)| NameEntry { filename, longname, attrs }).collect();
        for reply in [
            Reply::Status { id, code, message: message.clone() },
            Reply::Handle { id, handle: blob.clone() },
            Reply::Data { id, data: blob.clone() },
            Reply::Name { id, entries: entries.clone() },
            Reply::Attrs { id, attrs: a.clone() },
            Reply::Extended { id, data: blob.clone() },
        ] {
            prop_assert_eq!(decode_packet(&reply.encode()), reply);
        }
    }

    #[test]
    fn extended_replies_decode_by_request(id in any::<u32>(), v in proptest::collection::vec(any::<u64>(), 11)) {
        let vfs = StatVfs { bsize: v[0], frsize: v[1], blocks: v[2], bfree: v[3], bavail: v[4], files: v[5], ffree: v[6], favail: v[7], fsid: v[8], flag: v[9], namemax: v[10] };
        let Reply::Extended { id: got, data } = decode_packet(&Reply::StatVfs { id, vfs }.encode()) else { panic!("not extended") };
        prop_assert_eq!(got, id);
        prop_assert_eq!(StatVfs::decode(&data).unwrap(), vfs);
        let limits = Limits { max_packet: v[0], max_read: v[1], max_write: v[2], max_open_handles: v[3] };
        let Reply::Extended { data, .. } = decode_packet(&Reply::Limits { id, limits }.encode()) else { panic!("not extended") };
        prop_assert_eq!(Limits::decode(&data).unwrap(), limits);
    }

    #[test]
    fn arbitrary_reply_bytes_never_panic(raw in bytes(600)) {
        let _ = Reply::decode(&raw);
        let _ = ServerVersion::decode(&raw);
        let _ = StatVfs::decode(&raw);
        let _ = Limits::decode(&raw);
    }

    #[test]
    fn truncated_replies_are_errors(cut in 1usize..30, names in proptest::collection::vec((bytes(10), bytes(10), attrs()), 1..4)) {
        let entries = names.into_iter().map(|(filename, longname, attrs)| NameEntry { filename, longname, attrs }).collect();
        let packet = Reply::Name { id: 1, entries }.encode();
        let body = &packet[4..];
        let cut = cut.min(body.len() - 1);
        prop_assert!(Reply::decode(&body[..body.len() - cut]).is_err());
    }
}

#[test]
fn the_servers_version_packet_decodes_with_its_extensions() {
    let packet = Reply::Version.encode();
    let v = ServerVersion::decode(&packet[4..]).unwrap();
    assert_eq!(v.version, coffer_sftp_proto::VERSION);
    assert!(v.has("posix-rename@openssh.com") && v.has("limits@openssh.com") && !v.has("copy-data"));
    assert_eq!(decode_packet(&packet), Reply::Version);
}

#[test]
fn a_huge_name_count_does_not_allocate() {
    // NAME with a count of 4 billion and no entries: an error, at once.
    let body = [104, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff];
    assert!(Reply::decode(&body).is_err());
}

#[test]
fn unknown_status_codes_read_as_failure_and_keep_the_message() {
    let body = [101, 0, 0, 0, 7, 0, 0, 0, 9, 0, 0, 0, 2, b'n', b'o'];
    assert_eq!(Reply::decode(&body).unwrap(), Reply::Status { id: 7, code: StatusCode::Failure, message: "no".into() });
}
