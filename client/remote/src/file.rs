//! `file://` targets: a local directory, with the same promise as over SSH
//! (a name appears only complete: temporary, fsync, rename, fsync of the
//! directory).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::{Entry, PART_PREFIX, Remote, RemoteError, check_name, part_name};

/// A local directory as a remote.
#[derive(Debug, Clone)]
pub struct FileRemote {
    dir: PathBuf,
}

fn local(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RemoteError {
    let path = path.to_path_buf();
    move |source| RemoteError::Local { op, path, source }
}

impl FileRemote {
    /// A remote in `dir` (relative paths are relative to the process's
    /// working directory, as duplicity's `file://relative`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileRemote { dir: dir.into() }
    }

    fn path(&self, name: &str) -> Result<PathBuf, RemoteError> {
        check_name(name)?;
        Ok(self.dir.join(name))
    }

    fn write_part(&self, part: &Path, name: &str, data: &mut dyn Read) -> Result<u64, RemoteError> {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(part).map_err(local("creating", part))?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(RemoteError::Source { name: name.to_string(), source }),
            };
            file.write_all(&buf[..n]).map_err(local("writing", part))?;
            total += n as u64;
        }
        file.sync_data().map_err(local("syncing", part))?;
        Ok(total)
    }
}

impl Remote for FileRemote {
    fn list(&self) -> Result<Vec<Entry>, RemoteError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(local("listing", &self.dir))? {
            let entry = entry.map_err(local("listing", &self.dir))?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            if name.starts_with(PART_PREFIX) {
                continue;
            }
            let meta = entry.metadata().map_err(local("reading the size of", &entry.path()))?;
            if meta.is_file() {
                out.push(Entry { name, size: meta.len() });
            }
        }
        Ok(out)
    }

    fn put(&self, name: &str, data: &mut dyn Read) -> Result<u64, RemoteError> {
        let target = self.path(name)?;
        let part = self.dir.join(part_name(name));
        let written = match self.write_part(&part, name, data) {
            Ok(n) => n,
            Err(e) => {
                // Best effort: the temporary's name never looks complete anyway.
                let _ = fs::remove_file(&part);
                return Err(e);
            }
        };
        if let Err(e) = fs::rename(&part, &target) {
            let _ = fs::remove_file(&part);
            return Err(local("renaming into place", &target)(e));
        }
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(local("syncing", &self.dir))?;
        Ok(written)
    }

    fn get(&self, name: &str) -> Result<Box<dyn Read + Send>, RemoteError> {
        let path = self.path(name)?;
        Ok(Box::new(File::open(&path).map_err(local("opening", &path))?))
    }

    fn delete(&self, name: &str) -> Result<(), RemoteError> {
        let path = self.path(name)?;
        fs::remove_file(&path).map_err(local("deleting", &path))
    }

    fn create_dir(&self) -> Result<(), RemoteError> {
        fs::create_dir_all(&self.dir).map_err(local("creating", &self.dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that yields some bytes and then fails, as a producer that dies.
    struct Failing(usize);

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("producer died"));
            }
            let n = self.0.min(buf.len());
            buf[..n].fill(7);
            self.0 -= n;
            Ok(n)
        }
    }

    fn names(r: &FileRemote) -> Vec<(String, u64)> {
        let mut v: Vec<_> = r.list().expect("list").into_iter().map(|e| (e.name, e.size)).collect();
        v.sort();
        v
    }

    #[test]
    fn round_trips_and_listing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let r = FileRemote::new(tmp.path().join("a/b"));
        assert!(r.list().is_err());
        r.create_dir().expect("mkdir -p");
        r.create_dir().expect("mkdir -p again");
        let big: Vec<u8> = (0..5 << 20).map(|i: u32| (i % 251) as u8).collect();
        for (name, data) in [("empty", Vec::new()), ("one", vec![1]), ("big", big)] {
            assert_eq!(r.put(name, &mut &data[..]).expect("put"), data.len() as u64);
            let mut back = Vec::new();
            r.get(name).expect("get").read_to_end(&mut back).expect("read");
            assert_eq!(back, data, "{name}");
        }
        fs::create_dir(tmp.path().join("a/b/subdir")).expect("subdir");
        assert_eq!(names(&r), vec![("big".into(), 5 << 20), ("empty".into(), 0), ("one".into(), 1)]);
        r.put("one", &mut &b"replaced"[..]).expect("replace");
        assert_eq!(fs::read(tmp.path().join("a/b/one")).expect("read"), b"replaced");
        r.delete("one").expect("delete");
        let err = r.delete("one").expect_err("gone");
        assert!(err.is_not_found() && err.to_string().contains("deleting"), "{err}");
        let Err(gone) = r.get("one") else { panic!("a deleted file opened") };
        assert!(gone.is_not_found());
        assert!(matches!(r.put("../x", &mut &b""[..]), Err(RemoteError::InvalidName { .. })));
    }

    #[test]
    fn an_interrupted_put_leaves_no_name() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let r = FileRemote::new(tmp.path());
        let err = r.put("vol1", &mut Failing(300_000)).expect_err("source fails");
        assert!(err.to_string().contains("reading the data for vol1: producer died"), "{err}");
        assert_eq!(fs::read_dir(tmp.path()).expect("dir").count(), 0);
        // A temporary left by a crash is never listed.
        fs::write(tmp.path().join(part_name("vol2")), b"half").expect("write");
        assert!(names(&r).is_empty());
    }
}
