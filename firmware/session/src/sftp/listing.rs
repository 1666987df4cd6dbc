//! Directories: OPENDIR, READDIR in batches read as the client asks, and
//! the `ls -l` style long name each entry carries.

use std::sync::Mutex;

use coffer_sftp_proto::{NameEntry, Reply, StatusCode};
use coffer_storage::Meta;

use super::handles::HandleKind;
use super::inspect::attrs_of;
use super::reply::{err_reply, parse_path, tri};
use super::session::Session;

/// Directory entries per READDIR reply, read from the directory as they
/// are asked for (OpenSSH's sftp-server sends 100).
const READDIR_BATCH: usize = 100;

pub(super) fn opendir(s: &Session, id: u32, path: &[u8]) -> Reply {
    let p = tri!(parse_path(id, path));
    // Check the limit first: a refused OPENDIR opens nothing.
    tri!(s.handles.room(&s.user, id, &p));
    match s.jail.open_dir(&p) {
        Ok(dir) => s.handles.insert(&s.user, id, p, HandleKind::Dir(Mutex::new(dir)), 0),
        Err(e) => err_reply(id, &e),
    }
}

pub(super) fn readdir(s: &Session, id: u32, handle: &[u8]) -> Reply {
    let h = tri!(s.handles.get(id, handle));
    let HandleKind::Dir(dir) = &h.kind else {
        return Reply::status(id, StatusCode::Failure, "handle is not a directory");
    };
    let Ok(mut dir) = dir.lock() else { return Reply::status(id, StatusCode::Failure, "lock poisoned") };
    let batch = match dir.next_batch(READDIR_BATCH) {
        Ok(batch) => batch,
        Err(e) => return err_reply(id, &e),
    };
    if batch.is_empty() {
        return Reply::status(id, StatusCode::Eof, "End of file");
    }
    let entries = batch
        .into_iter()
        .map(|e| NameEntry { longname: longname(&e.name, &e.meta, &s.user), attrs: attrs_of(&e.meta), filename: e.name })
        .collect();
    Reply::Name { id, entries }
}

/// An `ls -l` style line, which OpenSSH's `sftp ls -l` prints as is.
fn longname(name: &[u8], m: &Meta, user: &str) -> Vec<u8> {
    let kind = match m.mode & 0o170_000 {
        0o040_000 => 'd',
        0o120_000 => 'l',
        0o100_000 => '-',
        _ => '?',
    };
    let mut perms = String::with_capacity(10);
    perms.push(kind);
    for shift in [6, 3, 0] {
        let bits = (m.mode >> shift) & 7;
        perms.push(if bits & 4 != 0 { 'r' } else { '-' });
        perms.push(if bits & 2 != 0 { 'w' } else { '-' });
        perms.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let date = format_date(m.mtime);
    let mut line = format!("{perms} {:>4} {user:<8} {user:<8} {:>12} {date} ", m.nlink, m.size).into_bytes();
    line.extend_from_slice(name);
    line
}

/// "Nov 27 06:51" from seconds since the epoch (UTC).
fn format_date(t: i64) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (_, month, day, hour, minute, _) = coffer_duplicity::civil_from_unix(t);
    let name = MONTHS[usize::try_from(month - 1).unwrap_or(0).min(11)];
    format!("{name} {day:>2} {hour:02}:{minute:02}")
}

#[cfg(test)]
mod tests {
    use super::super::handles::MAX_HANDLES;
    use super::super::pipes::PIPE_GROW_LIMIT;
    use super::super::test_session::{PipeSession, packet, string};
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(format_date(0), "Jan  1 00:00");
        assert_eq!(format_date(1_795_762_260), "Nov 27 06:51");
        assert_eq!(format_date(951_782_400), "Feb 29 00:00");
    }

    /// READDIR answers in batches of at most 100 read from the directory
    /// as asked; the session holds at most MAX_HANDLES handles, and the
    /// refusal says so.
    #[test]
    fn listings_are_batched_and_handles_capped() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..1000 {
            std::fs::write(dir.path().join(format!("f{i}")), b"").unwrap();
        }
        let mut s = PipeSession::start(dir.path(), PIPE_GROW_LIMIT);
        let opendir = |s: &mut PipeSession| {
            s.send(&packet(11, Some(2), &[&string(b"/")]));
            s.reply()
        };
        let first = opendir(&mut s);
        assert_eq!(first[0], 102, "HANDLE");
        let handle = first[9..].to_vec();
        let mut total = 0;
        loop {
            s.send(&packet(12, Some(3), &[&string(&handle)]));
            let r = s.reply();
            if r[0] == 101 {
                assert_eq!(u32::from_be_bytes(r[5..9].try_into().unwrap()), 1, "EOF");
                break;
            }
            assert_eq!(r[0], 104, "NAME");
            let count = u32::from_be_bytes(r[5..9].try_into().unwrap()) as usize;
            assert!((1..=READDIR_BATCH).contains(&count), "{count} entries in one reply");
            total += count;
        }
        assert_eq!(total, 1000);
        for _ in 1..MAX_HANDLES {
            assert_eq!(opendir(&mut s)[0], 102, "HANDLE");
        }
        let refused = opendir(&mut s);
        assert_eq!((refused[0], u32::from_be_bytes(refused[5..9].try_into().unwrap())), (101, 4), "STATUS FAILURE");
        assert!(String::from_utf8_lossy(&refused).contains("128 open handles"));
        s.send(&packet(3, Some(4), &[&string(b"/f1"), &1u32.to_be_bytes(), &0u32.to_be_bytes()]));
        assert_eq!(s.reply()[0], 101, "OPEN refused as well");
        // A CLOSE makes room again.
        s.send(&packet(4, Some(5), &[&string(&handle)]));
        let closed = s.reply();
        assert_eq!((closed[0], u32::from_be_bytes(closed[5..9].try_into().unwrap())), (101, 0), "STATUS OK");
        assert_eq!(opendir(&mut s)[0], 102, "HANDLE");
        s.finish();
    }
}
