//! Volumes on their way to the target, recorded (range and SHA-1) for the
//! manifest. Gzipped volumes are sealed while the volume writer fills them
//! (duplicity cuts them on their compressed size) and uploaded at once.
//! Encrypted volumes are cut on their plain size, so the writer fills a
//! plain staging file and hands it to the workers ([`work`]): one thread
//! per core encrypts and uploads while the walk goes on (the encrypted
//! bytes go straight into the upload), and the queue between them is
//! bounded, so at most a few plain volumes wait on disk.

use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};

use coffer_archive::{VolumeInfo, VolumeRange, Volumes};
use coffer_duplicity::{ArchiveName, FileRole};
use coffer_remote::Remote;

use super::compressible::worth_compressing;
use super::pipe::pipe;
use super::seal::{Counted, Protection, Sealed, Tally};

/// Where the volume writer's volumes go.
pub(super) struct Uploads<'a, 'k> {
    pub remote: &'a dyn Remote,
    pub staging: PathBuf,
    pub protection: &'a Protection<'k>,
    /// The set's name with a placeholder role.
    pub set: ArchiveName,
    /// Every finished volume, in order.
    pub volumes: Vec<VolumeInfo>,
    /// Bytes stored so far.
    pub bytes: u64,
    /// Where encrypted volumes go to be sealed and uploaded; `None` seals
    /// and uploads here.
    pub jobs: Option<SyncSender<Job>>,
}

/// A filled plain volume for a worker.
pub(super) struct Job {
    range: VolumeRange,
    plain: PathBuf,
    name: String,
}

/// A volume a worker stored.
pub(super) struct Stored {
    range: VolumeRange,
    sha1: String,
    bytes: u64,
}

/// An archive file being written to its staging file.
pub(super) struct Staged<'a> {
    pub(super) sealed: Box<dyn Sealed + 'a>,
    /// What the staging file holds so far.
    tally: Arc<Tally>,
    /// Bytes written into the stream, before compression or encryption.
    plain: u64,
    path: PathBuf,
    name: String,
}

impl Write for Staged<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.sealed.write(buf)?;
        self.plain += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sealed.flush()
    }
}

impl<'a> Uploads<'a, '_> {
    /// Finishes a staged file (`sealed` may have been taken out and put back)
    /// and stores it under its name; its SHA-1 in hex.
    pub(super) fn store(&mut self, staged: Staged<'_>) -> io::Result<String> {
        staged.sealed.finish()?;
        let sha1 = staged.tally.sha1_hex();
        self.bytes += put(self.remote, &staged.path, &staged.name)?;
        std::fs::remove_file(&staged.path)?;
        log::info!("stored {}", staged.name);
        Ok(sha1)
    }

    /// A fresh staging file for the set's file in `role`, sealed;
    /// `compress` is false for the manifest.
    pub(super) fn start(&self, role: FileRole, compress: bool) -> io::Result<Staged<'a>> {
        let name = self.name(role);
        let path = self.staging.join(&name);
        let counted = Counted::create(&path)?;
        let tally = counted.tally();
        Ok(Staged { sealed: self.protection.seal(counted, compress)?, tally, plain: 0, path, name })
    }

    /// The file name of this set's file in `role`.
    pub(super) fn name(&self, role: FileRole) -> String {
        ArchiveName { role, encrypted: self.protection.encrypted(), ..self.set.clone() }.file_name()
    }
}

impl<'a> Volumes for Uploads<'a, '_> {
    type Sink = Staged<'a>;

    fn open(&mut self, number: u32) -> io::Result<Staged<'a>> {
        if self.jobs.is_none() {
            return self.start(FileRole::Volume(number), true);
        }
        let name = self.name(FileRole::Volume(number));
        let path = self.staging.join(format!("{name}.plain"));
        let counted = Counted::create(&path)?;
        let tally = counted.tally();
        Ok(Staged { sealed: super::seal::plain(counted), tally, plain: 0, path, name })
    }

    /// Gzip holds back little, so its output decides, as in duplicity. The
    /// OpenPGP writer holds back up to 4 MiB in each of its two packet
    /// layers, so its output lags far behind: the plain bytes (never fewer
    /// than the encrypted ones, archives being mostly incompressible)
    /// keep a volume within its size.
    fn output_len(&self, sink: &Staged<'a>) -> u64 {
        if self.protection.encrypted() { sink.plain } else { sink.tally.written() }
    }

    fn close(&mut self, sink: Staged<'a>, range: VolumeRange) -> io::Result<()> {
        if let Some(jobs) = &self.jobs {
            sink.sealed.finish()?;
            let job = Job { range, plain: sink.path, name: sink.name };
            return jobs.send(job).map_err(|_| io::Error::other("the volume workers stopped"));
        }
        let sha1 = self.store(sink)?;
        self.volumes.push(VolumeInfo::new(range, &sha1));
        Ok(())
    }
}

impl Uploads<'_, '_> {
    /// Records what the workers stored, in volume order, once the queue is
    /// closed; the first failure of any volume fails the run.
    pub(super) fn collect(&mut self, done: Receiver<io::Result<Stored>>) -> io::Result<()> {
        self.jobs = None;
        let mut stored = done.into_iter().collect::<io::Result<Vec<Stored>>>()?;
        stored.sort_by_key(|s| s.range.number);
        for s in stored {
            self.bytes += s.bytes;
            self.volumes.push(VolumeInfo::new(s.range, &s.sha1));
        }
        Ok(())
    }
}

/// One worker: takes filled plain volumes, seals and uploads them, until
/// the queue closes.
pub(super) fn work(jobs: &Mutex<Receiver<Job>>, done: &Sender<io::Result<Stored>>, remote: &dyn Remote, protection: &Protection<'_>) {
    loop {
        let job = match jobs.lock().map(|rx| rx.recv()) {
            Ok(Ok(job)) => job,
            _ => return,
        };
        let result = seal_and_store(&job, remote, protection);
        let _ = std::fs::remove_file(&job.plain);
        if done.send(result).is_err() {
            return;
        }
    }
}

fn seal_and_store(job: &Job, remote: &dyn Remote, protection: &Protection<'_>) -> io::Result<Stored> {
    let mut plain = std::fs::File::open(&job.plain)?;
    let len = plain.metadata()?.len();
    let compress = worth_compressing(&mut plain, len)?;
    plain.rewind()?;
    // Sealed on a thread of its own straight into the upload: the
    // encrypted bytes are never staged.
    let (writer, mut sealed_bytes) = pipe();
    let done = writer.clone();
    let counted = Counted::new(writer);
    let tally = counted.tally();
    let bytes = std::thread::scope(|scope| {
        let sealing = scope.spawn(move || -> io::Result<()> {
            let mut sealed = protection.seal(counted, compress)?;
            io::copy(&mut plain, &mut sealed)?;
            sealed.finish()?;
            done.finish()
        });
        let uploaded = remote.put(&job.name, &mut sealed_bytes).map_err(|e| io::Error::other(format!("uploading {}: {e}", job.name)));
        // An upload that failed leaves the sealing thread writing into a
        // closed pipe, which fails it at its next write.
        drop(sealed_bytes);
        let sealed = sealing.join().unwrap_or_else(|_| Err(io::Error::other("the sealing thread panicked")));
        match (sealed, uploaded) {
            // The upload's own error says why the pipe broke.
            (Err(e), Err(upload)) if e.kind() == io::ErrorKind::BrokenPipe => Err(upload),
            (Err(e), _) | (Ok(()), Err(e)) => Err(e),
            (Ok(()), Ok(bytes)) => Ok(bytes),
        }
    })?;
    log::info!("stored {}", job.name);
    Ok(Stored { range: job.range.clone(), sha1: tally.sha1_hex(), bytes })
}

/// Uploads a finished staging file as `name`.
fn put(remote: &dyn Remote, path: &Path, name: &str) -> io::Result<u64> {
    let mut file = std::fs::File::open(path)?;
    remote.put(name, &mut file).map_err(|e| io::Error::other(format!("uploading {name}: {e}")))
}
