//! The file limit of users without one of their own, made from the data
//! area's inode count, and any user's file limit in words.

use std::path::Path;

/// File limit of users without one of their own: a tenth of the data
/// area's inodes (`statvfs` f_files). None where the file system reports no
/// inode count (btrfs allocates inodes as needed) or the area is missing.
pub(crate) fn default_limit(data_dir: &Path) -> Option<u64> {
    let v = rustix::fs::statvfs(data_dir).ok()?;
    (v.f_files > 0).then(|| coffer_quota::default_file_limit(v.f_files))
}

/// A user's file limit in words: their own, or the default and how it is made.
pub(crate) fn describe(own: Option<u64>, default: Option<u64>) -> String {
    match (own, default) {
        (Some(n), _) => n.to_string(),
        (None, Some(n)) => format!("{n} (the default: 1/{} of the data area's inodes)", coffer_quota::DEFAULT_FILES_DIVISOR),
        (None, None) => "none (the data area's file system reports no inode count)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_of_their_own_comes_before_the_default() {
        assert_eq!(describe(Some(10), Some(99)), "10");
        assert!(describe(None, Some(99)).starts_with("99 (the default: 1/"));
        assert!(describe(None, None).starts_with("none"));
    }
}
