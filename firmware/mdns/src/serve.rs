//! The responder on a socket: announce, then answer queries until told to
//! stop, then say goodbye. Blocking, one thread, no async.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::responder::{Destination, MDNS_GROUP, MDNS_PORT, Responder};

/// How often the loop looks at the shutdown flag.
const POLL: Duration = Duration::from_millis(250);
/// The two start-up announcements are this far apart (RFC 6762 §8.3).
const ANNOUNCE_GAP: Duration = Duration::from_secs(1);
/// Largest mDNS message (RFC 6762 §17).
const MAX_MESSAGE: usize = 9000;

/// The group address and port replies and announcements go to.
pub fn group_addr() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(MDNS_GROUP, MDNS_PORT))
}

/// A UDP socket on 0.0.0.0:5353 (shared with any other responder through
/// `SO_REUSEADDR`), member of 224.0.0.251 on the interface that has
/// `interface`, sending there with TTL 255 (RFC 6762 §11).
pub fn multicast_socket(interface: Ipv4Addr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, MDNS_PORT)).into())?;
    socket.join_multicast_v4(&MDNS_GROUP, &interface)?;
    socket.set_multicast_if_v4(&interface)?;
    socket.set_multicast_ttl_v4(255)?;
    socket.set_ttl_v4(255)?;
    Ok(socket.into())
}

/// Runs the responder on the mDNS group on the interface with the
/// responder's address, until `shutdown` is set. If that address changes
/// (a new DHCP lease), stop and start again with a new responder.
pub fn serve(responder: &Responder, shutdown: &AtomicBool) -> io::Result<()> {
    let socket = multicast_socket(responder.addr())?;
    log::info!(
        "mDNS: advertising {}.local at {} (SSH port {})",
        responder.host(),
        responder.addr(),
        responder.port()
    );
    serve_on(socket, responder, group_addr(), shutdown)
}

/// Runs the responder on `socket`: announces to `group` twice, one second
/// apart, answers each query (multicast answers to `group`, unicast ones to
/// the sender), and sends a goodbye to `group` once `shutdown` is set.
/// Send failures are logged and do not stop the loop (the link may be down
/// for a while); a receive failure other than a timeout ends it.
pub fn serve_on(
    socket: UdpSocket,
    responder: &Responder,
    group: SocketAddr,
    shutdown: &AtomicBool,
) -> io::Result<()> {
    let start = Instant::now();
    let mut announce_at = vec![start, start + ANNOUNCE_GAP];
    announce_at.reverse();
    let mut buf = vec![0u8; MAX_MESSAGE];
    let send = |message: &[u8], to: SocketAddr, what: &str| {
        if let Err(e) = socket.send_to(message, to) {
            log::warn!("mDNS: sending {what} to {to} failed: {e}");
        }
    };
    while !shutdown.load(Ordering::Relaxed) {
        let now = Instant::now();
        if announce_at.last().is_some_and(|&due| due <= now) {
            announce_at.pop();
            send(&responder.announcement(), group, "the announcement");
        }
        let wait = announce_at
            .last()
            .map_or(POLL, |&due| due.saturating_duration_since(now).min(POLL));
        socket.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        let (len, from) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e),
        };
        let Some(reply) = buf
            .get(..len)
            .and_then(|query| responder.answer(query, from))
        else {
            continue;
        };
        let to = match reply.destination {
            Destination::Multicast => group,
            Destination::Unicast(to) => to,
        };
        log::debug!("mDNS: answering {from} via {to}");
        send(&reply.message, to, "a reply");
    }
    send(&responder.goodbye(), group, "the goodbye");
    Ok(())
}
