//! Property tests: whatever entries (names as arbitrary bytes, sizes around
//! the 512-byte block and 64 KiB piece boundaries, every file type, large
//! ids and times) and manifests go in come back out of the readers
//! unchanged, and volume ranges say where each volume starts and ends.

#![allow(clippy::unwrap_used, reason = "test code: a failed read back fails the property")]

use std::io::Read;

use coffer_archive::{
    Change, Entry, FileChange, FileType, Footer, Index, Kind, Manifest, Meta, PIECE_SIZE, Position, SigTarWriter,
    TarReader, VolumeInfo, VolumeRange, VolumeWriter, quote, unquote,
};
use proptest::prelude::*;

fn component() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>().prop_filter("no / or NUL", |b| *b != b'/' && *b != 0), 1..12)
        .prop_filter("not . or ..", |c| c != b"." && c != b"..")
}

fn index() -> impl Strategy<Value = Index> {
    prop_oneof![
        prop::collection::vec(component(), 1..4),
        // Long names, past ustar's 100-byte field.
        (component(), 90usize..140).prop_map(|(c, n)| vec![c.iter().copied().cycle().take(n).collect()]),
    ]
    .prop_map(Index::from_components)
}

fn bytes_no_nul(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>().prop_filter("no NUL", |b| *b != 0), 0..max)
}

fn file_type() -> impl Strategy<Value = FileType> {
    prop_oneof![
        4 => Just(FileType::Regular),
        1 => Just(FileType::Directory),
        1 => bytes_no_nul(120).prop_map(FileType::Symlink),
        1 => Just(FileType::Fifo),
        1 => (0u32..1 << 21, 0u32..1 << 21).prop_map(|(major, minor)| FileType::CharDevice { major, minor }),
        1 => (0u32..1 << 21, 0u32..1 << 21).prop_map(|(major, minor)| FileType::BlockDevice { major, minor }),
    ]
}

fn meta() -> impl Strategy<Value = Meta> {
    (
        file_type(),
        0u32..0o10000,
        prop_oneof![0u64..70_000, any::<u32>().prop_map(u64::from)],
        prop_oneof![0u64..70_000, any::<u64>()],
        bytes_no_nul(40),
        prop_oneof![0u64..1 << 33, any::<u64>()],
        prop::collection::vec(
            (prop::collection::vec(b'a'..=b'z', 1..8), prop::collection::vec(any::<u8>(), 0..20)),
            0..2,
        ),
    )
        .prop_map(|(file_type, mode, uid, gid, uname, mtime, extra)| Meta {
            file_type,
            mode,
            uid,
            gid,
            gname: uname.iter().rev().copied().collect(),
            uname,
            mtime,
            extra_pax: extra
                .into_iter()
                .enumerate()
                .map(|(n, (mut k, v))| {
                    k.splice(0..0, format!("X{n}.").into_bytes());
                    (k, v)
                })
                .collect(),
        })
}

/// Sizes where things change: blocks, pieces.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..3,
        510usize..515,
        1020usize..1030,
        (PIECE_SIZE - 2)..(PIECE_SIZE + 2),
        (2 * PIECE_SIZE - 1)..(2 * PIECE_SIZE + 1),
        0usize..200_000,
    ]
}

fn entries() -> impl Strategy<Value = Vec<(Entry, Vec<u8>)>> {
    prop::collection::vec(
        (
            prop_oneof![Just(Kind::Snapshot), Just(Kind::Diff), Just(Kind::Deleted)],
            index(),
            meta(),
            size(),
            any::<u8>(),
        ),
        0..12,
    )
    .prop_map(|mut list| {
        list.sort_by(|a, b| a.1.cmp(&b.1));
        list.dedup_by(|a, b| a.1 == b.1);
        list.into_iter()
            .map(|(kind, index, meta, size, fill)| {
                let meta = if kind == Kind::Deleted { Meta::deleted() } else { meta };
                let data = if kind != Kind::Deleted && meta.file_type == FileType::Regular {
                    (0..size).map(|i| fill.wrapping_add(i as u8)).collect()
                } else {
                    Vec::new()
                };
                (Entry { kind, index, meta }, data)
            })
            .collect()
    })
}

/// Reads volumes back, joining multivolume pieces; also the position of
/// each volume's first and last block as the manifest would record it.
type Bounds = (Option<Position>, Option<Position>);

fn read_back(volumes: &[(Vec<u8>, VolumeRange)]) -> (Vec<(Entry, Vec<u8>)>, Vec<Bounds>) {
    let mut out: Vec<(Entry, Vec<u8>)> = Vec::new();
    let mut bounds = Vec::new();
    let mut open_piece: Option<Index> = None;
    for (tar, _) in volumes {
        let mut reader = TarReader::new(tar.as_slice());
        let (mut first, mut last) = (None, None);
        while let Some(header) = reader.next_header().unwrap() {
            let mut data = Vec::new();
            reader.data().read_to_end(&mut data).unwrap();
            let name = header.entry_name().unwrap();
            // A piece shorter than 64 KiB is the file's last.
            let piece = name.piece.filter(|_| data.len() == PIECE_SIZE);
            let position = Position { index: name.index.clone(), piece };
            first.get_or_insert(position.clone());
            last = Some(position);
            if name.piece.is_some() && open_piece.as_ref() == Some(&name.index) {
                out.last_mut().unwrap().1.extend_from_slice(&data);
                continue;
            }
            open_piece = name.piece.map(|_| name.index.clone());
            out.push((Entry { kind: name.kind, index: name.index, meta: header.meta }, data));
        }
        bounds.push((first, last));
    }
    (out, bounds)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn volumes_round_trip(list in entries(), volsize in prop_oneof![Just(1u64 << 20), 140_000u64..400_000], record in any::<bool>()) {
        let footer = if record { Footer::Record } else { Footer::None };
        let mut writer = VolumeWriter::new(Vec::new(), volsize, footer);
        for (entry, data) in &list {
            writer.push(entry, &mut data.as_slice()).unwrap();
        }
        let volumes = writer.finish().unwrap();
        prop_assert!(!volumes.is_empty());
        let (back, bounds) = read_back(&volumes);
        prop_assert_eq!(&back, &list);
        let mut previous_end: Option<Position> = None;
        for (n, ((tar, range), (first, last))) in volumes.iter().zip(&bounds).enumerate() {
            prop_assert_eq!(range.number as usize, n + 1);
            prop_assert_eq!(tar.len() % 512, 0);
            if record {
                prop_assert_eq!(tar.len() as u64 % coffer_archive::RECORD_SIZE, 0);
            }
            // Every volume but the last stops once less than a piece is left.
            if n + 1 < volumes.len() {
                prop_assert!(tar.len() as u64 + PIECE_SIZE as u64 > volsize);
            }
            match (first, last) {
                (Some(first), Some(last)) => {
                    prop_assert_eq!(&range.start, first);
                    prop_assert_eq!(&range.end, last);
                }
                _ => {
                    // An empty volume: duplicity's root start, previous end.
                    prop_assert_eq!(&range.start, &Position { index: Index::root(), piece: None });
                    prop_assert_eq!(&range.end, previous_end.as_ref().unwrap_or(&range.start));
                }
            }
            previous_end = Some(range.end.clone());
        }
    }

    #[test]
    fn sigtars_round_trip(list in entries()) {
        let mut writer = SigTarWriter::new(Vec::new());
        let mut expected = Vec::new();
        for (entry, data) in list {
            let kind = match entry.kind {
                Kind::Deleted => Kind::Deleted,
                _ if entry.meta.file_type == FileType::Regular => Kind::Signature,
                _ => Kind::Snapshot,
            };
            let entry = Entry { kind, ..entry };
            writer.append(&entry, data.len() as u64, &mut data.as_slice()).unwrap();
            expected.push((entry, data));
        }
        let tar = writer.finish().unwrap();
        prop_assert_eq!(tar.len() as u64 % coffer_archive::RECORD_SIZE, 0);
        let mut reader = TarReader::new(tar.as_slice());
        let mut back = Vec::new();
        while let Some(header) = reader.next_header().unwrap() {
            let mut data = Vec::new();
            reader.data().read_to_end(&mut data).unwrap();
            let name = header.entry_name().unwrap();
            prop_assert_eq!(name.piece, None);
            back.push((Entry { kind: name.kind, index: name.index, meta: header.meta }, data));
        }
        prop_assert_eq!(back, expected);
    }

    #[test]
    fn quoting_round_trips(path in prop::collection::vec(any::<u8>(), 1..40)) {
        let quoted = quote(&path);
        prop_assert!(!quoted.iter().any(|b| b.is_ascii_whitespace() || *b == 0x0b));
        prop_assert_eq!(unquote(&quoted), Some(path));
    }

    #[test]
    fn manifests_round_trip(
        host in prop::collection::vec(b'a'..=b'z', 1..10),
        dir in prop::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 1..20),
        vols in prop::collection::vec((index(), prop::option::of(1u64..100), index(), prop::option::of(1u64..100), "[0-9a-f]{40}"), 1..5),
        files in prop::collection::vec((0u8..3, prop::collection::vec(any::<u8>(), 1..30)), 0..6),
    ) {
        let manifest = Manifest {
            hostname: Some(host),
            localdir: Some(dir),
            volumes: vols
                .into_iter()
                .enumerate()
                .map(|(n, (s, sp, e, ep, hash))| VolumeInfo::new(
                    VolumeRange {
                        number: n as u32 + 1,
                        start: Position { index: s, piece: sp },
                        end: Position { index: e, piece: ep },
                    },
                    &hash,
                ))
                .collect(),
            files_changed: Some(
                files
                    .into_iter()
                    .map(|(c, path)| FileChange { change: [Change::New, Change::Changed, Change::Deleted][c as usize], path })
                    .collect(),
            ),
        };
        let text = manifest.to_bytes();
        prop_assert_eq!(Manifest::parse(&text).unwrap(), manifest);
    }

    #[test]
    fn hostile_tar_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..3000), patch in any::<bool>()) {
        let mut bytes = bytes;
        if patch && bytes.len() >= 512 {
            // Make the first block's checksum right so parsing goes further.
            bytes[148..156].copy_from_slice(b"        ");
            let sum: u64 = bytes[..512].iter().map(|b| u64::from(*b)).sum();
            bytes[148..155].copy_from_slice(format!("{:06o}\0", sum % 0o1000000).as_bytes());
        }
        let mut reader = TarReader::new(bytes.as_slice());
        while let Ok(Some(header)) = reader.next_header() {
            let _ = header.entry_name();
            let mut sink = Vec::new();
            if reader.data().read_to_end(&mut sink).is_err() {
                break;
            }
        }
        let _ = Manifest::parse(&bytes);
    }
}
