//! One small total function per protocol: does this first message of a
//! direction look like the protocol? Each checks structure (fixed magic,
//! lengths that agree with the payload, fields within their ranges), never a
//! port. Written from the specifications cited on each function.

use crate::bytes::{
    be16, be32, ber_len, ber_small_int, find, find_ci, first_line, le16, le24, le32,
    starts_with_ci, u8_at,
};

/// SSH identification string (RFC 4253 section 4.2): `SSH-` protoversion `-`,
/// where protoversion is `2.0`, `1.99` or an SSH-1 `1.x`. Either side may send
/// it first.
pub(crate) fn ssh(p: &[u8]) -> bool {
    let Some(rest) = p.strip_prefix(b"SSH-") else {
        return false;
    };
    // "d.d" .. "d.dd" then '-'.
    let major = u8_at(rest, 0);
    let dot = u8_at(rest, 1);
    matches!(major, Some(b'1' | b'2'))
        && dot == Some(b'.')
        && rest.get(2).is_some_and(u8::is_ascii_digit)
        && (u8_at(rest, 3) == Some(b'-')
            || (rest.get(3).is_some_and(u8::is_ascii_digit) && u8_at(rest, 4) == Some(b'-')))
}

/// A TLS record carrying the start of a ClientHello or ServerHello (RFC 8446
/// section 5.1 and 4; RFC 5246 section 6.2.1): content type 22, record version
/// 3.0 to 3.4, a record length of at most 2^14 + 2048, handshake type 1 or 2
/// and a hello version of 3.x.
pub(crate) fn tls_hello(p: &[u8]) -> bool {
    let (Some(22), Some(3), Some(minor)) = (u8_at(p, 0), u8_at(p, 1), u8_at(p, 2)) else {
        return false;
    };
    let Some(rec_len) = be16(p, 3) else {
        return false;
    };
    let hs_type = u8_at(p, 5);
    let hello_major = u8_at(p, 9);
    let hello_minor = u8_at(p, 10);
    minor <= 4
        && (4..=16384 + 2048).contains(&rec_len)
        && matches!(hs_type, Some(1 | 2))
        && u8_at(p, 6) == Some(0) // a 3-byte handshake length: hellos stay below 2^16
        && hello_major == Some(3)
        && hello_minor.is_some_and(|m| m <= 4)
}

/// An HTTP/1.x request line (RFC 9112 section 3): a known method, one space,
/// a request target starting with `/`, `*` or an absolute URI (or an
/// authority for CONNECT), and, when the line ends within the payload, the
/// version `HTTP/1.x` at its end.
pub(crate) fn http_request(p: &[u8]) -> Option<HttpRequest> {
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"HEAD ",
        b"PUT ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"TRACE ",
        b"CONNECT ",
    ];
    let method = METHODS.iter().find(|m| p.starts_with(m))?;
    let target = p.get(method.len()..)?;
    let connect = *method == b"CONNECT ";
    let target_ok = if connect {
        target.first().is_some_and(u8::is_ascii_alphanumeric) || target.first() == Some(&b'[')
    } else {
        matches!(target.first(), Some(b'/' | b'*'))
            || starts_with_ci(target, b"http://")
            || starts_with_ci(target, b"https://")
    };
    if !target_ok {
        return None;
    }
    // A request line that ends here must end with the version; one longer
    // than the payload (a long URL) is judged on the method and target alone.
    if let Some(line) = first_line(p, 8192) {
        let version = line.get(line.len().checked_sub(9)?..)?;
        if !(version.starts_with(b" HTTP/1.") && version.get(8).is_some_and(u8::is_ascii_digit)) {
            return None;
        }
    }
    let wsman = *method == b"POST " && starts_with_ci(target, b"/wsman");
    Some(if connect {
        HttpRequest::Connect
    } else if wsman {
        HttpRequest::Wsman
    } else {
        HttpRequest::Plain
    })
}

/// What an HTTP request line says about the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HttpRequest {
    /// An ordinary request.
    Plain,
    /// `CONNECT`: what follows a 2xx answer is the tunnelled protocol.
    Connect,
    /// `POST /wsman`: WinRM (MS-WSMV over HTTP).
    Wsman,
}

/// An HTTP/1.x status line (RFC 9112 section 4): `HTTP/1.d ddd `.
pub(crate) fn http_response(p: &[u8]) -> bool {
    p.starts_with(b"HTTP/1.")
        && p.get(7).is_some_and(u8::is_ascii_digit)
        && u8_at(p, 8) == Some(b' ')
        && p.get(9..12)
            .is_some_and(|code| code.iter().all(u8::is_ascii_digit))
}

/// A 2xx HTTP status line (the proxy opened a CONNECT tunnel).
pub(crate) fn http_2xx(p: &[u8]) -> bool {
    http_response(p) && u8_at(p, 9) == Some(b'2')
}

/// RDP's first message over TCP (MS-RDPBCGR 2.2.1.1 and 2.2.1.2): a TPKT
/// header (RFC 1006: version 3, reserved 0, length covering the payload) and
/// an X.224 Connection Request (code 0xE0) or Connection Confirm (0xD0, RFC
/// 905 13.3/13.4) whose variable part is empty, a `Cookie:` or routing token,
/// or an RDP negotiation request/response/failure (types 1, 2, 3, length 8).
/// The variable-part check keeps other TPKT users (ISO-TSAP, S7) out.
pub(crate) fn rdp_tcp(p: &[u8]) -> bool {
    let (Some(3), Some(0), Some(tpkt_len)) = (u8_at(p, 0), u8_at(p, 1), be16(p, 2)) else {
        return false;
    };
    let tpkt_len = usize::from(tpkt_len);
    let (Some(li), Some(code)) = (u8_at(p, 4), u8_at(p, 5)) else {
        return false;
    };
    // LI counts the X.224 header after itself: it ends the TPKT packet.
    if tpkt_len < 11 || tpkt_len > p.len() || usize::from(li) + 5 != tpkt_len {
        return false;
    }
    if !matches!(code & 0xf0, 0xe0 | 0xd0) || u8_at(p, 10) != Some(0) {
        return false;
    }
    let var = p.get(11..tpkt_len).unwrap_or_default();
    let neg_ok = |at: usize| matches!(u8_at(var, at), Some(1..=3)) && le16(var, at + 2) == Some(8);
    var.is_empty()
        || var.starts_with(b"Cookie: ")
        || neg_ok(0)
        // A cookie line then a negotiation request.
        || find(var, b"\r\n").is_some_and(|eol| eol + 2 == var.len() || neg_ok(eol + 2))
}

/// RDP over UDP (MS-RDPEUDP 2.2.2.1 and 3.1.5.1.1): the SYN or SYN+ACK
/// datagram. An RDPUDP_FEC_HEADER whose flags carry RDPUDP_FLAG_SYN and no
/// FIN/DATA, then an RDPUDP_SYNDATA_PAYLOAD whose up- and downstream MTUs
/// are within the 1132..=1232 the spec allows; the SYN is padded to 1232
/// bytes. The client's SYN has snSourceAck = -1.
pub(crate) fn rdp_udp(p: &[u8]) -> bool {
    let (Some(ack), Some(flags)) = (be32(p, 0), be16(p, 6)) else {
        return false;
    };
    let (Some(up), Some(down)) = (be16(p, 12), be16(p, 14)) else {
        return false;
    };
    let syn = flags & 0x0001 != 0;
    let ack_flag = flags & 0x0004 != 0;
    let fin_or_data = flags & 0x000a != 0;
    let mtu = 1132..=1232;
    syn && !fin_or_data
        && p.len() >= 1232
        && mtu.contains(&up)
        && mtu.contains(&down)
        && (ack == u32::MAX || ack_flag)
}

/// RDP over UDP after the handshake (MS-RDPEUDP 2.2.2.1, 2.2.2.7, 2.2.2.4),
/// for flows whose SYNs the capture missed: an RDPUDP_FEC_HEADER with
/// RDPUDP_FLAG_DATA and RDPUDP_FLAG_ACK, neither SYN nor FEC, no undefined
/// flag; the ACK vector (at most 2048 entries, padded to 4 bytes); the
/// ack-of-acks sequence number when flagged; then a source payload header
/// whose snCoded equals its snSourceStart (they differ only in FEC packets)
/// and a TLS or DTLS record, which is what RDP carries over this transport.
pub(crate) fn rdp_udp_data(p: &[u8]) -> bool {
    const SYN: u16 = 0x0001;
    const ACK: u16 = 0x0004;
    const DATA: u16 = 0x0008;
    const FEC: u16 = 0x0010;
    const ACK_OF_ACKS: u16 = 0x0100;
    let (Some(flags), Some(vector)) = (be16(p, 6), be16(p, 8)) else {
        return false;
    };
    if flags & (DATA | ACK) != DATA | ACK || flags & (SYN | FEC) != 0 || flags >= 0x2000 {
        return false;
    }
    if vector > 2048 {
        return false;
    }
    let mut at = 8 + (2 + usize::from(vector)).next_multiple_of(4);
    if flags & ACK_OF_ACKS != 0 {
        at += 4;
    }
    let (Some(coded), Some(start), Some(content), Some(major)) = (
        be32(p, at),
        be32(p, at + 4),
        u8_at(p, at + 8),
        u8_at(p, at + 9),
    ) else {
        return false;
    };
    coded == start && (0x14..=0x17).contains(&content) && matches!(major, 0x03 | 0xfe)
}

/// The RFB ProtocolVersion message (RFC 6143 section 7.1.1): exactly
/// `RFB xxx.yyy\n`, 12 bytes, digits in both numbers. The server sends it
/// first and the client echoes a version.
pub(crate) fn rfb(p: &[u8]) -> bool {
    p.len() == 12
        && p.starts_with(b"RFB ")
        && u8_at(p, 7) == Some(b'.')
        && u8_at(p, 11) == Some(b'\n')
        && p.get(4..7)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        && p.get(8..11)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
}

/// Telnet option negotiation (RFC 854, RFC 855): the payload starts with two
/// or more commands `IAC WILL|WONT|DO|DONT option` or `IAC SB .. IAC SE`
/// (only negotiation, the way both sides open a session), or is made of
/// exactly one such command.
pub(crate) fn telnet(p: &[u8]) -> bool {
    const IAC: u8 = 0xff;
    let mut at = 0usize;
    let mut commands = 0u32;
    while commands < 8 {
        match (u8_at(p, at), u8_at(p, at + 1)) {
            (Some(IAC), Some(0xfb..=0xfe)) => {
                if u8_at(p, at + 2).is_none() {
                    return false;
                }
                at += 3;
            }
            // Subnegotiation: IAC SB option ... IAC SE, bounded.
            (Some(IAC), Some(0xfa)) => {
                let Some(rest) = p.get(at + 2..) else {
                    return false;
                };
                let Some(end) = find(
                    rest.get(..rest.len().min(64)).unwrap_or_default(),
                    &[IAC, 0xf0],
                ) else {
                    return false;
                };
                at += 2 + end + 2;
            }
            _ => break,
        }
        commands += 1;
    }
    commands >= 2 || (commands == 1 && at == p.len())
}

/// SMB over the NetBIOS session service or direct TCP (RFC 1002 4.3.1,
/// MS-SMB2 2.1): a session message (type 0) whose length is at least an SMB
/// header, followed by the protocol id `\xffSMB` (SMB1), `\xfeSMB` (SMB2/3),
/// `\xfdSMB` (SMB3 transform) or `\xfcSMB` (SMB3 compression); or a NetBIOS
/// session request (type 0x81) with two encoded 32-byte names (RFC 1001
/// 14.1: length byte 0x20, letters A..P).
pub(crate) fn smb(p: &[u8]) -> bool {
    match u8_at(p, 0) {
        Some(0x00) => {
            let Some(len) = be32(p, 0) else {
                return false;
            };
            let magic_ok =
                matches!(u8_at(p, 4), Some(0xfc..=0xff)) && p.get(5..8) == Some(&b"SMB"[..]);
            magic_ok && len >= 32
        }
        Some(0x81) => {
            let encoded = |at: usize| {
                u8_at(p, at) == Some(0x20)
                    && p.get(at + 1..at + 33)
                        .is_some_and(|n| n.iter().all(|b| (b'A'..=b'P').contains(b)))
            };
            be16(p, 2) == Some(68) && encoded(4) && encoded(38)
        }
        _ => false,
    }
}

/// A connection-oriented DCE-RPC v5 PDU (C706 chapter 12.6, MS-RPCE 2.2.2):
/// version 5.0 or 5.1, a PDU type a session exchanges (request, response,
/// fault, bind, bind_ack, bind_nak, alter_context and its response, auth3),
/// a data representation of ASCII/IEEE with either integer order, and a
/// fragment length of at least the 16-byte header that covers the auth
/// trailer.
pub(crate) fn dcerpc(p: &[u8]) -> bool {
    let (Some(5), Some(minor), Some(ptype)) = (u8_at(p, 0), u8_at(p, 1), u8_at(p, 2)) else {
        return false;
    };
    let drep_ok = matches!(u8_at(p, 4), Some(0x00 | 0x10))
        && u8_at(p, 5) == Some(0)
        && p.get(6..8) == Some(&[0, 0][..]);
    let little = u8_at(p, 4) == Some(0x10);
    let rd16 = |at| if little { le16(p, at) } else { be16(p, at) };
    let (Some(frag), Some(auth)) = (rd16(8), rd16(10)) else {
        return false;
    };
    minor <= 1
        && matches!(ptype, 0 | 2 | 3 | 11..=16)
        && drep_ok
        && frag >= 16
        && u32::from(auth) + 16 <= u32::from(frag)
}

/// A Kerberos v5 message (RFC 4120 section 5.4.1, 5.4.2, 5.9.1): the
/// application tag of AS-REQ (10), AS-REP (11), TGS-REQ (12), TGS-REP (13)
/// or KRB-ERROR (30), a SEQUENCE, then `pvno [1] 5` and `msg-type [2]` equal
/// to the tag for requests, or `pvno [0] 5` and `msg-type [1]` for replies
/// and errors. Over TCP (RFC 4120 section 7.2.2) a 4-byte record length
/// comes first.
pub(crate) fn kerberos(p: &[u8], tcp: bool) -> bool {
    let msg = if tcp {
        let Some(rec) = be32(p, 0) else {
            return false;
        };
        // The high bit is reserved; a first segment holds at least part of one record.
        if rec & 0x8000_0000 != 0 || rec < 16 {
            return false;
        }
        p.get(4..).unwrap_or_default()
    } else {
        p
    };
    let Some(tag) = u8_at(msg, 0) else {
        return false;
    };
    let app = tag & 0x1f;
    if tag & 0xe0 != 0x60 || !matches!(app, 10..=13 | 30) {
        return false;
    }
    let Some((_, l1)) = ber_len(msg, 1) else {
        return false;
    };
    let seq = 1 + l1;
    if u8_at(msg, seq) != Some(0x30) {
        return false;
    }
    let Some((_, l2)) = ber_len(msg, seq + 1) else {
        return false;
    };
    let at = seq + 1 + l2;
    let request = matches!(app, 10 | 12);
    let (pvno_tag, type_tag) = if request { (0xa1, 0xa2) } else { (0xa0, 0xa1) };
    // [n] { INTEGER }: context tag, length, then the INTEGER.
    let field = |at: usize, tag: u8| -> Option<(u32, usize)> {
        if u8_at(msg, at)? != tag {
            return None;
        }
        let (_, ll) = ber_len(msg, at + 1)?;
        let (v, used) = ber_small_int(msg, at + 1 + ll)?;
        Some((v, 1 + ll + used))
    };
    let Some((5, used)) = field(at, pvno_tag) else {
        return false;
    };
    field(at + used, type_tag).is_some_and(|(t, _)| t == u32::from(app))
}

/// An LDAPMessage (RFC 4511 section 4.1.1, BER per X.690): a SEQUENCE, a
/// messageID INTEGER, and a protocolOp with an LDAP application tag (bind,
/// unbind, search and its results, modify, add, delete, modDN, compare,
/// abandon, extended). A bind request also carries version 2 or 3. Works for
/// TCP and for CLDAP over UDP.
pub(crate) fn ldap(p: &[u8]) -> bool {
    if u8_at(p, 0) != Some(0x30) {
        return false;
    }
    let Some((len, ll)) = ber_len(p, 1) else {
        return false;
    };
    let Some((_, id_used)) = ber_small_int(p, 1 + ll) else {
        return false;
    };
    let op_at = 1 + ll + id_used;
    let Some(op) = u8_at(p, op_at) else {
        return false;
    };
    // Constructed application ops 0..=25 and the primitive ones (unbind 2,
    // delete 10, abandon 16).
    let op_ok = match op {
        0x60..=0x79 => !matches!(op & 0x1f, 2 | 10 | 16),
        0x42 | 0x4a | 0x50 => true,
        _ => false,
    };
    if !op_ok || len < 5 {
        return false;
    }
    if op == 0x60 {
        let Some((_, l)) = ber_len(p, op_at + 1) else {
            return false;
        };
        return ber_small_int(p, op_at + 1 + l).is_some_and(|(v, _)| v == 2 || v == 3);
    }
    // The op's own length must fit inside the message.
    ber_len(p, op_at + 1).is_some_and(|(l, _)| l < len)
}

/// SNMP (RFC 1157, RFC 3416, RFC 3412): a SEQUENCE, version INTEGER 0 (v1),
/// 1 (v2c) or 3 (v3); for v1/v2c an OCTET STRING community and a PDU with a
/// context tag 0xA0..=0xA8; for v3 a msgGlobalData SEQUENCE.
pub(crate) fn snmp(p: &[u8]) -> bool {
    if u8_at(p, 0) != Some(0x30) {
        return false;
    }
    let Some((len, ll)) = ber_len(p, 1) else {
        return false;
    };
    if 1 + ll + len != p.len() {
        return false;
    }
    let Some((version, used)) = ber_small_int(p, 1 + ll) else {
        return false;
    };
    let at = 1 + ll + used;
    match version {
        0 | 1 => {
            if u8_at(p, at) != Some(0x04) {
                return false;
            }
            let Some((clen, cll)) = ber_len(p, at + 1) else {
                return false;
            };
            matches!(u8_at(p, at + 1 + cll + clen), Some(0xa0..=0xa8))
        }
        3 => u8_at(p, at) == Some(0x30),
        _ => false,
    }
}

/// A DNS message (RFC 1035 section 4.1): a header with one question, sane
/// counts, a standard opcode (query, iquery, status, notify, update), and a
/// question whose name is uncompressed labels of 1..=63 printable bytes
/// ending in the root within 255 bytes, followed by a type and a class of
/// IN, CH, HS, NONE or ANY (the top bit is mDNS's unicast-response flag).
/// Over TCP (RFC 1035 section 4.2.2) a 2-byte length comes first.
pub(crate) fn dns(p: &[u8], tcp: bool) -> bool {
    let msg = if tcp {
        let Some(len) = be16(p, 0) else {
            return false;
        };
        if usize::from(len) < 17 {
            return false;
        }
        p.get(2..).unwrap_or_default()
    } else {
        p
    };
    let (Some(flags), Some(qd), Some(an), Some(ns), Some(ar)) = (
        be16(msg, 2),
        be16(msg, 4),
        be16(msg, 6),
        be16(msg, 8),
        be16(msg, 10),
    ) else {
        return false;
    };
    let opcode = (flags >> 11) & 0xf;
    let response = flags & 0x8000 != 0;
    let z = flags & 0x0040 != 0;
    // Over TCP a plain query (no answers, no authority, at most an OPT
    // record) may carry more than one question or an over-long name, as
    // crafted and fuzzing queries do: the length prefix and these zero
    // counts are structure enough, and the name's labels are still checked
    // as far as they were kept.
    let odd_query = tcp && !response && opcode == 0 && an == 0 && ns == 0 && ar <= 1 && qd > 1;
    if (qd != 1 && !odd_query)
        || !matches!(opcode, 0 | 1 | 2 | 4 | 5)
        || z
        || an > 128
        || ns > 64
        || ar > 64
    {
        return false;
    }
    if !response && opcode == 0 && an > 0 {
        return false;
    }
    let mut at = 12usize;
    let mut name_len = 0usize;
    loop {
        let Some(label) = u8_at(msg, at) else {
            return false;
        };
        if label == 0 {
            at += 1;
            break;
        }
        if label > 63 {
            return false;
        }
        let l = usize::from(label);
        let Some(bytes) = msg.get(at + 1..at + 1 + l) else {
            return false;
        };
        if !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
            return false;
        }
        name_len += l + 1;
        if name_len > 255 {
            return odd_query;
        }
        at += 1 + l;
    }
    let (Some(qtype), Some(qclass)) = (be16(msg, at), be16(msg, at + 2)) else {
        return false;
    };
    qtype != 0 && matches!(qclass & 0x7fff, 1 | 3 | 4 | 254 | 255)
}

/// An NTP packet (RFC 5905 section 7.3, RFC 4330 for SNTP): 48 bytes, or 48
/// plus a MAC of 20 or 24 bytes, version 1..=4, mode 1..=5 (symmetric,
/// client, server, broadcast), stratum at most 16, a poll exponent and a
/// precision in the ranges clocks use.
pub(crate) fn ntp(p: &[u8]) -> bool {
    let (Some(first), Some(stratum), Some(poll), Some(precision)) =
        (u8_at(p, 0), u8_at(p, 1), u8_at(p, 2), u8_at(p, 3))
    else {
        return false;
    };
    let version = (first >> 3) & 7;
    let mode = first & 7;
    let poll = poll as i8;
    let precision = precision as i8;
    matches!(p.len(), 48 | 68 | 72)
        && (1..=4).contains(&version)
        && (1..=5).contains(&mode)
        && stratum <= 16
        && (-6..=17).contains(&poll)
        && (-32..=0).contains(&precision)
}

/// An IKE message (RFC 7296 section 3.1 for v2, RFC 2408 section 3.1 for
/// ISAKMP v1) on UDP, optionally after the 4-byte non-ESP marker of UDP
/// encapsulation (RFC 3948 section 2.2): a non-zero initiator SPI, major
/// version 1 or 2, an exchange type of that version, a next payload in the
/// registry's range, and a length equal to the message.
pub(crate) fn ike(p: &[u8]) -> bool {
    let msg = match be32(p, 0) {
        Some(0) => p.get(4..).unwrap_or_default(),
        _ => p,
    };
    let (Some(ispi), Some(next), Some(version), Some(exchange), Some(len)) = (
        msg.get(0..8),
        u8_at(msg, 16),
        u8_at(msg, 17),
        u8_at(msg, 18),
        be32(msg, 24),
    ) else {
        return false;
    };
    let version_ok = match version >> 4 {
        1 => matches!(exchange, 1..=6 | 32 | 33) && next <= 13 && next != 0,
        2 => (34..=37).contains(&exchange) && (next == 0 || (33..=54).contains(&next)),
        _ => false,
    };
    ispi.iter().any(|&b| b != 0)
        && version_ok
        && usize::try_from(len).is_ok_and(|l| l == msg.len() && l >= 28)
}

/// A QUIC long-header packet (RFC 9000 section 17.2, RFC 9369 for v2) with
/// the fixed bit set, a version of QUIC v1, v2, an IETF draft (0xff0000xx)
/// or Google QUIC (`Q0dd`, `T0dd`), and connection ids of at most 20 bytes;
/// or a gQUIC public header (flags with the version bit, an 8-byte connection
/// id, then `Q0dd`).
pub(crate) fn quic(p: &[u8]) -> bool {
    let Some(first) = u8_at(p, 0) else {
        return false;
    };
    let known = |v: u32| {
        v == 0x0000_0001
            || v == 0x6b33_43cf
            || (v & 0xffff_ff00) == 0xff00_0000
            || google_version(v)
    };
    if first & 0xc0 == 0xc0 {
        let Some(version) = be32(p, 1) else {
            return false;
        };
        let Some(dcid) = u8_at(p, 5) else {
            return false;
        };
        let Some(scid) = u8_at(p, 6 + usize::from(dcid)) else {
            return false;
        };
        return known(version) && dcid <= 20 && scid <= 20 && p.len() >= 64;
    }
    // gQUIC public header: version flag 0x01, 8-byte connection id flag 0x08.
    first & 0x09 == 0x09 && first & 0x80 == 0 && be32(p, 9).is_some_and(google_version)
}

/// `Q0dd` / `T0dd` as Google QUIC spells its versions.
fn google_version(v: u32) -> bool {
    let b = v.to_be_bytes();
    matches!(b[0], b'Q' | b'T') && b[1] == b'0' && b[2].is_ascii_digit() && b[3].is_ascii_digit()
}

/// A WireGuard handshake message (the WireGuard paper, section 5.4):
/// type 1 (initiation) of exactly 148 bytes or type 2 (response) of exactly
/// 92, with the three reserved bytes zero and a non-zero sender index.
pub(crate) fn wireguard(p: &[u8]) -> bool {
    let reserved_zero = p.get(1..4) == Some(&[0, 0, 0][..]);
    let sender_ok = le32(p, 4).is_some_and(|s| s != 0);
    reserved_zero && sender_ok && matches!((u8_at(p, 0), p.len()), (Some(1), 148) | (Some(2), 92))
}

/// A WireGuard transport data message (the WireGuard paper, section
/// 5.4.6), for tunnels whose handshake the capture missed: type 4, the three
/// reserved bytes zero, a non-zero receiver index, a 64-bit little-endian
/// counter below 2^40 (a session rekeys long before), and the encrypted
/// packet: plaintext padded to 16 bytes plus a 16-byte tag, so the datagram
/// is 32 + 16k bytes. One datagram is thin evidence; the classifier asks
/// for one in each direction.
pub(crate) fn wireguard_data(p: &[u8]) -> bool {
    p.len() >= 32
        && (p.len() - 16).is_multiple_of(16)
        && p.get(0..4) == Some(&[4, 0, 0, 0][..])
        && le32(p, 4).is_some_and(|r| r != 0)
        && p.get(13..16) == Some(&[0, 0, 0][..])
}

/// An OpenVPN hard-reset control packet (OpenVPN's protocol description in
/// `ssl_pkt.h`/`doc/protocol`): opcode P_CONTROL_HARD_RESET_CLIENT_V2 (7),
/// _V3 (10) or P_CONTROL_HARD_RESET_SERVER_V2 (8) with key id 0, a session
/// id, then, with no tls-auth or after an HMAC of 16, 20, 32 or 64 bytes and
/// its packet id and time, an ACK array and the message packet id 0. Over
/// TCP a 2-byte length equal to the packet comes first.
pub(crate) fn openvpn(p: &[u8], tcp: bool) -> bool {
    let pkt = if tcp {
        let Some(len) = be16(p, 0) else {
            return false;
        };
        let pkt = p.get(2..).unwrap_or_default();
        if usize::from(len) != pkt.len() {
            return false;
        }
        pkt
    } else {
        p
    };
    let Some(op) = u8_at(pkt, 0) else {
        return false;
    };
    if !matches!(op, 0x38 | 0x40 | 0x50) || pkt.get(1..9).is_none_or(|s| s.iter().all(|&b| b == 0))
    {
        return false;
    }
    // The ACK array: a count, that many 4-byte ids, then (when the count is
    // non-zero) the 8-byte remote session id; then the message packet id.
    let acks_then_msg_id_zero = |at: usize| -> bool {
        let Some(n) = u8_at(pkt, at) else {
            return false;
        };
        if n > 8 {
            return false;
        }
        let mut next = at + 1 + 4 * usize::from(n);
        if n > 0 {
            next += 8;
        }
        be32(pkt, next) == Some(0)
    };
    if acks_then_msg_id_zero(9) && pkt.len() <= 9 + 1 + 4 * 9 + 8 + 4 {
        return true;
    }
    // tls-auth: HMAC, packet id (starts at 1, small), time.
    [16usize, 20, 32, 64].into_iter().any(|h| {
        be32(pkt, 9 + h).is_some_and(|id| (1..=16).contains(&id))
            && acks_then_msg_id_zero(9 + h + 8)
    })
}

/// The MySQL initial handshake (MySQL client/server protocol,
/// "Protocol::HandshakeV10"): a packet header whose 3-byte length equals the
/// rest of the payload and whose sequence id is 0, protocol version 10, and a
/// NUL-terminated server version of printable bytes starting with a digit.
pub(crate) fn mysql_greeting(p: &[u8]) -> bool {
    let (Some(len), Some(0), Some(10)) = (le24(p, 0), u8_at(p, 3), u8_at(p, 4)) else {
        return false;
    };
    let Some(body) = p.get(5..) else {
        return false;
    };
    let Some(nul) = body.iter().take(64).position(|&b| b == 0) else {
        return false;
    };
    let version = body.get(..nul).unwrap_or_default();
    usize::try_from(len).is_ok_and(|l| l + 4 == p.len())
        && version.first().is_some_and(u8::is_ascii_digit)
        && version.iter().all(|b| (0x20..0x7f).contains(b))
}

/// PostgreSQL's first frontend message (PostgreSQL protocol, "Message
/// Formats"): an SSLRequest (80877103), GSSENCRequest (80877104) or
/// CancelRequest (80877102) of fixed length, or a StartupMessage of protocol
/// 3.0 whose length equals the payload and whose first parameter name is a
/// lower-case word.
pub(crate) fn postgres_startup(p: &[u8]) -> bool {
    let (Some(len), Some(code)) = (be32(p, 0), be32(p, 4)) else {
        return false;
    };
    match (len, code) {
        (8, 80_877_103 | 80_877_104) => p.len() == 8,
        (16, 80_877_102) => p.len() == 16,
        (_, 0x0003_0000) => {
            let name = p.get(8..).unwrap_or_default();
            let word = name
                .iter()
                .take_while(|b| b.is_ascii_lowercase() || **b == b'_')
                .count();
            usize::try_from(len).is_ok_and(|l| l == p.len())
                && word >= 4
                && u8_at(name, word) == Some(0)
        }
        _ => false,
    }
}

/// A PostgreSQL authentication request from the backend ('R', RFC-less:
/// PostgreSQL protocol "AuthenticationXXX"): 'R', a length of 8 to 512 equal
/// to the payload minus the type byte, and an authentication code of 0 to
/// 12.
pub(crate) fn postgres_auth(p: &[u8]) -> bool {
    let (Some(b'R'), Some(len), Some(code)) = (u8_at(p, 0), be32(p, 1), be32(p, 5)) else {
        return false;
    };
    (8..=512).contains(&len) && usize::try_from(len).is_ok_and(|l| l < p.len()) && code <= 12
}

/// A TDS packet (MS-TDS 2.2.3.1): a packet type a client or server sends
/// first (SQL batch 1, RPC 3, tabular result 4, transaction manager 14,
/// login7 16, pre-login 18), a status of known bits, window 0, then a body
/// check by type: ALL_HEADERS (total length 22, header length 18, type 2:
/// MS-TDS 2.2.5.3) for batch, RPC and transaction requests; for an RPC of
/// TDS 7.1 and older, a procedure name of UTF-16LE letters (2.2.6.6); a
/// known first token for results; the option list of a pre-login; the own
/// length of a LOGIN7. The packet length must equal the payload, except
/// after ALL_HEADERS or an RPC name (strong enough alone), where a packet
/// may span segments.
pub(crate) fn tds(p: &[u8]) -> bool {
    let (Some(ty), Some(status), Some(len), Some(0)) =
        (u8_at(p, 0), u8_at(p, 1), be16(p, 2), u8_at(p, 7))
    else {
        return false;
    };
    let len = usize::from(len);
    if status & !0x1f != 0 || len <= 8 {
        return false;
    }
    let exact = len == p.len();
    let all_headers =
        || le32(p, 8) == Some(22) && le32(p, 12) == Some(18) && le16(p, 16) == Some(2);
    match ty {
        1 | 14 => all_headers(),
        3 => all_headers() || rpc_name(p, len),
        // Results: DONE, COLMETADATA, ERROR, ENVCHANGE, LOGINACK, INFO, RETURNSTATUS,
        // or a pre-login response (option VERSION first).
        4 => {
            exact
                && (matches!(
                    u8_at(p, 8),
                    Some(0xfd | 0x81 | 0xaa | 0xe3 | 0xad | 0xab | 0x79)
                ) || prelogin_options(p))
        }
        18 => exact && prelogin_options(p),
        16 => {
            exact && le32(p, 8).is_some_and(|l| usize::try_from(l).is_ok_and(|l| l + 8 == p.len()))
        }
        _ => false,
    }
}

/// An RPC request's procedure name (MS-TDS 2.2.6.6, ProcName): a length of
/// 1..=128 characters, then that many UTF-16LE characters, all ASCII letters,
/// digits or `_`, starting with a letter or `_`, within the packet length.
fn rpc_name(p: &[u8], packet_len: usize) -> bool {
    let Some(n) = le16(p, 8).map(usize::from) else {
        return false;
    };
    if !(1..=128).contains(&n) || 10 + 2 * n > packet_len {
        return false;
    }
    // The first 16 characters (or all, when shorter) must be in the payload.
    (0..n.min(16)).all(|i| {
        let (Some(lo), Some(0)) = (u8_at(p, 10 + 2 * i), u8_at(p, 11 + 2 * i)) else {
            return false;
        };
        lo == b'_' || lo.is_ascii_alphabetic() || (i > 0 && lo.is_ascii_digit())
    })
}

/// The PRELOGIN option list (MS-TDS 2.2.6.5): tokens 0..=8 with offsets and
/// lengths inside the message, ending in 0xFF, VERSION first.
fn prelogin_options(p: &[u8]) -> bool {
    let body = p.get(8..).unwrap_or_default();
    if u8_at(body, 0) != Some(0) {
        return false;
    }
    let mut at = 0usize;
    for _ in 0..10 {
        match u8_at(body, at) {
            Some(0xff) => return true,
            Some(0..=8) => {
                let (Some(off), Some(len)) = (be16(body, at + 1), be16(body, at + 3)) else {
                    return false;
                };
                if usize::from(off) + usize::from(len) > body.len() {
                    return false;
                }
                at += 5;
            }
            _ => return false,
        }
    }
    false
}

/// A RESP array of bulk strings (the Redis protocol specification): `*N\r\n`
/// with 1..=4 digits, then `$M\r\n` with 1..=9 digits.
pub(crate) fn resp_array(p: &[u8]) -> bool {
    let Some(rest) = p.strip_prefix(b"*") else {
        return false;
    };
    let Some(after) = digits_crlf(rest, 4) else {
        return false;
    };
    after
        .strip_prefix(b"$")
        .and_then(|r| digits_crlf(r, 9))
        .is_some()
}

/// A complete RESP reply (simple string, error, integer, bulk or array
/// header) ending in CRLF, of a line of printable bytes.
pub(crate) fn resp_reply(p: &[u8]) -> bool {
    let Some(line) = first_line(p, 256) else {
        return false;
    };
    let (Some(kind), Some(rest)) = (line.first(), line.get(1..)) else {
        return false;
    };
    let printable = rest.iter().all(|b| (0x20..0x7f).contains(b));
    match kind {
        b'+' | b'-' => printable && !rest.is_empty(),
        b':' | b'$' | b'*' => {
            let digits = rest.strip_prefix(b"-").unwrap_or(rest);
            !digits.is_empty() && digits.len() <= 19 && digits.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    }
}

/// True when the first eight bytes (or all, if fewer) are printable ASCII,
/// tab, CR or LF: every line-based first message (an SSH banner, an HTTP
/// request or status line, a mail or FTP greeting or command, a Redis
/// inline command) starts so, and a random payload almost never does.
pub(crate) fn starts_as_text(p: &[u8]) -> bool {
    !p.is_empty()
        && p.iter()
            .take(8)
            .all(|&b| (0x20..0x7f).contains(&b) || matches!(b, b'\t' | b'\r' | b'\n'))
}

/// A Redis inline command (the Redis protocol specification, "Inline
/// commands"): one of the common command names, then a space or CRLF. Only a
/// candidate: the server's RESP reply confirms it.
pub(crate) fn redis_inline(p: &[u8]) -> bool {
    const COMMANDS: [&[u8]; 16] = [
        b"PING",
        b"SET",
        b"GET",
        b"PUBLISH",
        b"SUBSCRIBE",
        b"PSUBSCRIBE",
        b"AUTH",
        b"INFO",
        b"CONFIG",
        b"KEYS",
        b"HGET",
        b"HSET",
        b"LPUSH",
        b"RPUSH",
        b"DEL",
        b"SELECT",
    ];
    // A first-byte test per command: most payloads fail there instead of
    // in sixteen case-folding comparisons.
    let Some(first) = p.first().map(u8::to_ascii_uppercase) else {
        return false;
    };
    COMMANDS.iter().any(|c| {
        c.first() == Some(&first)
            && starts_with_ci(p, c)
            && matches!(u8_at(p, c.len()), Some(b' ' | b'\r'))
    }) && find(p, b"\r\n").is_some_and(|eol| eol + 2 == p.len())
}

/// `digits` (1..=max) then CRLF; the rest after it.
fn digits_crlf(p: &[u8], max: usize) -> Option<&[u8]> {
    let n = p
        .iter()
        .take(max + 1)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if n == 0 || n > max {
        return None;
    }
    p.get(n..)?.strip_prefix(b"\r\n")
}

/// The BitTorrent peer handshake (BEP 3): the byte 19 then `BitTorrent
/// protocol`.
pub(crate) fn bittorrent(p: &[u8]) -> bool {
    p.starts_with(b"\x13BitTorrent protocol")
}

/// A BitTorrent extension-protocol message (BEP 10) at the start of a
/// segment: a 4-byte length of at most 64 KiB, message id 20, extended id 0
/// (the extension handshake) and a bencoded dictionary (`d`) whose first key
/// is a short byte string. Seen when a capture starts after the handshake.
pub(crate) fn bittorrent_extended(p: &[u8]) -> bool {
    let (Some(len), Some(20), Some(0), Some(b'd')) =
        (be32(p, 0), u8_at(p, 4), u8_at(p, 5), u8_at(p, 6))
    else {
        return false;
    };
    (2..=65536).contains(&len)
        && u8_at(p, 7).is_some_and(|b| (b'1'..=b'9').contains(&b))
        // The first key's length: one or two digits, then ':'.
        && (u8_at(p, 8) == Some(b':')
            || matches!((u8_at(p, 8), u8_at(p, 9)), (Some(b'0'..=b'9'), Some(b':'))))
}

/// A BitTorrent DHT KRPC message (BEP 5): a bencoded dictionary starting with
/// the query arguments `d1:ad2:id20:` or the response `d1:rd2:id20:`, or an
/// error `d1:eli`.
pub(crate) fn bittorrent_dht(p: &[u8]) -> bool {
    p.starts_with(b"d1:ad2:id20:") || p.starts_with(b"d1:rd2:id20:") || p.starts_with(b"d1:eli")
}

/// TeamViewer's framing as seen on the wire in the shared captures (no
/// public specification): over TCP, the client's messages start with the
/// magic bytes 0x17 0x24 and the server's with 0x11 0x30, each followed by a
/// command byte; one side only makes a candidate, the other confirms.
pub(crate) fn teamviewer_tcp(p: &[u8]) -> Option<TvSide> {
    match (u8_at(p, 0), u8_at(p, 1), u8_at(p, 2)) {
        (Some(0x17), Some(0x24), Some(_)) => Some(TvSide::Client),
        (Some(0x11), Some(0x30), Some(_)) => Some(TvSide::Server),
        _ => None,
    }
}

/// Which TeamViewer magic a message carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TvSide {
    /// 0x17 0x24.
    Client,
    /// 0x11 0x30.
    Server,
}

/// TeamViewer over UDP, as seen in the shared capture: ten zero bytes, a
/// small type byte, then the magic 0x17 0x24.
pub(crate) fn teamviewer_udp(p: &[u8]) -> bool {
    p.get(..10).is_some_and(|z| z.iter().all(|&b| b == 0))
        && u8_at(p, 10).is_some_and(|t| (1..=16).contains(&t))
        && p.get(11..13) == Some(&[0x17, 0x24][..])
        && p.len() >= 24
}

/// A mail/file-transfer server greeting, by its reply code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Greeting {
    /// `220 ` / `220-`: SMTP or FTP; the text or the client tells which.
    Code220 {
        /// The greeting names SMTP (`SMTP`, `ESMTP`, a known MTA).
        says_smtp: bool,
        /// The greeting names FTP.
        says_ftp: bool,
    },
    /// `+OK`: POP3 (RFC 1939 section 4).
    PopOk,
    /// `* OK` / `* PREAUTH` / `* BYE`: IMAP (RFC 9051 section 7.1).
    ImapOk,
}

/// A server greeting of SMTP or FTP (RFC 5321 section 4.2, RFC 959 section
/// 4.2: a `220` reply, single or multi-line), POP3 (RFC 1939: `+OK`) or
/// IMAP (RFC 9051: an untagged `OK`, `PREAUTH` or `BYE`), each a line ending
/// in CRLF within 512 bytes.
pub(crate) fn greeting(p: &[u8]) -> Option<Greeting> {
    // The reply code first: most payloads fail here without a line scan.
    if !(p.starts_with(b"220") || p.starts_with(b"+OK") || p.starts_with(b"* ")) {
        return None;
    }
    let line = first_line(p, 512)?;
    if !line.iter().all(|b| (0x20..0x7f).contains(b) || *b == b'\t') {
        return None;
    }
    if line.starts_with(b"220 ") || line.starts_with(b"220-") || line == b"220" {
        let says_smtp = find_ci(line, b"smtp").is_some()
            || find_ci(line, b"postfix").is_some()
            || find_ci(line, b"exim").is_some()
            || find_ci(line, b"sendmail").is_some()
            || find_ci(line, b" mail").is_some();
        let says_ftp = find_ci(line, b"ftp").is_some();
        return Some(Greeting::Code220 {
            says_smtp: says_smtp && !says_ftp,
            says_ftp: says_ftp && !says_smtp,
        });
    }
    if line.starts_with(b"+OK") {
        return Some(Greeting::PopOk);
    }
    if line.starts_with(b"* OK") || line.starts_with(b"* PREAUTH") || line.starts_with(b"* BYE") {
        return Some(Greeting::ImapOk);
    }
    None
}

/// What a client's first command line says after a `220` greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MailOrFtp {
    /// `EHLO`/`HELO`/`LHLO` (RFC 5321 4.1.1.1, RFC 2033).
    Smtp,
    /// An FTP command (RFC 959 4.1, RFC 2228, RFC 2389).
    Ftp,
}

/// The client's first command after a `220` greeting.
pub(crate) fn command_after_220(p: &[u8]) -> Option<MailOrFtp> {
    // Commands are letters: anything else fails before the line scan.
    if !p.first().is_some_and(u8::is_ascii_alphabetic) {
        return None;
    }
    const SMTP: [&[u8]; 3] = [b"EHLO ", b"HELO ", b"LHLO "];
    const FTP: [&[u8]; 9] = [
        b"USER ",
        b"AUTH TLS",
        b"AUTH SSL",
        b"FEAT",
        b"SYST",
        b"OPTS ",
        b"PBSZ ",
        b"PASV",
        b"ACCT ",
    ];
    // The commands hold no CR or LF, so one that starts the payload starts
    // its first line: compare first, scan for the line end only on a match.
    let command = if SMTP.iter().any(|c| starts_with_ci(p, c)) {
        MailOrFtp::Smtp
    } else if FTP.iter().any(|c| starts_with_ci(p, c)) {
        MailOrFtp::Ftp
    } else {
        return None;
    };
    first_line(p, 512).map(|_| command)
}

/// A client command asking to start TLS inside a cleartext protocol:
/// `STARTTLS` (SMTP RFC 3207, IMAP RFC 9051 with its tag), `STLS` (POP3 RFC
/// 2595), `AUTH TLS`/`AUTH SSL` (FTP RFC 4217).
pub(crate) fn starttls(p: &[u8]) -> bool {
    let Some(line) = first_line(p, 128) else {
        return false;
    };
    starts_with_ci(line, b"STARTTLS")
        || starts_with_ci(line, b"STLS")
        || starts_with_ci(line, b"AUTH TLS")
        || starts_with_ci(line, b"AUTH SSL")
        // IMAP: "tag STARTTLS".
        || line
            .iter()
            .position(|&b| b == b' ')
            .and_then(|sp| line.get(sp + 1..))
            .is_some_and(|rest| rest.eq_ignore_ascii_case(b"STARTTLS"))
}

#[cfg(test)]
mod tests;
