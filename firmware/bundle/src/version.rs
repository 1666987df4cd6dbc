//! Firmware versions and the downgrade rule of `update apply`.
//!
//! A signed bundle proves who built it, not that it is current: an old
//! release with known flaws stays validly signed forever. So the box
//! compares the bundle's version with the running slot's and refuses to go
//! back unless the administrator says so. Versions are the workspace's
//! semantic versions (`MAJOR.MINOR.PATCH`, an optional `-PRERELEASE`, an
//! optional `+BUILD` that does not count), ordered by SemVer 2.0 precedence.

use std::cmp::Ordering;
use std::fmt;

use crate::BundleError;

/// A parsed firmware version, ordered by SemVer precedence (build metadata
/// ignored, so `1.0.0+a` and `1.0.0+b` are the same release).
#[derive(Debug, Clone)]
pub struct FirmwareVersion {
    core: [u64; 3],
    pre: Vec<PreId>,
    text: String,
}

/// One dot-separated identifier of a pre-release: numbers compare as
/// numbers and before words (SemVer 2.0, §11).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum PreId {
    Number(u64),
    Word(String),
}

impl FirmwareVersion {
    /// Parses `MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`; `None` for anything
    /// else (the reason goes into the caller's message).
    pub fn parse(text: &str) -> Option<Self> {
        let without_build = match text.split_once('+') {
            Some((v, build)) if identifiers(build, false).is_some() => v,
            Some(_) => return None,
            None => text,
        };
        let (core_text, pre_text) = match without_build.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (without_build, None),
        };
        let mut parts = core_text.split('.');
        let mut core = [0; 3];
        for slot in &mut core {
            *slot = number(parts.next()?)?;
        }
        if parts.next().is_some() {
            return None;
        }
        let pre = match pre_text {
            Some(p) => identifiers(p, true)?,
            None => Vec::new(),
        };
        Some(FirmwareVersion {
            core,
            pre,
            text: text.to_owned(),
        })
    }
}

/// A decimal without a leading zero, as SemVer wants.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// Dot-separated `[0-9A-Za-z-]+` identifiers; numeric ones are numbers when
/// they take part in precedence (`pre`).
fn identifiers(s: &str, pre: bool) -> Option<Vec<PreId>> {
    s.split('.')
        .map(|id| {
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                None
            } else if pre && id.bytes().all(|b| b.is_ascii_digit()) {
                number(id).map(PreId::Number)
            } else {
                Some(PreId::Word(id.to_owned()))
            }
        })
        .collect()
}

impl Ord for FirmwareVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.core.cmp(&other.core).then_with(|| {
            match (self.pre.is_empty(), other.pre.is_empty()) {
                // A pre-release comes before its release.
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                // Identifier by identifier; a longer list wins a tie.
                (false, false) => self.pre.cmp(&other.pre),
            }
        })
    }
}

impl PartialOrd for FirmwareVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for FirmwareVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for FirmwareVersion {}

impl fmt::Display for FirmwareVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What installing a bundle does to the firmware version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionChange {
    /// The bundle is newer than the running slot.
    Upgrade,
    /// The same release again (repairs or refreshes the other slot; it
    /// brings back nothing the running slot does not already have).
    Reinstall,
    /// Older, or not comparable, and allowed by `--allow-downgrade`.
    AllowedDowngrade,
}

/// The downgrade rule: a bundle older than the running firmware, or whose
/// version cannot be compared with it, is refused unless `allow_downgrade`.
/// Same version is allowed: it cannot bring back a flaw the box does not
/// already run.
pub fn check_version(
    running: &str,
    bundle: &str,
    allow_downgrade: bool,
) -> Result<VersionChange, BundleError> {
    let order = match (FirmwareVersion::parse(running), FirmwareVersion::parse(bundle)) {
        (Some(r), Some(b)) => Some(b.cmp(&r)),
        _ => None,
    };
    match order {
        Some(Ordering::Greater) => Ok(VersionChange::Upgrade),
        Some(Ordering::Equal) => Ok(VersionChange::Reinstall),
        _ if allow_downgrade => Ok(VersionChange::AllowedDowngrade),
        Some(Ordering::Less) => Err(BundleError::Downgrade {
            bundle: bundle.to_owned(),
            running: running.to_owned(),
        }),
        None => Err(BundleError::IncomparableVersion {
            bundle: bundle.to_owned(),
            running: running.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> FirmwareVersion {
        FirmwareVersion::parse(s).unwrap_or_else(|| panic!("{s} parses"))
    }

    #[test]
    fn precedence_follows_semver() {
        // SemVer 2.0 §11's own example, ascending, plus numeric cores.
        let ascending = [
            "0.1.0",
            "0.9.0",
            "0.10.0",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.2.0",
            "2.0.0",
            "10.0.0",
        ];
        for pair in ascending.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(v("1.4.0+build.7"), v("1.4.0+other"));
    }

    #[test]
    fn only_semantic_versions_parse() {
        for bad in [
            "", "1", "1.4", "1.4.0.1", "v1.4.0", "01.4.0", "1.4.0-", "1.4.0-a..b", "1.4.0-01",
            "1.4.0+", "1.4.0-é", "1.-4.0", "99999999999999999999.0.0",
        ] {
            assert!(FirmwareVersion::parse(bad).is_none(), "{bad:?} parsed");
        }
        for good in ["0.1.0", "9.9.9-test", "6.6.6-broken", "1.4.0-rc.1+20260101", "1.0.0-0a"] {
            assert_eq!(v(good).to_string(), good);
        }
    }

    #[test]
    fn the_downgrade_rule() {
        use VersionChange::*;
        for (running, bundle, allow, expect) in [
            ("0.1.0", "0.2.0", false, Ok(Upgrade)),
            ("0.1.0", "9.9.9-test", false, Ok(Upgrade)),
            ("0.1.0", "0.1.0", false, Ok(Reinstall)),
            ("0.1.0", "0.1.0+rebuilt", false, Ok(Reinstall)),
            ("0.2.0", "0.1.0", false, Err("downgrade")),
            ("0.2.0", "0.2.0-rc.1", false, Err("downgrade")),
            ("0.2.0", "0.1.0", true, Ok(AllowedDowngrade)),
            ("0.2.0", "nightly", false, Err("incomparable")),
            ("unknown", "0.2.0", false, Err("incomparable")),
            ("unknown", "0.2.0", true, Ok(AllowedDowngrade)),
        ] {
            let got = check_version(running, bundle, allow);
            match (expect, &got) {
                (Ok(e), Ok(g)) => assert_eq!(e, *g, "{running} -> {bundle}"),
                (Err("downgrade"), Err(BundleError::Downgrade { .. }))
                | (Err("incomparable"), Err(BundleError::IncomparableVersion { .. })) => {}
                _ => panic!("{running} -> {bundle} (allow {allow}): {got:?}, expected {expect:?}"),
            }
        }
    }

    #[test]
    fn refusals_name_both_versions_and_the_way_out() {
        for e in [
            check_version("0.2.0", "0.1.0", false),
            check_version("0.2.0", "nightly", false),
        ] {
            let message = e.expect_err("refused").to_string();
            assert!(message.contains("0.2.0") && message.contains("--allow-downgrade"), "{message}");
        }
        let message = check_version("0.2.0", "0.1.0", false).expect_err("refused").to_string();
        assert!(message.contains("0.1.0"), "{message}");
    }

    fn version() -> impl Strategy<Value = String> {
        (0u64..3, 0u64..3, 0u64..3, proptest::option::of("(0|[1-9]|alpha|rc)(\\.(0|[1-9]|alpha|rc)){0,2}"))
            .prop_map(|(a, b, c, pre)| match pre {
                Some(p) => format!("{a}.{b}.{c}-{p}"),
                None => format!("{a}.{b}.{c}"),
            })
    }

    proptest! {
        #[test]
        fn precedence_is_a_total_order(a in version(), b in version(), c in version()) {
            let (a, b, c) = (v(&a), v(&b), v(&c));
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            if a <= b && b <= c {
                prop_assert!(a <= c);
            }
        }

        #[test]
        fn never_upgrades_to_an_older_version(a in version(), b in version()) {
            let change = check_version(&a, &b, false);
            prop_assert_eq!(change.is_ok(), v(&b) >= v(&a));
        }

        #[test]
        fn any_text_is_judged_without_panic(a in "\\PC{0,20}", b in "\\PC{0,20}") {
            let _ = check_version(&a, &b, false);
            prop_assert!(check_version(&a, &b, true).is_ok());
        }
    }
}
