//! duplicity's text manifest (`duplicity-full.T.manifest`), written as
//! duplicity 0.8 writes it during a backup (`Hostname`, `Localdir`, one
//! `Volume N:` block per volume as each is finished, then `Filelist N`) and
//! parsed as `manifest.py` parses it: keys case-insensitive, fields split on
//! whitespace, volumes in the order they appear with later blocks winning
//! and volumes past the last one dropped (a restarted backup), names quoted
//! with `"…"` and `\xNN` for whitespace, `\`, `"` and `'`.

use std::collections::BTreeMap;

use crate::entry::Index;
use crate::error::ManifestError;
use crate::write::{Position, VolumeRange};

/// One volume's block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeInfo {
    pub number: u32,
    pub start: Position,
    pub end: Position,
    /// `Hash NAME VALUE` lines in order (duplicity writes one, `SHA1`, over
    /// the bytes stored on the server).
    pub hashes: Vec<(String, String)>,
}

impl VolumeInfo {
    /// The block for a volume the writer finished, with its SHA-1 (hex).
    pub fn new(range: VolumeRange, sha1_hex: &str) -> Self {
        Self {
            number: range.number,
            start: range.start,
            end: range.end,
            hashes: vec![("SHA1".into(), sha1_hex.into())],
        }
    }

    /// The hash duplicity checks: SHA1, else MD5, else the first.
    pub fn best_hash(&self) -> Option<(&str, &str)> {
        ["SHA1", "MD5"]
            .iter()
            .find_map(|want| self.hashes.iter().find(|(name, _)| name == want))
            .or_else(|| self.hashes.first())
            .map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Whether this volume may hold `index` or anything under it
    /// (duplicity's `VolumeInfo.contains`, used to pick volumes for a
    /// one-path restore).
    pub fn may_contain(&self, index: &Index) -> bool {
        let depth = index.components().count();
        let start_prefix = Index::from_components(self.start.index.components().take(depth));
        start_prefix <= *index && *index <= self.end.index
    }

    /// The block's bytes, without the final newline duplicity adds.
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("Volume {}:\n", self.number).as_bytes());
        for (label, position) in [("StartingPath   ", &self.start), ("EndingPath     ", &self.end)] {
            out.extend_from_slice(b"    ");
            out.extend_from_slice(label.as_bytes());
            if position.index.is_root() {
                out.push(b'.');
            } else {
                out.extend_from_slice(&quote(position.index.as_bytes()));
            }
            out.push(b' ');
            match position.piece {
                Some(n) => out.extend_from_slice(n.to_string().as_bytes()),
                None => out.push(b' '),
            }
            out.push(b'\n');
        }
        for (name, value) in &self.hashes {
            out.extend_from_slice(format!("    Hash {name} {value}\n").as_bytes());
        }
        // duplicity joins the lines with "\n" and adds one after the block.
    }
}

/// What happened to a regular file (the `Filelist` section).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    New,
    Changed,
    Deleted,
}

impl Change {
    fn word(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Changed => "changed",
            Change::Deleted => "deleted",
        }
    }
}

/// One `Filelist` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileChange {
    pub change: Change,
    pub path: Vec<u8>,
}

/// A whole manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub hostname: Option<Vec<u8>>,
    /// The source directory as given on the command line.
    pub localdir: Option<Vec<u8>>,
    /// Volumes by number, ascending.
    pub volumes: Vec<VolumeInfo>,
    /// `None` without a `Filelist` section (`--no-files-changed` still
    /// writes `Filelist 0` in 0.8; very old manifests have none).
    pub files_changed: Option<Vec<FileChange>>,
}

/// Quotes a path as `manifest.py`'s `Quote` does: unchanged unless it holds
/// ASCII whitespace, `\`, `"` or `'`; then in double quotes with each such
/// byte as `\xNN` (lower-case hex).
pub fn quote(path: &[u8]) -> Vec<u8> {
    let special = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | b'\\' | b'"' | b'\'');
    if !path.iter().any(special) {
        return path.to_vec();
    }
    let mut out = Vec::with_capacity(path.len() + 8);
    out.push(b'"');
    for b in path {
        if special(b) {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        } else {
            out.push(*b);
        }
    }
    out.push(b'"');
    out
}

/// Reverses [`quote`]; `None` for a malformed quoted string (duplicity
/// fails an assertion on those).
pub fn unquote(text: &[u8]) -> Option<Vec<u8>> {
    let Some(inner) = text.strip_prefix(b"\"") else {
        return Some(text.to_vec());
    };
    let inner = inner.strip_suffix(b"\"")?;
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        if inner[i] == b'\\' {
            let hex = inner.get(i + 1..i + 4)?;
            if hex[0] != b'x' {
                return None;
            }
            let digits = std::str::from_utf8(&hex[1..]).ok()?;
            if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(digits, 16).ok()?);
            i += 4;
        } else {
            out.push(inner[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Python's `bytes.split()` whitespace.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn fields(line: &[u8]) -> Vec<&[u8]> {
    line.split(|b| is_space(*b)).filter(|f| !f.is_empty()).collect()
}

/// `KEY` followed by one whitespace byte at the start of `line`, any case.
fn after_key<'a>(line: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let head = line.get(..key.len())?;
    if !head.eq_ignore_ascii_case(key.as_bytes()) {
        return None;
    }
    let rest = &line[key.len()..];
    match rest.first() {
        Some(b) if is_space(*b) => Some(&rest[1..]),
        _ => None,
    }
}

impl Manifest {
    /// The first lines, written when a backup starts.
    pub fn encode_head(hostname: Option<&[u8]>, localdir: Option<&[u8]>) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(host) = hostname.filter(|h| !h.is_empty()) {
            out.extend_from_slice(b"Hostname ");
            // duplicity writes the hostname as is but unquotes it on reading;
            // a (never seen) hostname that would not read back is quoted.
            if unquote(host).as_deref() == Some(host) {
                out.extend_from_slice(host);
            } else {
                // (it starts with `"`, which `quote` always escapes)
                out.extend_from_slice(&quote(host));
            }
            out.push(b'\n');
        }
        if let Some(dir) = localdir.filter(|d| !d.is_empty()) {
            out.extend_from_slice(b"Localdir ");
            out.extend_from_slice(&quote(dir));
            out.push(b'\n');
        }
        out
    }

    /// One volume's block, written when the volume is finished.
    pub fn encode_volume(volume: &VolumeInfo) -> Vec<u8> {
        let mut out = Vec::new();
        volume.encode(&mut out);
        out
    }

    /// The `Filelist N` line.
    pub fn encode_filelist_head(count: u64) -> Vec<u8> {
        format!("Filelist {count}\n").into_bytes()
    }

    /// One `Filelist` line (`    %-7s  %s`).
    pub fn encode_file_change(change: &FileChange) -> Vec<u8> {
        let mut out = format!("    {:<7}  ", change.change.word()).into_bytes();
        out.extend_from_slice(&quote(&change.path));
        out.push(b'\n');
        out
    }

    /// The manifest as duplicity 0.8 uploads it: head, volumes, file list.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Self::encode_head(self.hostname.as_deref(), self.localdir.as_deref());
        for volume in &self.volumes {
            out.extend_from_slice(&Self::encode_volume(volume));
        }
        if let Some(files) = &self.files_changed {
            out.extend_from_slice(&Self::encode_filelist_head(files.len() as u64));
            for change in files {
                out.extend_from_slice(&Self::encode_file_change(change));
            }
        }
        out
    }

    /// Parses a manifest (already decrypted) as duplicity does.
    pub fn parse(text: &[u8]) -> Result<Self, ManifestError> {
        let mut manifest = Manifest::default();
        let mut volumes: BTreeMap<u32, VolumeInfo> = BTreeMap::new();
        let mut latest = 0u32;
        // The section the current line belongs to.
        enum Section {
            Top,
            Volume {
                number: u32,
                line: usize,
                start: Option<Position>,
                end: Option<Position>,
                hashes: Vec<(String, String)>,
            },
            // The list is informational (duplicity reads it only for
            // `--file-changed` and only logs a wrong count): lines that do
            // not parse are skipped, the count is not checked.
            Files,
        }
        let mut section = Section::Top;
        let err = |line: usize, why: &str| ManifestError::Line { line, why: why.to_string() };

        let finish = |section: Section, volumes: &mut BTreeMap<u32, VolumeInfo>| -> Result<(), ManifestError> {
            match section {
                Section::Top => {}
                Section::Volume { number, line, start, end, hashes } => {
                    let start = start.ok_or(ManifestError::Missing { volume: number, line, field: "StartingPath" })?;
                    let end = end.ok_or(ManifestError::Missing { volume: number, line, field: "EndingPath" })?;
                    volumes.insert(number, VolumeInfo { number, start, end, hashes });
                }
                Section::Files => {}
            }
            Ok(())
        };

        let body = text.strip_suffix(b"\n").unwrap_or(text);
        for (n, line) in body.split(|b| *b == b'\n').enumerate() {
            let number = n + 1;
            if let Some(rest) = after_key(line, "volume") {
                let digits: Vec<u8> = rest.iter().copied().take_while(u8::is_ascii_digit).collect();
                if digits.is_empty() || rest.get(digits.len()) != Some(&b':') || !line[6..].starts_with(b" ") {
                    return Err(err(number, "a Volume line is not 'Volume N:'"));
                }
                let volume: u32 = std::str::from_utf8(&digits)
                    .ok()
                    .and_then(|d| d.parse().ok())
                    .ok_or_else(|| err(number, "volume number out of range"))?;
                finish(std::mem::replace(&mut section, Section::Top), &mut volumes)?;
                latest = volume;
                section = Section::Volume { number: volume, line: number, start: None, end: None, hashes: Vec::new() };
                continue;
            }
            if after_key(line, "filelist").is_some() {
                finish(std::mem::replace(&mut section, Section::Top), &mut volumes)?;
                manifest.files_changed = Some(Vec::new());
                section = Section::Files;
                continue;
            }
            match &mut section {
                Section::Top | Section::Volume { .. }
                    if manifest.hostname.is_none() && after_key(line, "hostname").is_some() =>
                {
                    let value = after_key(line, "hostname").unwrap_or_default();
                    let host = unquote(value).ok_or_else(|| err(number, "bad quoting"))?;
                    // duplicity ignores an empty hostname.
                    manifest.hostname = Some(host).filter(|h| !h.is_empty());
                }
                Section::Top | Section::Volume { .. }
                    if manifest.localdir.is_none() && after_key(line, "localdir").is_some() =>
                {
                    let value = after_key(line, "localdir").unwrap_or_default();
                    let dir = unquote(value).ok_or_else(|| err(number, "bad quoting"))?;
                    manifest.localdir = Some(dir).filter(|d| !d.is_empty());
                }
                Section::Top => {}
                Section::Volume { start, end, hashes, .. } => {
                    let f = fields(line);
                    let Some(key) = f.first() else { continue };
                    let position = |f: &[&[u8]]| -> Result<Position, ManifestError> {
                        let path = f.get(1).ok_or_else(|| err(number, "a path is missing"))?;
                        let path = unquote(path).ok_or_else(|| err(number, "bad quoting"))?;
                        let piece = match f.get(2) {
                            None => None,
                            Some(p) => Some(
                                std::str::from_utf8(p)
                                    .ok()
                                    .and_then(|p| p.parse::<u64>().ok())
                                    .ok_or_else(|| err(number, "piece number is not a number"))?,
                            ),
                        };
                        Ok(Position { index: Index::from_bytes(&path), piece })
                    };
                    if key.eq_ignore_ascii_case(b"startingpath") {
                        *start = Some(position(&f)?);
                    } else if key.eq_ignore_ascii_case(b"endingpath") {
                        *end = Some(position(&f)?);
                    } else if key.eq_ignore_ascii_case(b"hash") {
                        let (Some(name), Some(value)) = (f.get(1), f.get(2)) else {
                            return Err(err(number, "a Hash line needs a name and a value"));
                        };
                        let text =
                            |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| err(number, "hash is not text"));
                        hashes.push((text(name)?, text(value)?));
                    }
                }
                Section::Files => {
                    let f = fields(line);
                    let Some(word) = f.first() else { continue };
                    let change = match *word {
                        b"new" => Change::New,
                        b"changed" => Change::Changed,
                        b"deleted" => Change::Deleted,
                        _ => continue,
                    };
                    let joined: Vec<u8> = f[1..].concat();
                    let path = unquote(&joined).unwrap_or(joined);
                    manifest.files_changed.get_or_insert_with(Vec::new).push(FileChange { change, path });
                }
            }
        }
        finish(section, &mut volumes)?;
        // A restart that rewrote volumes leaves later numbers behind:
        // duplicity keeps only volumes up to the last one it saw.
        volumes.retain(|n, _| *n <= latest);
        manifest.volumes = volumes.into_values().collect();
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_matches_manifest_py() {
        let table: &[(&[u8], &[u8])] = &[
            (b"a.txt", b"a.txt"),
            (b"sp ace", b"\"sp\\x20ace\""),
            (b"new\nline", b"\"new\\x0aline\""),
            (b"quo\"te's\\x", b"\"quo\\x22te\\x27s\\x5cx\""),
            (b"bad\xff\xfename", b"bad\xff\xfename"),
            (b"tab\there\x0b\x0c\r", b"\"tab\\x09here\\x0b\\x0c\\x0d\""),
        ];
        for (raw, quoted) in table {
            assert_eq!(quote(raw), *quoted);
            assert_eq!(unquote(quoted).as_deref(), Some(*raw));
        }
        for bad in [&b"\"abc"[..], b"\"\\y20\"", b"\"\\x2\"", b"\"\\xzz\""] {
            assert_eq!(unquote(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn odd_hostnames_read_back() {
        for host in [&b"\"x"[..], b"\"", b"\"a\"", b"plain"] {
            let m = Manifest { hostname: Some(host.to_vec()), ..Manifest::default() };
            assert_eq!(Manifest::parse(&m.to_bytes()).unwrap(), m, "{host:?}");
        }
        assert_eq!(Manifest::parse(b"Hostname \nLocaldir \n").unwrap(), Manifest::default());
    }

    #[test]
    fn the_file_list_is_read_leniently_as_duplicity_reads_it() {
        let m = Manifest::parse(b"Filelist 3\n    new      a\n    gone b\n    changed  \"x\\x20y\"\n").unwrap();
        let files = m.files_changed.unwrap();
        assert_eq!(
            files,
            [
                FileChange { change: Change::New, path: b"a".to_vec() },
                FileChange { change: Change::Changed, path: b"x y".to_vec() }
            ]
        );
    }

    #[test]
    fn a_restarted_backup_keeps_the_later_volumes() {
        let text = b"Hostname h\nVolume 1:\n    StartingPath   .  \n    EndingPath     a 1\n    Hash SHA1 aa\n\
Volume 2:\n    StartingPath   a 2\n    EndingPath     b  \n    Hash SHA1 bb\n\
Volume 3:\n    StartingPath   c  \n    EndingPath     d  \n    Hash SHA1 cc\n\
Volume 2:\n    StartingPath   a 2\n    EndingPath     e  \n    Hash SHA1 dd\n";
        let m = Manifest::parse(text).unwrap();
        assert_eq!(m.volumes.len(), 2);
        assert_eq!(m.volumes[1].end.index, Index::from_bytes(b"e"));
        assert_eq!(m.volumes[1].best_hash(), Some(("SHA1", "dd")));
    }

    #[test]
    fn malformed_manifests_name_the_line() {
        let table: &[(&[u8], usize)] = &[
            (b"Volume x:\n", 1),
            (b"Hostname h\nVolume 1:\n    StartingPath\n", 3),
            (b"Volume 1:\n    StartingPath . 1x\n", 2),
            (b"Volume 1:\n    StartingPath \"a\n", 2),
        ];
        for (text, line) in table {
            match Manifest::parse(text) {
                Err(ManifestError::Line { line: got, .. }) => assert_eq!(got, *line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert!(matches!(
            Manifest::parse(b"Volume 1:\n    StartingPath . \n"),
            Err(ManifestError::Missing { field: "EndingPath", .. })
        ));
    }

    #[test]
    fn volumes_are_picked_for_a_path_as_duplicity_picks_them() {
        let v = |s: &[u8], e: &[u8]| VolumeInfo {
            number: 1,
            start: Position { index: Index::from_bytes(s), piece: None },
            end: Position { index: Index::from_bytes(e), piece: None },
            hashes: vec![],
        };
        assert!(v(b"a/b", b"c").may_contain(&Index::from_bytes(b"a")));
        assert!(v(b"a/b", b"c").may_contain(&Index::from_bytes(b"b/x")));
        assert!(!v(b"a/b", b"c").may_contain(&Index::from_bytes(b"d")));
        assert!(!v(b"b", b"c").may_contain(&Index::from_bytes(b"a/z")));
    }
}
