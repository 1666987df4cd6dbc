//! One set's entries as one stream across its volumes, the way duplicity's
//! `TarFile_FromFileobjs` and `Multivol_Filelike` read them: volumes one
//! after another, and a file cut into `multivol_*/PATH/N` pieces read as
//! one entry whose data runs on through the pieces, across volume ends.
//!
//! A volume that cannot be opened or turns out damaged is recorded (with
//! the manifest's range of paths it held) and the stream goes on with the
//! next volume, so every entry outside it is still read. A file whose
//! pieces ran into a lost volume is reported incomplete, never handed out
//! short: a piece numbered other than 1 at the start of an entry, a piece
//! out of order, or a lost volume whose range starts inside the file.

use std::collections::VecDeque;
use std::io::{self, Read};

use coffer_archive::{EntryName, Index, Kind, Meta, Position, ReadError, TarReader, VolumeInfo};

use crate::chain::VolumeSource;
use crate::error::{EntryError, VolumeError};

/// A volume that could not be read, whole or from some offset on.
#[derive(Debug)]
pub struct VolumeProblem {
    /// 0 for the full, then the incrementals in order.
    pub set: usize,
    pub volume: u32,
    /// The caller's name for it ([`VolumeSource::name`]).
    pub name: String,
    /// The manifest's range of the volume: what may be missing.
    pub start: Position,
    pub end: Position,
    pub error: VolumeError,
}

/// An entry that could not be read or restored, by path (for a tar name
/// that is not a duplicity entry, the raw name).
#[derive(Debug)]
pub struct PathProblem {
    pub index: Index,
    pub error: EntryError,
}

/// The first header of one logical entry.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) name: EntryName,
    pub(crate) meta: Meta,
}

struct Open {
    info: VolumeInfo,
    reader: TarReader<Box<dyn Read>>,
}

pub(crate) struct SetStream {
    pub(crate) set: usize,
    volumes: VecDeque<VolumeInfo>,
    current: Option<Open>,
    head: Option<Head>,
    /// A header read while looking for the next piece of `head`.
    next: Option<Head>,
    /// The last piece of `head` read so far (multivolume entries only).
    piece: Option<u64>,
    /// `head`'s data has been read to its end (or failed).
    entry_done: bool,
    pub(crate) problems: Vec<VolumeProblem>,
    pub(crate) bad_names: Vec<PathProblem>,
}

impl SetStream {
    pub(crate) fn new(set: usize, volumes: Vec<VolumeInfo>) -> Self {
        Self {
            set,
            volumes: volumes.into(),
            current: None,
            head: None,
            next: None,
            piece: None,
            entry_done: false,
            problems: Vec::new(),
            bad_names: Vec::new(),
        }
    }

    fn lose(&mut self, source: &dyn VolumeSource, info: VolumeInfo, error: VolumeError) {
        self.problems.push(VolumeProblem {
            set: self.set,
            volume: info.number,
            name: source.name(self.set, info.number),
            start: info.start,
            end: info.end,
            error,
        });
    }

    /// The next tar entry with a duplicity name, opening volumes as needed.
    fn read_header(&mut self, source: &mut dyn VolumeSource) -> Option<Head> {
        loop {
            let open = match self.current.as_mut() {
                Some(open) => open,
                None => {
                    let info = self.volumes.pop_front()?;
                    match source.open(self.set, info.number) {
                        Ok(reader) => {
                            if let Some(next) = self.volumes.front() {
                                source.prefetch(self.set, next.number);
                            }
                            self.current.insert(Open { info, reader: TarReader::new(reader) })
                        }
                        Err(e) => {
                            self.lose(source, info, VolumeError::Open(e));
                            continue;
                        }
                    }
                }
            };
            match open.reader.next_header() {
                Ok(None) => self.current = None,
                Ok(Some(header)) => match header.entry_name() {
                    Ok(name) => return Some(Head { name, meta: header.meta }),
                    Err(source) => {
                        let (set, volume, offset) = (self.set, open.info.number, header.offset);
                        self.bad_names.push(PathProblem {
                            index: Index::from_bytes(&header.name),
                            error: EntryError::Name { set, volume, offset, source },
                        });
                    }
                },
                Err(e) => self.fail_current(source, e),
            }
        }
    }

    fn fail_current(&mut self, source: &dyn VolumeSource, error: ReadError) {
        if let Some(open) = self.current.take() {
            self.lose(source, open.info, VolumeError::Read(error));
        }
    }

    /// The current entry's first header, `None` once the set is read.
    pub(crate) fn peek(&mut self, source: &mut dyn VolumeSource) -> Option<&Head> {
        if self.head.is_none() {
            self.head = match self.next.take() {
                Some(head) => Some(head),
                None => self.read_header(source),
            };
            self.piece = self.head.as_ref().and_then(|h| h.name.piece);
            self.entry_done = false;
        }
        self.head.as_ref()
    }

    /// Why the current entry cannot be used whole, known from its header.
    pub(crate) fn damage(&self) -> Option<EntryError> {
        match self.head.as_ref()?.name.piece {
            Some(p) if p != 1 => Some(EntryError::Incomplete),
            _ => None,
        }
    }

    /// Reads the current entry's data, piece after piece.
    pub(crate) fn read(&mut self, source: &mut dyn VolumeSource, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.entry_done || buf.is_empty() {
                return Ok(0);
            }
            let Some(open) = self.current.as_mut() else {
                self.entry_done = true;
                return Err(io::Error::other(EntryError::Incomplete));
            };
            match open.reader.read_data(buf) {
                Ok(0) => {}
                Ok(n) => return Ok(n),
                Err(e) => {
                    self.fail_current(source, e);
                    self.entry_done = true;
                    return Err(io::Error::other(EntryError::Incomplete));
                }
            }
            let (Some(previous), Some(head)) = (self.piece, self.head.as_ref()) else {
                self.entry_done = true;
                return Ok(0);
            };
            let (index, kind): (Index, Kind) = (head.name.index.clone(), head.name.kind);
            let lost_before = self.problems.len();
            let next = self.read_header(source);
            // A lost volume whose range starts inside this file held pieces of it.
            let cut = self.problems[lost_before..].iter().any(|p| p.start.index == index && p.start.piece.is_some());
            match next {
                Some(h) if h.name.piece.is_some() && h.name.index == index && h.name.kind == kind => {
                    let got = h.name.piece.unwrap_or_default();
                    if cut {
                        self.next = Some(h);
                        self.entry_done = true;
                        return Err(io::Error::other(EntryError::Incomplete));
                    }
                    if got != previous + 1 {
                        self.entry_done = true;
                        return Err(io::Error::other(EntryError::PieceOrder { previous, got }));
                    }
                    self.piece = Some(got);
                }
                other => {
                    self.next = other;
                    self.entry_done = true;
                    if cut {
                        return Err(io::Error::other(EntryError::Incomplete));
                    }
                    return Ok(0);
                }
            }
        }
    }

    /// Done with the current entry: skips what is left of it, and pieces
    /// of the same file found after a lost volume (the file was reported
    /// once already).
    pub(crate) fn advance(&mut self, source: &mut dyn VolumeSource) {
        let finished = self.head.as_ref().filter(|_| self.piece.is_some()).map(|h| (h.name.index.clone(), h.name.kind));
        self.drain(source);
        if let Some((index, kind)) = finished {
            while self
                .peek(source)
                .is_some_and(|h| h.name.index == index && h.name.kind == kind && h.name.piece.is_some_and(|p| p != 1))
            {
                self.drain(source);
            }
        }
    }

    fn drain(&mut self, source: &mut dyn VolumeSource) {
        if self.piece.is_some() {
            let mut scratch = [0u8; 8192];
            // Every call either returns data (the input is finite) or ends
            // the entry, so this ends.
            while !self.entry_done {
                let _ = self.read(source, &mut scratch);
            }
        }
        self.head = None;
        self.piece = None;
    }

    /// The current entry's data as an `io::Read`.
    pub(crate) fn reader<'a>(&'a mut self, source: &'a mut dyn VolumeSource) -> EntryReader<'a> {
        EntryReader { stream: self, source }
    }
}

/// The data of a stream's current entry.
pub(crate) struct EntryReader<'a> {
    stream: &'a mut SetStream,
    source: &'a mut dyn VolumeSource,
}

impl Read for EntryReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(self.source, buf)
    }
}

/// The entry error an `io::Error` from an [`EntryReader`] carries, or the
/// I/O error itself as a data error.
pub(crate) fn entry_error(error: io::Error) -> EntryError {
    if error.get_ref().is_some_and(|e| e.is::<EntryError>()) {
        if let Some(inner) = error.into_inner() {
            return match inner.downcast::<EntryError>() {
                Ok(e) => *e,
                Err(other) => EntryError::Data(io::Error::other(other)),
            };
        }
        return EntryError::Incomplete;
    }
    EntryError::Data(error)
}
