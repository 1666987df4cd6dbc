//! READ, the hot path of every download: the file's bytes are spliced
//! into a pipe when the output is one, else read into a pooled reply
//! packet. Replies are always as long as the file allows: a short read is
//! legal, but OpenSSH's client then truncates the download it thinks was
//! reordered.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use coffer_sftp_proto::{MAX_IO, Reply, StatusCode};

use super::handles::HandleKind;
use super::reply::{DATA_HEADER, Outgoing, data_header, err_reply};
use super::session::Session;

pub(super) fn read(s: &Session, id: u32, handle: &[u8], offset: u64, len: u32) -> Outgoing {
    let h = match s.handles.get(id, handle) {
        Ok(h) => h,
        Err(reply) => return Outgoing::Packet(reply.encode()),
    };
    let Some(file) = h.file() else {
        return Outgoing::Packet(Reply::status(id, StatusCode::Failure, "handle is a directory").encode());
    };
    let len = len.min(MAX_IO) as usize;
    // Only files no request of this session can change: a spliced pipe holds
    // page references, so a later WRITE on the same handle would show through.
    let read_only = matches!(h.kind, HandleKind::Read(_));
    if let Some(pool) = &s.pipes
        && read_only
        && len > 0
        && i64::try_from(offset).is_ok()
        && let Some(mut pipe) = pool.take()
    {
        let spliced = file.with(|f| {
            let Some(n) = pool.splice_in(&mut pipe, f, offset, len) else { return Ok(None) };
            let mut tail = s.buffers.take();
            tail.resize(len - n, 0);
            let got = read_full(f, &mut tail, offset + n as u64)?;
            tail.truncate(got);
            Ok(Some((n, tail)))
        });
        match spliced {
            Ok(Some((0, tail))) if tail.is_empty() => {
                s.buffers.give(tail);
                pool.give(pipe);
                return Outgoing::Packet(Reply::status(id, StatusCode::Eof, "End of file").encode());
            }
            Ok(Some((n, tail))) => {
                return Outgoing::Spliced { header: data_header(id, n + tail.len()), pipe, spliced: n, tail };
            }
            Err(e) => {
                // Bytes may wait in the pipe: it is closed, never reused.
                pool.discard(pipe);
                return Outgoing::Packet(err_reply(id, &e).encode());
            }
            // Nothing moved: copying below gives the data or the right error.
            Ok(None) => pool.give(pipe),
        }
    }
    let mut packet = s.buffers.take();
    packet.resize(DATA_HEADER + len, 0);
    let result = file.with(|f| read_full(f, &mut packet[DATA_HEADER..], offset));
    Outgoing::Packet(match result {
        Ok(0) if len > 0 => {
            s.buffers.give(packet);
            Reply::status(id, StatusCode::Eof, "End of file").encode()
        }
        Ok(n) => {
            packet.truncate(DATA_HEADER + n);
            packet[..DATA_HEADER].copy_from_slice(&data_header(id, n));
            packet
        }
        Err(e) => {
            s.buffers.give(packet);
            err_reply(id, &e).encode()
        }
    })
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match f.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::super::pipes::PIPE_GROW_LIMIT;
    use super::super::test_session::{PipeSession, packet, string};
    use super::*;

    /// Checks a READ reply against the file's content: whole, or EOF.
    fn check_read(r: &[u8], id: u32, content: &[u8], offset: u64, len: u32) {
        assert_eq!(u32::from_be_bytes(r[1..5].try_into().unwrap()), id);
        let start = usize::try_from(offset).unwrap();
        if start >= content.len() {
            assert_eq!((r[0], u32::from_be_bytes(r[5..9].try_into().unwrap())), (101, 1), "STATUS EOF past the end");
            return;
        }
        assert_eq!(r[0], 103, "DATA");
        let n = u32::from_be_bytes(r[5..9].try_into().unwrap()) as usize;
        assert_eq!(r.len(), 9 + n);
        let want = (start + len.min(MAX_IO) as usize).min(content.len()) - start;
        assert_eq!(n, want, "read {id} is whole (clients mishandle short reads)");
        assert_eq!(&r[9..], &content[start..start + n], "read {id}");
    }

    fn test_content(len: u32) -> Vec<u8> {
        (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
    }

    /// Over real pipes, READ replies are spliced: whole reads (also from
    /// unaligned offsets, and when a pipe cannot grow to the read's size),
    /// a read across the end, EOF, and many reads in flight arrive intact.
    #[test]
    fn downloads_spliced_into_a_pipe_arrive_intact() {
        for limit in [PIPE_GROW_LIMIT, 16 * 1024] {
            let dir = tempfile::tempdir().unwrap();
            let content = test_content(700_000);
            std::fs::write(dir.path().join("big.bin"), &content).unwrap();
            let mut s = PipeSession::start(dir.path(), limit);
            let handle = s.open(b"/big.bin", 1);
            // Reads of every size the clients use, all sent before any reply is read.
            let reads: Vec<(u64, u32)> = vec![
                (0, 261_120),
                (261_120, 261_120),
                (520_192, 2048),
                (0, 32_768),
                (32_768, 262_144),
                (294_912, 262_144),
                (557_056, 262_144),
                (699_990, 100),
                (700_000, 10),
            ];
            for (i, (offset, len)) in reads.iter().enumerate() {
                s.read(10 + u32::try_from(i).unwrap(), &handle, *offset, *len);
            }
            for (i, (offset, len)) in reads.iter().enumerate() {
                let r = s.reply();
                check_read(&r, 10 + u32::try_from(i).unwrap(), &content, *offset, *len);
            }
            // An offset the kernel refuses is a failure, and splicing goes on after it.
            s.read(30, &handle, u64::MAX - 5, 10);
            assert_eq!(s.reply()[0], 101, "STATUS");
            s.read(31, &handle, 1000, 5000);
            check_read(&s.reply(), 31, &content, 1000, 5000);
            s.finish();
        }
    }

    /// More reads in flight than there are pipes: the rest are copied, and
    /// every reply still arrives whole and in order.
    #[test]
    fn reads_beyond_the_pipe_pool_are_copied() {
        let dir = tempfile::tempdir().unwrap();
        let content = test_content(3 << 20);
        std::fs::write(dir.path().join("f"), &content).unwrap();
        let mut s = PipeSession::start(dir.path(), PIPE_GROW_LIMIT);
        let handle = s.open(b"/f", 1);
        let reads: Vec<(u64, u32)> = (0..96u32).map(|i| (u64::from(i) * 32_768, 32_768)).collect();
        for (i, (offset, len)) in reads.iter().enumerate() {
            s.read(100 + u32::try_from(i).unwrap(), &handle, *offset, *len);
        }
        for (i, (offset, len)) in reads.iter().enumerate() {
            let r = s.reply();
            check_read(&r, 100 + u32::try_from(i).unwrap(), &content, *offset, *len);
        }
        s.finish();
    }

    /// A READ answers with the file as it was when the READ ran, even when
    /// a WRITE on the same handle follows before the reply is read.
    #[test]
    fn a_read_is_not_changed_by_the_write_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let content = test_content(100_000);
        std::fs::write(dir.path().join("f"), &content).unwrap();
        let mut s = PipeSession::start(dir.path(), PIPE_GROW_LIMIT);
        // READ | WRITE, no TRUNC: a file changed in place.
        let handle = s.open(b"/f", 1 | 2);
        s.read(7, &handle, 0, 50_000);
        s.send(&packet(6, Some(8), &[&string(&handle), &0u64.to_be_bytes(), &string(&[0xAA; 50_000])]));
        let r = s.reply();
        check_read(&r, 7, &content, 0, 50_000);
        let w = s.reply();
        assert_eq!((w[0], u32::from_be_bytes(w[5..9].try_into().unwrap())), (101, 0), "WRITE OK");
        s.finish();
    }
}
