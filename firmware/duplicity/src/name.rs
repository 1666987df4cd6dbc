//! One remote file name → what it is in a duplicity collection.

use crate::time::{format_stamp, parse_base36, parse_stamp};

/// Full backup set, or incremental from one time to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SetKind {
    Full,
    Incremental,
}

/// The file's role within its set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileRole {
    Manifest,
    Volume(u32),
    /// `full-signatures` or `new-signatures` sigtar of the set's times.
    Signatures,
}

/// A parsed duplicity file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveName {
    pub kind: SetKind,
    pub role: FileRole,
    /// Start time of an incremental (the end of the set it follows).
    pub start: Option<i64>,
    /// Time of a full set, end time of an incremental.
    pub end: i64,
    pub encrypted: bool,
    /// `.part` infix: a local checkpoint name; tolerated remotely.
    pub partial: bool,
    /// Text before the duplicity part (`--file-prefix*`).
    pub prefix: String,
}

impl ArchiveName {
    /// The set's identity: kind and times.
    pub fn set_key(&self) -> (SetKind, Option<i64>, i64) {
        (self.kind, self.start, self.end)
    }

    /// The long file name duplicity 0.8 and 3.x write for this file:
    /// `duplicity-full.T.vol1.difftar.gpg`, `duplicity-inc.T1.to.T2.manifest.gpg`,
    /// `duplicity-new-signatures.T1.to.T2.sigtar.gpg`. Without encryption,
    /// volumes and signatures are gzipped (`.gz`) and manifests plain.
    /// `partial` and `prefix` are written as they are. An incremental
    /// without a start time has none in its name.
    pub fn file_name(&self) -> String {
        let times = match (self.kind, self.start) {
            (SetKind::Incremental, Some(start)) => format!("{}.to.{}", format_stamp(start), format_stamp(self.end)),
            _ => format_stamp(self.end),
        };
        let (head, body) = match (self.role, self.kind) {
            (FileRole::Signatures, SetKind::Full) => ("duplicity-full-signatures", "sigtar".to_string()),
            (FileRole::Signatures, SetKind::Incremental) => ("duplicity-new-signatures", "sigtar".to_string()),
            (FileRole::Manifest, SetKind::Full) => ("duplicity-full", "manifest".to_string()),
            (FileRole::Manifest, SetKind::Incremental) => ("duplicity-inc", "manifest".to_string()),
            (FileRole::Volume(n), SetKind::Full) => ("duplicity-full", format!("vol{n}.difftar")),
            (FileRole::Volume(n), SetKind::Incremental) => ("duplicity-inc", format!("vol{n}.difftar")),
        };
        let partial = if self.partial { ".part" } else { "" };
        let ending = match (self.encrypted, self.role) {
            (true, _) => ".gpg",
            (false, FileRole::Manifest) => "",
            (false, _) => ".gz",
        };
        format!("{}{head}.{times}.{body}{partial}{ending}", self.prefix)
    }
}

/// Parses a remote file name; `None` for anything that is not a duplicity archive file.
pub fn parse_name(name: &str) -> Option<ArchiveName> {
    parse_long(name).or_else(|| parse_short(name))
}

const LONG_MARKERS: [(&str, SetKind, bool); 4] = [
    ("duplicity-full-signatures.", SetKind::Full, true),
    ("duplicity-new-signatures.", SetKind::Incremental, true),
    ("duplicity-full.", SetKind::Full, false),
    ("duplicity-inc.", SetKind::Incremental, false),
];

fn parse_long(name: &str) -> Option<ArchiveName> {
    let (pos, marker, kind, sig) =
        LONG_MARKERS.iter().find_map(|&(m, k, s)| name.find(m).map(|p| (p, m, k, s)))?;
    let prefix = &name[..pos];
    let rest = &name[pos + marker.len()..];
    let mut parts = rest.split('.');
    let first = parts.next()?;
    let (start, end) = match kind {
        SetKind::Full => (None, parse_stamp(first)?),
        SetKind::Incremental => {
            if parts.next()? != "to" {
                return None;
            }
            (Some(parse_stamp(first)?), parse_stamp(parts.next()?)?)
        }
    };
    let suffixes: Vec<&str> = parts.collect();
    let role = if sig {
        if suffixes.first() != Some(&"sigtar") {
            return None;
        }
        FileRole::Signatures
    } else {
        match suffixes.first().copied() {
            Some("manifest") => FileRole::Manifest,
            Some(v) if v.starts_with("vol") => {
                if suffixes.get(1) != Some(&"difftar") {
                    return None;
                }
                let n: u32 = v[3..].parse().ok()?;
                FileRole::Volume(n)
            }
            _ => return None,
        }
    };
    let tail = &suffixes[1..];
    Some(ArchiveName {
        kind,
        role,
        start,
        end,
        encrypted: tail.contains(&"gpg"),
        partial: tail.contains(&"part"),
        prefix: prefix.to_string(),
    })
}

/// `--short-filenames`: df/di/dfs/dns with base-36 times and volume numbers.
fn parse_short(name: &str) -> Option<ArchiveName> {
    let (prefix, rest, kind, sig) = ["dfs.", "dns.", "df.", "di."].iter().find_map(|m| {
        let pos = name.find(m)?;
        // The marker must start the name or follow a prefix ending in a separator-free text.
        let kind = if m.starts_with("df") { SetKind::Full } else { SetKind::Incremental };
        Some((&name[..pos], &name[pos + m.len()..], kind, m.len() == 4))
    })?;
    let mut parts = rest.split('.');
    let (start, end) = match kind {
        SetKind::Full => (None, parse_base36(parts.next()?)?),
        SetKind::Incremental => (Some(parse_base36(parts.next()?)?), parse_base36(parts.next()?)?),
    };
    let suffixes: Vec<&str> = parts.collect();
    let (role, tail) = if sig {
        if suffixes.first() != Some(&"st") {
            return None;
        }
        (FileRole::Signatures, &suffixes[1..])
    } else {
        match suffixes.as_slice() {
            ["m", tail @ ..] => (FileRole::Manifest, tail),
            [n, "dt", tail @ ..] => (FileRole::Volume(u32::try_from(parse_base36(n)?).ok()?), tail),
            _ => return None,
        }
    };
    Some(ArchiveName {
        kind,
        role,
        start,
        end,
        encrypted: tail.contains(&"g"),
        partial: tail.contains(&"p"),
        prefix: prefix.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_stamp;

    fn t(s: &str) -> i64 {
        parse_stamp(s).unwrap()
    }

    #[test]
    fn long_names() {
        let a = parse_name("duplicity-full.20261127T052936Z.vol12.difftar.gpg").unwrap();
        assert_eq!((a.kind, a.role, a.start, a.end, a.encrypted), (SetKind::Full, FileRole::Volume(12), None, t("20261127T052936Z"), true));
        let m = parse_name("duplicity-inc.20261127T052936Z.to.20261127T052949Z.manifest").unwrap();
        assert_eq!((m.kind, m.role, m.start), (SetKind::Incremental, FileRole::Manifest, Some(t("20261127T052936Z"))));
        assert!(!m.encrypted);
        let s = parse_name("duplicity-new-signatures.20261127T052936Z.to.20261127T052949Z.sigtar.gz").unwrap();
        assert_eq!((s.kind, s.role), (SetKind::Incremental, FileRole::Signatures));
        let f = parse_name("duplicity-full-signatures.20261127T052936Z.sigtar.gpg").unwrap();
        assert_eq!((f.kind, f.role, f.encrypted), (SetKind::Full, FileRole::Signatures, true));
        let p = parse_name("laptop_duplicity-full.20261127T052936Z.manifest.part").unwrap();
        assert_eq!((p.prefix.as_str(), p.partial), ("laptop_", true));
        let old = parse_name("duplicity-full.2002-08-17T16:17:01-07:00.vol1.difftar.gpg").unwrap();
        assert_eq!(old.end, t("20020817T231701Z"));
        let plain = parse_name("duplicity-full.20261127T052936Z.vol1.difftar").unwrap();
        assert!(!plain.encrypted);
    }

    #[test]
    fn short_names() {
        let base = 1_795_764_576i64; // 2026-11-27T05:29:36Z
        let t36 = |v: i64| {
            let mut s = String::new();
            let mut v = v;
            while v > 0 {
                s.insert(0, std::char::from_digit((v % 36) as u32, 36).unwrap());
                v /= 36;
            }
            s
        };
        let v = parse_name(&format!("df.{}.{}.dt.g", t36(base), t36(11))).unwrap();
        assert_eq!((v.kind, v.role, v.end, v.encrypted), (SetKind::Full, FileRole::Volume(11), base, true));
        let m = parse_name(&format!("di.{}.{}.m", t36(base), t36(base + 60))).unwrap();
        assert_eq!((m.kind, m.role, m.start, m.end), (SetKind::Incremental, FileRole::Manifest, Some(base), base + 60));
        let s = parse_name(&format!("dns.{}.{}.st.z", t36(base), t36(base + 60))).unwrap();
        assert_eq!(s.role, FileRole::Signatures);
    }

    #[test]
    fn not_duplicity() {
        for n in ["notes.txt", "duplicity-full.garbage.vol1.difftar", "duplicity-inc.20261127T052936Z.20261127T052949Z.manifest", "config", "data/00/abc", "duplicity-full.20261127T052936Z.volX.difftar", "df.zz"] {
            assert!(parse_name(n).is_none(), "{n}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let _ = parse_name(&s);
        }
    }

    #[test]
    fn file_names_are_duplicitys_and_parse_back() {
        let t1 = 1_795_757_376;
        let t2 = t1 + 86_400;
        let name = |kind, role, start, encrypted| ArchiveName { kind, role, start, end: t2, encrypted, partial: false, prefix: String::new() };
        let table = [
            (name(SetKind::Full, FileRole::Volume(1), None, true), "duplicity-full.20261128T052936Z.vol1.difftar.gpg"),
            (name(SetKind::Full, FileRole::Volume(12), None, false), "duplicity-full.20261128T052936Z.vol12.difftar.gz"),
            (name(SetKind::Full, FileRole::Manifest, None, true), "duplicity-full.20261128T052936Z.manifest.gpg"),
            (name(SetKind::Full, FileRole::Manifest, None, false), "duplicity-full.20261128T052936Z.manifest"),
            (name(SetKind::Full, FileRole::Signatures, None, true), "duplicity-full-signatures.20261128T052936Z.sigtar.gpg"),
            (name(SetKind::Incremental, FileRole::Volume(3), Some(t1), true), "duplicity-inc.20261127T052936Z.to.20261128T052936Z.vol3.difftar.gpg"),
            (name(SetKind::Incremental, FileRole::Manifest, Some(t1), true), "duplicity-inc.20261127T052936Z.to.20261128T052936Z.manifest.gpg"),
            (name(SetKind::Incremental, FileRole::Signatures, Some(t1), false), "duplicity-new-signatures.20261127T052936Z.to.20261128T052936Z.sigtar.gz"),
        ];
        for (archive, expected) in table {
            assert_eq!(archive.file_name(), expected);
            assert_eq!(parse_name(expected), Some(archive), "{expected}");
        }
    }

    proptest::proptest! {
        #[test]
        fn every_long_name_parses_back(full in proptest::prelude::any::<bool>(), role in 0u32..4, start in 0i64..4_000_000_000, gap in 1i64..100_000_000, encrypted in proptest::prelude::any::<bool>(), partial in proptest::prelude::any::<bool>()) {
            let kind = if full { SetKind::Full } else { SetKind::Incremental };
            let role = match role { 0 => FileRole::Manifest, 1 => FileRole::Signatures, n => FileRole::Volume(n * 7) };
            let archive = ArchiveName { kind, role, start: (!full).then_some(start), end: start + gap, encrypted, partial, prefix: String::new() };
            proptest::prop_assert_eq!(parse_name(&archive.file_name()), Some(archive));
        }
    }
}
