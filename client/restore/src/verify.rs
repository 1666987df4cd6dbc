//! Comparing the chain's last state with a directory, as duplicity's
//! `verify` does (`compare_verbose` in path.py): the two are walked side by
//! side in walk order; a path only in the directory is a new file, one only
//! in the backup is missing; for both, the type, then permissions and owner
//! (regular files, directories, FIFOs, devices), the integer mtime (regular
//! files, directories, FIFOs), link targets and device numbers, and the
//! data of regular files. Unlike duplicity, which compares nothing unless
//! `--compare-data` is given, the metadata is always compared, and without
//! data comparison the sizes are; with it the bytes are, streamed in
//! 64 KiB blocks (diffs are applied in anonymous temporary files).
//! Owners are compared by number; times are printed in UTC.

use std::fs::File;
use std::io::{self, Read};
use std::iter::Peekable;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use coffer_archive::{FileType, Index, Meta};
use coffer_select::{Entry, Selection, Walk, WalkError};
use rustix::fs::{Mode, OFlags};

use crate::chain::{Chain, VolumeSource};
use crate::error::{EntryError, RestoreError};
use crate::merge::{self, Content, Limits, Scratch, Sink, copy_limited};
use crate::stream::{PathProblem, VolumeProblem, entry_error};

/// One difference, with duplicity's line for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub index: Index,
    /// `Difference found: …` as duplicity logs it.
    pub message: String,
}

/// What `verify` found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Paths compared (either side), as duplicity counts them.
    pub compared: u64,
    pub differences: Vec<Difference>,
    /// Volumes that could not be read; their paths look missing.
    pub volumes: Vec<VolumeProblem>,
    /// Backup paths that could not be rebuilt, or files that could not be read.
    pub paths: Vec<PathProblem>,
    /// Paths built from an older set although a lost volume covered them.
    pub uncertain: Vec<Index>,
    /// Parts of the directory that could not be read.
    pub unreadable: Vec<String>,
}

impl VerifyReport {
    /// True when the directory matches the backup and everything was read.
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
            && self.volumes.is_empty()
            && self.paths.is_empty()
            && self.uncertain.is_empty()
            && self.unreadable.is_empty()
    }
}

/// Compares the state at the end of `chain` with `source_dir`.
pub fn verify(
    chain: &Chain,
    source: &mut dyn VolumeSource,
    source_dir: &Path,
    compare_data: bool,
    limits: &Limits,
) -> Result<VerifyReport, RestoreError> {
    let problem = |source: io::Error| RestoreError::Destination { path: source_dir.display().to_string(), source };
    let absolute = std::path::absolute(source_dir).map_err(problem)?;
    let selection = Selection::new(&absolute, &[], &[], false).map_err(|e| problem(io::Error::other(e)))?;
    let mut sink = Verifier {
        walk: Walk::new(&absolute, selection).peekable(),
        compare_data,
        limits: *limits,
        report: VerifyReport::default(),
    };
    let damage = merge::run(chain, source, None, limits, &mut sink);
    while let Some(next) = sink.walk.next() {
        sink.current(next);
    }
    let mut report = sink.report;
    report.volumes = damage.volumes;
    report.paths.extend(damage.names);
    Ok(report)
}

struct Verifier {
    walk: Peekable<Walk>,
    compare_data: bool,
    limits: Limits,
    report: VerifyReport,
}

fn shown(index: &Index) -> String {
    if index.is_root() { ".".into() } else { String::from_utf8_lossy(index.as_bytes()).into_owned() }
}

/// duplicity's type names.
fn backup_type(meta: &Meta) -> &'static str {
    match meta.file_type {
        FileType::Regular => "reg",
        FileType::Directory => "dir",
        FileType::Symlink(_) => "sym",
        FileType::Fifo => "fifo",
        FileType::CharDevice { .. } => "chr",
        FileType::BlockDevice { .. } => "blk",
    }
}

fn current_type(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_file() {
        "reg"
    } else if t.is_dir() {
        "dir"
    } else if t.is_symlink() {
        "sym"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_char_device() {
        "chr"
    } else if t.is_block_device() {
        "blk"
    } else {
        "sock"
    }
}

/// `time.asctime` of a UTC time: `Thu Nov 27 05:29:36 2026`.
fn pretty(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let weekday = DAYS[days.rem_euclid(7) as usize];
    let month_name = MONTHS[(month - 1).clamp(0, 11) as usize];
    format!("{weekday} {month_name} {day:2} {:02}:{:02}:{:02} {year}", rest / 3600, rest % 3600 / 60, rest % 60)
}

impl Verifier {
    fn differ(&mut self, index: &Index, message: String) {
        self.report
            .differences
            .push(Difference { index: index.clone(), message: format!("Difference found: {message}") });
    }

    /// A walk item the backup does not have: a new file (or an unreadable part).
    fn current(&mut self, item: Result<Entry, WalkError>) {
        match item {
            Ok(entry) => {
                let index = Index::from_bytes(&entry.relative);
                self.report.compared += 1;
                self.differ(&index, format!("New file {}", shown(&index)));
            }
            Err(e) => self.report.unreadable.push(e.to_string()),
        }
    }

    /// The directory's entry for `index`, reporting every entry before it
    /// as new.
    fn take(&mut self, index: &Index) -> Option<Entry> {
        loop {
            let before = match self.walk.peek()? {
                Ok(entry) => Index::from_bytes(&entry.relative) < *index,
                Err(_) => true,
            };
            if !before {
                break;
            }
            let item = self.walk.next()?;
            self.current(item);
        }
        match self.walk.peek() {
            Some(Ok(entry)) if Index::from_bytes(&entry.relative) == *index => self.walk.next().and_then(Result::ok),
            _ => None,
        }
    }

    /// Compares everything but the data; the entry if the data is next.
    fn compare_meta(&mut self, index: &Index, meta: &Meta) -> Option<Entry> {
        self.report.compared += 1;
        let path = shown(index);
        let Some(entry) = self.take(index) else {
            self.differ(index, format!("File {path} is missing"));
            return None;
        };
        let current = &entry.meta;
        let (want, got) = (backup_type(meta), current_type(current));
        if want != got {
            self.differ(index, format!("File {path} has type {got}, expected {want}"));
            return None;
        }
        let perms = |uid: u64, gid: u64, mode: u32| format!("{uid}:{gid} {mode:o}");
        let checks_perms = !matches!(meta.file_type, FileType::Symlink(_));
        let cur_mode = current.mode() & 0o7777;
        if checks_perms
            && (meta.mode != cur_mode || meta.uid != u64::from(current.uid()) || meta.gid != u64::from(current.gid()))
        {
            let message = format!(
                "File {path} has permissions {}, expected {}",
                perms(current.uid().into(), current.gid().into(), cur_mode),
                perms(meta.uid, meta.gid, meta.mode)
            );
            self.differ(index, message);
            return None;
        }
        match &meta.file_type {
            FileType::Regular | FileType::Directory | FileType::Fifo => {
                let (want, got) = (i64::try_from(meta.mtime).unwrap_or(i64::MAX), current.mtime());
                if want != got && (want > 0 || got > 0) {
                    self.differ(index, format!("File {path} has mtime {}, expected {}", pretty(got), pretty(want)));
                    return None;
                }
                (meta.file_type == FileType::Regular).then_some(entry)
            }
            FileType::Symlink(target) => {
                let got =
                    std::fs::read_link(&entry.path).map(|t| t.as_os_str().as_bytes().to_vec()).unwrap_or_default();
                let with_slash = [target.as_slice(), b"/"].concat();
                if got != *target && got != with_slash {
                    let (g, w) =
                        (String::from_utf8_lossy(&got).into_owned(), String::from_utf8_lossy(target).into_owned());
                    self.differ(index, format!("Symlink {path} points to {g}, expected {w}"));
                }
                None
            }
            FileType::CharDevice { major, minor } | FileType::BlockDevice { major, minor } => {
                let rdev = current.rdev();
                let got = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
                if got != (*major, *minor) {
                    let message =
                        format!("Device file {path} has numbers ({}, {}), expected ({major}, {minor})", got.0, got.1);
                    self.differ(index, message);
                }
                None
            }
        }
    }
}

impl Sink for Verifier {
    fn shortcut(&mut self, _: &Index, _: &Meta) -> bool {
        false
    }

    fn scratch(&mut self, _: &Index) -> Result<Scratch, EntryError> {
        let file = tempfile::tempfile().map_err(EntryError::io("making a temporary file"))?;
        Ok(Scratch { file, place: None })
    }

    fn discard(&mut self, _: Scratch) {}

    fn file(&mut self, index: &Index, meta: &Meta, content: Content<'_>) -> Result<(), EntryError> {
        let Some(entry) = self.compare_meta(index, meta) else { return Ok(()) };
        let mut patched;
        let backup: &mut dyn Read = match content {
            Content::Stream(reader) => reader,
            Content::Patched(scratch) => {
                patched = scratch.file;
                &mut patched
            }
        };
        if !self.compare_data {
            let size = copy_limited(backup, &mut io::sink(), self.limits.max_file_size)?;
            if size != entry.meta.len() {
                self.differ(index, format!("File {} has size {}, expected {size}", shown(index), entry.meta.len()));
            }
            return Ok(());
        }
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut current = File::from(
            rustix::fs::open(&entry.path, flags, Mode::empty())
                .map_err(|e| EntryError::Io { what: "opening the file to compare", source: e.into() })?,
        );
        let mut a = vec![0u8; 64 * 1024];
        let mut b = vec![0u8; 64 * 1024];
        loop {
            let n = coffer_archive::read_full(backup, &mut a).map_err(entry_error)?;
            let m = coffer_archive::read_full(&mut current, &mut b).map_err(EntryError::io("reading the file to compare"))?;
            if a[..n] != b[..m] {
                self.differ(index, format!("Data for file {} is different", shown(index)));
                return Ok(());
            }
            if n == 0 {
                return Ok(());
            }
        }
    }

    fn other(&mut self, index: &Index, meta: &Meta) -> Result<(), EntryError> {
        self.compare_meta(index, meta);
        Ok(())
    }

    fn failed(&mut self, index: &Index, error: EntryError) {
        // The directory's entry for it is not reported as new.
        let _ = self.take(index);
        self.report.paths.push(PathProblem { index: index.clone(), error });
    }

    fn uncertain(&mut self, index: &Index) {
        self.report.uncertain.push(index.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_asctime_in_utc() {
        let table = [
            (0, "Thu Jan  1 00:00:00 1970"),
            (1_795_757_376, "Fri Nov 27 05:29:36 2026"),
            (951_782_400, "Tue Feb 29 00:00:00 2000"),
            (-1, "Wed Dec 31 23:59:59 1969"),
        ];
        for (seconds, want) in table {
            assert_eq!(pretty(seconds), want, "{seconds}");
        }
    }
}
