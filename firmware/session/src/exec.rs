//! Exec requests, emulated in-process: the few commands backup clients send
//! (duplicity `scp://`, legacy `scp -O`, rclone's hash checks), each over the
//! user's jail. No shell ever runs; anything else exits 127.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;

use coffer_command::scp::ScpLine;
use coffer_command::{ExecCommand, HashAlgorithm};
use coffer_storage::{JailPath, Meta, NEW_DIR_BYTES, UserJail};

use crate::profile::{Profile, is_incomplete_duplicity_file, is_restic_lock};
use crate::sftp::SessionContext;
use crate::status::strip_os_error;

/// Exit status for a command Coffer does not run (as a shell's "not found").
pub const EXIT_NOT_SUPPORTED: i32 = 127;

/// Longest scp control line accepted, newline not counted. Protocol lines
/// (`C0644 SIZE NAME`, `D…`, `T…`) carry one file name (255 bytes on ext4);
/// message lines carry a path (at most 4096 bytes) and a reason. A longer
/// line ends the command with a protocol error instead of being buffered.
pub const MAX_SCP_LINE: usize = 8192;

/// Reads one scp line, without its newline; `None` at end of input.
fn read_scp_line(input: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let limit = u64::try_from(MAX_SCP_LINE).unwrap_or(u64::MAX).saturating_add(1);
    if input.take(limit).read_until(b'\n', &mut line)? == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if line.len() > MAX_SCP_LINE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("protocol error: control line longer than {MAX_SCP_LINE} bytes; closing the connection"),
        ));
    }
    Ok(Some(line))
}

/// Tells the peer why the transfer stops when it broke the protocol.
fn report_protocol_error(out: &mut impl Write, e: &io::Error) {
    if e.kind() == io::ErrorKind::InvalidData {
        let _ = out.write_all(format!("\x02scp: {e}\n").as_bytes()).and_then(|()| out.flush());
    }
}

/// Runs one command line and returns its exit status.
pub fn run(ctx: &SessionContext, line: &[u8], stdin: impl Read, stdout: &mut impl Write, stderr: &mut impl Write) -> i32 {
    let cmd = match ExecCommand::parse(line) {
        Ok(cmd) => cmd,
        Err(e) => {
            let _ = writeln!(stderr, "coffer: {e}");
            return EXIT_NOT_SUPPORTED;
        }
    };
    let jail = &ctx.jail;
    let writes = matches!(cmd, ExecCommand::Mkdir { .. } | ExecCommand::Remove { .. } | ExecCommand::ScpSink { .. });
    if writes && ctx.profile == Profile::ReadOnly {
        let _ = writeln!(stderr, "coffer: {}", ctx.profile.denied("changing files"));
        if let ExecCommand::ScpSink { .. } = cmd {
            let _ = stdout.write_all(format!("\x02scp: {}\n", ctx.profile.denied("uploading")).as_bytes());
        }
        let _ = stderr.flush();
        let _ = stdout.flush();
        return 1;
    }
    let status = match cmd {
        ExecCommand::Mkdir { parents, paths } => mkdir(ctx, parents, &paths, stderr),
        ExecCommand::List { paths } => list(jail, &paths, stdout, stderr),
        ExecCommand::Remove { force, recursive, paths } => remove(ctx, force, recursive, &paths, stderr),
        ExecCommand::HashSum { algorithm, paths } => hash_sum(jail, algorithm, &paths, stdin, stdout, stderr),
        ExecCommand::Echo { words } => {
            let _ = stdout.write_all(&words.join(&b' ')).and_then(|()| stdout.write_all(b"\n"));
            0
        }
        ExecCommand::ScpSink { recursive, preserve, target_is_dir, target } => {
            scp_sink(ctx, recursive, preserve, target_is_dir, &target, stdin, stdout)
        }
        ExecCommand::ScpSource { recursive, preserve, paths } => scp_source(jail, recursive, preserve, &paths, stdin, stdout),
    };
    let _ = stdout.flush();
    let _ = stderr.flush();
    status
}

fn show(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

fn jail_path(p: &[u8]) -> io::Result<JailPath> {
    JailPath::parse(p).map_err(|_| io::Error::from(io::ErrorKind::NotFound))
}

/// Creates one directory, charging an inode and a directory block to the quota.
fn make_dir(ctx: &SessionContext, p: &JailPath) -> io::Result<()> {
    ctx.quota.charge(NEW_DIR_BYTES, 1).map_err(|q| io::Error::other(q.to_string()))?;
    ctx.jail.mkdir(p, 0o777).inspect_err(|_| ctx.quota.free(NEW_DIR_BYTES, 1))
}

fn mkdir(ctx: &SessionContext, parents: bool, paths: &[Vec<u8>], stderr: &mut impl Write) -> i32 {
    let jail = &ctx.jail;
    let mut status = 0;
    for raw in paths {
        let result = jail_path(raw).and_then(|p| {
            if !parents {
                return make_dir(ctx, &p);
            }
            let mut prefix = JailPath::root();
            for c in p.components() {
                prefix = prefix.join(c).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
                if jail.stat(&prefix).is_ok_and(|m| m.is_dir()) {
                    continue;
                }
                make_dir(ctx, &prefix)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            let _ = writeln!(stderr, "mkdir: cannot create directory '{}': {}", show(raw), strip_os_error(&e));
            status = 1;
        }
    }
    status
}

fn list(jail: &UserJail, paths: &[Vec<u8>], stdout: &mut impl Write, stderr: &mut impl Write) -> i32 {
    let default = [b".".to_vec()];
    let paths = if paths.is_empty() { &default[..] } else { paths };
    let mut status = 0;
    let many = paths.len() > 1;
    for raw in paths {
        let result = jail_path(raw).and_then(|p| {
            let meta = jail.stat(&p)?;
            if !meta.is_dir() {
                stdout.write_all(raw)?;
                return stdout.write_all(b"\n");
            }
            let mut entries = jail.read_dir(&p)?;
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            if many {
                stdout.write_all(raw)?;
                stdout.write_all(b":\n")?;
            }
            // Like ls without -a: names starting with a dot are not shown.
            for e in entries.iter().filter(|e| !e.name.starts_with(b".")) {
                stdout.write_all(&e.name)?;
                stdout.write_all(b"\n")?;
            }
            Ok(())
        });
        if let Err(e) = result {
            let _ = writeln!(stderr, "ls: cannot access '{}': {}", show(raw), strip_os_error(&e));
            status = 2;
        }
    }
    status
}

fn remove(ctx: &SessionContext, force: bool, recursive: bool, paths: &[Vec<u8>], stderr: &mut impl Write) -> i32 {
    let jail = &ctx.jail;
    let mut status = 0;
    for raw in paths {
        let result = jail_path(raw).and_then(|p| {
            let meta = jail.lstat(&p)?;
            if ctx.profile == Profile::AppendOnly && !(is_restic_lock(&p) && meta.is_file()) {
                return Err(io::Error::other(ctx.profile.denied("deleting files")));
            }
            if meta.is_dir() {
                if !recursive {
                    return Err(io::Error::from_raw_os_error(21));
                }
                return remove_tree(ctx, &p);
            }
            jail.remove_file(&p)?;
            free_file(ctx, &meta);
            Ok(())
        });
        match result {
            Ok(()) => {}
            Err(e) if force && e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                let _ = writeln!(stderr, "rm: cannot remove '{}': {}", show(raw), strip_os_error(&e));
                status = 1;
            }
        }
    }
    status
}

/// Returns a deleted file's bytes (and inode, unless other links remain) to the quota.
fn free_file(ctx: &SessionContext, m: &Meta) {
    let last_link = m.nlink <= 1;
    ctx.quota.free(if last_link { m.size } else { 0 }, u64::from(last_link));
}

fn remove_tree(ctx: &SessionContext, dir: &JailPath) -> io::Result<()> {
    let jail = &ctx.jail;
    for e in jail.read_dir(dir)? {
        let child = dir.join(&e.name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        if e.meta.is_dir() {
            remove_tree(ctx, &child)?;
        } else {
            jail.remove_file(&child)?;
            free_file(ctx, &e.meta);
        }
    }
    if dir.is_root() {
        return Ok(());
    }
    let size = jail.lstat(dir).map_or(0, |m| m.size);
    jail.rmdir(dir)?;
    ctx.quota.free(size, 1);
    Ok(())
}

enum Hasher {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    fn new(a: HashAlgorithm) -> Self {
        use sha2::Digest;
        match a {
            HashAlgorithm::Md5 => Hasher::Md5(md5::Md5::new()),
            HashAlgorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            HashAlgorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    fn update(&mut self, b: &[u8]) {
        use sha2::Digest;
        match self {
            Hasher::Md5(h) => h.update(b),
            Hasher::Sha1(h) => h.update(b),
            Hasher::Sha256(h) => h.update(b),
        }
    }

    fn hex(self) -> String {
        use sha2::Digest;
        match self {
            Hasher::Md5(h) => hex::encode(h.finalize()),
            Hasher::Sha1(h) => hex::encode(h.finalize()),
            Hasher::Sha256(h) => hex::encode(h.finalize()),
        }
    }
}

fn hash_reader(a: HashAlgorithm, mut r: impl Read) -> io::Result<String> {
    let mut h = Hasher::new(a);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(h.hex()),
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn hash_sum(
    jail: &UserJail,
    algorithm: HashAlgorithm,
    paths: &[Vec<u8>],
    stdin: impl Read,
    stdout: &mut impl Write,
    stderr: &mut impl Write,
) -> i32 {
    let name = algorithm.command_name();
    if paths.is_empty() {
        return match hash_reader(algorithm, stdin) {
            Ok(hex) => {
                let _ = writeln!(stdout, "{hex}  -");
                0
            }
            Err(e) => {
                let _ = writeln!(stderr, "{name}: -: {}", strip_os_error(&e));
                1
            }
        };
    }
    let mut status = 0;
    for raw in paths {
        match jail_path(raw).and_then(|p| jail.open_read(&p)).and_then(|f| hash_reader(algorithm, f)) {
            Ok(hex) => {
                let _ = write!(stdout, "{hex}  ");
                let _ = stdout.write_all(raw);
                let _ = stdout.write_all(b"\n");
            }
            Err(e) => {
                let _ = writeln!(stderr, "{name}: {}: {}", show(raw), strip_os_error(&e));
                status = 1;
            }
        }
    }
    status
}

/// An scp error line: `\x01scp: PATH: MESSAGE\n`.
fn scp_error(out: &mut impl Write, path: &[u8], msg: &str) -> io::Result<()> {
    let mut line = b"\x01scp: ".to_vec();
    line.extend_from_slice(path);
    line.extend_from_slice(format!(": {msg}\n").as_bytes());
    out.write_all(&line)?;
    out.flush()
}

fn ack(out: &mut impl Write) -> io::Result<()> {
    out.write_all(b"\0")?;
    out.flush()
}

/// Reads one response byte from the peer; a non-zero byte carries a message line.
fn read_ack(input: &mut impl BufRead) -> io::Result<()> {
    let mut b = [0u8; 1];
    input.read_exact(&mut b)?;
    if b[0] == 0 {
        return Ok(());
    }
    let msg = read_scp_line(input)?.unwrap_or_default();
    Err(io::Error::other(format!("peer reported: {}", String::from_utf8_lossy(&msg).trim_end())))
}

/// `scp -t`: receive files. Every file lands through an atomic upload.
fn scp_sink(
    ctx: &SessionContext,
    recursive: bool,
    preserve: bool,
    target_is_dir: bool,
    target: &[u8],
    stdin: impl Read,
    out: &mut impl Write,
) -> i32 {
    let mut input = BufReader::with_capacity(256 * 1024, stdin);
    match scp_sink_inner(ctx, recursive, preserve, target_is_dir, target, &mut input, out) {
        Ok(status) => status,
        Err(e) => {
            log::debug!("scp sink ended: {e}");
            report_protocol_error(out, &e);
            1
        }
    }
}

fn scp_sink_inner(
    ctx: &SessionContext,
    recursive: bool,
    preserve: bool,
    target_is_dir: bool,
    target: &[u8],
    input: &mut impl BufRead,
    out: &mut impl Write,
) -> io::Result<i32> {
    let jail = &ctx.jail;
    let Ok(target_path) = JailPath::parse(target) else {
        scp_error(out, target, "No such file or directory")?;
        return Ok(1);
    };
    let target_meta = jail.stat(&target_path).ok();
    let target_dir = target_meta.is_some_and(|m| m.is_dir());
    if target_is_dir && !target_dir {
        scp_error(out, target, "Not a directory")?;
        return Ok(1);
    }
    let mut status = 0;
    // Directory stack for -r: where the next file lands.
    let mut stack: Vec<JailPath> = Vec::new();
    let mut times: Option<(u64, u64)> = None;
    ack(out)?;
    loop {
        let Some(line) = read_scp_line(input)? else { return Ok(status) };
        let parsed = match ScpLine::parse(&line) {
            Ok(l) => l,
            Err(e) => {
                out.write_all(format!("\x02scp: {e}\n").as_bytes())?;
                out.flush()?;
                return Ok(1);
            }
        };
        match parsed {
            ScpLine::Times { mtime, atime } => {
                times = Some((mtime, atime));
                ack(out)?;
            }
            ScpLine::Warning(_) => status = 1,
            ScpLine::Fatal(_) => return Ok(1),
            ScpLine::EndDir => {
                stack.pop();
                ack(out)?;
            }
            ScpLine::Dir { mode, name } => {
                if !recursive {
                    out.write_all(b"\x02scp: received directory without -r\n")?;
                    out.flush()?;
                    return Ok(1);
                }
                let dir = match stack.last() {
                    Some(parent) => parent.join(&name),
                    None if target_dir => target_path.join(&name),
                    None => Ok(target_path.clone()),
                };
                let Ok(dir) = dir else {
                    scp_error(out, &name, "invalid name")?;
                    return Ok(1);
                };
                let existed = jail.stat(&dir).is_ok_and(|m| m.is_dir());
                if !existed {
                    let made = ctx
                        .quota
                        .charge(NEW_DIR_BYTES, 1)
                        .map_err(|q| io::Error::other(q.to_string()))
                        .and_then(|()| jail.mkdir(&dir, mode).inspect_err(|_| ctx.quota.free(NEW_DIR_BYTES, 1)));
                    if let Err(e) = made {
                        scp_error(out, &dir.display(), &strip_os_error(&e))?;
                        return Ok(1);
                    }
                }
                // Times only on directories this command made, never on older ones.
                if let (true, Some((mtime, atime)), false) = (preserve, times.take(), existed) {
                    let _ = jail.set_times(&dir, atime as i64, mtime as i64);
                }
                stack.push(dir);
                ack(out)?;
            }
            ScpLine::File { mode, size, name } => {
                let dest = match stack.last() {
                    Some(parent) => parent.join(&name),
                    None if target_dir => target_path.join(&name),
                    None => Ok(target_path.clone()),
                };
                let file_times = times.take();
                let upload = dest.map_err(|_| io::Error::from(io::ErrorKind::InvalidInput)).and_then(|d| {
                    let existing = jail.lstat(&d).ok();
                    let append_only = ctx.profile == Profile::AppendOnly;
                    if append_only
                        && existing.is_some_and(|m| !m.is_file() || !is_incomplete_duplicity_file(jail, &d))
                    {
                        return Err(io::Error::other(ctx.profile.denied("overwriting an existing file")));
                    }
                    ctx.quota.charge(0, 1).map_err(|q| io::Error::other(q.to_string()))?;
                    // An append-only key never replaces a file that appears meanwhile.
                    let no_replace = append_only && existing.is_none();
                    let up = jail.create_upload(&d, mode, no_replace).inspect_err(|_| ctx.quota.free(0, 1))?;
                    Ok((d, up))
                });
                match upload {
                    Ok((dest, up)) => {
                        ack(out)?;
                        let mut charged = 0u64;
                        let written = copy_exact(input, up.file(), size, |n| {
                            ctx.quota.charge(n, 0).map_err(|q| io::Error::other(q.to_string()))?;
                            charged += n;
                            Ok(())
                        });
                        if let Err(e) = read_ack(input) {
                            // The peer gave up: the upload is dropped, and so is its charge.
                            drop(up);
                            ctx.quota.free(charged, 1);
                            return Err(e);
                        }
                        match written.and_then(|()| {
                            if let (true, Some((mtime, atime))) = (preserve, file_times) {
                                set_file_times(up.file(), atime, mtime)?;
                            }
                            up.commit()
                        }) {
                            Ok(replaced) => {
                                if let Some(m) = replaced.filter(|m| !m.is_dir()) {
                                    free_file(ctx, &m);
                                }
                                ack(out)?;
                            }
                            Err(e) => {
                                // The upload was dropped: its temporary is gone, so is its charge.
                                ctx.quota.free(charged, 1);
                                scp_error(out, &dest.display(), &strip_os_error(&e))?;
                                status = 1;
                            }
                        }
                        ctx.quota.settle();
                    }
                    Err(e) => {
                        // The source skips this file's data when refused, so the stream stays in step.
                        scp_error(out, &name, &strip_os_error(&e))?;
                        status = 1;
                    }
                }
            }
        }
    }
}

fn set_file_times(f: &std::fs::File, atime: u64, mtime: u64) -> io::Result<()> {
    let ts = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec { tv_sec: i64::try_from(atime).unwrap_or(0), tv_nsec: 0 },
        last_modification: rustix::fs::Timespec { tv_sec: i64::try_from(mtime).unwrap_or(0), tv_nsec: 0 },
    };
    Ok(rustix::fs::futimens(f, &ts)?)
}

/// Copies exactly `size` bytes from the peer into `file`, charging each
/// block to the quota first. After an error (quota or disk) the rest of the
/// data is still read, so the protocol stays in step, and the error is
/// returned at the end.
fn copy_exact(
    input: &mut impl BufRead,
    file: &std::fs::File,
    size: u64,
    mut charge: impl FnMut(u64) -> io::Result<()>,
) -> io::Result<()> {
    let mut left = size;
    let mut offset = 0u64;
    let mut failed: Option<io::Error> = None;
    while left > 0 {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed in the middle of a file"));
        }
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if failed.is_none()
            && let Err(e) = charge(n as u64).and_then(|()| file.write_all_at(&buf[..n], offset))
        {
            failed = Some(e);
        }
        input.consume(n);
        offset += n as u64;
        left -= n as u64;
    }
    failed.map_or(Ok(()), Err)
}

/// `scp -f`: send files (and directories with -r).
fn scp_source(jail: &UserJail, recursive: bool, preserve: bool, paths: &[Vec<u8>], stdin: impl Read, out: &mut impl Write) -> i32 {
    let mut input = BufReader::new(stdin);
    let mut run = || -> io::Result<i32> {
        read_ack(&mut input)?;
        let mut status = 0;
        for raw in paths {
            let sent = JailPath::parse(raw)
                .map_err(|_| io::Error::from(io::ErrorKind::NotFound))
                .and_then(|p| jail.stat(&p).map(|m| (p, m)));
            match sent {
                Ok((p, meta)) => status |= send_entry(jail, &p, &meta, recursive, preserve, &mut input, out)?,
                Err(e) => {
                    scp_error(out, raw, &strip_os_error(&e))?;
                    status = 1;
                }
            }
        }
        Ok(status)
    };
    run().unwrap_or_else(|e| {
        report_protocol_error(out, &e);
        1
    })
}

fn send_entry(
    jail: &UserJail,
    path: &JailPath,
    meta: &Meta,
    recursive: bool,
    preserve: bool,
    input: &mut impl BufRead,
    out: &mut impl Write,
) -> io::Result<i32> {
    let name = path.file_name().unwrap_or(b".").to_vec();
    if preserve {
        out.write_all(format!("T{} 0 {} 0\n", meta.mtime.max(0), meta.atime.max(0)).as_bytes())?;
        out.flush()?;
        read_ack(input)?;
    }
    if meta.is_dir() {
        if !recursive {
            scp_error(out, &path.display(), "not a regular file")?;
            return Ok(1);
        }
        let mut header = format!("D{:04o} 0 ", meta.mode & 0o7777).into_bytes();
        header.extend_from_slice(&name);
        header.push(b'\n');
        out.write_all(&header)?;
        out.flush()?;
        read_ack(input)?;
        let mut status = 0;
        let mut entries = jail.read_dir(path)?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for e in entries {
            let Ok(child) = path.join(&e.name) else { continue };
            // Follow symlinks as scp does; a dangling one is reported and skipped.
            match jail.stat(&child) {
                Ok(m) => status |= send_entry(jail, &child, &m, recursive, preserve, input, out)?,
                Err(err) => {
                    scp_error(out, &child.display(), &strip_os_error(&err))?;
                    status = 1;
                }
            }
        }
        out.write_all(b"E\n")?;
        out.flush()?;
        read_ack(input)?;
        return Ok(status);
    }
    if !meta.is_file() {
        scp_error(out, &path.display(), "not a regular file")?;
        return Ok(1);
    }
    let file = match jail.open_read(path) {
        Ok(f) => f,
        Err(e) => {
            scp_error(out, &path.display(), &strip_os_error(&e))?;
            return Ok(1);
        }
    };
    let size = file.metadata()?.len();
    // paramiko reads the header with one recv: send it alone, then wait.
    let mut header = format!("C{:04o} {size} ", meta.mode & 0o7777).into_bytes();
    header.extend_from_slice(&name);
    header.push(b'\n');
    out.write_all(&header)?;
    out.flush()?;
    read_ack(input)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut offset = 0u64;
    while offset < size {
        let want = buf.len().min(usize::try_from(size - offset).unwrap_or(usize::MAX));
        let n = file.read_at(&mut buf[..want], offset)?;
        if n == 0 {
            // The file shrank while being sent: pad so the stream stays in step, and report it.
            let pad = vec![0u8; usize::try_from(size - offset).unwrap_or(0)];
            out.write_all(&pad)?;
            scp_error(out, &path.display(), "file shrank while being sent")?;
            return Ok(1);
        }
        out.write_all(&buf[..n])?;
        offset += n as u64;
    }
    ack(out)?;
    read_ack(input)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(input: &[u8]) -> io::Result<Option<Vec<u8>>> {
        read_scp_line(&mut io::BufReader::with_capacity(64, input))
    }

    #[test]
    fn scp_lines_stop_at_the_limit() {
        let max = vec![b'a'; MAX_SCP_LINE];
        let mut at_limit = max.clone();
        at_limit.extend_from_slice(b"\nnext");
        assert_eq!(line(&at_limit).unwrap(), Some(max.clone()), "a line of exactly the limit");
        let mut over = max.clone();
        over.extend_from_slice(b"a\n");
        let e = line(&over).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("longer than 8192 bytes"), "{e}");
        assert!(line(&vec![b'a'; 10 * MAX_SCP_LINE]).is_err(), "no newline at all");
        assert_eq!(line(b"").unwrap(), None);
        assert_eq!(line(b"E\n").unwrap(), Some(b"E".to_vec()));
        assert_eq!(line(b"\n").unwrap(), Some(Vec::new()));
        assert_eq!(line(b"C0644 1 f").unwrap(), Some(b"C0644 1 f".to_vec()), "last line without newline");
    }

    /// Reads stop at the limit: a line without end is never buffered whole.
    #[test]
    fn scp_commands_end_on_an_endless_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"data").unwrap();
        for (command, first) in [(&b"scp -t ."[..], b'C'), (b"scp -f f", 1)] {
            let ctx = SessionContext {
                jail: UserJail::open(dir.path()).unwrap(),
                user: "t".into(),
                profile: Profile::Full,
                quota: Box::new(crate::quota::Unlimited),
            };
            // Endless input: a reader that would buffer all of it never returns.
            let first = [first];
            let input = io::Read::chain(&first[..], io::repeat(b'a'));
            let (mut out, mut err) = (Vec::new(), Vec::new());
            assert_eq!(run(&ctx, command, input, &mut out, &mut err), 1);
            let out = String::from_utf8_lossy(&out);
            assert!(out.contains("\u{2}scp: protocol error: control line longer than 8192 bytes"), "{out}");
        }
    }
}
