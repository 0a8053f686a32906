//! DNS message summaries: header fields and the first question, decoded in
//! place with bounded work and no allocation.
//!
//! ```
//! use tapsentry_decode::dns::{parse_message, DnsError};
//!
//! // id 0x1234, RD, one question: example.com A IN
//! let mut msg = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
//! msg.extend_from_slice(b"\x07ExAmPlE\x03com\x00\x00\x01\x00\x01");
//! let s = parse_message(&msg).unwrap();
//! assert_eq!(s.qname.as_bytes(), b"example.com");
//! assert_eq!((s.id, s.qtype, s.is_response), (0x1234, 1, false));
//!
//! // A pointer to itself is refused, not followed forever.
//! let mut bad = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
//! bad.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
//! assert_eq!(parse_message(&bad), Err(DnsError::BadPointer));
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tapsentry_types::{DnsEvent, DnsName, Fragment, PacketMeta, DNS_ANSWER_ADDRS};

const HEADER_LEN: usize = 12;
/// RFC 1035 limits: 63 octets per label, 255 per name on the wire.
const MAX_LABEL: usize = 63;
const MAX_NAME_WIRE: usize = 255;
/// Compression pointers followed per name before giving up. Legitimate
/// names need a handful; the limit bounds the work an attacker can ask for.
const MAX_POINTERS: usize = 16;
/// Answer records walked per response looking for addresses: bounds the
/// work a response with a huge ANCOUNT can ask for.
const MAX_ANSWERS_WALKED: u16 = 16;

/// The first question and header facts of one DNS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsSummary {
    /// Message id.
    pub id: u16,
    /// QR bit: true for responses.
    pub is_response: bool,
    /// First question name: lower-cased ASCII, dotted, no trailing dot
    /// (empty for the root).
    pub qname: DnsName,
    /// First question type.
    pub qtype: u16,
    /// Response code: the low 4 bits of the flags (no EDNS extension).
    pub rcode: u8,
    /// ANCOUNT from the header.
    pub answers: u16,
    /// Bytes of the message as captured (saturating at 65535).
    pub msg_len: u16,
    /// The first A/AAAA addresses of the answer section of a NOERROR
    /// response (none for queries, errors, or an answer section cut short).
    pub answer_addrs: [Option<IpAddr>; DNS_ANSWER_ADDRS],
}

/// Why a DNS message could not be summarised.
///
/// | index | reason | meaning |
/// |---|---|---|
/// | 0 | `truncated` | the message ends inside the header, the question name or its type/class |
/// | 1 | `no_question` | QDCOUNT is 0 |
/// | 2 | `label_too_long` | a label length byte over 63 (the reserved 0x40/0x80 label types) |
/// | 3 | `name_too_long` | the expanded name exceeds 255 octets on the wire |
/// | 4 | `bad_pointer` | a compression pointer into the header, or not strictly before the run it interrupts (self-references and loops) |
/// | 5 | `too_many_pointers` | more than 16 compression pointers in one name |
/// | 6 | `bad_tcp_length` | a TCP length prefix shorter than a DNS header |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DnsError {
    /// The message ends before the first question does.
    #[error("DNS message truncated")]
    Truncated,
    /// QDCOUNT is zero.
    #[error("DNS message without a question")]
    NoQuestion,
    /// A label length over 63 (reserved label types).
    #[error("DNS label longer than 63 bytes")]
    LabelTooLong,
    /// Name over 255 bytes.
    #[error("DNS name longer than 255 bytes")]
    NameTooLong,
    /// A compression pointer that does not point strictly backwards.
    #[error("DNS compression pointer does not point backwards")]
    BadPointer,
    /// Too many compression pointers in one name.
    #[error("too many DNS compression pointers")]
    TooManyPointers,
    /// TCP length prefix shorter than a DNS header.
    #[error("DNS-over-TCP length prefix too small")]
    BadTcpLength,
}

impl DnsError {
    /// Number of variants.
    pub const COUNT: usize = 7;

    /// Every reason label, in [`index`](Self::index) order.
    pub const ALL_REASONS: [&'static str; Self::COUNT] = [
        "truncated",
        "no_question",
        "label_too_long",
        "name_too_long",
        "bad_pointer",
        "too_many_pointers",
        "bad_tcp_length",
    ];

    /// Every variant, in [`index`](Self::index) order.
    pub const ALL: [DnsError; Self::COUNT] = [
        DnsError::Truncated,
        DnsError::NoQuestion,
        DnsError::LabelTooLong,
        DnsError::NameTooLong,
        DnsError::BadPointer,
        DnsError::TooManyPointers,
        DnsError::BadTcpLength,
    ];

    /// Stable index in `0..COUNT`.
    pub const fn index(self) -> usize {
        match self {
            DnsError::Truncated => 0,
            DnsError::NoQuestion => 1,
            DnsError::LabelTooLong => 2,
            DnsError::NameTooLong => 3,
            DnsError::BadPointer => 4,
            DnsError::TooManyPointers => 5,
            DnsError::BadTcpLength => 6,
        }
    }

    /// The snake_case label used as a stats key.
    pub const fn reason(self) -> &'static str {
        match self {
            DnsError::Truncated => "truncated",
            DnsError::NoQuestion => "no_question",
            DnsError::LabelTooLong => "label_too_long",
            DnsError::NameTooLong => "name_too_long",
            DnsError::BadPointer => "bad_pointer",
            DnsError::TooManyPointers => "too_many_pointers",
            DnsError::BadTcpLength => "bad_tcp_length",
        }
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..)?
        .first_chunk::<2>()
        .map(|c| u16::from_be_bytes(*c))
}

/// The DNS event of a packet: `None` unless it is TCP or UDP on port 53
/// with a payload that is not a later fragment; otherwise the parsed
/// message, with client and server told apart by the QR bit.
pub fn event(m: &PacketMeta<'_>) -> Option<Result<DnsEvent, DnsError>> {
    if !m.is_dns_port() {
        return None;
    }
    event_any_port(m, m.payload)
}

/// The DNS event of a packet whatever its ports, from `payload` (the
/// packet's payload or its first bytes): for a flow known to speak DNS on
/// another port (the caller knows, from the protocol classifier). `None`
/// unless it is TCP or UDP with a payload that is not a later fragment.
pub fn event_any_port(m: &PacketMeta<'_>, payload: &[u8]) -> Option<Result<DnsEvent, DnsError>> {
    if !matches!(m.proto, 6 | 17)
        || payload.is_empty()
        || matches!(m.fragment, Fragment::NonFirst { .. })
    {
        return None;
    }
    let parsed = if m.proto == 6 {
        parse_tcp_segment(payload)
    } else {
        parse_message(payload)
    };
    Some(parsed.map(|d| {
        let (client, server, client_port, server_port) = if d.is_response {
            (m.dst, m.src, m.dst_port, m.src_port)
        } else {
            (m.src, m.dst, m.src_port, m.dst_port)
        };
        DnsEvent {
            ts: m.ts,
            client,
            server,
            client_port,
            server_port,
            proto: m.proto,
            id: d.id,
            is_response: d.is_response,
            qname: d.qname,
            qtype: d.qtype,
            rcode: d.rcode,
            answers: d.answers,
            msg_len: d.msg_len,
            answer_addrs: d.answer_addrs,
        }
    }))
}

/// Summarises one DNS message (a UDP payload).
pub fn parse_message(msg: &[u8]) -> Result<DnsSummary, DnsError> {
    let hdr = msg.first_chunk::<HEADER_LEN>().ok_or(DnsError::Truncated)?;
    let id = u16::from_be_bytes([hdr[0], hdr[1]]);
    let flags = u16::from_be_bytes([hdr[2], hdr[3]]);
    let qdcount = u16::from_be_bytes([hdr[4], hdr[5]]);
    let ancount = u16::from_be_bytes([hdr[6], hdr[7]]);
    if qdcount == 0 {
        return Err(DnsError::NoQuestion);
    }
    let (qname, end) = read_name(msg, HEADER_LEN)?;
    // QTYPE and QCLASS must both be there for the question to be whole.
    let qtype = be16(msg, end).ok_or(DnsError::Truncated)?;
    be16(msg, end.saturating_add(2)).ok_or(DnsError::Truncated)?;
    let is_response = flags & 0x8000 != 0;
    let rcode = (flags & 0x000f) as u8;
    let answer_addrs = if is_response && rcode == 0 && qdcount == 1 {
        answer_addresses(msg, end.saturating_add(4), ancount)
    } else {
        [None; DNS_ANSWER_ADDRS]
    };
    Ok(DnsSummary {
        id,
        is_response,
        qname,
        qtype,
        rcode,
        answers: ancount,
        msg_len: u16::try_from(msg.len()).unwrap_or(u16::MAX),
        answer_addrs,
    })
}

/// The first A/AAAA addresses among the answer records starting at `pos`.
/// A record's owner name is skipped, not decoded (a CNAME chain still ends
/// at the addresses of the name asked); a section cut short or malformed
/// ends the walk with what was found, never an error: the summary of the
/// question stays valid.
fn answer_addresses(
    msg: &[u8],
    mut pos: usize,
    ancount: u16,
) -> [Option<IpAddr>; DNS_ANSWER_ADDRS] {
    let mut out = [None; DNS_ANSWER_ADDRS];
    let mut found = 0usize;
    for _ in 0..ancount.min(MAX_ANSWERS_WALKED) {
        let Some(p) = skip_name(msg, pos) else {
            break;
        };
        let (Some(rtype), Some(class), Some(rdlen)) =
            (be16(msg, p), be16(msg, p + 2), be16(msg, p + 8))
        else {
            break;
        };
        let rdata_at = p + 10;
        let Some(rdata) = msg.get(rdata_at..rdata_at + usize::from(rdlen)) else {
            break;
        };
        let addr = match (rtype, class, rdata.len()) {
            (1, 1, 4) => rdata
                .first_chunk::<4>()
                .map(|a| IpAddr::V4(Ipv4Addr::from(*a))),
            (28, 1, 16) => rdata
                .first_chunk::<16>()
                .map(|a| IpAddr::V6(Ipv6Addr::from(*a))),
            _ => None,
        };
        if let (Some(a), Some(slot)) = (addr, out.get_mut(found)) {
            *slot = Some(a);
            found += 1;
            if found == DNS_ANSWER_ADDRS {
                break;
            }
        }
        pos = rdata_at + usize::from(rdlen);
    }
    out
}

/// The offset just past the name at `pos` (labels up to the root label or
/// a compression pointer), without decoding it; `None` if the message ends
/// first or the name is longer than a name can be.
fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    for _ in 0..=MAX_NAME_WIRE / 2 {
        let len = *msg.get(pos)?;
        match len {
            0 => return Some(pos + 1),
            1..=0x3f => pos += 1 + usize::from(len),
            0xc0..=0xff => return Some(pos + 2).filter(|e| *e <= msg.len()),
            _ => return None,
        }
    }
    None
}

/// Summarises the first DNS message of a TCP segment payload: a 2-byte
/// length prefix, then the message. A message cut by the segment or the
/// snap length is summarised from what is there.
pub fn parse_tcp_segment(payload: &[u8]) -> Result<DnsSummary, DnsError> {
    let len = usize::from(be16(payload, 0).ok_or(DnsError::Truncated)?);
    if len < HEADER_LEN {
        return Err(DnsError::BadTcpLength);
    }
    let rest = payload.get(2..).unwrap_or(&[]);
    let msg = rest.get(..len).unwrap_or(rest);
    parse_message(msg)
}

/// Decodes the name at `start`. Returns it and the offset just past the
/// name where it sits (past the first pointer if it is compressed).
fn read_name(msg: &[u8], start: usize) -> Result<(DnsName, usize), DnsError> {
    let mut name = DnsName::default();
    let mut pos = start;
    let mut end = None;
    // Each pointer must land strictly before the run of labels it
    // interrupts; the targets then strictly decrease, so no loop is possible
    // even before the pointer budget runs out.
    let mut run_start = start;
    let mut pointers = 0usize;
    let mut wire_len = 1usize; // the root label
    let mut lower = [0u8; MAX_LABEL];
    loop {
        let len = *msg.get(pos).ok_or(DnsError::Truncated)?;
        match len {
            0 => return Ok((name, end.unwrap_or(pos + 1))),
            1..=0x3f => {
                let l = usize::from(len);
                wire_len += l + 1;
                if wire_len > MAX_NAME_WIRE {
                    return Err(DnsError::NameTooLong);
                }
                let label = msg.get(pos + 1..pos + 1 + l).ok_or(DnsError::Truncated)?;
                let buf = lower.get_mut(..l).ok_or(DnsError::LabelTooLong)?;
                buf.copy_from_slice(label);
                buf.make_ascii_lowercase();
                // 255 wire octets always fit DnsName; the checks only keep
                // the name unchanged if that ever stops being true.
                if (!name.is_empty() && !name.push(b".")) || !name.push(buf) {
                    return Err(DnsError::NameTooLong);
                }
                pos += 1 + l;
            }
            0xc0..=0xff => {
                let lo = *msg.get(pos + 1).ok_or(DnsError::Truncated)?;
                let target = (usize::from(len & 0x3f) << 8) | usize::from(lo);
                end.get_or_insert(pos + 2);
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return Err(DnsError::TooManyPointers);
                }
                if target < HEADER_LEN || target >= run_start {
                    return Err(DnsError::BadPointer);
                }
                run_start = target;
                pos = target;
            }
            _ => return Err(DnsError::LabelTooLong),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tapsentry_testkit::DnsMessage;

    /// A query whose question name is `name` in wire form, as is.
    fn query(name: &[u8], qtype: u16) -> Vec<u8> {
        DnsMessage::query_wire(0xbeef, name, qtype).encode()
    }

    /// A response to `www.Example.COM A` with one answer whose name is a
    /// pointer to the question (the usual shape on the wire).
    fn response() -> Vec<u8> {
        DnsMessage::query(0x1a2b, "www.Example.COM", 1)
            .response(3) // QR RD RA, NXDOMAIN
            .answer(1, 3600, &[93, 184, 216, 34])
            .encode()
    }

    /// A header: id 1, no flags, one question, and nothing after it.
    const BARE_HEADER: [u8; 12] = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];

    #[test]
    fn answer_addresses_of_a_noerror_response() {
        let m = DnsMessage::query(7, "fs.corp.example", 1)
            .response(0)
            .answer(5, 60, b"\x02fs\x00")
            .answer(1, 60, &[10, 20, 1, 30])
            .answer(28, 60, &[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
            .answer(1, 60, &[10, 20, 1, 31])
            .encode();
        let s = parse_message(&m).unwrap();
        assert_eq!(
            s.answer_addrs,
            [
                Some("10.20.1.30".parse().unwrap()),
                Some("fd00::1".parse().unwrap())
            ]
        );
        // NXDOMAIN and queries carry none; every cut of the answer section
        // still summarises the question and never reads past the end.
        assert_eq!(
            parse_message(&response()).unwrap().answer_addrs,
            [None, None]
        );
        let q = parse_message(&query(b"\x01a\x00", 1)).unwrap();
        assert_eq!(q.answer_addrs, [None, None]);
        let question_end = 12 + "fs.corp.example".len() + 2 + 4;
        for cut in question_end..m.len() {
            let s = parse_message(&m[..cut]).unwrap();
            let ok = ["10.20.1.30", "fd00::1"];
            assert!(s
                .answer_addrs
                .iter()
                .flatten()
                .all(|a| ok.contains(&a.to_string().as_str())));
        }
    }

    #[test]
    fn query_fields() {
        let m = query(b"\x04mail\x06google\x03com\x00", 28);
        let s = parse_message(&m).unwrap();
        assert_eq!(s.id, 0xbeef);
        assert!(!s.is_response);
        assert_eq!(s.qname.as_bytes(), b"mail.google.com");
        assert_eq!(s.qtype, 28);
        assert_eq!(s.rcode, 0);
        assert_eq!(s.answers, 0);
        assert_eq!(usize::from(s.msg_len), m.len());
    }

    #[test]
    fn response_fields() {
        let m = response();
        let s = parse_message(&m).unwrap();
        assert_eq!(s.id, 0x1a2b);
        assert!(s.is_response);
        assert_eq!(s.qname.as_bytes(), b"www.example.com");
        assert_eq!((s.qtype, s.rcode, s.answers), (1, 3, 1));
    }

    #[test]
    fn root_name() {
        let s = parse_message(&query(b"\x00", 2)).unwrap();
        assert!(s.qname.is_empty());
        assert_eq!(s.qtype, 2);
    }

    #[test]
    fn no_question() {
        let mut m = response();
        m[4] = 0;
        m[5] = 0;
        assert_eq!(parse_message(&m), Err(DnsError::NoQuestion));
    }

    #[test]
    fn pointer_to_itself_is_refused() {
        assert_eq!(
            parse_message(&query(b"\xc0\x0c", 1)),
            Err(DnsError::BadPointer)
        );
        // A label then a pointer back to the label: a loop through a run.
        assert_eq!(
            parse_message(&query(b"\x03foo\xc0\x0c", 1)),
            Err(DnsError::BadPointer)
        );
        // Forward pointer.
        assert_eq!(
            parse_message(&query(b"\xc0\x20", 1)),
            Err(DnsError::BadPointer)
        );
        // Pointer into the header.
        assert_eq!(
            parse_message(&query(b"\xc0\x02", 1)),
            Err(DnsError::BadPointer)
        );
    }

    #[test]
    fn backward_pointers_are_followed_within_budget() {
        // Names laid out before position p, each pointing to the previous,
        // so read_name is exercised beyond the question.
        let mut m = BARE_HEADER.to_vec();
        let a = m.len();
        m.extend_from_slice(b"\x03com\x00");
        let b = m.len();
        m.extend_from_slice(b"\x07example");
        m.extend_from_slice(&[0xc0, a as u8]);
        let c = m.len();
        m.extend_from_slice(b"\x03WWW");
        m.extend_from_slice(&[0xc0, b as u8]);
        let (name, end) = read_name(&m, c).unwrap();
        assert_eq!(name.as_bytes(), b"www.example.com");
        assert_eq!(end, c + 6);

        // A chain of 17 pointers, each one position-decreasing.
        let mut m = BARE_HEADER.to_vec();
        m.extend_from_slice(b"\x01a\x00");
        let mut prev = HEADER_LEN;
        for _ in 0..17 {
            let here = m.len();
            m.extend_from_slice(&[0xc0, prev as u8]);
            prev = here;
        }
        assert_eq!(read_name(&m, prev), Err(DnsError::TooManyPointers));
    }

    #[test]
    fn label_and_name_limits() {
        let mut long_label = vec![64u8];
        long_label.extend_from_slice(&[b'a'; 64]);
        long_label.push(0);
        assert_eq!(
            parse_message(&query(&long_label, 1)),
            Err(DnsError::LabelTooLong)
        );

        let mut ok63 = vec![63u8];
        ok63.extend_from_slice(&[b'B'; 63]);
        ok63.push(0);
        let s = parse_message(&query(&ok63, 1)).unwrap();
        assert_eq!(s.qname.as_bytes(), &[b'b'; 63][..]);

        // 4 x 63-byte labels = 256 wire octets with the root: one too many.
        let mut long_name = Vec::new();
        for _ in 0..4 {
            long_name.push(63u8);
            long_name.extend_from_slice(&[b'x'; 63]);
        }
        long_name.push(0);
        assert_eq!(
            parse_message(&query(&long_name, 1)),
            Err(DnsError::NameTooLong)
        );
        // 3 x 63 + 61 = 254 + root = 255: the maximum.
        let mut max_name = Vec::new();
        for _ in 0..3 {
            max_name.push(63u8);
            max_name.extend_from_slice(&[b'x'; 63]);
        }
        max_name.push(61);
        max_name.extend_from_slice(&[b'y'; 61]);
        max_name.push(0);
        let s = parse_message(&query(&max_name, 1)).unwrap();
        assert_eq!(s.qname.len(), 253);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        // The response's question ends at 12 + 17 + 4 = 33 bytes: shorter
        // cuts are errors, longer ones (answer cut) still summarise.
        let r = response();
        for len in 0..33 {
            assert!(parse_message(&r[..len]).is_err(), "len {len}");
        }
        for len in 33..=r.len() {
            assert!(parse_message(&r[..len]).is_ok(), "len {len}");
        }
        assert_eq!(parse_message(&r[..5]), Err(DnsError::Truncated));
        assert_eq!(parse_message(&r[..20]), Err(DnsError::Truncated));
    }

    #[test]
    fn tcp_length_prefix() {
        let m = response();
        let mut seg = (m.len() as u16).to_be_bytes().to_vec();
        seg.extend_from_slice(&m);
        // A second message in the same segment is ignored.
        seg.extend_from_slice(&(m.len() as u16).to_be_bytes());
        seg.extend_from_slice(&query(b"\x01x\x00", 1));
        let s = parse_tcp_segment(&seg).unwrap();
        assert_eq!(s.qname.as_bytes(), b"www.example.com");
        assert_eq!(usize::from(s.msg_len), m.len());

        // Cut by the segment: summarised from what is there.
        let s = parse_tcp_segment(&seg[..2 + 40]).unwrap();
        assert_eq!(s.msg_len, 40);

        assert_eq!(parse_tcp_segment(&[0]), Err(DnsError::Truncated));
        assert_eq!(
            parse_tcp_segment(&[0, 5, 1, 2]),
            Err(DnsError::BadTcpLength)
        );
        for len in 0..seg.len() {
            let _ = parse_tcp_segment(&seg[..len]);
        }
    }

    #[test]
    fn reasons_table() {
        for (i, e) in DnsError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert_eq!(e.reason(), DnsError::ALL_REASONS[i]);
        }
    }
}
