//! Client paths, normalised lexically into a path relative to the user's root.
//! Every user sees their area as `/`; relative paths start there too.

use thiserror::Error;

/// Prefix of in-progress upload names. Clients can neither see nor name them.
pub const UPLOAD_PREFIX: &[u8] = b".coffer-upload-";

/// A client path that cannot name anything.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathError {
    #[error("path contains a NUL byte")]
    Nul,
    #[error("path names a reserved in-progress upload")]
    Reserved,
    #[error("path is longer than 4096 bytes")]
    TooLong,
}

/// A normalised path inside a jail: components without `.`, `..` or empty
/// parts; the empty list is the root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JailPath {
    components: Vec<Vec<u8>>,
}

impl JailPath {
    pub fn root() -> Self {
        JailPath { components: Vec::new() }
    }

    /// Normalises what a client sent. `..` at the root stays at the root, as
    /// it does for a chrooted process.
    pub fn parse(client: &[u8]) -> Result<Self, PathError> {
        if client.len() > 4096 {
            return Err(PathError::TooLong);
        }
        if client.contains(&0) {
            return Err(PathError::Nul);
        }
        let mut components: Vec<Vec<u8>> = Vec::new();
        for part in client.split(|&b| b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    components.pop();
                }
                name => {
                    if name.starts_with(UPLOAD_PREFIX) {
                        return Err(PathError::Reserved);
                    }
                    components.push(name.to_vec());
                }
            }
        }
        Ok(JailPath { components })
    }

    pub fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    pub fn components(&self) -> &[Vec<u8>] {
        &self.components
    }

    /// The path relative to the jail root, as given to `openat2` (`.` for the root).
    pub fn relative(&self) -> Vec<u8> {
        if self.components.is_empty() {
            return b".".to_vec();
        }
        self.components.join(&b'/')
    }

    /// The path as the client sees it, always absolute.
    pub fn display(&self) -> Vec<u8> {
        let mut out = b"/".to_vec();
        out.extend(self.components.join(&b'/'));
        out
    }

    /// Splits off the last component; `None` for the root.
    pub fn split_last(&self) -> Option<(JailPath, &[u8])> {
        let (last, parent) = self.components.split_last()?;
        Some((JailPath { components: parent.to_vec() }, last))
    }

    pub fn join(&self, name: &[u8]) -> Result<Self, PathError> {
        let mut joined = self.display();
        joined.push(b'/');
        joined.extend_from_slice(name);
        JailPath::parse(&joined)
    }

    pub fn file_name(&self) -> Option<&[u8]> {
        self.components.last().map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalisation_table() {
        let d = |s: &str| String::from_utf8(JailPath::parse(s.as_bytes()).unwrap().display()).unwrap();
        assert_eq!(d(""), "/");
        assert_eq!(d("."), "/");
        assert_eq!(d("backup/home"), "/backup/home");
        assert_eq!(d("/backup//home/."), "/backup/home");
        assert_eq!(d("../../etc/passwd"), "/etc/passwd");
        assert_eq!(d("a/../../b"), "/b");
        assert_eq!(d("//abs/path"), "/abs/path");
        assert!(JailPath::parse(b"a/.coffer-upload-1234").is_err());
        assert!(JailPath::parse(b"a\0b").is_err());
    }

    proptest! {
        #[test]
        fn never_leaves_the_root(parts in proptest::collection::vec(prop_oneof![Just("..".to_string()), Just(".".to_string()), Just(String::new()), "[a-z.]{1,4}"], 0..12)) {
            let s = parts.join("/");
            if let Ok(p) = JailPath::parse(s.as_bytes()) {
                for c in p.components() {
                    prop_assert!(c.as_slice() != b".." && c.as_slice() != b"." && !c.is_empty() && !c.contains(&b'/'));
                }
                prop_assert_eq!(JailPath::parse(&p.display()).unwrap(), p);
            }
        }
    }
}
