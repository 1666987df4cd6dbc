//! What the box says on the link: its records, and which of them answer a
//! given query, to whom (RFC 6762 §5, §6, §6.7, §7.1, §10; RFC 6763 §12).
//! Pure: bytes and the sender's address in, bytes and a destination out.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};

use crate::message::{
    self, CLASS_ANY, CLASS_IN, FLAG_AA, FLAG_QR, FLAG_RD, Message, RData, Record, rtype,
};
use crate::name::{Name, NameError};

/// The mDNS port.
pub const MDNS_PORT: u16 = 5353;
/// The IPv4 mDNS group.
pub const MDNS_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);

/// TTL of records naming the host or holding its name (A, SRV): RFC 6762 §10.
pub const HOST_TTL: u32 = 120;
/// TTL of the other records (PTR, TXT): 75 minutes, RFC 6762 §10.
pub const OTHER_TTL: u32 = 4500;
/// Most a legacy unicast answer may be cached (RFC 6762 §6.7).
pub const LEGACY_TTL: u32 = 10;

/// The DNS-SD service types advertised, all on the SSH port.
pub const SERVICE_TYPES: [&str; 2] = ["_ssh._tcp.local", "_sftp-ssh._tcp.local"];
const SERVICES_META: &str = "_services._dns-sd._udp.local";

/// Where a reply goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// To the group, 224.0.0.251:5353.
    Multicast,
    /// Straight back to this address (a QU question, or a legacy resolver).
    Unicast(SocketAddr),
}

/// A response to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The encoded DNS message.
    pub message: Vec<u8>,
    /// Where to send it.
    pub destination: Destination,
}

/// The records of one box: `NAME.local` A, and `NAME` as an instance of
/// each of [`SERVICE_TYPES`] (PTR, SRV to `NAME.local:PORT`, empty TXT),
/// plus the DNS-SD service enumeration PTRs.
#[derive(Debug, Clone)]
pub struct Responder {
    host: String,
    addr: Ipv4Addr,
    port: u16,
    records: Vec<Record>,
}

impl Responder {
    /// A responder for host `host` (a bare label such as `coffer`) at
    /// `addr`, with SSH on `port`.
    pub fn new(host: &str, addr: Ipv4Addr, port: u16) -> Result<Self, NameError> {
        if host.contains('.') {
            return Err(NameError::Dotted(host.to_owned()));
        }
        let local = Name::from_dotted("local")?;
        let host_name = local.child(host.as_bytes())?;
        let record = |name: &Name, rtype: u16, unique: bool, ttl: u32, data: RData| Record {
            name: name.clone(),
            rtype,
            class: CLASS_IN,
            cache_flush: unique,
            ttl,
            data,
        };
        let mut records = vec![record(&host_name, rtype::A, true, HOST_TTL, RData::A(addr))];
        let meta = Name::from_dotted(SERVICES_META)?;
        let mut meta_records = Vec::new();
        for service in SERVICE_TYPES {
            let service = Name::from_dotted(service)?;
            let instance = service.child(host.as_bytes())?;
            records.push(record(
                &service,
                rtype::PTR,
                false,
                OTHER_TTL,
                RData::Ptr(instance.clone()),
            ));
            let srv = RData::Srv {
                priority: 0,
                weight: 0,
                port,
                target: host_name.clone(),
            };
            records.push(record(&instance, rtype::SRV, true, HOST_TTL, srv));
            // One empty string: "no keys" (RFC 6763 §6.1).
            records.push(record(
                &instance,
                rtype::TXT,
                true,
                OTHER_TTL,
                RData::Txt(vec![0]),
            ));
            meta_records.push(record(
                &meta,
                rtype::PTR,
                false,
                OTHER_TTL,
                RData::Ptr(service),
            ));
        }
        records.extend(meta_records);
        Ok(Responder {
            host: host.to_owned(),
            addr,
            port,
            records,
        })
    }

    /// The host label (`coffer`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The advertised IPv4 address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The advertised SSH port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every record this responder owns, with its normal TTL.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Decides the reply to `query`, received from `from`. `None` for
    /// anything that is not a well-formed standard query about our records
    /// (responses, other opcodes, non-zero rcode, other names), and when
    /// the querier already holds every answer (known-answer suppression).
    ///
    /// A query from a port other than 5353 is a legacy resolver (`dig -p
    /// 5353 @…`): it gets a unicast reply with its ID, its questions, TTLs of
    /// at most 10 s and no cache-flush bits (RFC 6762 §6.7). Otherwise the
    /// reply is multicast, unless every question that matched asked for a
    /// unicast reply (QU), and has ID 0 and no questions (§6, §18.1).
    pub fn answer(&self, query: &[u8], from: SocketAddr) -> Option<Reply> {
        let msg = message::parse(query).ok()?;
        if msg.is_response() || msg.opcode() != 0 || msg.rcode() != 0 {
            return None;
        }
        let mut answers: Vec<Record> = Vec::new();
        let mut all_unicast = true;
        for q in &msg.questions {
            if q.qclass != CLASS_IN && q.qclass != CLASS_ANY {
                continue;
            }
            let matching = self
                .records
                .iter()
                .filter(|r| r.name == q.name && (q.qtype == rtype::ANY || q.qtype == r.rtype));
            let mut matched = false;
            for r in matching {
                matched = true;
                if !answers.contains(r) {
                    answers.push(r.clone());
                }
            }
            if matched && !q.unicast_response {
                all_unicast = false;
            }
        }
        // §7.1: skip what the querier listed as known with at least half
        // our TTL left.
        answers.retain(|a| {
            !msg.answers.iter().any(|k| {
                k.name == a.name && k.rtype == a.rtype && k.data == a.data && k.ttl >= a.ttl / 2
            })
        });
        if answers.is_empty() {
            return None;
        }
        let additional = self.additional_for(&answers);

        let legacy = from.port() != MDNS_PORT;
        let reply = if legacy {
            let cap = |mut r: Record| {
                r.ttl = r.ttl.min(LEGACY_TTL);
                r.cache_flush = false;
                r
            };
            Message {
                id: msg.id,
                flags: FLAG_QR | FLAG_AA | (msg.flags & FLAG_RD),
                questions: msg.questions,
                answers: answers.into_iter().map(cap).collect(),
                authority: Vec::new(),
                additional: additional.into_iter().map(cap).collect(),
            }
        } else {
            Message {
                id: 0,
                flags: FLAG_QR | FLAG_AA,
                questions: Vec::new(),
                answers,
                authority: Vec::new(),
                additional,
            }
        };
        let destination = if legacy || all_unicast {
            Destination::Unicast(from)
        } else {
            Destination::Multicast
        };
        match reply.encode(true) {
            Ok(message) => Some(Reply {
                message,
                destination,
            }),
            Err(e) => {
                log::warn!("mDNS reply to {from} not sent: {e}");
                None
            }
        }
    }

    /// The records a resolver will want next (RFC 6763 §12): for a PTR to
    /// an instance its SRV and TXT, for an SRV the host's address; none
    /// that are already answers.
    fn additional_for(&self, answers: &[Record]) -> Vec<Record> {
        let mut wanted: Vec<Record> = Vec::new();
        let push = |r: &Record, wanted: &mut Vec<Record>| {
            if !answers.contains(r) && !wanted.contains(r) {
                wanted.push(r.clone());
            }
        };
        for a in answers {
            if let RData::Ptr(target) = &a.data {
                for r in self.records.iter().filter(|r| {
                    &r.name == target && (r.rtype == rtype::SRV || r.rtype == rtype::TXT)
                }) {
                    push(r, &mut wanted);
                }
            }
        }
        let hosts: HashSet<Name> = answers
            .iter()
            .chain(&wanted)
            .filter_map(|r| match &r.data {
                RData::Srv { target, .. } => Some(target.clone()),
                _ => None,
            })
            .collect();
        for r in self
            .records
            .iter()
            .filter(|r| r.rtype == rtype::A && hosts.contains(&r.name))
        {
            push(r, &mut wanted);
        }
        wanted
    }

    /// An unsolicited response with every record (RFC 6762 §8.3): sent at
    /// start-up, twice, one second apart.
    pub fn announcement(&self) -> Vec<u8> {
        self.unsolicited(None)
    }

    /// The announcement with TTL 0 (RFC 6762 §10.1): caches drop the
    /// records at once when the service stops.
    pub fn goodbye(&self) -> Vec<u8> {
        self.unsolicited(Some(0))
    }

    fn unsolicited(&self, ttl: Option<u32>) -> Vec<u8> {
        let answers = self
            .records
            .iter()
            .cloned()
            .map(|mut r| {
                r.ttl = ttl.unwrap_or(r.ttl);
                r
            })
            .collect();
        let msg = Message {
            id: 0,
            flags: FLAG_QR | FLAG_AA,
            questions: Vec::new(),
            answers,
            authority: Vec::new(),
            additional: Vec::new(),
        };
        // Nine small records: far below any limit of `encode`.
        msg.encode(true).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Question, parse};

    fn responder() -> Responder {
        Responder::new("coffer", Ipv4Addr::new(192, 168, 1, 20), 22).unwrap()
    }

    fn name(s: &str) -> Name {
        Name::from_dotted(s).unwrap()
    }

    fn q(n: &str, qtype: u16) -> Question {
        Question {
            name: name(n),
            qtype,
            qclass: CLASS_IN,
            unicast_response: false,
        }
    }

    fn query(questions: Vec<Question>) -> Message {
        Message {
            id: 0x1234,
            flags: FLAG_RD,
            questions,
            ..Message::default()
        }
    }

    const MDNS_PEER: &str = "192.168.1.5:5353";
    const LEGACY_PEER: &str = "192.168.1.5:40000";

    /// Answers `query` from `from`: (destination, answers as "name type", additional as "name type").
    fn ask(m: &Message, from: &str) -> Option<(Destination, Vec<String>, Vec<String>, Message)> {
        let reply = responder().answer(&m.encode(true).unwrap(), from.parse().unwrap())?;
        let parsed = parse(&reply.message).unwrap();
        let list = |rs: &[Record]| {
            rs.iter()
                .map(|r| format!("{} {}", r.name, r.rtype))
                .collect()
        };
        Some((
            reply.destination,
            list(&parsed.answers),
            list(&parsed.additional),
            parsed,
        ))
    }

    #[test]
    fn answer_decisions() {
        let srv = "coffer._ssh._tcp.local 33";
        let txt = "coffer._ssh._tcp.local 16";
        let a = "coffer.local 1";
        let mc = Some(Destination::Multicast);
        /// (what, query, where the reply goes or `None` for silence, answers, additional)
        type Case = (
            &'static str,
            Message,
            Option<Destination>,
            Vec<&'static str>,
            Vec<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "A",
                query(vec![q("coffer.local", rtype::A)]),
                mc,
                vec![a],
                vec![],
            ),
            (
                "A any case",
                query(vec![q("CoFfEr.LoCaL", rtype::A)]),
                mc,
                vec![a],
                vec![],
            ),
            (
                "ANY host",
                query(vec![q("coffer.local", rtype::ANY)]),
                mc,
                vec![a],
                vec![],
            ),
            (
                "PTR browse",
                query(vec![q("_ssh._tcp.local", rtype::PTR)]),
                mc,
                vec!["_ssh._tcp.local 12"],
                vec![srv, txt, a],
            ),
            (
                "PTR sftp",
                query(vec![q("_sftp-ssh._tcp.local", rtype::PTR)]),
                mc,
                vec!["_sftp-ssh._tcp.local 12"],
                vec![
                    "coffer._sftp-ssh._tcp.local 33",
                    "coffer._sftp-ssh._tcp.local 16",
                    a,
                ],
            ),
            (
                "SRV",
                query(vec![q("coffer._ssh._tcp.local", rtype::SRV)]),
                mc,
                vec![srv],
                vec![a],
            ),
            (
                "TXT",
                query(vec![q("coffer._ssh._tcp.local", rtype::TXT)]),
                mc,
                vec![txt],
                vec![],
            ),
            (
                "ANY instance",
                query(vec![q("coffer._ssh._tcp.local", rtype::ANY)]),
                mc,
                vec![srv, txt],
                vec![a],
            ),
            (
                "service enumeration",
                query(vec![q("_services._dns-sd._udp.local", rtype::PTR)]),
                mc,
                vec![
                    "_services._dns-sd._udp.local 12",
                    "_services._dns-sd._udp.local 12",
                ],
                vec![],
            ),
            (
                "two questions",
                query(vec![
                    q("coffer.local", rtype::A),
                    q("coffer._ssh._tcp.local", rtype::SRV),
                ]),
                mc,
                vec![a, srv],
                vec![],
            ),
            (
                "AAAA: nothing",
                query(vec![q("coffer.local", rtype::AAAA)]),
                None,
                vec![],
                vec![],
            ),
            (
                "other host",
                query(vec![q("other.local", rtype::A)]),
                None,
                vec![],
                vec![],
            ),
            (
                "other service",
                query(vec![q("_http._tcp.local", rtype::PTR)]),
                None,
                vec![],
                vec![],
            ),
            (
                "class CH",
                query(vec![Question {
                    qclass: 3,
                    ..q("coffer.local", rtype::A)
                }]),
                None,
                vec![],
                vec![],
            ),
            (
                "class ANY",
                query(vec![Question {
                    qclass: CLASS_ANY,
                    ..q("coffer.local", rtype::A)
                }]),
                mc,
                vec![a],
                vec![],
            ),
            ("no questions", query(vec![]), None, vec![], vec![]),
            (
                "a response",
                Message {
                    flags: FLAG_QR,
                    ..query(vec![q("coffer.local", rtype::A)])
                },
                None,
                vec![],
                vec![],
            ),
            (
                "opcode 4 (notify)",
                Message {
                    flags: 4 << 11,
                    ..query(vec![q("coffer.local", rtype::A)])
                },
                None,
                vec![],
                vec![],
            ),
            (
                "rcode set",
                Message {
                    flags: 3,
                    ..query(vec![q("coffer.local", rtype::A)])
                },
                None,
                vec![],
                vec![],
            ),
            (
                "QU only",
                query(vec![Question {
                    unicast_response: true,
                    ..q("coffer.local", rtype::A)
                }]),
                Some(Destination::Unicast(MDNS_PEER.parse().unwrap())),
                vec![a],
                vec![],
            ),
            (
                "QU and QM mixed: multicast",
                query(vec![
                    Question {
                        unicast_response: true,
                        ..q("coffer.local", rtype::A)
                    },
                    q("_ssh._tcp.local", rtype::PTR),
                ]),
                mc,
                vec![a, "_ssh._tcp.local 12"],
                vec![srv, txt],
            ),
            (
                "QU for a name we lack does not force multicast",
                query(vec![
                    Question {
                        unicast_response: true,
                        ..q("coffer.local", rtype::A)
                    },
                    q("other.local", rtype::A),
                ]),
                Some(Destination::Unicast(MDNS_PEER.parse().unwrap())),
                vec![a],
                vec![],
            ),
        ];
        for (what, m, dest, answers, additional) in cases {
            match ask(&m, MDNS_PEER) {
                None => assert_eq!(dest, None, "{what}: no reply"),
                Some((d, got_answers, got_additional, parsed)) => {
                    assert_eq!(Some(d), dest, "{what}");
                    assert_eq!(got_answers, answers, "{what}");
                    assert_eq!(got_additional, additional, "{what}");
                    assert_eq!(parsed.id, 0, "{what}: multicast-style replies have ID 0");
                    assert!(parsed.questions.is_empty(), "{what}: and no questions");
                    assert_eq!(parsed.flags, FLAG_QR | FLAG_AA, "{what}");
                }
            }
        }
    }

    #[test]
    fn record_contents() {
        let (_, _, _, m) = ask(&query(vec![q("_ssh._tcp.local", rtype::PTR)]), MDNS_PEER).unwrap();
        let by_type = |t: u16| {
            m.answers
                .iter()
                .chain(&m.additional)
                .find(|r| r.rtype == t)
                .unwrap()
                .clone()
        };
        let ptr = by_type(rtype::PTR);
        assert_eq!((ptr.ttl, ptr.cache_flush), (OTHER_TTL, false));
        assert_eq!(ptr.data, RData::Ptr(name("coffer._ssh._tcp.local")));
        let srv = by_type(rtype::SRV);
        assert_eq!((srv.ttl, srv.cache_flush), (HOST_TTL, true));
        assert_eq!(
            srv.data,
            RData::Srv {
                priority: 0,
                weight: 0,
                port: 22,
                target: name("coffer.local")
            }
        );
        let txt = by_type(rtype::TXT);
        assert_eq!(
            (txt.ttl, txt.cache_flush, txt.data),
            (OTHER_TTL, true, RData::Txt(vec![0]))
        );
        let a = by_type(rtype::A);
        assert_eq!(
            (a.ttl, a.cache_flush, a.data),
            (HOST_TTL, true, RData::A(Ipv4Addr::new(192, 168, 1, 20)))
        );
    }

    #[test]
    fn legacy_unicast_echoes_id_and_question_and_caps_ttl() {
        let m = query(vec![q("_ssh._tcp.local", rtype::PTR)]);
        let (dest, answers, additional, parsed) = ask(&m, LEGACY_PEER).unwrap();
        assert_eq!(dest, Destination::Unicast(LEGACY_PEER.parse().unwrap()));
        assert_eq!(parsed.id, 0x1234);
        assert_eq!(parsed.flags, FLAG_QR | FLAG_AA | FLAG_RD);
        assert_eq!(parsed.questions, m.questions);
        assert_eq!(answers, ["_ssh._tcp.local 12"]);
        assert_eq!(additional.len(), 3);
        for r in parsed.answers.iter().chain(&parsed.additional) {
            assert!(r.ttl <= LEGACY_TTL && !r.cache_flush, "{r:?}");
        }
    }

    #[test]
    fn known_answers_are_suppressed() {
        let record = |ttl: u32| Record {
            ttl,
            ..responder().records()[1].clone()
        };
        assert_eq!(record(0).rtype, rtype::PTR);
        let with_known = |ttl: u32| Message {
            answers: vec![record(ttl)],
            ..query(vec![q("_ssh._tcp.local", rtype::PTR)])
        };
        // Known with more than half the TTL left: nothing to say.
        assert!(ask(&with_known(OTHER_TTL / 2), MDNS_PEER).is_none());
        // Nearly expired: answered again.
        assert!(ask(&with_known(OTHER_TTL / 2 - 1), MDNS_PEER).is_some());
        // A different PTR known under the same name does not suppress ours.
        let mut other = with_known(OTHER_TTL);
        other.answers[0].data = RData::Ptr(name("other._ssh._tcp.local"));
        assert!(ask(&other, MDNS_PEER).is_some());
    }

    #[test]
    fn announcement_and_goodbye() {
        let r = responder();
        let m = parse(&r.announcement()).unwrap();
        assert_eq!((m.id, m.flags), (0, FLAG_QR | FLAG_AA));
        assert!(m.questions.is_empty());
        assert_eq!(m.answers, r.records());
        assert_eq!(m.answers.len(), 9);
        for rec in &m.answers {
            assert_eq!(rec.cache_flush, rec.rtype != rtype::PTR, "{rec:?}");
            assert_eq!(
                rec.ttl,
                if matches!(rec.rtype, rtype::A | rtype::SRV) {
                    HOST_TTL
                } else {
                    OTHER_TTL
                },
                "{rec:?}"
            );
        }
        let bye = parse(&r.goodbye()).unwrap();
        assert!(bye.answers.iter().all(|rec| rec.ttl == 0));
        assert_eq!(bye.answers.len(), 9);
    }

    #[test]
    fn host_names_are_checked() {
        assert!(matches!(
            Responder::new("coffer.local", Ipv4Addr::LOCALHOST, 22),
            Err(NameError::Dotted(_))
        ));
        assert!(matches!(
            Responder::new("", Ipv4Addr::LOCALHOST, 22),
            Err(NameError::EmptyLabel(_))
        ));
        assert!(matches!(
            Responder::new(&"x".repeat(64), Ipv4Addr::LOCALHOST, 22),
            Err(NameError::LabelTooLong(_))
        ));
        let r = Responder::new("Backup Box", Ipv4Addr::LOCALHOST, 2222).unwrap();
        assert_eq!(r.records()[0].name.to_string(), "Backup\\032Box.local");
    }

    #[test]
    fn garbage_gets_no_reply() {
        let from = MDNS_PEER.parse().unwrap();
        let r = responder();
        assert_eq!(r.answer(&[], from), None);
        assert_eq!(r.answer(&[0; 11], from), None);
        assert_eq!(
            r.answer(
                b"\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",
                from
            ),
            None
        );
    }
}
