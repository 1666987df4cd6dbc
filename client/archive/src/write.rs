//! Writers: [`VolumeWriter`] turns entries, in duplicity's walk order, into
//! difftar volumes cut where duplicity cuts them, and [`SigTarWriter`]
//! writes a signature tar. Both produce Python tarfile's bytes (see
//! `header`), read entry data in 64 KiB pieces and hold at most one piece.
//!
//! Volume cutting follows duplicity's `write_multivol`: the tar stream is a
//! sequence of blocks (a whole entry, or one 64 KiB piece of a larger one,
//! named `multivol_snapshot/PATH/N`); before each block duplicity looks at
//! how many bytes the volume occupies on its way out (after compression or
//! encryption) and starts a new volume when less than 64 KiB of the volume
//! size is left. A volume therefore ends right after the block that crossed
//! that line, and if that was the last block duplicity still writes one more,
//! empty, volume.

use std::io::{self, Read, Write};

use crate::entry::{Entry, EntryName, FileType, Flavor, Index, Kind};
use crate::error::WriteError;
use crate::header::{self, RECORD_SIZE};

/// Size of a multivolume piece, and of duplicity's reads.
pub const PIECE_SIZE: usize = 64 * 1024;

/// A place in the entry stream as the manifest records it: a path and, when
/// the volume starts or ends inside a multivolume file, the piece number.
/// duplicity records no number for a file's last piece.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub index: Index,
    pub piece: Option<u64>,
}

/// Which entries one volume holds, for its manifest `Volume N:` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeRange {
    pub number: u32,
    pub start: Position,
    pub end: Position,
}

/// What ends a volume's tar stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Footer {
    /// Nothing: duplicity 0.8 writes gzip and plain volumes without an
    /// end-of-archive marker.
    None,
    /// Zeros to the next 10240-byte record (a whole record when already
    /// aligned), as duplicity writes encrypted volumes.
    Record,
}

/// Where volumes go. The writer opens one sink per volume, asks after each
/// block how many bytes the volume occupies so far at its destination, and
/// hands the sink back with the volume's range when the volume is done.
pub trait Volumes {
    type Sink: Write;
    /// Starts volume `number` (1, 2, …).
    fn open(&mut self, number: u32) -> io::Result<Self::Sink>;
    /// Bytes of the volume written so far after compression or encryption:
    /// what duplicity compares with the volume size.
    fn output_len(&self, sink: &Self::Sink) -> u64;
    /// The volume's tar stream is complete; flush, finish and store it.
    fn close(&mut self, sink: Self::Sink, range: VolumeRange) -> io::Result<()>;
}

/// Reads until `buf` is full or the input ends; the count read.
pub fn read_full(data: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match data.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn shown(index: &Index) -> String {
    format!("{index:?}")
}

/// Splits entries into difftar volumes.
pub struct VolumeWriter<V: Volumes> {
    volumes: V,
    volsize: u64,
    footer: Footer,
    open: Option<V::Sink>,
    number: u32,
    /// Tar bytes in the open volume, for the footer.
    tar_len: u64,
    first_in_volume: Option<Position>,
    last_block: Option<Position>,
    previous: Option<Index>,
    piece: Vec<u8>,
    block: Vec<u8>,
}

impl<V: Volumes> VolumeWriter<V> {
    /// A writer cutting volumes at `volsize` bytes (duplicity's `--volsize`
    /// in MiB times 1 MiB).
    pub fn new(volumes: V, volsize: u64, footer: Footer) -> Self {
        Self {
            volumes,
            volsize,
            footer,
            open: None,
            number: 0,
            tar_len: 0,
            first_in_volume: None,
            last_block: None,
            previous: None,
            piece: vec![0; PIECE_SIZE],
            block: Vec::with_capacity(PIECE_SIZE + 2048),
        }
    }

    /// Number of volumes started so far.
    pub fn volumes_started(&self) -> u32 {
        self.number
    }

    /// Adds one entry. `Snapshot` and `Diff` entries of regular files take
    /// their content (whole file or librsync delta) from `data`, read to its
    /// end in 64 KiB pieces; every other entry is a header alone and
    /// `data` is not read. Entries must come in strictly increasing
    /// [`Index`] order.
    pub fn push(&mut self, entry: &Entry, data: &mut dyn Read) -> Result<(), WriteError> {
        if entry.kind == Kind::Signature {
            return Err(WriteError::WrongKind { kind: entry.kind.name(), place: "a volume" });
        }
        if let Some(previous) = &self.previous
            && *previous >= entry.index
        {
            return Err(WriteError::OutOfOrder { name: shown(&entry.index), previous: shown(previous) });
        }
        self.previous = Some(entry.index.clone());
        let name = EntryName { kind: entry.kind, index: entry.index.clone(), piece: None };
        let with_data = entry.kind != Kind::Deleted && entry.meta.file_type == FileType::Regular;
        if !with_data {
            let tar_name = name.tar_name(entry.meta.is_dir(), Flavor::Volume)?;
            self.block.clear();
            header::encode(&tar_name, &entry.meta, 0, &mut self.block)?;
            return self.emit(Position { index: entry.index.clone(), piece: None });
        }
        let mut piece_number = 0u64;
        loop {
            let len = read_full(data, &mut self.piece)
                .map_err(|source| WriteError::Source { name: shown(&entry.index), source })?;
            let last = len < PIECE_SIZE;
            let piece = if piece_number == 0 && last {
                None
            } else {
                piece_number += 1;
                Some(piece_number)
            };
            let tar_name = EntryName { piece, ..name.clone() }.tar_name(false, Flavor::Volume)?;
            self.block.clear();
            header::encode(&tar_name, &entry.meta, len as u64, &mut self.block)?;
            self.block.extend_from_slice(&self.piece[..len]);
            header::pad_to_block(&mut self.block);
            let position = Position { index: entry.index.clone(), piece: if last { None } else { piece } };
            self.emit(position)?;
            if last {
                return Ok(());
            }
        }
    }

    fn io_error(&self, source: io::Error) -> WriteError {
        WriteError::Io { name: format!("volume {}", self.number), source }
    }

    fn open_next(&mut self) -> Result<(), WriteError> {
        self.number += 1;
        let sink = self.volumes.open(self.number).map_err(|e| self.io_error(e))?;
        let used = self.volumes.output_len(&sink);
        if self.volsize.saturating_sub(used) < PIECE_SIZE as u64 {
            return Err(WriteError::VolumeTooSmall { volsize: self.volsize, used });
        }
        self.open = Some(sink);
        self.tar_len = 0;
        self.first_in_volume = None;
        Ok(())
    }

    /// Writes the block in `self.block`, then closes the volume if less
    /// than a piece's room is left.
    fn emit(&mut self, position: Position) -> Result<(), WriteError> {
        if self.open.is_none() {
            self.open_next()?;
        }
        let Some(sink) = self.open.as_mut() else {
            return Err(self.io_error(io::Error::other("no open volume")));
        };
        if let Err(e) = sink.write_all(&self.block) {
            return Err(self.io_error(e));
        }
        self.tar_len += self.block.len() as u64;
        if self.first_in_volume.is_none() {
            self.first_in_volume = Some(position.clone());
        }
        self.last_block = Some(position);
        let used = self.open.as_ref().map_or(0, |sink| self.volumes.output_len(sink));
        if self.volsize.saturating_sub(used) < PIECE_SIZE as u64 {
            self.close()?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), WriteError> {
        let Some(mut sink) = self.open.take() else {
            return Ok(());
        };
        if self.footer == Footer::Record {
            let zeros = RECORD_SIZE - self.tar_len % RECORD_SIZE;
            let footer = vec![0u8; zeros as usize];
            if let Err(e) = sink.write_all(&footer) {
                return Err(self.io_error(e));
            }
        }
        // duplicity: a volume without blocks starts at the root and ends
        // where the previous volume ended.
        let start = self.first_in_volume.take().unwrap_or(Position { index: Index::root(), piece: None });
        let end = self.last_block.clone().unwrap_or_else(|| start.clone());
        let range = VolumeRange { number: self.number, start, end };
        self.volumes.close(sink, range).map_err(|e| self.io_error(e))
    }

    /// Ends the last volume (starting an empty one first when the last
    /// block filled the previous volume, as duplicity does) and returns the
    /// destination.
    pub fn finish(mut self) -> Result<V, WriteError> {
        if self.open.is_none() {
            self.open_next()?;
        }
        self.close()?;
        Ok(self.volumes)
    }
}

/// Writes a signature tar (`duplicity-full-signatures…sigtar`,
/// `duplicity-new-signatures…sigtar`) the way duplicity's `TarFile` does:
/// `signature/` entries with librsync signatures, `snapshot/` entries for
/// everything but regular files, `deleted/` entries, then two zero blocks
/// and zeros to the next 10240-byte record.
pub struct SigTarWriter<W> {
    out: W,
    len: u64,
    previous: Option<Index>,
    block: Vec<u8>,
    buf: Vec<u8>,
}

impl<W: Write> SigTarWriter<W> {
    pub fn new(out: W) -> Self {
        Self { out, len: 0, previous: None, block: Vec::with_capacity(2048), buf: vec![0; PIECE_SIZE] }
    }

    fn write(&mut self, bytes: &[u8], index: &Index) -> Result<(), WriteError> {
        self.out.write_all(bytes).map_err(|source| WriteError::Io { name: shown(index), source })?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Adds one entry whose data (the signature, for `Signature` entries;
    /// nothing otherwise) is exactly `size` bytes read from `data`. Entries
    /// come in strictly increasing index order.
    pub fn append(&mut self, entry: &Entry, size: u64, data: &mut dyn Read) -> Result<(), WriteError> {
        if let Some(previous) = &self.previous
            && *previous >= entry.index
        {
            return Err(WriteError::OutOfOrder { name: shown(&entry.index), previous: shown(previous) });
        }
        self.previous = Some(entry.index.clone());
        let name = EntryName { kind: entry.kind, index: entry.index.clone(), piece: None };
        let tar_name = name.tar_name(entry.meta.is_dir(), Flavor::SigTar)?;
        self.block.clear();
        header::encode(&tar_name, &entry.meta, size, &mut self.block)?;
        let head = std::mem::take(&mut self.block);
        let written = self.write(&head, &entry.index);
        self.block = head;
        written?;
        let mut buf = std::mem::take(&mut self.buf);
        let copied = self.copy_data(entry, size, data, &mut buf);
        self.buf = buf;
        copied?;
        let pad = [0u8; 512];
        self.write(&pad[..header::padding(size) as usize], &entry.index)
    }

    /// Copies exactly `size` bytes of `data` out, through `buf`.
    fn copy_data(&mut self, entry: &Entry, size: u64, data: &mut dyn Read, buf: &mut [u8]) -> Result<(), WriteError> {
        let mut left = size;
        while left > 0 {
            let want = left.min(PIECE_SIZE as u64) as usize;
            let got = read_full(data, &mut buf[..want])
                .map_err(|source| WriteError::Source { name: shown(&entry.index), source })?;
            if got == 0 {
                return Err(WriteError::SizeMismatch { name: shown(&entry.index), want: size, got: size - left });
            }
            self.write(&buf[..got], &entry.index)?;
            left -= got as u64;
        }
        let extra = read_full(data, &mut buf[..1])
            .map_err(|source| WriteError::Source { name: shown(&entry.index), source })?;
        if extra != 0 {
            return Err(WriteError::SizeMismatch { name: shown(&entry.index), want: size, got: size + 1 });
        }
        Ok(())
    }

    /// Python's `TarFile.close()`: two zero blocks, then zeros to the next
    /// record boundary.
    pub fn finish(mut self) -> Result<W, WriteError> {
        let root = Index::root();
        self.write(&[0u8; 1024], &root)?;
        let rest = self.len % RECORD_SIZE;
        if rest != 0 {
            let pad = vec![0u8; (RECORD_SIZE - rest) as usize];
            self.write(&pad, &root)?;
        }
        self.out.flush().map_err(|source| WriteError::Io { name: "the sigtar's end".into(), source })?;
        Ok(self.out)
    }
}

/// A plain sink for tests and uncompressed volumes: bytes in memory.
impl Volumes for Vec<(Vec<u8>, VolumeRange)> {
    type Sink = Vec<u8>;

    fn open(&mut self, _number: u32) -> io::Result<Vec<u8>> {
        Ok(Vec::new())
    }

    fn output_len(&self, sink: &Vec<u8>) -> u64 {
        sink.len() as u64
    }

    fn close(&mut self, sink: Vec<u8>, range: VolumeRange) -> io::Result<()> {
        self.push((sink, range));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Meta;

    fn file(path: &[u8]) -> Entry {
        Entry { kind: Kind::Snapshot, index: Index::from_bytes(path), meta: Meta { mode: 0o644, ..Meta::deleted() } }
    }

    fn at(path: &[u8], piece: Option<u64>) -> Position {
        Position { index: Index::from_bytes(path), piece }
    }

    #[test]
    fn a_full_last_volume_is_followed_by_an_empty_one_as_in_duplicity() {
        // Each full piece takes 66048 bytes: 15 of them leave less than
        // 64 KiB of a 1 MiB volume. Pieces 31–44 and a last piece of 65000
        // bytes fill volume 3 the same way, so an empty volume 4 follows.
        let data = vec![1u8; 44 * PIECE_SIZE + 65000];
        let mut writer = VolumeWriter::new(Vec::new(), 1 << 20, Footer::None);
        writer.push(&file(b"big"), &mut data.as_slice()).unwrap();
        let volumes = writer.finish().unwrap();
        let ranges: Vec<(Position, Position)> = volumes.iter().map(|(_, r)| (r.start.clone(), r.end.clone())).collect();
        assert_eq!(ranges[0], (at(b"big", Some(1)), at(b"big", Some(15))));
        assert_eq!(ranges[1], (at(b"big", Some(16)), at(b"big", Some(30))));
        assert_eq!(ranges[2], (at(b"big", Some(31)), at(b"big", None)));
        assert_eq!(ranges[3], (at(b"", None), at(b"big", None)), "root to the previous end");
        assert_eq!(ranges.len(), 4);
        assert!(volumes[3].0.is_empty(), "the trailing volume holds no blocks");
    }

    #[test]
    fn entries_out_of_order_and_wrong_kinds_are_refused() {
        let mut writer = VolumeWriter::new(Vec::new(), 1 << 20, Footer::None);
        writer.push(&file(b"b"), &mut io::empty()).unwrap();
        assert!(matches!(writer.push(&file(b"a"), &mut io::empty()), Err(WriteError::OutOfOrder { .. })));
        assert!(matches!(writer.push(&file(b"b"), &mut io::empty()), Err(WriteError::OutOfOrder { .. })));
        let signature = Entry { kind: Kind::Signature, ..file(b"c") };
        assert!(matches!(writer.push(&signature, &mut io::empty()), Err(WriteError::WrongKind { .. })));

        let mut sigtar = SigTarWriter::new(Vec::new());
        let entry = Entry { kind: Kind::Signature, ..file(b"s") };
        assert!(matches!(sigtar.append(&entry, 10, &mut &[0u8; 5][..]), Err(WriteError::SizeMismatch { .. })));
        let entry = Entry { kind: Kind::Signature, ..file(b"t") };
        assert!(matches!(sigtar.append(&entry, 1, &mut &[0u8; 5][..]), Err(WriteError::SizeMismatch { .. })));
    }

    #[test]
    fn a_volume_size_without_room_for_a_piece_is_refused() {
        let mut writer = VolumeWriter::new(Vec::new(), 60_000, Footer::None);
        assert!(matches!(writer.push(&file(b"a"), &mut io::empty()), Err(WriteError::VolumeTooSmall { .. })));
    }
}
