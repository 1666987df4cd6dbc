//! What a user may type to name a key, as duplicity's `--encrypt-key` and
//! `--sign-key` take it (and GnuPG resolves it): a full fingerprint, a long
//! key id (16 hex digits) or a short key id (8 hex digits), with an optional
//! `0x` and the spaces `gpg --fingerprint` prints. Pure parsing; matching
//! against keys is in [`crate::key`].

use std::fmt;

use crate::PgpError;

/// A parsed key name: upper-case hex digits, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyQuery {
    /// A v4 (40 digits) or v6 (64 digits) fingerprint of a primary key or
    /// subkey.
    Fingerprint(String),
    /// The last 16 digits of a v4 fingerprint.
    LongId(String),
    /// The last 8 digits of a v4 fingerprint (collisions are easy to make:
    /// a short id matching two keys is refused).
    ShortId(String),
}

impl KeyQuery {
    /// Parses `text`; anything other than 8, 16, 40 or 64 hex digits (after
    /// removing `0x` and spaces) is refused.
    pub fn parse(text: &str) -> Result<KeyQuery, PgpError> {
        let trimmed = text.trim();
        let digits = trimmed
            .strip_prefix("0x")
            .or_else(|| trimmed.strip_prefix("0X"))
            .unwrap_or(trimmed);
        let hex: String = digits.chars().filter(|c| *c != ' ').collect();
        let bad = || PgpError::BadKeyQuery {
            query: text.to_owned(),
        };
        if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let hex = hex.to_ascii_uppercase();
        match hex.len() {
            40 | 64 => Ok(KeyQuery::Fingerprint(hex)),
            16 => Ok(KeyQuery::LongId(hex)),
            8 => Ok(KeyQuery::ShortId(hex)),
            _ => Err(bad()),
        }
    }

    /// Does a key with this fingerprint (upper-case hex) and key id match?
    pub(crate) fn matches(&self, fingerprint: &str, key_id: &str) -> bool {
        match self {
            KeyQuery::Fingerprint(f) => f == fingerprint,
            KeyQuery::LongId(id) => id == key_id,
            KeyQuery::ShortId(id) => key_id.ends_with(id.as_str()),
        }
    }
}

impl fmt::Display for KeyQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyQuery::Fingerprint(h) | KeyQuery::LongId(h) | KeyQuery::ShortId(h) => {
                write!(f, "{h}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const FPR: &str = "9CF3A1FE450907915EF8A5D5E4636B68F1EC36E4";

    #[test]
    fn forms_duplicity_and_gpg_accept() {
        let cases: &[(&str, Option<KeyQuery>)] = &[
            (FPR, Some(KeyQuery::Fingerprint(FPR.into()))),
            (
                "9CF3 A1FE 4509 0791 5EF8  A5D5 E463 6B68 F1EC 36E4",
                Some(KeyQuery::Fingerprint(FPR.into())),
            ),
            (
                "0x9cf3a1fe450907915ef8a5d5e4636b68f1ec36e4",
                Some(KeyQuery::Fingerprint(FPR.into())),
            ),
            ("E4636B68F1EC36E4", Some(KeyQuery::LongId("E4636B68F1EC36E4".into()))),
            ("0XF1EC36E4", Some(KeyQuery::ShortId("F1EC36E4".into()))),
            (" f1ec36e4 ", Some(KeyQuery::ShortId("F1EC36E4".into()))),
            ("F1EC36E", None),
            ("F1EC36E4F", None),
            ("", None),
            ("0x", None),
            ("alice@example.org", None),
            ("G1EC36E4", None),
            ("F1EC-36E4", None),
        ];
        for (text, want) in cases {
            match (KeyQuery::parse(text), want) {
                (Ok(got), Some(want)) => assert_eq!(&got, want, "{text:?}"),
                (Err(PgpError::BadKeyQuery { query }), None) => assert_eq!(&query, text),
                (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn matching() {
        let key_id = &FPR[24..];
        for q in [FPR, &FPR[24..], &FPR[32..]] {
            assert!(KeyQuery::parse(q).expect("query").matches(FPR, key_id), "{q}");
        }
        for q in ["0000000000000000000000000000000000000000", "0000000000000000", "00000000"] {
            assert!(!KeyQuery::parse(q).expect("query").matches(FPR, key_id), "{q}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(text in ".{0,80}") {
            if let Ok(q) = KeyQuery::parse(&text) {
                prop_assert_eq!(KeyQuery::parse(&q.to_string()).expect("reparse"), q);
            }
        }
    }
}
