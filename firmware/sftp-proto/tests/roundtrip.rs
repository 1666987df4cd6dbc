//! Property tests: arbitrary bytes never panic the decoder, and every
//! well-formed request decodes to exactly what was encoded.

use coffer_sftp_proto::{Attrs, DecodeError, Reply, Request, RequestKind, StatusCode, Writer, packet_type as t, split_packet};
use proptest::prelude::*;

fn attrs_strategy() -> impl Strategy<Value = Attrs> {
    (
        proptest::option::of(any::<u64>()),
        proptest::option::of((any::<u32>(), any::<u32>())),
        proptest::option::of(any::<u32>()),
        proptest::option::of((any::<u32>(), any::<u32>())),
    )
        .prop_map(|(size, uid_gid, permissions, times)| Attrs { size, uid_gid, permissions, times })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Request::decode(&bytes);
        let _ = split_packet(&bytes, 1 << 20);
    }

    #[test]
    fn open_roundtrips(path in proptest::collection::vec(any::<u8>(), 0..300), flags in any::<u32>(), attrs in attrs_strategy(), id in any::<u32>()) {
        let mut w = Writer::packet(t::OPEN);
        w.u32(id).string(&path).u32(flags);
        attrs.encode(&mut w);
        let packet = w.finish();
        let (body, used) = split_packet(&packet, 1 << 20).unwrap().unwrap();
        prop_assert_eq!(used, packet.len());
        let req = Request::decode(body).unwrap();
        prop_assert_eq!(req.id, id);
        match req.kind {
            RequestKind::Open { path: p, flags: f, attrs: a } => {
                prop_assert_eq!(p, &path[..]);
                prop_assert_eq!(f.0, flags);
                prop_assert_eq!(a, attrs);
            }
            other => prop_assert!(false, "decoded as {:?}", other),
        }
    }

    #[test]
    fn write_roundtrips(data in proptest::collection::vec(any::<u8>(), 0..4096), offset in any::<u64>(), id in any::<u32>()) {
        let mut w = Writer::packet(t::WRITE);
        w.u32(id).string(b"h1").u64(offset).string(&data);
        let packet = w.finish();
        let (body, _) = split_packet(&packet, 1 << 20).unwrap().unwrap();
        let req = Request::decode(body).unwrap();
        prop_assert_eq!(req.kind, RequestKind::Write { handle: b"h1", offset, data: &data });
    }

    #[test]
    fn truncation_is_an_error_not_a_panic(cut in 0usize..40) {
        let mut w = Writer::packet(t::RENAME);
        w.u32(7).string(b"from-name").string(b"to-name");
        let packet = w.finish();
        let body = &packet[4..];
        let cut = cut.min(body.len());
        let res = Request::decode(&body[..body.len() - cut]);
        if cut == 0 { prop_assert!(res.is_ok()); } else { prop_assert!(res.is_err()); }
    }
}

#[test]
fn oversized_packets_are_refused() {
    let mut packet = vec![0xff, 0xff, 0xff, 0xff];
    packet.extend_from_slice(&[0; 16]);
    assert!(matches!(split_packet(&packet, 1024), Err(DecodeError::TooLarge { .. })));
}

#[test]
fn extended_requests_decode() {
    let mut w = Writer::packet(t::EXTENDED);
    w.u32(3).string(b"posix-rename@openssh.com").string(b"a").string(b"b");
    let p = w.finish();
    let req = Request::decode(&p[4..]).unwrap();
    assert_eq!(req.kind, RequestKind::PosixRename { from: b"a", to: b"b" });

    let mut w = Writer::packet(t::EXTENDED);
    w.u32(4).string(b"users-groups-by-id@openssh.com").string(b"\0\0\0\0").string(b"");
    let p = w.finish();
    let req = Request::decode(&p[4..]).unwrap();
    assert_eq!(req.kind, RequestKind::UnknownExtension { name: b"users-groups-by-id@openssh.com" });
}

#[test]
fn status_reply_layout() {
    let bytes = Reply::status(9, StatusCode::NoSuchFile, "No such file").encode();
    assert_eq!(&bytes[4..10], &[101, 0, 0, 0, 9, 0]);
    assert_eq!(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize, bytes.len() - 4);
}
