//! The threads of one session: a reader splits packets off the input and
//! queues each on a lane, lanes run requests, one writer sends replies.
//!
//! Requests on one handle always go to the same lane, so they run in the
//! order the client sent them (a CLOSE never overtakes the WRITEs before
//! it), while different handles (restic and rclone keep several busy)
//! proceed in parallel. Path requests share lane 0. Bounded queues carry
//! back-pressure from the disk to the SSH window.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};

use coffer_sftp_proto::{MAX_PACKET, Request, RequestKind};

use super::buffers::BufferPool;
use super::dispatch::handle_packet;
use super::handles::parse_handle;
use super::reply::Outgoing;
use super::session::Session;

/// Lanes that do file work; lane 0 takes every path request.
const LANES: usize = 4;
/// Requests queued per lane before the reader stops reading the channel.
const LANE_QUEUE: usize = 64;
/// Packets that can wait in the lane queues at once: the buffers worth keeping.
pub(super) const QUEUED_PACKETS: usize = LANE_QUEUE * LANES;

/// Runs the session's threads until the input ends and every reply is out.
/// `splice_to` is the output as a pipe, when READ may splice into it.
pub(super) fn run(
    session: &Arc<Session>,
    input: impl Read,
    output: impl Write + Send + 'static,
    splice_to: Option<OwnedFd>,
) -> io::Result<()> {
    let (reply_tx, reply_rx) = sync_channel::<Outgoing>(QUEUED_PACKETS);
    let writer_session = Arc::clone(session);
    let writer = std::thread::Builder::new()
        .name("sftp-writer".into())
        .spawn(move || write_replies(reply_rx, output, splice_to, &writer_session))?;

    let mut lanes: Vec<SyncSender<Vec<u8>>> = Vec::with_capacity(LANES);
    let mut workers = Vec::with_capacity(LANES);
    for lane in 0..LANES {
        let (tx, rx) = sync_channel::<Vec<u8>>(LANE_QUEUE);
        let session = Arc::clone(session);
        let replies = reply_tx.clone();
        workers.push(std::thread::Builder::new().name(format!("sftp-lane-{lane}")).spawn(move || {
            for packet in rx {
                let reply = handle_packet(&session, &packet);
                session.buffers.give(packet);
                if replies.send(reply).is_err() {
                    break;
                }
            }
        })?);
        lanes.push(tx);
    }
    drop(reply_tx);

    let result = read_requests(&mut BufReader::with_capacity(512 * 1024, input), &lanes, &session.buffers);
    drop(lanes);
    for w in workers {
        let _ = w.join();
    }
    let _ = writer.join();
    result
}

fn write_replies(rx: Receiver<Outgoing>, output: impl Write, splice_to: Option<OwnedFd>, session: &Session) {
    // Small replies are gathered; DATA packets larger than the buffer go
    // straight to the output without another copy.
    let mut out = BufWriter::with_capacity(64 * 1024, output);
    loop {
        let packet = match rx.try_recv() {
            Ok(p) => p,
            Err(TryRecvError::Empty) => {
                // Nothing else is ready: push what we have to the client.
                if out.flush().is_err() {
                    return;
                }
                match rx.recv() {
                    Ok(p) => p,
                    Err(_) => return,
                }
            }
            Err(TryRecvError::Disconnected) => {
                let _ = out.flush();
                return;
            }
        };
        match packet {
            Outgoing::Packet(packet) => {
                if out.write_all(&packet).is_err() {
                    return;
                }
                session.buffers.give(packet);
            }
            Outgoing::Spliced { header, pipe, spliced, tail } => {
                // The header must be out before the pipe's bytes follow it.
                let (Some(to), Some(pool)) = (&splice_to, &session.pipes) else { return };
                if out.write_all(&header).is_err() || out.flush().is_err() || !pipe.splice_out(to, spliced) {
                    return;
                }
                pool.give(pipe);
                if out.write_all(&tail).is_err() {
                    return;
                }
                session.buffers.give(tail);
            }
        }
    }
}

/// Reads packets and hands each to its lane. Returns at end of input.
fn read_requests(input: &mut impl Read, lanes: &[SyncSender<Vec<u8>>], buffers: &BufferPool) -> io::Result<()> {
    let mut len_buf = [0u8; 4];
    loop {
        match input.read_exact(&mut len_buf) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes(len_buf);
        if len == 0 || len > MAX_PACKET {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("client sent a packet of {len} bytes (limit {MAX_PACKET}); closing the session"),
            ));
        }
        let mut packet = buffers.take();
        packet.extend_from_slice(&len_buf);
        let body_len = u64::from(len);
        if input.by_ref().take(body_len).read_to_end(&mut packet)? != len as usize {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "client closed the channel inside a packet"));
        }
        let lane = lane_of(&packet[4..]);
        if lanes[lane].send(packet).is_err() {
            return Ok(());
        }
    }
}

/// Picks the lane: requests naming a handle go to that handle's lane.
fn lane_of(body: &[u8]) -> usize {
    let handle = match Request::decode(body) {
        Ok(req) => match req.kind {
            RequestKind::Close { handle }
            | RequestKind::Read { handle, .. }
            | RequestKind::Write { handle, .. }
            | RequestKind::Fstat { handle }
            | RequestKind::Fsetstat { handle, .. }
            | RequestKind::Readdir { handle }
            | RequestKind::Fstatvfs { handle }
            | RequestKind::Fsync { handle } => parse_handle(handle),
            _ => None,
        },
        Err(_) => None,
    };
    match handle {
        Some(h) => 1 + (h as usize % (LANES - 1)),
        None => 0,
    }
}
