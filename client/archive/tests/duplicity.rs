//! Against the real thing: Debian's duplicity 0.8 backs up a tree with
//! awkward names (full, then incremental), and every volume, sigtar and
//! manifest it wrote is read with `TarReader`/`Manifest::parse` and written
//! again with `VolumeWriter`/`SigTarWriter`/`Manifest`, byte for byte. Then
//! duplicity's own tarfile module reads what our writer produced.
//!
//! Skipped (with a note on stderr) when /usr/bin/duplicity is missing.

#![allow(clippy::unwrap_used, reason = "test code: a failed file operation or tool run fails the test")]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use coffer_archive::{
    Entry, FileType, Footer, Index, Kind, Manifest, Meta, PIECE_SIZE, SigTarWriter, TarReader, VolumeInfo, VolumeRange,
    VolumeWriter, Volumes,
};
use sha1::{Digest, Sha1};

const DUPLICITY: &str = "/usr/bin/duplicity";
const PASSPHRASE: &str = "coffer test";

/// Incompressible bytes (xorshift), so volumes fill as with real data.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn name(bytes: &[u8]) -> PathBuf {
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

fn build_tree(src: &Path) {
    fs::create_dir_all(src.join("dir1")).unwrap();
    fs::create_dir_all(src.join("sp ace")).unwrap();
    fs::write(src.join("a.txt"), b"hello\n").unwrap();
    fs::write(src.join("dir1/big.bin"), noise(2_500_000, 1)).unwrap();
    fs::write(src.join("dir1/exact64k"), noise(65536, 2)).unwrap();
    fs::write(src.join("dir1/just-under"), noise(65535, 3)).unwrap();
    fs::write(src.join("a.b"), b"sorts after the directory a\n").unwrap();
    fs::create_dir_all(src.join("a")).unwrap();
    fs::write(src.join("a/b"), b"inside a\n").unwrap();
    fs::write(src.join("empty"), b"").unwrap();
    symlink("a.txt", src.join("link")).unwrap();
    symlink(name(b"target-\xff-\n"), src.join("odd link")).unwrap();
    let status = Command::new("mkfifo").arg(src.join("fifo")).status().unwrap();
    assert!(status.success());
    fs::write(src.join(name(b"bad\xff\xfename")), b"x").unwrap();
    fs::write(src.join(name(b"new\nline")), b"y").unwrap();
    fs::write(src.join("quo\"te's\\x"), b"z").unwrap();
    fs::write(src.join("h\u{e9}llo \u{65e5}\u{672c}"), b"w").unwrap();
    let deep = src.join("d".repeat(60)).join("e".repeat(70));
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("f"), b"long name\n").unwrap();
    fs::hard_link(src.join("a.txt"), src.join("hard")).unwrap();
}

fn edit_tree(src: &Path) {
    let mut big = fs::OpenOptions::new().append(true).open(src.join("dir1/big.bin")).unwrap();
    big.write_all(&noise(300_000, 9)).unwrap();
    fs::remove_file(src.join("empty")).unwrap();
    fs::remove_dir_all(src.join("a")).unwrap();
    fs::write(src.join("a.txt"), b"hello again, longer now\n").unwrap();
    fs::write(src.join(name(b"added\xc0")), noise(1_200_000, 4)).unwrap();
}

fn run_duplicity(action: &str, src: &Path, work: &Path) {
    run_duplicity_with(action, src, work, &["--no-encryption"]);
}

fn run_duplicity_with(action: &str, src: &Path, work: &Path, options: &[&str]) {
    let gnupg = work.join("gnupg");
    fs::create_dir_all(&gnupg).unwrap();
    fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let out = Command::new(DUPLICITY)
        .arg(action)
        .args(options)
        .args(["--volsize", "1", "--name", "t"])
        .arg("--archive-dir")
        .arg(work.join("cache"))
        .arg(src)
        .arg(format!("file://{}", work.join("remote").display()))
        .env("PASSPHRASE", PASSPHRASE)
        .env("GNUPGHOME", &gnupg)
        .output()
        .unwrap();
    assert!(out.status.success(), "duplicity {action}: {}", String::from_utf8_lossy(&out.stderr));
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(path).unwrap()).read_to_end(&mut out).unwrap();
    out
}

/// Every entry of a tar stream: header and data.
fn read_all(tar: &[u8]) -> Vec<(coffer_archive::Header, Vec<u8>)> {
    let mut reader = TarReader::new(tar);
    let mut entries = Vec::new();
    while let Some(header) = reader.next_header().unwrap() {
        let mut data = Vec::new();
        reader.data().read_to_end(&mut data).unwrap();
        assert_eq!(data.len() as u64, header.size);
        entries.push((header, data));
    }
    entries
}

/// What duplicity's `GzipFile` has written after each of `blocks` (the
/// 10-byte header, then what zlib returns per write), and after each of
/// `tails` appended to all of `blocks`, computed by Python's own zlib: the
/// library duplicity uses (zlib-rs and miniz buffer differently, so their
/// counts would not say where duplicity cuts).
fn python_gzip_counts(blocks: &[&[u8]], tails: &[&[u8]]) -> (Vec<u64>, Vec<u64>) {
    let mut input = Vec::new();
    for list in [blocks, tails] {
        input.extend_from_slice(&(list.len() as u32).to_le_bytes());
        for block in list {
            input.extend_from_slice(&(block.len() as u32).to_le_bytes());
            input.extend_from_slice(block);
        }
    }
    let script = r#"
import sys, zlib, struct
data = sys.stdin.buffer.read()
at = 0
def take():
    global at
    (n,) = struct.unpack_from("<I", data, at)
    at += 4
    chunk = data[at:at + n]
    at += n
    return chunk
c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS, zlib.DEF_MEM_LEVEL, 0)
count = 10
(nblocks,) = struct.unpack_from("<I", data, at); at += 4
for _ in range(nblocks):
    count += len(c.compress(take()))
    print("b", count)
(ntails,) = struct.unpack_from("<I", data, at); at += 4
for _ in range(ntails):
    print("t", count + len(c.copy().compress(take())))
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    let (mut after_blocks, mut after_tails) = (Vec::new(), Vec::new());
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let (kind, n) = line.split_once(' ').unwrap();
        let n: u64 = n.parse().unwrap();
        if kind == "b" { after_blocks.push(n) } else { after_tails.push(n) }
    }
    (after_blocks, after_tails)
}

/// The byte ranges of a tar stream's blocks as duplicity wrote them: each
/// entry with its extended headers and data.
fn block_ends(tar: &[u8]) -> Vec<usize> {
    let mut reader = TarReader::new(tar);
    let mut ends = Vec::new();
    while reader.next_header().unwrap().is_some() {
        std::io::copy(&mut reader.data(), &mut std::io::sink()).unwrap();
        ends.push(reader.offset().next_multiple_of(512) as usize);
    }
    ends
}

/// Volumes that report, after each block, the output size duplicity's gzip
/// had at the same point of the same volume (from `python_gzip_counts`).
struct CountedVolumes {
    /// Per volume: tar bytes so far → gzip bytes so far.
    counts: Vec<BTreeMap<u64, u64>>,
    done: Vec<(Vec<u8>, VolumeRange)>,
}

struct CountedSink {
    tar: Vec<u8>,
    counts: BTreeMap<u64, u64>,
}

impl Write for CountedSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tar.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CountedVolumes {
    fn for_volumes(tars: &[Vec<u8>]) -> Self {
        let counts = tars
            .iter()
            .map(|tar| {
                let ends = block_ends(tar);
                let mut starts = vec![0];
                starts.extend_from_slice(&ends);
                let blocks: Vec<&[u8]> = ends.iter().zip(&starts).map(|(end, start)| &tar[*start..*end]).collect();
                let (after, _) = python_gzip_counts(&blocks, &[]);
                let mut map: BTreeMap<u64, u64> = ends.iter().map(|e| *e as u64).zip(after).collect();
                map.insert(0, 10);
                map
            })
            .collect();
        Self { counts, done: Vec::new() }
    }
}

impl Volumes for CountedVolumes {
    type Sink = CountedSink;
    fn open(&mut self, number: u32) -> std::io::Result<CountedSink> {
        let counts = self.counts.get(number as usize - 1).cloned().unwrap_or_else(|| BTreeMap::from([(0, 10)]));
        Ok(CountedSink { tar: Vec::new(), counts })
    }
    fn output_len(&self, sink: &CountedSink) -> u64 {
        *sink.counts.get(&(sink.tar.len() as u64)).expect("our blocks end where duplicity's do")
    }
    fn close(&mut self, sink: CountedSink, range: VolumeRange) -> std::io::Result<()> {
        self.done.push((sink.tar, range));
        Ok(())
    }
}

/// The remote files of one set, by role.
struct Set {
    volumes: Vec<PathBuf>,
    manifest: PathBuf,
    sigtar: PathBuf,
}

fn sets(remote: &Path) -> Vec<Set> {
    let mut names: Vec<String> =
        fs::read_dir(remote).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    let mut by_time: BTreeMap<String, Set> = BTreeMap::new();
    for n in names {
        let (kind, rest) = n.split_once('.').unwrap();
        let stamp =
            rest.split(".manifest").next().unwrap().split(".vol").next().unwrap().split(".sigtar").next().unwrap();
        let key = stamp.rsplit(".to.").next().unwrap().to_string();
        let set = by_time.entry(key).or_insert_with(|| Set {
            volumes: Vec::new(),
            manifest: PathBuf::new(),
            sigtar: PathBuf::new(),
        });
        let path = remote.join(&n);
        if n.contains(".manifest") {
            set.manifest = path;
        } else if n.contains(".sigtar") {
            set.sigtar = path;
        } else {
            assert!(kind.starts_with("duplicity-"));
            set.volumes.push(path);
        }
    }
    let mut sets: Vec<Set> = by_time.into_values().collect();
    for set in &mut sets {
        set.volumes.sort_by_key(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n.split(".vol").nth(1).unwrap().split('.').next().unwrap().parse::<u32>().unwrap()
        });
    }
    sets
}

/// Re-creates the writer's input from duplicity's volumes: whole entries,
/// multivolume pieces joined.
fn entries_of(volumes: &[Vec<u8>]) -> Vec<(Entry, Vec<u8>)> {
    let mut out: Vec<(Entry, Vec<u8>)> = Vec::new();
    let mut open_piece: Option<Index> = None;
    for tar in volumes {
        for (header, data) in read_all(tar) {
            let name = header.entry_name().unwrap();
            if name.piece.is_some() && open_piece.as_ref() == Some(&name.index) {
                out.last_mut().unwrap().1.extend_from_slice(&data);
                continue;
            }
            open_piece = name.piece.map(|_| name.index.clone());
            out.push((Entry { kind: name.kind, index: name.index, meta: header.meta }, data));
        }
    }
    out
}

fn sha1_hex(path: &Path) -> String {
    hex::encode(Sha1::digest(fs::read(path).unwrap()))
}

fn check_set(set: &Set, kinds_seen: &mut BTreeMap<String, usize>) {
    // Volumes: the same tar bytes, cut at the same places.
    let tars: Vec<Vec<u8>> = set.volumes.iter().map(|v| gunzip(v)).collect();
    let entries = entries_of(&tars);
    for (entry, _) in &entries {
        let key = format!("{:?}/{:?}", entry.kind, std::mem::discriminant(&entry.meta.file_type));
        *kinds_seen.entry(key).or_default() += 1;
    }
    let mut writer = VolumeWriter::new(CountedVolumes::for_volumes(&tars), 1 << 20, Footer::None);
    for (entry, data) in &entries {
        writer.push(entry, &mut data.as_slice()).unwrap();
    }
    let ours = writer.finish().unwrap().done;
    assert_eq!(ours.len(), tars.len(), "{}: volume count", set.manifest.display());
    for (n, ((tar, _), theirs)) in ours.iter().zip(&tars).enumerate() {
        assert!(tar == theirs, "{}: volume {} differs", set.manifest.display(), n + 1);
    }

    // Manifest: parse and re-encode gives the same bytes; so does one built
    // from our writer's ranges and the SHA-1 of duplicity's files.
    let text = fs::read(&set.manifest).unwrap();
    let parsed = Manifest::parse(&text).unwrap();
    assert_eq!(parsed.to_bytes(), text, "{}", set.manifest.display());
    let built = Manifest {
        hostname: parsed.hostname.clone(),
        localdir: parsed.localdir.clone(),
        volumes: ours
            .iter()
            .zip(&set.volumes)
            .map(|((_, range), file)| VolumeInfo::new(range.clone(), &sha1_hex(file)))
            .collect(),
        files_changed: parsed.files_changed.clone(),
    };
    assert_eq!(String::from_utf8_lossy(&built.to_bytes()), String::from_utf8_lossy(&text));
    assert_eq!(built.to_bytes(), text);

    // Sigtar: every entry read and written again, same bytes.
    let sigtar = gunzip(&set.sigtar);
    let mut writer = SigTarWriter::new(Vec::new());
    for (header, data) in read_all(&sigtar) {
        let name = header.entry_name().unwrap();
        let entry = Entry { kind: name.kind, index: name.index, meta: header.meta };
        *kinds_seen.entry(format!("sigtar {:?}", entry.kind)).or_default() += 1;
        writer.append(&entry, data.len() as u64, &mut data.as_slice()).unwrap();
    }
    assert!(writer.finish().unwrap() == sigtar, "{}: sigtar differs", set.sigtar.display());
}

#[test]
fn duplicity_archives_read_and_rewrite_byte_for_byte() {
    if !Path::new(DUPLICITY).exists() {
        eprintln!("skipped: {DUPLICITY} is not installed");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    build_tree(&src);
    run_duplicity("full", &src, work.path());
    // duplicity names sets by the second: keep the incremental apart.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    edit_tree(&src);
    run_duplicity("incr", &src, work.path());

    let sets = sets(&work.path().join("remote"));
    assert_eq!(sets.len(), 2);
    assert!(sets[0].volumes.len() >= 3, "the full spans volumes");
    let mut kinds = BTreeMap::new();
    for set in &sets {
        check_set(set, &mut kinds);
    }
    eprintln!(
        "volumes per set: {:?}; entries by kind: {kinds:?}",
        sets.iter().map(|s| s.volumes.len()).collect::<Vec<_>>()
    );
    let seen: Vec<&String> = kinds.keys().collect();
    for want in ["Deleted/", "Diff/", "Snapshot/", "sigtar Signature", "sigtar Snapshot", "sigtar Deleted"] {
        assert!(seen.iter().any(|k| k.starts_with(want)), "no {want} entry among {seen:?}");
    }
}

/// Entries with every awkward property, in order, for the Python check.
fn awkward_entries() -> Vec<(Entry, Vec<u8>)> {
    let meta = |file_type| Meta {
        file_type,
        mode: 0o640,
        uid: 1000,
        gid: 100,
        uname: b"user".to_vec(),
        gname: b"users".to_vec(),
        mtime: 1_700_000_000,
        extra_pax: Vec::new(),
    };
    let e = |kind, path: &[u8], file_type| Entry { kind, index: Index::from_bytes(path), meta: meta(file_type) };
    let mut v = vec![
        (e(Kind::Snapshot, b"", FileType::Directory), vec![]),
        (e(Kind::Snapshot, b"a", FileType::Directory), vec![]),
        (e(Kind::Snapshot, b"a/b", FileType::Regular), b"ab".to_vec()),
        (e(Kind::Snapshot, b"a.b", FileType::Symlink(b"t\xff\n".to_vec())), vec![]),
        (e(Kind::Snapshot, b"bad\xff\xfe", FileType::Regular), noise(65536, 5)),
        (e(Kind::Diff, b"c", FileType::Regular), noise(200_000, 6)),
        (e(Kind::Deleted, b"d", FileType::Regular), vec![]),
        (e(Kind::Snapshot, b"dev", FileType::CharDevice { major: 1, minor: 3 }), vec![]),
        (e(Kind::Snapshot, b"fifo", FileType::Fifo), vec![]),
        (e(Kind::Snapshot, "h\u{e9}llo \u{65e5}".as_bytes(), FileType::Regular), b"w".to_vec()),
        (e(Kind::Snapshot, &[b'l'; 150], FileType::Regular), vec![1; 513]),
        (e(Kind::Snapshot, b"new\nline", FileType::Regular), vec![2; 512]),
    ];
    v[2].0.meta.uname = "\u{fc}ser-with-a-very-long-name-over-32-bytes".as_bytes().to_vec();
    v[2].0.meta.uid = 1 << 22;
    v[2].0.meta.extra_pax = vec![(b"COFFER.hardlink".to_vec(), b"a.b".to_vec())];
    v
}

#[test]
fn duplicitys_tarfile_reads_what_we_write() {
    let python = Path::new("/usr/bin/python3");
    if !python.exists() || !Path::new("/usr/lib/python3/dist-packages/duplicity").exists() {
        eprintln!("skipped: python3 or duplicity is not installed");
        return;
    }
    let entries = awkward_entries();
    let mut writer = VolumeWriter::new(Vec::<(Vec<u8>, VolumeRange)>::new(), 1 << 20, Footer::Record);
    for (entry, data) in &entries {
        writer.push(entry, &mut data.as_slice()).unwrap();
    }
    let volumes = writer.finish().unwrap();
    assert_eq!(volumes.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vol1.difftar");
    fs::write(&file, &volumes[0].0).unwrap();

    // Python lists every member: name (bytes, hex), type, size, mode, uid,
    // uname, mtime, link target, and the member's data hash.
    let script = r#"
import sys, hashlib
from duplicity import tarfile, util
tf = tarfile.TarFile(sys.argv[1], "r")
for ti in tf:
    name = util.fsencode(util.get_tarinfo_name(ti))
    data = tf.extractfile(ti).read() if ti.isreg() else b""
    print(name.hex(), ti.type.decode(), ti.size, oct(ti.mode), ti.uid, util.fsencode(ti.uname).hex(),
          ti.mtime, util.fsencode(ti.linkname).hex(), ti.devmajor, ti.devminor, hashlib.sha1(data).hexdigest(),
          ti.pax_headers.get("COFFER.hardlink", "-"))
"#;
    let out = Command::new(python).arg("-c").arg(script).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = String::from_utf8(out.stdout).unwrap();

    let mut want = Vec::new();
    for (tar, _) in &volumes {
        for (header, data) in read_all(tar) {
            let (major, minor) = match header.meta.file_type {
                FileType::CharDevice { major, minor } | FileType::BlockDevice { major, minor } => (major, minor),
                _ => (0, 0),
            };
            let flag = match &header.meta.file_type {
                FileType::Regular => "0",
                FileType::Symlink(_) => "2",
                FileType::CharDevice { .. } => "3",
                FileType::BlockDevice { .. } => "4",
                FileType::Directory => "5",
                FileType::Fifo => "6",
            };
            let link = match &header.meta.file_type {
                FileType::Symlink(t) => hex::encode(t),
                _ => String::new(),
            };
            let hardlink = header
                .meta
                .extra_pax
                .iter()
                .find(|(k, _)| k == b"COFFER.hardlink")
                .map_or("-".to_string(), |(_, v)| String::from_utf8(v.clone()).unwrap());
            want.push(format!(
                "{} {} {} {:#o} {} {} {} {} {} {} {} {}",
                hex::encode(&header.name),
                flag,
                header.size,
                header.meta.mode,
                header.meta.uid,
                hex::encode(&header.meta.uname),
                header.meta.mtime,
                link,
                major,
                minor,
                hex::encode(Sha1::digest(&data)),
                hardlink
            ));
        }
    }
    let got: Vec<&str> = listed.lines().collect();
    assert_eq!(got, want.iter().map(String::as_str).collect::<Vec<_>>());
    // Every awkward entry made it, pieces included.
    assert!(want.len() > entries.len());
}

fn gpg_decrypt(path: &Path, work: &Path) -> Vec<u8> {
    let out = Command::new("gpg")
        .args(["--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", PASSPHRASE, "--decrypt"])
        .arg(path)
        .env("GNUPGHOME", work.join("gnupg"))
        .output()
        .unwrap();
    assert!(out.status.success(), "gpg: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Volumes cut after the block counts duplicity's volumes hold, because
/// where gpg's output crosses the line depends on gpg's buffering.
struct ScriptedVolumes {
    blocks_per_volume: Vec<usize>,
    done: Vec<(Vec<u8>, VolumeRange)>,
}

struct ScriptedSink {
    tar: Vec<u8>,
    writes: usize,
    limit: usize,
}

impl Write for ScriptedSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tar.extend_from_slice(buf);
        self.writes += 1;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Volumes for ScriptedVolumes {
    type Sink = ScriptedSink;
    fn open(&mut self, number: u32) -> std::io::Result<ScriptedSink> {
        let limit = self.blocks_per_volume.get(number as usize - 1).copied().unwrap_or(usize::MAX);
        Ok(ScriptedSink { tar: Vec::new(), writes: 0, limit })
    }
    fn output_len(&self, sink: &ScriptedSink) -> u64 {
        if sink.writes >= sink.limit { 1 << 20 } else { 0 }
    }
    fn close(&mut self, sink: ScriptedSink, range: VolumeRange) -> std::io::Result<()> {
        self.done.push((sink.tar, range));
        Ok(())
    }
}

#[test]
fn encrypted_volumes_end_in_a_record_footer_and_top_off_bytes() {
    if !Path::new(DUPLICITY).exists() || !Path::new("/usr/bin/gpg").exists() {
        eprintln!("skipped: {DUPLICITY} or gpg is not installed");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    build_tree(&src);
    run_duplicity_with("full", &src, work.path(), &[]);
    let sets = sets(&work.path().join("remote"));
    assert_eq!(sets.len(), 1);
    let set = &sets[0];
    assert!(set.volumes.len() >= 2, "the full spans volumes");
    let plain: Vec<Vec<u8>> = set.volumes.iter().map(|v| gpg_decrypt(v, work.path())).collect();

    // The reader stops at the footer and ignores the top-off bytes after it.
    let mut blocks_per_volume: Vec<usize> = plain.iter().map(|tar| read_all(tar).len()).collect();
    // The last volume ended because the entries did, not because it was full.
    blocks_per_volume.pop();
    let entries = entries_of(&plain);
    let volumes = ScriptedVolumes { blocks_per_volume, done: Vec::new() };
    let mut writer = VolumeWriter::new(volumes, 1 << 20, Footer::Record);
    for (entry, data) in &entries {
        writer.push(entry, &mut data.as_slice()).unwrap();
    }
    let ours = writer.finish().unwrap().done;
    assert_eq!(ours.len(), plain.len());
    assert!(ours.iter().zip(&plain).any(|((tar, _), theirs)| theirs.len() > tar.len()), "no volume was topped off");
    for (n, ((tar, _), theirs)) in ours.iter().zip(&plain).enumerate() {
        assert_eq!(tar.len() as u64 % coffer_archive::RECORD_SIZE, 0);
        assert!(theirs.len() >= tar.len(), "volume {}: ours is longer", n + 1);
        assert!(theirs[..tar.len()] == tar[..], "volume {}: tar bytes and footer differ", n + 1);
        // Non-final volumes are topped off when gpg's output is still
        // short of the target; the last never is.
        if n + 1 == plain.len() {
            assert_eq!(theirs.len(), tar.len(), "the last volume is not topped off");
        }
    }

    // Manifest and sigtar, decrypted, as in the plain case.
    let text = gpg_decrypt(&set.manifest, work.path());
    let parsed = Manifest::parse(&text).unwrap();
    assert_eq!(parsed.to_bytes(), text);
    for (((_, range), info), file) in ours.iter().zip(&parsed.volumes).zip(&set.volumes) {
        assert_eq!(VolumeInfo::new(range.clone(), &sha1_hex(file)), *info);
    }
    let sigtar = gpg_decrypt(&set.sigtar, work.path());
    let mut writer = SigTarWriter::new(Vec::new());
    for (header, data) in read_all(&sigtar) {
        let name = header.entry_name().unwrap();
        let entry = Entry { kind: name.kind, index: name.index, meta: header.meta };
        writer.append(&entry, data.len() as u64, &mut data.as_slice()).unwrap();
    }
    assert!(writer.finish().unwrap() == sigtar, "sigtar differs");
}

fn id(flag: &str) -> Vec<u8> {
    let out = Command::new("id").arg(flag).output().unwrap();
    out.stdout.trim_ascii().to_vec()
}

#[test]
fn a_backup_whose_last_block_fills_the_volume_ends_with_an_empty_volume() {
    if !Path::new(DUPLICITY).exists() {
        eprintln!("skipped: {DUPLICITY} is not installed");
        return;
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let owner = fs::metadata(&src).unwrap();
    // The exact entries duplicity will write, so the search below predicts
    // its gzip output byte for byte.
    let meta = Meta {
        file_type: FileType::Regular,
        mode: 0o644,
        uid: u64::from(owner.uid()),
        gid: u64::from(owner.gid()),
        uname: id("-un"),
        gname: id("-gn"),
        mtime: 1_700_000_000,
        extra_pax: Vec::new(),
    };
    let root = Entry {
        kind: Kind::Snapshot,
        index: Index::root(),
        meta: Meta { file_type: FileType::Directory, mode: 0o755, ..meta.clone() },
    };
    let file = Entry { kind: Kind::Snapshot, index: Index::from_bytes(b"f"), meta };
    // The tar for a file of `size` bytes, split into duplicity's blocks:
    // the root, full pieces, and the last piece.
    let all = noise(15 * PIECE_SIZE, 7);
    let blocks_for = |size: usize| {
        let data = &all[..size];
        let mut writer = VolumeWriter::new(Vec::new(), u64::MAX, Footer::None);
        writer.push(&root, &mut std::io::empty()).unwrap();
        writer.push(&file, &mut &data[..]).unwrap();
        let tar = writer.finish().unwrap().remove(0).0;
        let ends = block_ends(&tar);
        let mut starts = vec![0];
        starts.extend_from_slice(&ends);
        ends.iter().zip(&starts).map(|(end, start)| tar[*start..*end].to_vec()).collect::<Vec<_>>()
    };
    // 14 full pieces, then a last piece of each candidate length: the
    // volume is full (under 64 KiB left of 1 MiB) only after the last.
    let candidates: Vec<usize> = (14 * PIECE_SIZE + 1..15 * PIECE_SIZE).step_by(211).collect();
    let prefix = blocks_for(15 * PIECE_SIZE - 1);
    let prefix: Vec<&[u8]> = prefix[..15].iter().map(Vec::as_slice).collect();
    let tails: Vec<Vec<u8>> = candidates.iter().map(|size| blocks_for(*size).pop().unwrap()).collect();
    let tails: Vec<&[u8]> = tails.iter().map(Vec::as_slice).collect();
    let (before, after) = python_gzip_counts(&prefix, &tails);
    let line = (1 << 20) - PIECE_SIZE as u64;
    assert!(*before.last().unwrap() < line);
    let size = candidates
        .iter()
        .zip(&after)
        .find(|(_, count)| **count >= line)
        .map(|(size, _)| *size)
        .expect("a last piece that fills the volume");
    // Our writer, told the same counts, agrees.
    let blocks = blocks_for(size);
    let tar: Vec<u8> = blocks.concat();
    let mut writer = VolumeWriter::new(CountedVolumes::for_volumes(&[tar]), 1 << 20, Footer::None);
    writer.push(&root, &mut std::io::empty()).unwrap();
    writer.push(&file, &mut noise(size, 7).as_slice()).unwrap();
    let ours = writer.finish().unwrap().done;
    assert_eq!(ours.len(), 2);
    assert!(ours[1].0.is_empty());

    let path = src.join("f");
    fs::write(&path, noise(size, 7)).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(&src, fs::Permissions::from_mode(0o755)).unwrap();
    fs::File::options().write(true).open(&path).unwrap().set_modified(mtime).unwrap();
    fs::File::open(&src).unwrap().set_modified(mtime).unwrap();
    run_duplicity("full", &src, work.path());
    let sets = sets(&work.path().join("remote"));
    let set = &sets[0];
    assert_eq!(read_all(&gunzip(&set.volumes[0])).len(), 2 + size / PIECE_SIZE, "root and every piece in volume 1");
    assert_eq!(set.volumes.len(), 2, "duplicity wrote an empty second volume");
    assert!(gunzip(&set.volumes[1]).is_empty());
    let manifest = Manifest::parse(&fs::read(&set.manifest).unwrap()).unwrap();
    let second = &manifest.volumes[1];
    assert_eq!((second.start.index.clone(), second.start.piece), (Index::root(), None));
    assert_eq!((second.end.index.clone(), second.end.piece), (Index::from_bytes(b"f"), None));
}
