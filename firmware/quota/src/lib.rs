//! Per-user quota as a pure state machine.
//!
//! Session workers write bytes far faster than they could ask permission
//! for each one, so the ledger hands out *credit*: a worker that needs `n`
//! more bytes asks for `n` plus some prefetch, and gets it only while
//! `used + reserved + n <= limit`. Workers report what they consumed when
//! a file is closed and return what they did not use; until then the bytes
//! of uploads in progress are *held* (reserved), not used.
//! Deletions free usage at once. Usage above the limit never blocks
//! freeing. Warnings fire when usage (never held credit) crosses 80, 90 and
//! 100 % of the byte limit going up, and re-arm when it falls back.

/// Limits of one user; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub bytes: Option<u64>,
    pub files: Option<u64>,
}

/// A request the ledger refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    /// The file limit was hit (else the byte limit).
    pub files: bool,
    /// Bytes (or files) in committed data.
    pub used: u64,
    /// Bytes (or files) held by sessions: credit and uploads in progress.
    pub held: u64,
    pub limit: u64,
}

/// The default file limit is the data area's inode count divided by this.
pub const DEFAULT_FILES_DIVISOR: u64 = 10;

/// File (inode) limit of a user who has none of their own: a tenth of the
/// data area's inodes, so no one user can exhaust the file system's inodes
/// for everyone (at thousands of creations a second that takes minutes).
pub fn default_file_limit(area_inodes: u64) -> u64 {
    area_inodes / DEFAULT_FILES_DIVISOR
}

impl Limits {
    /// These limits with `files` set to `default_files` where none is given.
    pub fn with_default_files(self, default_files: Option<u64>) -> Limits {
        Limits { files: self.files.or(default_files), ..self }
    }
}

/// Credit given to a worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Credit {
    pub bytes: u64,
    pub files: u64,
}

/// Warning thresholds in percent of the byte limit.
pub const WARNING_LEVELS: [u8; 3] = [80, 90, 100];

/// One user's account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    pub limits: Limits,
    pub used_bytes: u64,
    pub used_files: u64,
    pub reserved_bytes: u64,
    pub reserved_files: u64,
    /// Highest warning level announced and not yet re-armed.
    pub warned: u8,
}

impl Ledger {
    pub fn new(limits: Limits, used_bytes: u64, used_files: u64) -> Self {
        let mut l = Ledger { limits, used_bytes, used_files, ..Ledger::default() };
        l.warned = l.level();
        l
    }

    /// Grants `need` plus up to `prefetch` more, or refuses if `need` does not fit.
    pub fn grant(&mut self, need: Credit, prefetch: Credit) -> Result<Credit, Exceeded> {
        let bytes = fit(self.limits.bytes, self.used_bytes + self.reserved_bytes, need.bytes, prefetch.bytes).ok_or(Exceeded {
            files: false,
            used: self.used_bytes,
            held: self.reserved_bytes,
            limit: self.limits.bytes.unwrap_or(u64::MAX),
        })?;
        let files = fit(self.limits.files, self.used_files + self.reserved_files, need.files, prefetch.files).ok_or(Exceeded {
            files: true,
            used: self.used_files,
            held: self.reserved_files,
            limit: self.limits.files.unwrap_or(u64::MAX),
        })?;
        self.reserved_bytes += bytes;
        self.reserved_files += files;
        Ok(Credit { bytes, files })
    }

    /// A worker consumed part of its credit.
    pub fn consume(&mut self, c: Credit) {
        self.reserved_bytes = self.reserved_bytes.saturating_sub(c.bytes);
        self.reserved_files = self.reserved_files.saturating_sub(c.files);
        self.used_bytes = self.used_bytes.saturating_add(c.bytes);
        self.used_files = self.used_files.saturating_add(c.files);
    }

    /// A worker gives back credit it did not use.
    pub fn give_back(&mut self, c: Credit) {
        self.reserved_bytes = self.reserved_bytes.saturating_sub(c.bytes);
        self.reserved_files = self.reserved_files.saturating_sub(c.files);
    }

    /// Data was deleted or shrunk.
    pub fn free(&mut self, c: Credit) {
        self.used_bytes = self.used_bytes.saturating_sub(c.bytes);
        self.used_files = self.used_files.saturating_sub(c.files);
    }

    /// Replaces the usage with a recount from disk.
    pub fn recount(&mut self, bytes: u64, files: u64) {
        self.used_bytes = bytes;
        self.used_files = files;
    }

    /// Current warning level: the highest threshold reached, 0 below 80 %.
    pub fn level(&self) -> u8 {
        let Some(limit) = self.limits.bytes else { return 0 };
        if limit == 0 {
            return 100;
        }
        let pct = (u128::from(self.used_bytes) * 100 / u128::from(limit)).min(1000);
        WARNING_LEVELS.iter().rev().copied().find(|&l| pct >= u128::from(l)).unwrap_or(0)
    }

    /// Thresholds crossed upward since the last call (each announced once,
    /// all of them when usage jumps past several); falling below re-arms
    /// the lower thresholds.
    pub fn take_warnings(&mut self) -> Vec<u8> {
        let level = self.level();
        let crossed = WARNING_LEVELS.iter().copied().filter(|&l| l > self.warned && l <= level).collect();
        self.warned = level;
        crossed
    }
}

/// How much of `need + prefetch` fits under `limit` given `taken`.
fn fit(limit: Option<u64>, taken: u64, need: u64, prefetch: u64) -> Option<u64> {
    let Some(limit) = limit else { return Some(need.saturating_add(prefetch)) };
    let room = limit.saturating_sub(taken);
    if need > room {
        return None;
    }
    Some(need + prefetch.min(room - need))
}

/// Human form of a byte count: `50.0 GiB`, `812 bytes`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Parses a size: `50G`, `50GiB`, `50GB`, `1.5T`, `800M`, `1024` (bytes).
/// Units are binary (G = 2^30), as `df -h` shows them.
pub fn parse_size(s: &str) -> Option<u64> {
    let upper = s.trim().to_ascii_uppercase();
    let t = upper.strip_suffix("IB").or_else(|| upper.strip_suffix('B')).unwrap_or(&upper);
    let (num, mult) = match t.chars().last()? {
        'K' => (&t[..t.len() - 1], 1u64 << 10),
        'M' => (&t[..t.len() - 1], 1 << 20),
        'G' => (&t[..t.len() - 1], 1 << 30),
        'T' => (&t[..t.len() - 1], 1 << 40),
        'P' => (&t[..t.len() - 1], 1 << 50),
        c if c.is_ascii_digit() => (t, 1),
        _ => return None,
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let v: f64 = num.parse().ok()?;
    let bytes = v * mult as f64;
    if !(0.0..1.8e19).contains(&bytes) {
        return None;
    }
    Some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    #[test]
    fn grants_fit_and_refuse() {
        let mut l = Ledger::new(Limits { bytes: Some(10 * MB), files: Some(3) }, 2 * MB, 1);
        let g = l.grant(Credit { bytes: MB, files: 1 }, Credit { bytes: 100 * MB, files: 10 }).unwrap();
        assert_eq!(g, Credit { bytes: 8 * MB, files: 2 });
        // Everything is reserved now: nothing more fits until it is used or given back.
        let refused = l.grant(Credit { bytes: 1, files: 0 }, Credit::default()).unwrap_err();
        assert_eq!(refused, Exceeded { files: false, used: 2 * MB, held: 8 * MB, limit: 10 * MB });
        l.consume(Credit { bytes: 3 * MB, files: 1 });
        l.give_back(Credit { bytes: 5 * MB, files: 1 });
        assert_eq!((l.used_bytes, l.reserved_bytes, l.used_files, l.reserved_files), (5 * MB, 0, 2, 0));
        assert!(l.grant(Credit { bytes: 0, files: 2 }, Credit::default()).unwrap_err().files);
        l.free(Credit { bytes: 4 * MB, files: 1 });
        assert_eq!(l.used_bytes, MB);
    }

    #[test]
    fn unlimited_grants_everything() {
        let mut l = Ledger::new(Limits::default(), 0, 0);
        assert_eq!(l.grant(Credit { bytes: 5, files: 1 }, Credit { bytes: 7, files: 2 }), Ok(Credit { bytes: 12, files: 3 }));
        assert_eq!(l.level(), 0);
    }

    #[test]
    fn warnings_fire_once_and_rearm() {
        let mut l = Ledger::new(Limits { bytes: Some(100), files: None }, 0, 0);
        l.consume(Credit { bytes: 79, files: 0 });
        assert_eq!(l.take_warnings(), Vec::<u8>::new());
        l.consume(Credit { bytes: 2, files: 0 });
        assert_eq!(l.take_warnings(), vec![80]);
        assert_eq!(l.take_warnings(), Vec::<u8>::new());
        l.consume(Credit { bytes: 19, files: 0 });
        assert_eq!(l.take_warnings(), vec![90, 100]);
        l.free(Credit { bytes: 30, files: 0 });
        assert_eq!(l.take_warnings(), Vec::<u8>::new());
        l.consume(Credit { bytes: 15, files: 0 });
        assert_eq!(l.take_warnings(), vec![80]);
    }

    #[test]
    fn held_credit_never_warns() {
        let mut l = Ledger::new(Limits { bytes: Some(100), files: None }, 0, 0);
        let g = l.grant(Credit { bytes: 95, files: 0 }, Credit::default()).unwrap();
        assert_eq!(g.bytes, 95);
        assert_eq!(l.take_warnings(), Vec::<u8>::new());
        let refused = l.grant(Credit { bytes: 10, files: 0 }, Credit::default()).unwrap_err();
        assert_eq!((refused.used, refused.held), (0, 95));
        l.give_back(g);
        assert_eq!(l.take_warnings(), Vec::<u8>::new());
    }

    #[test]
    fn default_file_limits() {
        assert_eq!(default_file_limit(2000), 200);
        assert_eq!(default_file_limit(0), 0);
        let explicit = Limits { bytes: None, files: Some(5) };
        assert_eq!(explicit.with_default_files(Some(200)).files, Some(5));
        assert_eq!(Limits::default().with_default_files(Some(200)).files, Some(200));
        assert_eq!(Limits::default().with_default_files(None).files, None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("50G"), Some(50 << 30));
        assert_eq!(parse_size("1.5K"), Some(1536));
        assert_eq!(parse_size("800MiB"), Some(800 << 20));
        assert_eq!(parse_size("2gb"), Some(2 << 30));
        assert_eq!(parse_size("5X"), None);
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("x"), None);
        assert_eq!(human_bytes(50 << 30), "50.0 GiB");
        assert_eq!(human_bytes(10), "10 bytes");
    }

    proptest::proptest! {
        /// Whatever workers do, granted credit never lets usage pass the limit.
        #[test]
        fn never_over_limit(ops in proptest::collection::vec((0u8..4, 0u64..5000), 0..200), limit in 0u64..20000) {
            let mut l = Ledger::new(Limits { bytes: Some(limit), files: None }, 0, 0);
            let mut credit = 0u64;
            for (op, n) in ops {
                match op {
                    0 => if let Ok(c) = l.grant(Credit { bytes: n, files: 0 }, Credit { bytes: n / 2, files: 0 }) { credit += c.bytes },
                    1 => { let u = n.min(credit); credit -= u; l.consume(Credit { bytes: u, files: 0 }); }
                    2 => { let u = n.min(credit); credit -= u; l.give_back(Credit { bytes: u, files: 0 }); }
                    _ => { let u = n.min(l.used_bytes); l.free(Credit { bytes: u, files: 0 }); }
                }
                proptest::prop_assert!(l.used_bytes + l.reserved_bytes <= limit);
                proptest::prop_assert_eq!(l.reserved_bytes, credit);
            }
        }
    }
}
