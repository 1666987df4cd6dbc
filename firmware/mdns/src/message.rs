//! DNS messages (RFC 1035 §4) as data, with the mDNS meanings of the top
//! class bit (RFC 6762 §5.4 and §10.2): [`parse`] reads a whole message,
//! following compression pointers defensively; [`Message::encode`] writes
//! one, compressing names if asked.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::name::{MAX_NAME, Name};

/// Record and query types this crate names.
pub mod rtype {
    /// IPv4 address.
    pub const A: u16 = 1;
    /// Pointer (DNS-SD browse, reverse lookups).
    pub const PTR: u16 = 12;
    /// Text strings (DNS-SD metadata).
    pub const TXT: u16 = 16;
    /// IPv6 address.
    pub const AAAA: u16 = 28;
    /// Service location.
    pub const SRV: u16 = 33;
    /// Query type "all records".
    pub const ANY: u16 = 255;
}

/// Class IN.
pub const CLASS_IN: u16 = 1;
/// Query class "any".
pub const CLASS_ANY: u16 = 255;
/// Top bit of the class: "unicast response" in questions, "cache flush" in records.
const CLASS_TOP_BIT: u16 = 0x8000;

/// Header flag: this is a response.
pub const FLAG_QR: u16 = 0x8000;
/// Header flag: authoritative answer.
pub const FLAG_AA: u16 = 0x0400;
/// Header flag: truncated (in mDNS queries: known answers continue).
pub const FLAG_TC: u16 = 0x0200;
/// Header flag: recursion desired.
pub const FLAG_RD: u16 = 0x0100;

/// Most compression jumps followed in one name; each jump must also go
/// further back than the last, so this only bounds work.
const MAX_JUMPS: usize = 64;

/// Why bytes are not a DNS message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The message ends inside a field.
    #[error("DNS message truncated at byte {at}: ignored")]
    Truncated {
        /// Where the missing field starts.
        at: usize,
    },
    /// A label type 0x40 or 0x80 (extended/reserved).
    #[error("DNS name uses reserved label type {0:#04x}: ignored")]
    LabelType(u8),
    /// A compression pointer that points past the end, at itself, or
    /// forward (which is how loops are made).
    #[error("DNS name has a bad compression pointer to {target} at byte {at}: ignored")]
    BadPointer {
        /// Where the pointer is.
        at: usize,
        /// Where it points.
        target: usize,
    },
    /// More than 255 bytes once decompressed.
    #[error("DNS name longer than {MAX_NAME} bytes: ignored")]
    NameTooLong,
    /// Record data that does not fit its type.
    #[error("DNS record of type {rtype} has malformed data: ignored")]
    BadRdata {
        /// The record type.
        rtype: u16,
    },
}

/// Why a message cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// More than 65535 entries in a section, or record data over 65535 bytes.
    #[error("DNS message too large to encode: send fewer or smaller records")]
    TooLarge,
}

/// One question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The name asked about.
    pub name: Name,
    /// QTYPE (see [`rtype`]).
    pub qtype: u16,
    /// QCLASS without the top bit.
    pub qclass: u16,
    /// The top class bit: the querier wants a unicast reply ("QU", RFC 6762 §5.4).
    pub unicast_response: bool,
}

/// Record data, decoded for the types mDNS/DNS-SD uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// A name (compressed on the wire when compression is on).
    Ptr(Name),
    /// A service location; the target is never compressed on the wire
    /// (RFC 2782), which every decoder accepts.
    Srv {
        /// Lower is preferred.
        priority: u16,
        /// Among equal priorities, share of the load.
        weight: u16,
        /// The service's port.
        port: u16,
        /// The host providing it.
        target: Name,
    },
    /// The raw character-strings (each a length byte and its bytes).
    Txt(Vec<u8>),
    /// Any other type, raw.
    Other(Vec<u8>),
}

/// One resource record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name.
    pub name: Name,
    /// TYPE (see [`rtype`]).
    pub rtype: u16,
    /// CLASS without the top bit.
    pub class: u16,
    /// The top class bit: caches must replace what they hold for this
    /// name and type (unique records, RFC 6762 §10.2).
    pub cache_flush: bool,
    /// Seconds the record may be cached; 0 = goodbye.
    pub ttl: u32,
    /// The data.
    pub data: RData,
}

/// A whole message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Query identifier (zero in multicast mDNS).
    pub id: u16,
    /// The flags word: QR, opcode, AA, TC, RD, RA, Z, rcode.
    pub flags: u16,
    /// Question section.
    pub questions: Vec<Question>,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section (probes put proposed records here).
    pub authority: Vec<Record>,
    /// Additional section.
    pub additional: Vec<Record>,
}

impl Message {
    /// QR: a response rather than a query.
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_QR != 0
    }

    /// OPCODE (0 = standard query).
    pub fn opcode(&self) -> u8 {
        // Four bits: always fits.
        u8::try_from((self.flags >> 11) & 0xf).unwrap_or(0xf)
    }

    /// RCODE (0 = no error).
    pub fn rcode(&self) -> u8 {
        u8::try_from(self.flags & 0xf).unwrap_or(0xf)
    }

    /// Encodes the message. With `compress`, repeated name suffixes become
    /// pointers to their first occurrence (RFC 1035 §4.1.4), except in SRV
    /// targets.
    pub fn encode(&self, compress: bool) -> Result<Vec<u8>, EncodeError> {
        let count = |n: usize| u16::try_from(n).map_err(|_| EncodeError::TooLarge);
        let mut w = Writer {
            buf: Vec::with_capacity(512),
            compress,
            suffixes: HashMap::new(),
        };
        w.u16(self.id);
        w.u16(self.flags);
        w.u16(count(self.questions.len())?);
        w.u16(count(self.answers.len())?);
        w.u16(count(self.authority.len())?);
        w.u16(count(self.additional.len())?);
        for q in &self.questions {
            w.name(&q.name, true);
            w.u16(q.qtype);
            w.u16(q.qclass | if q.unicast_response { CLASS_TOP_BIT } else { 0 });
        }
        for r in self
            .answers
            .iter()
            .chain(&self.authority)
            .chain(&self.additional)
        {
            w.record(r)?;
        }
        Ok(w.buf)
    }
}

struct Writer {
    buf: Vec<u8>,
    compress: bool,
    /// Lower-cased suffix → where it was first written.
    suffixes: HashMap<Vec<Vec<u8>>, u16>,
}

impl Writer {
    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn name(&mut self, name: &Name, compress: bool) {
        for (i, label) in name.labels().enumerate() {
            if self.compress && compress {
                let key = name.suffix_key(i);
                if let Some(&at) = self.suffixes.get(&key) {
                    self.u16(0xc000 | at);
                    return;
                }
                // Pointers hold 14 bits: later suffixes cannot be targets.
                if let Ok(at) = u16::try_from(self.buf.len())
                    && at < 0x4000
                {
                    self.suffixes.insert(key, at);
                }
            }
            // Names are built with labels of 1..=63 bytes.
            self.buf.push(u8::try_from(label.len()).unwrap_or(63));
            self.buf.extend_from_slice(label);
        }
        self.buf.push(0);
    }

    fn record(&mut self, r: &Record) -> Result<(), EncodeError> {
        self.name(&r.name, true);
        self.u16(r.rtype);
        self.u16(r.class | if r.cache_flush { CLASS_TOP_BIT } else { 0 });
        self.buf.extend_from_slice(&r.ttl.to_be_bytes());
        let length_at = self.buf.len();
        self.u16(0);
        match &r.data {
            RData::A(addr) => self.buf.extend_from_slice(&addr.octets()),
            RData::Ptr(target) => self.name(target, true),
            RData::Srv {
                priority,
                weight,
                port,
                target,
            } => {
                self.u16(*priority);
                self.u16(*weight);
                self.u16(*port);
                self.name(target, false);
            }
            RData::Txt(bytes) | RData::Other(bytes) => self.buf.extend_from_slice(bytes),
        }
        let length =
            u16::try_from(self.buf.len() - length_at - 2).map_err(|_| EncodeError::TooLarge)?;
        self.buf
            .get_mut(length_at..length_at + 2)
            .ok_or(EncodeError::TooLarge)?
            .copy_from_slice(&length.to_be_bytes());
        Ok(())
    }
}

/// Parses a whole message. Never panics; refuses anything malformed.
pub fn parse(msg: &[u8]) -> Result<Message, ParseError> {
    let mut r = Reader { msg, pos: 0 };
    let id = r.u16()?;
    let flags = r.u16()?;
    let counts = [r.u16()?, r.u16()?, r.u16()?, r.u16()?];
    // Each entry takes at least 5 bytes, so these loops end with the data:
    // no allocation up front from counts the sender chose.
    let mut questions = Vec::new();
    for _ in 0..counts[0] {
        let name = r.name()?;
        let qtype = r.u16()?;
        let class = r.u16()?;
        questions.push(Question {
            name,
            qtype,
            qclass: class & !CLASS_TOP_BIT,
            unicast_response: class & CLASS_TOP_BIT != 0,
        });
    }
    let mut sections = [Vec::new(), Vec::new(), Vec::new()];
    for (section, &count) in sections.iter_mut().zip(&counts[1..]) {
        for _ in 0..count {
            section.push(r.record()?);
        }
    }
    let [answers, authority, additional] = sections;
    Ok(Message {
        id,
        flags,
        questions,
        answers,
        authority,
        additional,
    })
}

struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        let at = self.pos;
        let msg = self.msg;
        let got = at
            .checked_add(n)
            .and_then(|end| msg.get(at..end))
            .ok_or(ParseError::Truncated { at })?;
        self.pos += n;
        Ok(got)
    }

    fn u16(&mut self) -> Result<u16, ParseError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, ParseError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a name at the current position; afterwards the position is
    /// just past the name's bytes here (its first pointer, or its zero).
    fn name(&mut self) -> Result<Name, ParseError> {
        let (name, end) = read_name(self.msg, self.pos)?;
        self.pos = end;
        Ok(name)
    }

    fn record(&mut self) -> Result<Record, ParseError> {
        let name = self.name()?;
        let rtype = self.u16()?;
        let class = self.u16()?;
        let ttl = self.u32()?;
        let length = usize::from(self.u16()?);
        let start = self.pos;
        let rdata = self.bytes(length)?;
        let end = self.pos;
        let bad = ParseError::BadRdata { rtype };
        // A name inside record data must end exactly where the data ends.
        let name_at = |at: usize| -> Result<Name, ParseError> {
            match read_name(self.msg, at)? {
                (name, stop) if stop == end => Ok(name),
                _ => Err(bad.clone()),
            }
        };
        let data = match rtype {
            rtype::A => RData::A(Ipv4Addr::from(
                <[u8; 4]>::try_from(rdata).map_err(|_| bad.clone())?,
            )),
            rtype::PTR => RData::Ptr(name_at(start)?),
            rtype::SRV => {
                let fixed = rdata.get(..6).ok_or(bad.clone())?;
                let field = |i: usize| u16::from_be_bytes([fixed[i], fixed[i + 1]]);
                RData::Srv {
                    priority: field(0),
                    weight: field(2),
                    port: field(4),
                    target: name_at(start + 6)?,
                }
            }
            rtype::TXT => RData::Txt(rdata.to_vec()),
            _ => RData::Other(rdata.to_vec()),
        };
        Ok(Record {
            name,
            rtype,
            class: class & !CLASS_TOP_BIT,
            cache_flush: class & CLASS_TOP_BIT != 0,
            ttl,
            data,
        })
    }
}

/// Reads the name starting at `start`; returns it and the position just
/// past its bytes at `start`. Pointers must go strictly before where the
/// current run of labels began, so every jump lands earlier than the last
/// and no loop is possible; encoders only point back at names already
/// written, so real messages always satisfy this.
fn read_name(msg: &[u8], start: usize) -> Result<(Name, usize), ParseError> {
    let mut name = Name::root();
    let mut pos = start;
    let mut run_start = start;
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *msg.get(pos).ok_or(ParseError::Truncated { at: pos })?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                return Ok((name, end.unwrap_or(pos + 1)));
            }
            0x00 => {
                let label = msg
                    .get(pos + 1..pos + 1 + usize::from(len))
                    .ok_or(ParseError::Truncated { at: pos })?;
                name.push_label(label)
                    .map_err(|_| ParseError::NameTooLong)?;
                pos += 1 + usize::from(len);
            }
            0xc0 => {
                let low = *msg.get(pos + 1).ok_or(ParseError::Truncated { at: pos })?;
                let target = usize::from(u16::from_be_bytes([len & 0x3f, low]));
                jumps += 1;
                if target >= run_start || jumps > MAX_JUMPS {
                    return Err(ParseError::BadPointer { at: pos, target });
                }
                end.get_or_insert(pos + 2);
                pos = target;
                run_start = target;
            }
            _ => return Err(ParseError::LabelType(len & 0xc0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(s: &str) -> Name {
        Name::from_dotted(s).unwrap()
    }

    /// A query header with `qd` questions, then `body`.
    fn query(qd: u16, body: &[u8]) -> Vec<u8> {
        let mut m = vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        m[4..6].copy_from_slice(&qd.to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn question_parsing_table() {
        let coffer_local = b"\x06coffer\x05local\x00\x00\x01\x00\x01";
        type Case = (
            &'static str,
            Vec<u8>,
            Result<Vec<(&'static str, u16, bool)>, ParseError>,
        );
        let cases: Vec<Case> = vec![
            (
                "plain",
                query(1, coffer_local),
                Ok(vec![("coffer.local", 1, false)]),
            ),
            (
                "QU bit",
                query(1, b"\x06coffer\x05local\x00\x00\x01\x80\x01"),
                Ok(vec![("coffer.local", 1, true)]),
            ),
            (
                "second name compressed",
                // "_ssh._tcp.local" at 12, then "_tcp.local" as a pointer to 17.
                query(
                    2,
                    b"\x04_ssh\x04_tcp\x05local\x00\x00\x0c\x00\x01\xc0\x11\x00\x0c\x00\x01",
                ),
                Ok(vec![
                    ("_ssh._tcp.local", 12, false),
                    ("_tcp.local", 12, false),
                ]),
            ),
            (
                "label then pointer",
                query(
                    2,
                    b"\x05local\x00\x00\x01\x00\x01\x06coffer\xc0\x0c\x00\x01\x00\x01",
                ),
                Ok(vec![("local", 1, false), ("coffer.local", 1, false)]),
            ),
            (
                "root name",
                query(1, b"\x00\x00\xff\x00\xff"),
                Ok(vec![("", 255, false)]),
            ),
            (
                "empty message",
                vec![],
                Err(ParseError::Truncated { at: 0 }),
            ),
            (
                "short header",
                vec![0; 11],
                Err(ParseError::Truncated { at: 10 }),
            ),
            (
                "count beyond data",
                query(2, coffer_local),
                Err(ParseError::Truncated { at: 30 }),
            ),
            (
                "name cut in a label",
                query(1, b"\x06cof"),
                Err(ParseError::Truncated { at: 12 }),
            ),
            (
                "name without end",
                query(1, b"\x06coffer"),
                Err(ParseError::Truncated { at: 19 }),
            ),
            (
                "qtype missing",
                query(1, b"\x06coffer\x05local\x00\x00"),
                Err(ParseError::Truncated { at: 26 }),
            ),
            (
                "pointer cut",
                query(1, b"\xc0"),
                Err(ParseError::Truncated { at: 12 }),
            ),
            (
                "pointer to itself",
                query(1, b"\xc0\x0c\x00\x01\x00\x01"),
                Err(ParseError::BadPointer { at: 12, target: 12 }),
            ),
            (
                "pointer forward",
                query(1, b"\xc0\x0e\x00\x00\x01\x00\x01"),
                Err(ParseError::BadPointer { at: 12, target: 14 }),
            ),
            (
                "pointer past the end",
                query(1, b"\xc3\xff\x00\x01\x00\x01"),
                Err(ParseError::BadPointer {
                    at: 12,
                    target: 1023,
                }),
            ),
            (
                // Question 2's pointer goes back to a label whose run reaches
                // the pointer itself: a loop through a backward pointer.
                "loop through a label",
                query(2, b"\x00\x00\x01\x00\x01\x01a\xc0\x11\x00\x01\x00\x01"),
                Err(ParseError::BadPointer { at: 19, target: 17 }),
            ),
            (
                "pointer into the header",
                query(1, b"\xc0\x02\x00\x01\x00\x01"),
                // Bytes 2.. of the header are the flags (0) = root name.
                Ok(vec![("", 1, false)]),
            ),
            (
                "label type 0x40",
                query(1, b"\x41\x00\x00\x01\x00\x01"),
                Err(ParseError::LabelType(0x40)),
            ),
            (
                "label type 0x80",
                query(1, b"\x81\x00\x00\x01\x00\x01"),
                Err(ParseError::LabelType(0x80)),
            ),
        ];
        for (what, bytes, expect) in cases {
            let got = parse(&bytes).map(|m| {
                m.questions
                    .iter()
                    .map(|q| (q.name.to_string(), q.qtype, q.unicast_response))
                    .collect::<Vec<_>>()
            });
            let expect = expect.map(|v| {
                v.into_iter()
                    .map(|(n, t, u)| {
                        (
                            if n.is_empty() {
                                ".".to_owned()
                            } else {
                                n.to_owned()
                            },
                            t,
                            u,
                        )
                    })
                    .collect::<Vec<_>>()
            });
            assert_eq!(got, expect, "{what}");
        }
    }

    #[test]
    fn names_over_255_bytes_are_refused() {
        // 128 one-byte labels: 257 bytes.
        let body: Vec<u8> = std::iter::repeat_n([1u8, b'a'], 128)
            .flatten()
            .chain([0, 0, 1, 0, 1])
            .collect();
        assert_eq!(parse(&query(1, &body)), Err(ParseError::NameTooLong));
        // The same length reached through pointers.
        let mut body: Vec<u8> = std::iter::repeat_n([1u8, b'a'], 100)
            .flatten()
            .chain([0, 0, 1, 0, 1])
            .collect();
        body.extend(
            std::iter::repeat_n([1u8, b'b'], 30)
                .flatten()
                .chain([0xc0, 12, 0, 1, 0, 1]),
        );
        assert_eq!(parse(&query(2, &body)), Err(ParseError::NameTooLong));
    }

    #[test]
    fn chained_backward_pointers_are_followed() {
        // c → b → a, each pointing further back.
        let body =
            b"\x01a\x00\x00\x01\x00\x01\x01b\xc0\x0c\x00\x01\x00\x01\x01c\xc0\x13\x00\x01\x00\x01";
        let m = parse(&query(3, body)).unwrap();
        assert_eq!(m.questions[2].name, name("c.b.a"));
    }

    #[test]
    fn record_data_table() {
        let rec = |rtype: u16, rdata: &[u8]| {
            let mut m = vec![0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0];
            m.extend_from_slice(b"\x06coffer\x05local\x00");
            m.extend_from_slice(&rtype.to_be_bytes());
            m.extend_from_slice(&[0x80, 1, 0, 0, 0, 120]);
            m.extend_from_slice(&u16::try_from(rdata.len()).unwrap().to_be_bytes());
            m.extend_from_slice(rdata);
            parse(&m).map(|m| m.answers.into_iter().next().unwrap().data)
        };
        assert_eq!(
            rec(rtype::A, &[10, 0, 0, 7]),
            Ok(RData::A(Ipv4Addr::new(10, 0, 0, 7)))
        );
        assert_eq!(
            rec(rtype::A, &[10, 0, 0]),
            Err(ParseError::BadRdata { rtype: 1 })
        );
        assert_eq!(
            rec(rtype::PTR, b"\x01x\xc0\x0c"),
            Ok(RData::Ptr(name("x.coffer.local")))
        );
        assert_eq!(
            rec(rtype::PTR, b"\x01x\xc0\x0c\x00"),
            Err(ParseError::BadRdata { rtype: 12 })
        );
        assert_eq!(
            rec(rtype::PTR, b"\x01x"),
            Err(ParseError::Truncated { at: 38 })
        );
        assert_eq!(
            rec(rtype::SRV, b"\x00\x01\x00\x02\x00\x16\xc0\x0c"),
            Ok(RData::Srv {
                priority: 1,
                weight: 2,
                port: 22,
                target: name("coffer.local")
            })
        );
        assert_eq!(
            rec(rtype::SRV, b"\x00\x01\x00"),
            Err(ParseError::BadRdata { rtype: 33 })
        );
        assert_eq!(rec(rtype::TXT, b"\x00"), Ok(RData::Txt(vec![0])));
        assert_eq!(rec(99, b"xyz"), Ok(RData::Other(b"xyz".to_vec())));
        // Record data longer than the message.
        let mut m = vec![
            0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 9, 1,
        ];
        assert_eq!(parse(&m), Err(ParseError::Truncated { at: 23 }));
        m.truncate(20);
        assert_eq!(parse(&m), Err(ParseError::Truncated { at: 17 }));
    }

    #[test]
    fn compression_shrinks_and_round_trips() {
        let host = name("coffer.local");
        let service = name("_ssh._tcp.local");
        let instance = service.child(b"coffer").unwrap();
        let m = Message {
            id: 0,
            flags: FLAG_QR | FLAG_AA,
            questions: vec![],
            answers: vec![
                Record {
                    name: service.clone(),
                    rtype: rtype::PTR,
                    class: CLASS_IN,
                    cache_flush: false,
                    ttl: 4500,
                    data: RData::Ptr(instance.clone()),
                },
                Record {
                    name: instance.clone(),
                    rtype: rtype::SRV,
                    class: CLASS_IN,
                    cache_flush: true,
                    ttl: 120,
                    data: RData::Srv {
                        priority: 0,
                        weight: 0,
                        port: 22,
                        target: host.clone(),
                    },
                },
                Record {
                    name: host,
                    rtype: rtype::A,
                    class: CLASS_IN,
                    cache_flush: true,
                    ttl: 120,
                    data: RData::A(Ipv4Addr::new(192, 168, 1, 9)),
                },
            ],
            authority: vec![],
            additional: vec![],
        };
        let small = m.encode(true).unwrap();
        let big = m.encode(false).unwrap();
        assert!(small.len() < big.len(), "{} vs {}", small.len(), big.len());
        assert_eq!(parse(&small).unwrap(), m);
        assert_eq!(parse(&big).unwrap(), m);
    }

    fn arb_name() -> impl Strategy<Value = Name> {
        proptest::collection::vec(
            prop_oneof![
                Just("local"),
                Just("_tcp"),
                Just("Coffer"),
                Just("a"),
                Just("_ssh")
            ],
            0..5,
        )
        .prop_map(|labels| Name::from_dotted(&labels.join(".")).unwrap())
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        let data = prop_oneof![
            any::<[u8; 4]>().prop_map(|o| (rtype::A, RData::A(Ipv4Addr::from(o)))),
            arb_name().prop_map(|n| (rtype::PTR, RData::Ptr(n))),
            (any::<u16>(), any::<u16>(), any::<u16>(), arb_name()).prop_map(
                |(priority, weight, port, target)| (
                    rtype::SRV,
                    RData::Srv {
                        priority,
                        weight,
                        port,
                        target
                    }
                )
            ),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(|t| (rtype::TXT, RData::Txt(t))),
            proptest::collection::vec(any::<u8>(), 0..20)
                .prop_map(|t| (rtype::AAAA, RData::Other(t))),
        ];
        (arb_name(), data, any::<bool>(), any::<u32>()).prop_map(
            |(name, (rtype, data), cache_flush, ttl)| Record {
                name,
                rtype,
                class: CLASS_IN,
                cache_flush,
                ttl,
                data,
            },
        )
    }

    proptest! {
        #[test]
        fn encode_parse_round_trip(
            id in any::<u16>(),
            flags in any::<u16>(),
            questions in proptest::collection::vec((arb_name(), any::<u16>(), any::<bool>()), 0..4),
            answers in proptest::collection::vec(arb_record(), 0..6),
            additional in proptest::collection::vec(arb_record(), 0..4),
            compress in any::<bool>(),
        ) {
            let m = Message {
                id,
                flags,
                questions: questions.into_iter().map(|(name, qtype, unicast_response)| Question { name, qtype, qclass: CLASS_IN, unicast_response }).collect(),
                answers,
                authority: vec![],
                additional,
            };
            prop_assert_eq!(parse(&m.encode(compress).unwrap()).unwrap(), m);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn parse_never_panics_on_damaged_messages(flip in 0usize..200, value in any::<u8>(), cut in 0usize..200) {
            let m = Message {
                id: 0,
                flags: FLAG_QR,
                questions: vec![Question { name: name("_ssh._tcp.local"), qtype: rtype::PTR, qclass: CLASS_IN, unicast_response: false }],
                answers: vec![Record { name: name("_ssh._tcp.local"), rtype: rtype::PTR, class: CLASS_IN, cache_flush: false, ttl: 1, data: RData::Ptr(name("x._ssh._tcp.local")) }],
                authority: vec![],
                additional: vec![],
            };
            let mut bytes = m.encode(true).unwrap();
            if let Some(b) = bytes.get_mut(flip) {
                *b = value;
            }
            bytes.truncate(cut);
            let _ = parse(&bytes);
        }
    }
}
