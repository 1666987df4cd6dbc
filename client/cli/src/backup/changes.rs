//! The manifest's `Filelist` section: each regular file the set holds as
//! new, changed or deleted, as duplicity lists them (what
//! `collection-status --file-changed` reads). Duplicity keeps the list in
//! memory for the whole run; here the lines go to an unlinked temporary
//! file as the walk finds them, so a million new files cost no memory, and
//! are copied into the manifest at the end.

use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};

use coffer_archive::{Change, FileChange, Manifest};

/// The `Filelist` lines written so far.
pub(super) struct Changes {
    lines: BufWriter<File>,
    count: u64,
}

impl Changes {
    pub(super) fn new() -> io::Result<Changes> {
        Ok(Changes {
            lines: BufWriter::new(tempfile::tempfile()?),
            count: 0,
        })
    }

    /// One regular file's change, by its path in the backup.
    pub(super) fn record(&mut self, change: Change, path: &[u8]) -> io::Result<()> {
        self.lines
            .write_all(&Manifest::encode_file_change(&FileChange {
                change,
                path: path.to_vec(),
            }))?;
        self.count += 1;
        Ok(())
    }

    /// Writes the section (`Filelist N` and its lines) to `out`.
    pub(super) fn write_section(self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&Manifest::encode_filelist_head(self.count))?;
        let mut file = self
            .lines
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        file.rewind()?;
        io::copy(&mut file, out)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_parses_back_as_written() {
        let mut changes = Changes::new().unwrap();
        changes.record(Change::New, b"docs/a.txt").unwrap();
        changes.record(Change::Changed, b"with space.txt").unwrap();
        changes.record(Change::Deleted, b"gone\n").unwrap();
        let mut manifest = Manifest::default().to_bytes();
        changes.write_section(&mut manifest).unwrap();
        let parsed = Manifest::parse(&manifest).unwrap();
        let files = parsed.files_changed.unwrap();
        assert_eq!(
            files,
            [
                FileChange {
                    change: Change::New,
                    path: b"docs/a.txt".to_vec()
                },
                FileChange {
                    change: Change::Changed,
                    path: b"with space.txt".to_vec()
                },
                FileChange {
                    change: Change::Deleted,
                    path: b"gone\n".to_vec()
                },
            ]
        );
    }
}
