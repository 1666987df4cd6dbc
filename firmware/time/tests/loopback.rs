//! The SNTP client against tiny servers on 127.0.0.1: the measured offset,
//! replies from the wrong port, stale replies, kiss-o'-death, the timeout,
//! and falling through a server list.

// Helpers outside `#[test]` functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

use std::net::UdpSocket;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use coffer_time::{NtpTimestamp, ReplyError, TimeError, query, query_any};

/// 2040-01-01T00:00:00Z: past the 2036 NTP era roll-over.
fn server_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(2_208_988_800)
}

/// A server reply echoing `request`'s transmit timestamp, saying `now`.
fn reply(request: &[u8], now: SystemTime, stratum: u8) -> Vec<u8> {
    let mut p = vec![0u8; 48];
    p[0] = 0b00_100_100;
    p[1] = stratum;
    p[12..16].copy_from_slice(if stratum == 0 { b"RATE" } else { b"LOCL" });
    p[24..32].copy_from_slice(&request[40..48]);
    let ts = NtpTimestamp::from_system_time(now).to_bits().to_be_bytes();
    p[32..40].copy_from_slice(&ts);
    p[40..48].copy_from_slice(&ts);
    p
}

/// Runs `serve(socket, request, client)` for one request on a fresh
/// loopback socket; returns the server's address.
fn server(serve: impl FnOnce(&UdpSocket, &[u8], std::net::SocketAddr) + Send + 'static) -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    thread::spawn(move || {
        let mut buf = [0u8; 512];
        let (len, client) = socket.recv_from(&mut buf).unwrap();
        assert_eq!(len, 48);
        assert_eq!(buf[0], 0x23, "version 4, client mode");
        serve(&socket, &buf[..len], client);
    });
    addr
}

fn assert_near(got: SystemTime, want: SystemTime) {
    let diff = got.duration_since(want).unwrap_or_else(|e| e.duration());
    assert!(diff < Duration::from_millis(500), "{got:?} vs {want:?}");
}

#[test]
fn measures_the_offset_to_a_server_in_2040() {
    let addr = server(|s, req, client| {
        s.send_to(&reply(req, server_time(), 2), client).unwrap();
    });
    let before = SystemTime::now();
    let sample = query(&addr, Duration::from_secs(5)).unwrap();
    assert_near(sample.server_time().unwrap(), server_time());
    let expected =
        i128::try_from(server_time().duration_since(before).unwrap().as_nanos()).unwrap();
    assert!(
        (i128::from(sample.offset_ns) - expected).abs() < 500_000_000,
        "offset {}",
        sample.offset_ns
    );
    assert_eq!(sample.stratum, 2);
    assert!(sample.delay < Duration::from_secs(1));
}

#[test]
fn ignores_replies_from_another_port_and_stale_replies() {
    let addr = server(|s, req, client| {
        // Same host, wrong port, plausible packet with another time.
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        other
            .send_to(
                &reply(req, UNIX_EPOCH + Duration::from_secs(1_000_000_000), 1),
                client,
            )
            .unwrap();
        // Right port, but answering some earlier request.
        let mut stale = reply(req, UNIX_EPOCH + Duration::from_secs(1_100_000_000), 1);
        stale[31] ^= 0xff;
        s.send_to(&stale, client).unwrap();
        thread::sleep(Duration::from_millis(50));
        s.send_to(&reply(req, server_time(), 1), client).unwrap();
    });
    let sample = query(&addr, Duration::from_secs(5)).unwrap();
    assert_near(sample.server_time().unwrap(), server_time());
}

#[test]
fn times_out_when_only_the_wrong_port_answers() {
    let addr = server(|_, req, client| {
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        other
            .send_to(&reply(req, server_time(), 1), client)
            .unwrap();
    });
    let timeout = Duration::from_millis(700);
    let start = Instant::now();
    let err = query(&addr, timeout).unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, TimeError::Timeout { .. }), "{err}");
    assert!(
        took >= timeout && took < timeout + Duration::from_millis(500),
        "took {took:?}"
    );
}

#[test]
fn kiss_of_death_is_an_error() {
    let addr = server(|s, req, client| {
        s.send_to(&reply(req, server_time(), 0), client).unwrap();
    });
    match query(&addr, Duration::from_secs(5)) {
        Err(TimeError::Reply {
            source: ReplyError::KissOfDeath { code },
            ..
        }) => assert_eq!(code, "RATE"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn query_any_falls_through_to_a_working_server() {
    // A port nobody listens on: the connected socket hears ICMP unreachable.
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let good = server(|s, req, client| {
        s.send_to(&reply(req, server_time(), 3), client).unwrap();
    });
    let servers = vec!["".to_owned(), closed, good.clone()];
    let (used, sample) = query_any(&servers, Duration::from_secs(3)).unwrap();
    assert_eq!(used, good);
    assert_near(sample.server_time().unwrap(), server_time());
}

#[test]
fn query_any_reports_every_failure() {
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let servers = vec!["bad:port:".to_owned(), closed.clone()];
    let err = query_any(&servers, Duration::from_millis(500)).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, TimeError::AllFailed(list) if list.len() == 2),
        "{text}"
    );
    assert!(text.contains(&closed), "{text}");
}
