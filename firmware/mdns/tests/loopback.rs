//! The responder loop on 127.0.0.1 without multicast: a loopback socket
//! stands in for the group, and queries come from other ports, which makes
//! them legacy unicast queries (RFC 6762 §6.7), the kind `dig` sends.

// Helpers outside `#[test]` functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use coffer_mdns::message::{CLASS_IN, FLAG_QR, parse, rtype};
use coffer_mdns::{LEGACY_TTL, Message, Name, Question, RData, Responder, serve_on};

const ADDR: Ipv4Addr = Ipv4Addr::new(10, 1, 2, 3);

struct Running {
    addr: SocketAddr,
    group: UdpSocket,
    shutdown: Arc<AtomicBool>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Running {
    fn start() -> Running {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let group = UdpSocket::bind("127.0.0.1:0").unwrap();
        group
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let group_addr = group.local_addr().unwrap();
        let shutdown = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&shutdown);
        let responder = Responder::new("coffer", ADDR, 2222).unwrap();
        let thread = thread::spawn(move || serve_on(socket, &responder, group_addr, &flag));
        Running {
            addr,
            group,
            shutdown,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.shutdown.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap().unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::Relaxed);
    }
}

fn name(s: &str) -> Name {
    Name::from_dotted(s).unwrap()
}

/// Sends a query with `id` for (`qname`, `qtype`) from a fresh socket and
/// returns the parsed reply, or `None` if none comes within 500 ms.
fn ask(to: SocketAddr, id: u16, qname: &str, qtype: u16) -> Option<Message> {
    let query = Message {
        id,
        flags: 0x0100,
        questions: vec![Question {
            name: name(qname),
            qtype,
            qclass: CLASS_IN,
            unicast_response: false,
        }],
        ..Message::default()
    };
    ask_raw(to, &query.encode(false).unwrap())
}

fn ask_raw(to: SocketAddr, bytes: &[u8]) -> Option<Message> {
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    client.send_to(bytes, to).unwrap();
    let mut buf = [0u8; 9000];
    let (len, from) = client.recv_from(&mut buf).ok()?;
    assert_eq!(from, to, "reply comes from the responder's socket");
    Some(parse(&buf[..len]).unwrap())
}

#[test]
fn legacy_unicast_queries_get_answers() {
    let mut running = Running::start();

    let reply = ask(running.addr, 0xBEEF, "_ssh._tcp.local", rtype::PTR).expect("a PTR reply");
    assert_eq!(reply.id, 0xBEEF);
    assert!(reply.is_response());
    assert_eq!(reply.questions.len(), 1);
    assert_eq!(reply.questions[0].name, name("_ssh._tcp.local"));
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(
        reply.answers[0].data,
        RData::Ptr(name("coffer._ssh._tcp.local"))
    );
    let srv = reply
        .additional
        .iter()
        .find(|r| r.rtype == rtype::SRV)
        .expect("SRV in additional");
    assert_eq!(
        srv.data,
        RData::Srv {
            priority: 0,
            weight: 0,
            port: 2222,
            target: name("coffer.local")
        }
    );
    assert!(reply.additional.iter().any(|r| r.data == RData::A(ADDR)));
    for r in reply.answers.iter().chain(&reply.additional) {
        assert!(r.ttl <= LEGACY_TTL && !r.cache_flush, "{r:?}");
    }

    let reply = ask(running.addr, 7, "COFFER.local", rtype::A).expect("an A reply");
    assert_eq!(reply.id, 7);
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(reply.answers[0].name, name("coffer.local"));
    assert_eq!(reply.answers[0].data, RData::A(ADDR));

    // Not ours, and not a query: silence.
    assert!(ask(running.addr, 8, "other.local", rtype::A).is_none());
    let response = Message {
        flags: FLAG_QR,
        ..ask(running.addr, 9, "coffer.local", rtype::A).unwrap()
    };
    assert!(ask_raw(running.addr, &response.encode(true).unwrap()).is_none());
    assert!(ask_raw(running.addr, b"\xff\xff garbage").is_none());

    // Still answering after all that.
    assert!(ask(running.addr, 10, "coffer._sftp-ssh._tcp.local", rtype::SRV).is_some());
    running.stop();
}

#[test]
fn announces_twice_a_second_apart_and_says_goodbye() {
    let start = Instant::now();
    let mut running = Running::start();
    let mut buf = [0u8; 9000];
    let mut arrivals = Vec::new();
    for _ in 0..2 {
        let (len, from) = running.group.recv_from(&mut buf).unwrap();
        assert_eq!(from, running.addr);
        arrivals.push(start.elapsed());
        let m = parse(&buf[..len]).unwrap();
        assert!(m.is_response() && m.id == 0 && m.questions.is_empty());
        assert_eq!(m.answers.len(), 9);
        assert!(m.answers.iter().all(|r| r.ttl > 0));
    }
    let gap = arrivals[1] - arrivals[0];
    assert!(
        gap >= Duration::from_millis(900) && gap < Duration::from_millis(1600),
        "{arrivals:?}"
    );

    running.stop();
    let (len, _) = running.group.recv_from(&mut buf).unwrap();
    let bye = parse(&buf[..len]).unwrap();
    assert_eq!(bye.answers.len(), 9);
    assert!(bye.answers.iter().all(|r| r.ttl == 0), "goodbye has TTL 0");
}

#[test]
fn dig_interoperates_if_present() {
    let dig = Path::new("/usr/bin/dig");
    if !dig.exists() {
        eprintln!("note: /usr/bin/dig not found; skipping the dig interoperability check");
        return;
    }
    let mut running = Running::start();
    let out = Command::new(dig)
        .args([
            "-p",
            &running.addr.port().to_string(),
            "@127.0.0.1",
            "+short",
            "+tries=1",
            "+time=2",
            "coffer.local",
            "A",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        ADDR.to_string(),
        "{out:?}"
    );
    let out = Command::new(dig)
        .args([
            "-p",
            &running.addr.port().to_string(),
            "@127.0.0.1",
            "+short",
            "+tries=1",
            "+time=2",
            "_ssh._tcp.local",
            "PTR",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "coffer._ssh._tcp.local.",
        "{out:?}"
    );
    running.stop();
}
