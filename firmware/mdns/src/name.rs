//! Domain names as sequences of labels, compared as DNS compares them
//! (ASCII case-insensitively), with the wire limits of RFC 1035 §2.3.4:
//! labels of 1 to 63 bytes, at most 255 bytes on the wire.

use std::fmt;
use std::hash::{Hash, Hasher};

/// Longest label.
pub const MAX_LABEL: usize = 63;
/// Longest name on the wire, length bytes and the final zero included.
pub const MAX_NAME: usize = 255;

/// Why a name cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// An empty label (`a..b`, or an empty host name).
    #[error("name {0:?} has an empty label: use a non-empty name without double dots")]
    EmptyLabel(String),
    /// A label over 63 bytes.
    #[error("label {0:?} is longer than 63 bytes: use a shorter name")]
    LabelTooLong(String),
    /// A host name given with dots.
    #[error("host name {0:?} contains a dot: give the bare name, \".local\" is added")]
    Dotted(String),
    /// The whole name over 255 bytes.
    #[error("name is longer than 255 bytes: use a shorter name")]
    TooLong,
}

/// A domain name. Labels are raw bytes (mDNS names are UTF-8, RFC 6762
/// §16); equality and hashing ignore ASCII case.
#[derive(Clone, Default)]
pub struct Name {
    labels: Vec<Vec<u8>>,
}

impl Name {
    /// The root name (no labels).
    pub fn root() -> Self {
        Name::default()
    }

    /// Parses dotted text (`coffer.local`, `_ssh._tcp.local`); a trailing
    /// dot is allowed; no escapes, so a label cannot contain a dot (build
    /// such names with [`Name::child`]).
    pub fn from_dotted(text: &str) -> Result<Self, NameError> {
        let text = text.strip_suffix('.').unwrap_or(text);
        let mut name = Name::root();
        if text.is_empty() {
            return Ok(name);
        }
        for label in text.split('.') {
            name.push_label(label.as_bytes())?;
        }
        Ok(name)
    }

    /// This name with `label` in front (`coffer` + `_ssh._tcp.local`).
    pub fn child(&self, label: &[u8]) -> Result<Self, NameError> {
        let mut name = Name::root();
        name.push_label(label)?;
        for l in &self.labels {
            name.push_label(l)?;
        }
        Ok(name)
    }

    /// Appends a label at the end (towards the root).
    pub(crate) fn push_label(&mut self, label: &[u8]) -> Result<(), NameError> {
        if label.is_empty() {
            return Err(NameError::EmptyLabel(self.to_string()));
        }
        if label.len() > MAX_LABEL {
            return Err(NameError::LabelTooLong(
                String::from_utf8_lossy(label).into_owned(),
            ));
        }
        if self.wire_len() + 1 + label.len() > MAX_NAME {
            return Err(NameError::TooLong);
        }
        self.labels.push(label.to_vec());
        Ok(())
    }

    /// The labels, leftmost first.
    pub fn labels(&self) -> impl Iterator<Item = &[u8]> {
        self.labels.iter().map(Vec::as_slice)
    }

    /// Bytes this name takes on the wire without compression.
    pub fn wire_len(&self) -> usize {
        self.labels.iter().map(|l| 1 + l.len()).sum::<usize>() + 1
    }

    /// The labels from `skip` on, lower-cased: the key under which a
    /// suffix is remembered for compression.
    pub(crate) fn suffix_key(&self, skip: usize) -> Vec<Vec<u8>> {
        self.labels
            .iter()
            .skip(skip)
            .map(|l| l.to_ascii_lowercase())
            .collect()
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.labels.len() == other.labels.len()
            && self
                .labels
                .iter()
                .zip(&other.labels)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
    }
}

impl Eq for Name {}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for label in &self.labels {
            state.write_usize(label.len());
            for b in label {
                state.write_u8(b.to_ascii_lowercase());
            }
        }
    }
}

impl fmt::Display for Name {
    /// Dotted, with `.` and `\` inside labels escaped and other
    /// non-printable bytes as `\DDD` (the zone-file convention).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.labels.is_empty() {
            return f.write_str(".");
        }
        for (i, label) in self.labels.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            for &b in label {
                match b {
                    b'.' | b'\\' => write!(f, "\\{}", char::from(b))?,
                    0x21..=0x7e => write!(f, "{}", char::from(b))?,
                    _ => write!(f, "\\{b:03}")?,
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_and_limits() {
        let n = Name::from_dotted("Coffer.LOCAL.").unwrap();
        assert_eq!(n, Name::from_dotted("coffer.local").unwrap());
        assert_eq!(n.wire_len(), 14);
        assert_eq!(n.to_string(), "Coffer.LOCAL");
        assert_eq!(Name::from_dotted("").unwrap(), Name::root());
        assert!(matches!(
            Name::from_dotted("a..b"),
            Err(NameError::EmptyLabel(_))
        ));
        assert!(Name::from_dotted(&"a".repeat(63)).is_ok());
        assert!(matches!(
            Name::from_dotted(&"a".repeat(64)),
            Err(NameError::LabelTooLong(_))
        ));
        // 127 one-byte labels: 254 bytes + final zero = 255.
        let max = vec!["a"; 127].join(".");
        assert_eq!(Name::from_dotted(&max).unwrap().wire_len(), 255);
        assert_eq!(
            Name::from_dotted(&format!("b.{max}")),
            Err(NameError::TooLong)
        );
    }

    #[test]
    fn child_keeps_dots_inside_a_label() {
        let n = Name::from_dotted("_ssh._tcp.local")
            .unwrap()
            .child(b"My Box v1.0")
            .unwrap();
        assert_eq!(n.labels().count(), 4);
        assert_eq!(n.to_string(), "My\\032Box\\032v1\\.0._ssh._tcp.local");
    }
}
