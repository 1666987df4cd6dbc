//! The SNTP client: one request, one validated reply, over a UDP socket.
//! Servers are tried in the order given; the first good sample wins.

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant, SystemTime};

use crate::packet::{self, NtpTimestamp, ReplyError, Sample};

/// The NTP port, used when a server is named without one.
pub const DEFAULT_PORT: u16 = 123;

/// Why no time could be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// The server string is not `host`, `host:port`, `[v6]` or `[v6]:port`.
    #[error("time server {server:?} is not host or host:port ({reason}): fix the server list")]
    BadServer {
        /// The server as configured.
        server: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Name resolution failed.
    #[error(
        "time server {server}: cannot resolve the name ({source}): check DNS and the server name"
    )]
    Resolve {
        /// The server as configured.
        server: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// The name resolved to no address.
    #[error("time server {server}: the name has no address: check the server name")]
    NoAddress {
        /// The server as configured.
        server: String,
    },
    /// Creating the socket, sending or receiving failed.
    #[error(
        "time server {server} ({addr}): {source}: check the network and that the server runs NTP"
    )]
    Network {
        /// The server as configured.
        server: String,
        /// The address that was tried.
        addr: SocketAddr,
        /// The socket error.
        source: io::Error,
    },
    /// No valid reply within the time allowed.
    #[error(
        "time server {server}: no reply within {timeout:?}: check the network, the firewall (UDP 123) and the server"
    )]
    Timeout {
        /// The server as configured.
        server: String,
        /// The time allowed.
        timeout: Duration,
    },
    /// A reply came and was refused.
    #[error("time server {server}: {source}")]
    Reply {
        /// The server as configured.
        server: String,
        /// Why the reply was refused.
        source: ReplyError,
    },
    /// `query_any` was given an empty list.
    #[error("no time server is configured: add one to the configuration")]
    NoServers,
    /// Every server failed; one entry per server, in the order tried.
    #[error("no time server gave the time: {}", list_failures(.0))]
    AllFailed(Vec<TimeError>),
}

fn list_failures(failures: &[TimeError]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Asks one server for the time. `server` is `host`, `host:port`, an IPv6
/// literal or `[v6]:port`; the port defaults to 123. `timeout` bounds the
/// exchange (name resolution uses the system resolver and its own limits).
/// Datagrams from any other address, and replies that do not echo this
/// request, are ignored while waiting.
pub fn query(server: &str, timeout: Duration) -> Result<Sample, TimeError> {
    let deadline = Instant::now() + timeout;
    let (host, port) = split_server(server).map_err(|reason| TimeError::BadServer {
        server: server.to_owned(),
        reason,
    })?;
    let mut addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|source| TimeError::Resolve {
            server: server.to_owned(),
            source,
        })?
        .collect();
    // The box is usually IPv4-only (DHCP); try those addresses first.
    addrs.sort_by_key(SocketAddr::is_ipv6);
    let mut last = TimeError::NoAddress {
        server: server.to_owned(),
    };
    for addr in addrs {
        match exchange(server, addr, deadline, timeout) {
            Ok(sample) => return Ok(sample),
            // Out of time: another address would not get any.
            Err(e @ TimeError::Timeout { .. }) => return Err(e),
            Err(e) => {
                log::debug!("{e}");
                last = e;
            }
        }
    }
    Err(last)
}

/// Tries each server in order and returns the first good sample with the
/// server that gave it; each server gets `timeout`. If none answers, the
/// error lists every server's failure.
pub fn query_any(servers: &[String], timeout: Duration) -> Result<(String, Sample), TimeError> {
    if servers.is_empty() {
        return Err(TimeError::NoServers);
    }
    let mut failures = Vec::new();
    for server in servers {
        match query(server, timeout) {
            Ok(sample) => return Ok((server.clone(), sample)),
            Err(e) => {
                log::debug!("{e}");
                failures.push(e);
            }
        }
    }
    Err(TimeError::AllFailed(failures))
}

/// One request/reply with `addr`, bounded by `deadline`.
fn exchange(
    server: &str,
    addr: SocketAddr,
    deadline: Instant,
    timeout: Duration,
) -> Result<Sample, TimeError> {
    let network = |source| TimeError::Network {
        server: server.to_owned(),
        addr,
        source,
    };
    let local: SocketAddr = if addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).map_err(network)?;
    // Connected: the kernel drops datagrams from other addresses and
    // reports ICMP "port unreachable" as an error instead of a timeout.
    socket.connect(addr).map_err(network)?;

    let t1 = SystemTime::now();
    // The low 16 bits of the fraction (15 µs) are random: a forger who
    // cannot see the request must guess them. T1 itself is kept exactly.
    let sent = NtpTimestamp::from_bits(
        (NtpTimestamp::from_system_time(t1).to_bits() & !0xffff) | (nonce() & 0xffff),
    );
    socket.send(&packet::request(sent)).map_err(network)?;

    // Room for extension fields and a MAC, which are ignored.
    let mut buf = [0u8; 1024];
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(TimeError::Timeout {
                server: server.to_owned(),
                timeout,
            });
        }
        socket.set_read_timeout(Some(remaining)).map_err(network)?;
        let (len, from) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(network(e)),
        };
        let t4 = SystemTime::now();
        if from != addr {
            log::debug!("time server {server}: ignoring a datagram from {from}");
            continue;
        }
        let reply = match packet::parse_reply(buf.get(..len).unwrap_or_default(), sent) {
            Ok(reply) => reply,
            // A late answer to an earlier request, or a forgery: keep waiting
            // for ours rather than letting it cost us the server.
            Err(ReplyError::OriginMismatch) => {
                log::debug!(
                    "time server {server}: ignoring a reply that does not echo our request"
                );
                continue;
            }
            Err(source) => {
                return Err(TimeError::Reply {
                    server: server.to_owned(),
                    source,
                });
            }
        };
        return Sample::from_exchange(t1, &reply, t4, packet::era_pivot_floor()).map_err(
            |source| TimeError::Reply {
                server: server.to_owned(),
                source,
            },
        );
    }
}

/// Splits `host[:port]`, `v6-literal` or `[v6-literal][:port]`.
fn split_server(server: &str) -> Result<(&str, u16), &'static str> {
    let server = server.trim();
    if server.is_empty() {
        return Err("empty");
    }
    let parse_port = |p: &str| p.parse::<u16>().ok().filter(|&p| p != 0).ok_or("bad port");
    if let Some(rest) = server.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("missing ']'")?;
        return match after {
            "" => Ok((host, DEFAULT_PORT)),
            _ => Ok((
                host,
                parse_port(after.strip_prefix(':').ok_or("junk after ']'")?)?,
            )),
        };
    }
    match server.matches(':').count() {
        0 => Ok((server, DEFAULT_PORT)),
        // A bare IPv6 literal has several colons and no port.
        1 => {
            let (host, port) = server.split_once(':').ok_or("bad port")?;
            if host.is_empty() {
                return Err("empty host");
            }
            Ok((host, parse_port(port)?))
        }
        _ => Ok((server, DEFAULT_PORT)),
    }
}

/// 64 bits that differ per call and per process; not cryptographic, only
/// there to make forged replies guess.
fn nonce() -> u64 {
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u128(crate::packet::unix_nanos(SystemTime::now()).cast_unsigned());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_strings() {
        type Case<'a> = (&'a str, Result<(&'a str, u16), &'a str>);
        let cases: [Case<'_>; 11] = [
            ("pool.ntp.org", Ok(("pool.ntp.org", 123))),
            (" pool.ntp.org ", Ok(("pool.ntp.org", 123))),
            ("10.0.0.1:1123", Ok(("10.0.0.1", 1123))),
            ("::1", Ok(("::1", 123))),
            ("[::1]", Ok(("::1", 123))),
            ("[fe80::1]:124", Ok(("fe80::1", 124))),
            ("", Err("empty")),
            ("host:", Err("bad port")),
            ("host:0", Err("bad port")),
            (":123", Err("empty host")),
            ("[::1]x", Err("junk after ']'")),
        ];
        for (input, expect) in cases {
            assert_eq!(split_server(input), expect, "{input:?}");
        }
    }

    #[test]
    fn all_failed_lists_every_server() {
        let e = TimeError::AllFailed(vec![
            TimeError::NoAddress { server: "a".into() },
            TimeError::Timeout {
                server: "b".into(),
                timeout: Duration::from_secs(1),
            },
        ]);
        let text = e.to_string();
        assert!(
            text.contains("time server a:") && text.contains("time server b:"),
            "{text}"
        );
    }

    #[test]
    fn no_servers() {
        assert!(matches!(
            query_any(&[], Duration::from_secs(1)),
            Err(TimeError::NoServers)
        ));
    }
}
