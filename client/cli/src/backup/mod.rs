//! `coffer-client backup`: one run, from the target's file names to an
//! uploaded set. The plan (`crate::plan`) says full or incremental; the
//! chain's sigtars give each path's previous record (`previous`); the
//! source is walked in duplicity's order (`coffer_select`) beside them, and
//! each path becomes nothing, a snapshot, a delta or a deletion (`decide`);
//! the volume writer cuts the entries into volumes that are sealed and
//! uploaded as they fill (`upload`), the signatures go into the set's sigtar,
//! and the manifest goes last, so an interrupted run leaves a set that
//! neither tool mistakes for a complete one.

mod changes;
mod compressible;
mod data;
mod decide;
mod meta;
mod pipe;
mod previous;
mod seal;
mod upload;

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use coffer_archive::{Change, Entry, FileType, Footer, Index, Kind, Manifest, Meta, SigTarWriter, VolumeWriter};
use coffer_duplicity::{ArchiveName, Collection, FileInfo, FileRole, SetKind, format_stamp};
use coffer_remote::Remote;
use coffer_select::{Selection, Walk};

use crate::plan::{BackupOptions, PlanError, Reason, SetPlan, plan_backup};
use changes::Changes;
use decide::{Action, decide};
use previous::{PreviousState, Record};
pub(crate) use seal::{Opener, Protection};
use upload::Uploads;


/// Everything one run needs from the command line.
pub(crate) struct BackupArgs<'k> {
    pub source: PathBuf,
    pub options: BackupOptions,
    pub excludes: Vec<String>,
    pub exclude_if_present: Vec<String>,
    pub exclude_caches: bool,
    pub volsize_mb: u64,
    pub protection: Protection<'k>,
    /// Opens the chain's signature files.
    pub opener: Opener<'k>,
}

/// What a run did.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub set_name: String,
    pub new: u64,
    pub changed: u64,
    pub deleted: u64,
    pub unchanged: u64,
    /// Paths that could not be read; the run went on without them.
    pub skipped: u64,
    pub volumes: usize,
    pub bytes: u64,
}

/// Runs one backup of `args.source` to `remote` at `now`.
pub(crate) fn run(remote: &dyn Remote, args: &BackupArgs<'_>, now: i64) -> Result<Outcome> {
    let source = std::path::absolute(&args.source).with_context(|| format!("finding {}", args.source.display()))?;
    // A missing or unmounted source must not become a backup of nothing,
    // which would record every file as deleted.
    let is_dir = std::fs::metadata(&source).with_context(|| format!("reading the source {}", source.display()))?.is_dir();
    anyhow::ensure!(is_dir, "the source {} is not a directory", source.display());
    remote.create_dir().context("creating the target directory")?;
    let files: Vec<FileInfo> = remote.list()?.into_iter().map(|e| FileInfo { name: e.name, mtime: 0, ctime: 0, size: e.size }).collect();
    let collection = Collection::from_files(&files);
    let plan = match plan_backup(&collection, args.options, now) {
        // A run in the same second as the last set: wait for the next one,
        // as set times must grow (duplicity's names are whole seconds).
        Err(PlanError::ClockBehind { newest, .. }) if newest == now => {
            std::thread::sleep(std::time::Duration::from_millis(1000));
            plan_backup(&collection, args.options, now + 1)?
        }
        other => other?,
    };
    for name in &plan.leftovers {
        match remote.delete(name) {
            Ok(()) => log::info!("removed {name}, left by an interrupted run"),
            Err(e) => log::warn!("{name} is left by an interrupted run and cannot be removed ({e}); it is ignored"),
        }
    }
    let (set, mut previous) = match plan.set {
        SetPlan::Full { time } => (ArchiveName { kind: SetKind::Full, role: FileRole::Manifest, start: None, end: time, encrypted: false, partial: false, prefix: String::new() }, PreviousState::empty()),
        SetPlan::Incremental { start, end } => {
            let sigtars = chain_sigtars(remote, &collection, &args.opener)?;
            (ArchiveName { kind: SetKind::Incremental, role: FileRole::Manifest, start: Some(start), end, encrypted: false, partial: false, prefix: String::new() }, PreviousState::new(sigtars)?)
        }
    };
    match plan.reason {
        Reason::NoChain => log::info!("no backup chain at the target yet: a full backup"),
        Reason::Forced => log::info!("--full: a new chain"),
        Reason::ChainTooOld { full_time } => log::info!("the chain began {}: a new chain", format_stamp(full_time)),
        Reason::Continues => log::info!("an incremental backup"),
    }
    let staging = tempfile::Builder::new().prefix("coffer-client-").tempdir().context("making a staging directory")?;
    let workers = if args.protection.encrypted() { std::thread::available_parallelism().map_or(2, usize::from) } else { 0 };
    let (jobs, queue) = std::sync::mpsc::sync_channel(workers.max(1));
    let (done_tx, done) = std::sync::mpsc::channel();
    let queue = std::sync::Mutex::new(queue);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (queue, done_tx, protection) = (&queue, done_tx.clone(), &args.protection);
            scope.spawn(move || upload::work(queue, &done_tx, remote, protection));
        }
        drop(done_tx);
        let uploads = Uploads {
            remote,
            staging: staging.path().to_path_buf(),
            protection: &args.protection,
            set,
            volumes: Vec::new(),
            bytes: 0,
            jobs: (workers > 0).then_some(jobs),
        };
        write_set(&source, args, uploads, &mut previous, done)
    })
}

/// Writes the set: volumes, signatures, manifest.
fn write_set(
    source: &Path,
    args: &BackupArgs<'_>,
    uploads: Uploads<'_, '_>,
    previous: &mut PreviousState<'_>,
    done: std::sync::mpsc::Receiver<std::io::Result<upload::Stored>>,
) -> Result<Outcome> {
    let mut sig_staged = uploads.start(FileRole::Signatures, true)?;
    let mut sigtar = SigTarWriter::new(std::mem::replace(&mut sig_staged.sealed, Box::new(seal::Discard)));
    let footer = if args.protection.encrypted() { Footer::Record } else { Footer::None };
    let mut volumes = VolumeWriter::new(uploads, args.volsize_mb.saturating_mul(1 << 20), footer);
    let selection = Selection::new(source, &args.excludes, &args.exclude_if_present, args.exclude_caches)?;
    let mut outcome = Outcome::default();
    let mut writer = EntryWriter {
        volumes: &mut volumes,
        sigtar: &mut sigtar,
        names: meta::Names::load(),
        links: HashMap::new(),
        changes: Changes::new().context("making a temporary file for the list of changed files")?,
    };
    let mut record = previous.next_record()?;
    // Directories that could not be read: what the chain holds under them
    // is kept as it was, never recorded as deleted.
    let mut unreadable: Vec<Index> = Vec::new();
    for item in Walk::new(source, selection) {
        let found = match item {
            Ok(found) => found,
            Err(e) => {
                log::warn!("skipped {e}");
                outcome.skipped += 1;
                if let Ok(relative) = e.path.strip_prefix(source) {
                    unreadable.push(Index::from_bytes(relative.as_os_str().as_bytes()));
                }
                continue;
            }
        };
        let index = Index::from_bytes(&found.relative);
        while let Some(r) = record.take_if(|r| r.index < index) {
            if !unreadable.iter().any(|u| r.index.starts_with(u)) {
                writer.deleted(&r, &mut outcome)?;
            }
            record = previous.next_record()?;
        }
        let here = record.take_if(|r| r.index == index);
        if here.is_some() {
            record = previous.next_record()?;
        }
        if let Err(e) = writer.path(&found.path, &found.meta, index, here.as_ref(), &mut outcome) {
            if e.downcast_ref::<Unreadable>().is_none() {
                return Err(e);
            }
            log::warn!("skipped {e:#}");
            outcome.skipped += 1;
        }
    }
    while let Some(r) = record {
        if !unreadable.iter().any(|u| r.index.starts_with(u)) {
            writer.deleted(&r, &mut outcome)?;
        }
        record = previous.next_record()?;
    }
    let EntryWriter { changes, .. } = writer;
    let mut uploads = volumes.finish()?;
    uploads.collect(done)?;
    sig_staged.sealed = sigtar.finish()?;
    uploads.store(sig_staged)?;
    // The source as given, as duplicity records it: it compares the text
    // with its own argument before continuing a chain.
    let manifest = Manifest { hostname: Some(hostname()), localdir: Some(args.source.as_os_str().as_bytes().to_vec()), volumes: std::mem::take(&mut uploads.volumes), files_changed: None };
    outcome.volumes = manifest.volumes.len();
    let mut staged = uploads.start(FileRole::Manifest, false)?;
    std::io::Write::write_all(&mut staged, &manifest.to_bytes())?;
    changes.write_section(&mut staged)?;
    uploads.store(staged)?;
    outcome.bytes = uploads.bytes;
    outcome.set_name = uploads.name(FileRole::Manifest);
    Ok(outcome)
}

/// A path that could not be read before anything of it was written: the
/// run reports it and goes on.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
struct Unreadable {
    path: String,
    source: std::io::Error,
}

fn unreadable(path: &Path, source: std::io::Error) -> anyhow::Error {
    Unreadable { path: path.display().to_string(), source }.into()
}

/// Writes each path's entries into the volumes and the sigtar.
struct EntryWriter<'w, 'u, 'k> {
    volumes: &'w mut VolumeWriter<Uploads<'u, 'k>>,
    sigtar: &'w mut SigTarWriter<Box<dyn seal::Sealed + 'u>>,
    names: meta::Names,
    /// The first path seen of each (device, inode) with more than one link.
    links: HashMap<(u64, u64), Index>,
    /// The manifest's list of new, changed and deleted regular files.
    changes: Changes,
}

impl EntryWriter<'_, '_, '_> {
    /// A path the previous sets had and the walk no longer finds.
    fn deleted(&mut self, record: &Record, outcome: &mut Outcome) -> Result<()> {
        if record.previous.kind == Kind::Deleted || record.index.is_root() {
            return Ok(());
        }
        let entry = Entry { kind: Kind::Deleted, index: record.index.clone(), meta: Meta::deleted() };
        self.volumes.push(&entry, &mut std::io::empty())?;
        self.sigtar.append(&entry, 0, &mut std::io::empty())?;
        if record.previous.meta.file_type == FileType::Regular {
            self.changes.record(Change::Deleted, record.index.as_bytes())?;
        }
        outcome.deleted += 1;
        Ok(())
    }

    fn path(&mut self, path: &Path, stat: &std::fs::Metadata, index: Index, previous: Option<&Record>, outcome: &mut Outcome) -> Result<()> {
        let Some(file_type) = meta::file_type(path, stat).map_err(|e| unreadable(path, e))? else {
            log::info!("{}: a socket, left out as duplicity does", path.display());
            return Ok(());
        };
        let stored = meta::stored_meta(stat, file_type, &self.names);
        let action = decide(&stored, previous.map(|r| &r.previous));
        let change = match action {
            Action::Unchanged => {
                outcome.unchanged += 1;
                return Ok(());
            }
            Action::Snapshot if previous.is_some_and(|r| r.previous.kind != Kind::Deleted) => {
                outcome.changed += 1;
                Change::Changed
            }
            Action::Snapshot => {
                outcome.new += 1;
                Change::New
            }
            Action::Diff => {
                outcome.changed += 1;
                Change::Changed
            }
        };
        if stored.file_type != FileType::Regular {
            self.volumes.push(&Entry { kind: Kind::Snapshot, index: index.clone(), meta: stored.clone() }, &mut std::io::empty())?;
            self.sigtar.append(&Entry { kind: Kind::Snapshot, index, meta: stored }, 0, &mut std::io::empty())?;
            return Ok(());
        }
        let file = std::fs::File::open(path).map_err(|e| unreadable(path, e))?;
        let mut in_volume = stored.clone();
        if stat.nlink() > 1 {
            match self.links.get(&(stat.dev(), stat.ino())) {
                Some(first) => in_volume.extra_pax.push((coffer_archive::HARDLINK_PAX_KEY.to_vec(), first.as_bytes().to_vec())),
                None => {
                    self.links.insert((stat.dev(), stat.ino()), index.clone());
                }
            }
        }
        let signature = match (action, previous.and_then(|r| r.signature.as_deref())) {
            (Action::Diff, Some(old)) => {
                let old = coffer_rsync::Signature::from_bytes(old, u64::MAX).with_context(|| format!("the previous signature of {}", path.display()))?;
                let mut reader = data::Delta::new(file, stat.len(), &old);
                self.volumes.push(&Entry { kind: Kind::Diff, index: index.clone(), meta: in_volume }, &mut reader).with_context(|| format!("reading {}", path.display()))?;
                reader.finish()?
            }
            _ => {
                let mut reader = data::Signed::new(file, stat.len());
                self.volumes.push(&Entry { kind: Kind::Snapshot, index: index.clone(), meta: in_volume }, &mut reader).with_context(|| format!("reading {}", path.display()))?;
                reader.finish()?
            }
        };
        self.changes.record(change, index.as_bytes())?;
        self.sigtar.append(&Entry { kind: Kind::Signature, index, meta: stored }, signature.len() as u64, &mut &signature[..])?;
        Ok(())
    }
}

/// The plain sigtars of the newest chain, oldest first.
fn chain_sigtars<'k>(remote: &dyn Remote, collection: &Collection, opener: &Opener<'k>) -> Result<Vec<(String, Box<dyn Read + 'k>)>> {
    let Some(chain) = collection.chains.last() else { bail!("no chain to continue") };
    let mut out = Vec::new();
    for &i in &chain.sets {
        let set = &collection.sets[i];
        let Some(name) = set.signatures.first() else {
            bail!("the set {} has no signature file at the target; run with --full to start a new chain", set.key())
        };
        let stream = remote.get(name).with_context(|| format!("reading {name}"))?;
        out.push((name.clone(), opener.open(name, stream)?));
    }
    Ok(out)
}

/// The host name duplicity records and checks (`socket.gethostname()`).
fn hostname() -> Vec<u8> {
    std::fs::read("/proc/sys/kernel/hostname").map(|mut h| {
        while h.last().is_some_and(u8::is_ascii_whitespace) {
            h.pop();
        }
        h
    }).unwrap_or_default()
}
