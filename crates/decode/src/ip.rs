//! From etherparse's lax slices to a [`PacketMeta`]: addresses, the wire
//! length rule, fragments, ports/flags and ICMP keying.

use std::net::IpAddr;

use etherparse::err::{packet::SliceError, Layer};
use etherparse::{
    Icmpv4Slice, Icmpv6Slice, IpNumber, Ipv4HeaderSlice, Ipv6ExtensionsSlice, LaxIpSlice,
    LaxNetSlice, LaxSlicedPacket, TcpSlice, TransportSlice, UdpSlice,
};
use tapsentry_types::{Fragment, Frame, IcmpError, PacketMeta, QuotedTuple, TcpFlags};

use crate::link::Located;
use crate::DecodeError;

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;
const PROTO_NO_NEXT: u8 = 59;

const IPV6_HEADER_LEN: u32 = 40;
/// Hop-by-hop option type of the jumbo payload length (RFC 2675).
const OPT_JUMBO: u8 = 0xc2;

/// What the network layer yields for the rest of the decode.
struct IpFacts<'a> {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ip_len: u32,
    fragment: Fragment,
    /// Bytes after the IP header and extension headers, as captured.
    payload: &'a [u8],
}

/// Transport-layer findings; all zero/empty when there is no transport
/// header to read (other protocols, non-first fragments).
#[derive(Default)]
struct L4<'a> {
    src_port: u16,
    dst_port: u16,
    flags: u8,
    icmp_error: Option<(IcmpError, QuotedTuple)>,
    payload: &'a [u8],
}

pub(crate) fn build<'a>(
    frame: &Frame<'a>,
    loc: Located<'a>,
) -> Result<PacketMeta<'a>, DecodeError> {
    let Located { vlan, pkt } = loc;
    let LaxSlicedPacket {
        net,
        transport,
        stop_err,
        ..
    } = pkt;
    let ip = match &net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            let p = v4.payload();
            v4_facts(frame, &h, p.ip_number, p.payload)?
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            let p = v6.payload();
            let start = h.slice().as_ptr() as usize;
            v6_facts(
                frame,
                start,
                h.source_addr().into(),
                h.destination_addr().into(),
                h.payload_length(),
                h.next_header(),
                v6.extensions(),
                p.ip_number,
                p.payload,
            )?
        }
        Some(LaxNetSlice::Arp(_)) => return Err(DecodeError::NotIp),
        None => {
            return Err(stop_err.map_or(DecodeError::NotIp, |(e, layer)| map_stop(&e, layer)));
        }
    };
    let l4 = transport_facts(&ip, transport, stop_err)?;
    Ok(PacketMeta {
        ts: frame.ts,
        vlan,
        src: ip.src,
        dst: ip.dst,
        proto: ip.proto,
        src_port: l4.src_port,
        dst_port: l4.dst_port,
        ip_len: ip.ip_len,
        tcp_flags: TcpFlags(l4.flags),
        fragment: ip.fragment,
        icmp_error: l4.icmp_error,
        payload: l4.payload,
    })
}

/// Bytes from `start` (a pointer into the frame) to the end of the frame on
/// the wire: the fallback when the IP header carries no usable length.
fn wire_bytes_from(frame: &Frame<'_>, start: usize) -> u32 {
    let offset = start.saturating_sub(frame.data.as_ptr() as usize);
    let captured = u32::try_from(frame.data.len()).unwrap_or(u32::MAX);
    frame
        .wire_len
        .max(captured)
        .saturating_sub(u32::try_from(offset).unwrap_or(u32::MAX))
}

fn v4_fragment(h: &Ipv4HeaderSlice<'_>) -> Fragment {
    let id = u32::from(h.identification());
    if h.fragments_offset().value() != 0 {
        Fragment::NonFirst { id }
    } else if h.more_fragments() {
        Fragment::First { id }
    } else {
        Fragment::None
    }
}

fn v4_facts<'a>(
    frame: &Frame<'a>,
    h: &Ipv4HeaderSlice<'_>,
    payload_proto: IpNumber,
    payload: &'a [u8],
) -> Result<IpFacts<'a>, DecodeError> {
    let header_len = u16::from(h.ihl()) * 4;
    let total = h.total_len();
    let ip_len = if total == 0 {
        // Linux BIG TCP (and some TSO captures) leave total_length 0 on
        // packets over 64 KiB: only the frame knows the size.
        wire_bytes_from(frame, h.slice().as_ptr() as usize).max(u32::from(header_len))
    } else if total < header_len {
        return Err(DecodeError::MalformedIp);
    } else {
        u32::from(total)
    };
    let fragment = v4_fragment(h);
    // In a non-first fragment the payload is the middle of a datagram: any
    // AH etherparse found there is payload bytes, so trust the header.
    let proto = match fragment {
        Fragment::NonFirst { .. } => h.protocol().0,
        _ => payload_proto.0,
    };
    Ok(IpFacts {
        src: h.source_addr().into(),
        dst: h.destination_addr().into(),
        proto,
        ip_len,
        fragment,
        payload,
    })
}

/// Walks the IPv6 extension headers etherparse accepted, over their raw
/// bytes, yielding (header type, header bytes).
///
/// etherparse 0.21's own `Ipv6ExtensionsSlice` iterator assumes the chain
/// was parsed to its end: after a lax parse that stopped on a cut or bad
/// header it reads past the slice (out of bounds, in `unsafe` code). This
/// walk stays inside the accepted bytes.
struct ExtWalk<'a> {
    next: u8,
    rest: &'a [u8],
}

impl<'a> ExtWalk<'a> {
    fn new(exts: &Ipv6ExtensionsSlice<'a>) -> Self {
        ExtWalk {
            // 59 (no next header) ends the walk at once.
            next: exts.first_header().map_or(PROTO_NO_NEXT, |n| n.0),
            rest: exts.slice(),
        }
    }
}

impl<'a> Iterator for ExtWalk<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let kind = self.next;
        let len = match kind {
            // hop-by-hop, routing, destination options: 8-octet units
            0 | 43 | 60 => (usize::from(*self.rest.get(1)?) + 1) * 8,
            44 => 8,
            // AH: 4-octet units, minus 2
            51 => (usize::from(*self.rest.get(1)?) + 2) * 4,
            _ => return None,
        };
        let hdr = self.rest.get(..len)?;
        self.next = *hdr.first()?;
        self.rest = self.rest.get(len..)?;
        Some((kind, hdr))
    }
}

fn v6_fragment(exts: &Ipv6ExtensionsSlice<'_>) -> Option<(Fragment, u8)> {
    let (_, f) = ExtWalk::new(exts).find(|(kind, _)| *kind == 44)?;
    let f = f.first_chunk::<8>()?;
    let offset = u16::from_be_bytes([f[2], f[3]]) >> 3;
    let more = f[3] & 1 != 0;
    let id = u32::from_be_bytes([f[4], f[5], f[6], f[7]]);
    let frag = if offset != 0 {
        Fragment::NonFirst { id }
    } else if more {
        Fragment::First { id }
    } else {
        Fragment::None
    };
    Some((frag, f[0]))
}

/// The jumbo payload length from the hop-by-hop header, if it carries one.
fn v6_jumbo(exts: &Ipv6ExtensionsSlice<'_>) -> Option<u32> {
    let (kind, hbh) = ExtWalk::new(exts).next()?;
    if kind != 0 {
        return None;
    }
    let mut rest = hbh.get(2..)?;
    while let Some((&ty, tail)) = rest.split_first() {
        if ty == 0 {
            // Pad1 has no length byte.
            rest = tail;
            continue;
        }
        let (&len, tail) = tail.split_first()?;
        let data = tail.get(..usize::from(len))?;
        if ty == OPT_JUMBO {
            return data.first_chunk::<4>().map(|c| u32::from_be_bytes(*c));
        }
        rest = tail.get(usize::from(len)..)?;
    }
    None
}

#[allow(
    clippy::too_many_arguments,
    reason = "per packet: the header fields already in registers, not a struct built to carry them"
)]
fn v6_facts<'a>(
    frame: &Frame<'a>,
    start: usize,
    src: IpAddr,
    dst: IpAddr,
    payload_length: u16,
    next_header: IpNumber,
    exts: &Ipv6ExtensionsSlice<'_>,
    payload_proto: IpNumber,
    payload: &'a [u8],
) -> Result<IpFacts<'a>, DecodeError> {
    let ip_len = if payload_length != 0 {
        IPV6_HEADER_LEN + u32::from(payload_length)
    } else {
        match v6_jumbo(exts) {
            // RFC 2675: the jumbo length counts everything after the fixed
            // header, hop-by-hop header included.
            Some(j) if j > 65_535 => IPV6_HEADER_LEN.saturating_add(j),
            Some(_) => return Err(DecodeError::MalformedIp),
            None if next_header.0 == PROTO_NO_NEXT => IPV6_HEADER_LEN,
            // BIG TCP after the kernel stripped the jumbo option, or a
            // sender that never set the length: only the frame knows.
            None => wire_bytes_from(frame, start).max(IPV6_HEADER_LEN),
        }
    };
    let (fragment, proto) = match v6_fragment(exts) {
        // After the fragment header of a non-first fragment comes the middle
        // of the datagram, whatever etherparse made of it.
        Some((f @ Fragment::NonFirst { .. }, frag_next)) => (f, frag_next),
        Some((f, _)) => (f, payload_proto.0),
        None => (Fragment::None, payload_proto.0),
    };
    Ok(IpFacts {
        src,
        dst,
        proto,
        ip_len,
        fragment,
        payload,
    })
}

/// Maps where etherparse stopped (and why) to our reason.
fn map_stop(e: &SliceError, layer: Layer) -> DecodeError {
    let cut = matches!(e, SliceError::Len(_));
    match layer {
        Layer::LinuxSllHeader
        | Layer::Ethernet2Header
        | Layer::EtherPayload
        | Layer::VlanHeader
        | Layer::MacsecHeader
        | Layer::MacsecPacket => {
            if cut {
                DecodeError::TruncatedLink
            } else {
                DecodeError::MalformedLink
            }
        }
        Layer::Arp => DecodeError::NotIp,
        Layer::UdpHeader
        | Layer::UdpPayload
        | Layer::TcpHeader
        | Layer::Icmpv4
        | Layer::Icmpv4Timestamp
        | Layer::Icmpv4TimestampReply
        | Layer::Icmpv6
        | Layer::Igmp => {
            if cut {
                DecodeError::TruncatedTransport
            } else {
                DecodeError::MalformedTransport
            }
        }
        _ => {
            if cut {
                DecodeError::TruncatedIp
            } else {
                DecodeError::MalformedIp
            }
        }
    }
}

fn transport_facts<'a>(
    ip: &IpFacts<'a>,
    transport: Option<TransportSlice<'a>>,
    stop_err: Option<(SliceError, Layer)>,
) -> Result<L4<'a>, DecodeError> {
    if let Fragment::NonFirst { .. } = ip.fragment {
        // No transport header here; etherparse errors can only come from
        // reading fragment data as headers.
        return Ok(L4::default());
    }
    if let Some((e, layer)) = stop_err {
        // We never read IGMP: a short one is still a valid packet for us.
        if layer == Layer::Igmp {
            return Ok(L4::default());
        }
        return Err(map_stop(&e, layer));
    }
    if let Some(t) = transport {
        return Ok(match t {
            TransportSlice::Tcp(t) => tcp(&t),
            TransportSlice::Udp(u) => udp(&u),
            TransportSlice::Icmpv4(i) => icmpv4(&i),
            TransportSlice::Icmpv6(i) => icmpv6(&i),
            TransportSlice::Igmp(_) => L4::default(),
        });
    }
    if let Fragment::First { .. } = ip.fragment {
        return Ok(first_fragment(ip.proto, ip.payload));
    }
    Ok(L4::default())
}

fn tcp<'a>(t: &TcpSlice<'a>) -> L4<'a> {
    L4 {
        src_port: t.source_port(),
        dst_port: t.destination_port(),
        flags: t.header_slice().get(13).copied().unwrap_or(0),
        icmp_error: None,
        payload: t.payload(),
    }
}

fn udp<'a>(u: &UdpSlice<'a>) -> L4<'a> {
    L4 {
        src_port: u.source_port(),
        dst_port: u.destination_port(),
        flags: 0,
        icmp_error: None,
        payload: u.payload(),
    }
}

/// etherparse does not slice the transport of a first fragment, and the
/// transport header may itself be split across fragments (a tiny first
/// fragment): take what is there, ports from the first four bytes.
fn first_fragment(proto: u8, payload: &[u8]) -> L4<'_> {
    match proto {
        PROTO_TCP => {
            if let Ok(t) = TcpSlice::from_slice(payload) {
                return tcp(&t);
            }
        }
        PROTO_UDP => {
            if let Ok(u) = UdpSlice::from_slice_lax(payload) {
                return udp(&u);
            }
        }
        PROTO_ICMP => {
            if let Ok(i) = Icmpv4Slice::from_slice(payload) {
                return icmpv4(&i);
            }
        }
        PROTO_ICMPV6 => {
            if let Ok(i) = Icmpv6Slice::from_slice(payload) {
                return icmpv6(&i);
            }
        }
        _ => return L4::default(),
    }
    let (src_port, dst_port) = match proto {
        PROTO_TCP | PROTO_UDP => ports(payload).unwrap_or((0, 0)),
        _ => match payload {
            [ty, code, ..] => icmp_key(proto, *ty, *code),
            _ => (0, 0),
        },
    };
    let flags = if proto == PROTO_TCP {
        payload.get(13).copied().unwrap_or(0)
    } else {
        0
    };
    L4 {
        src_port,
        dst_port,
        flags,
        icmp_error: None,
        payload: &[],
    }
}

fn ports(b: &[u8]) -> Option<(u16, u16)> {
    let c = b.first_chunk::<4>()?;
    Some((
        u16::from_be_bytes([c[0], c[1]]),
        u16::from_be_bytes([c[2], c[3]]),
    ))
}

/// The request/reply partner of an ICMP type under Community ID v1.
fn icmp_counterpart(proto: u8, ty: u8) -> Option<u8> {
    let pairs: &[(u8, u8)] = if proto == PROTO_ICMP {
        // echo, timestamp, info, router solicitation/advertisement, mask
        &[(8, 0), (13, 14), (15, 16), (10, 9), (17, 18)]
    } else {
        // echo, router sol/adv, neighbour sol/adv, MLD query/report,
        // node information (who-are-you), home agent address discovery
        &[
            (128, 129),
            (133, 134),
            (135, 136),
            (130, 131),
            (139, 140),
            (144, 145),
        ]
    };
    pairs.iter().find_map(|&(a, b)| {
        if ty == a {
            Some(b)
        } else if ty == b {
            Some(a)
        } else {
            None
        }
    })
}

/// Community ID v1 ports of an ICMP message: the type, then the paired
/// type for request/reply messages or else the code.
fn icmp_key(proto: u8, ty: u8, code: u8) -> (u16, u16) {
    let other = icmp_counterpart(proto, ty).unwrap_or(code);
    (u16::from(ty), u16::from(other))
}

fn icmpv4<'a>(i: &Icmpv4Slice<'a>) -> L4<'a> {
    // 3 = destination unreachable, code 3 = port unreachable.
    icmp(
        PROTO_ICMP,
        i.type_u8(),
        i.code_u8(),
        i.payload(),
        (3, 3),
        false,
    )
}

fn icmpv6<'a>(i: &Icmpv6Slice<'a>) -> L4<'a> {
    // 1 = destination unreachable, code 4 = port unreachable.
    icmp(
        PROTO_ICMPV6,
        i.type_u8(),
        i.code_u8(),
        i.payload(),
        (1, 4),
        true,
    )
}

/// ICMP and ICMPv6 alike: Community ID ports, and for a destination
/// unreachable the quoted tuple; `unreachable` is (type, port-unreachable code).
fn icmp<'a>(proto: u8, ty: u8, code: u8, body: &[u8], unreachable: (u8, u8), v6: bool) -> L4<'a> {
    let (src_port, dst_port) = icmp_key(proto, ty, code);
    let icmp_error = (ty == unreachable.0)
        .then(|| quoted(body, v6))
        .flatten()
        .map(|q| {
            let kind = if code == unreachable.1 {
                IcmpError::PortUnreachable
            } else {
                IcmpError::Unreachable
            };
            (kind, q)
        });
    L4 {
        src_port,
        dst_port,
        flags: 0,
        icmp_error,
        payload: &[],
    }
}

/// The tuple of the packet an ICMP error quotes. The quote is normally cut
/// after 8 transport bytes, so it is sliced laxly; a quote that does not
/// hold a whole IP header of the same family as the error gives `None`.
fn quoted(bytes: &[u8], want_v6: bool) -> Option<QuotedTuple> {
    let (ip, stop) = LaxIpSlice::from_slice(bytes).ok()?;
    if stop.is_some() {
        // Cut or broken inside extension headers: the protocol is unknown.
        return None;
    }
    let (src, dst, non_first) = match &ip {
        LaxIpSlice::Ipv4(v4) if !want_v6 => {
            let h = v4.header();
            (
                IpAddr::from(h.source_addr()),
                IpAddr::from(h.destination_addr()),
                h.fragments_offset().value() != 0,
            )
        }
        LaxIpSlice::Ipv6(v6) if want_v6 => {
            let h = v6.header();
            let non_first = matches!(
                v6_fragment(v6.extensions()),
                Some((Fragment::NonFirst { .. }, _))
            );
            (
                IpAddr::from(h.source_addr()),
                IpAddr::from(h.destination_addr()),
                non_first,
            )
        }
        _ => return None,
    };
    let p = ip.payload();
    let proto = p.ip_number.0;
    let (src_port, dst_port) = if matches!(proto, PROTO_TCP | PROTO_UDP) && !non_first {
        ports(p.payload).unwrap_or((0, 0))
    } else {
        (0, 0)
    };
    Some(QuotedTuple {
        src,
        dst,
        proto,
        src_port,
        dst_port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_pairs_are_symmetric() {
        for proto in [PROTO_ICMP, PROTO_ICMPV6] {
            for ty in 0..=255u8 {
                if let Some(o) = icmp_counterpart(proto, ty) {
                    assert_eq!(icmp_counterpart(proto, o), Some(ty), "{proto} {ty}");
                }
            }
        }
        assert_eq!(icmp_key(PROTO_ICMP, 8, 0), (8, 0));
        assert_eq!(icmp_key(PROTO_ICMP, 0, 0), (0, 8));
        assert_eq!(icmp_key(PROTO_ICMP, 9, 0), (9, 10));
        assert_eq!(icmp_key(PROTO_ICMP, 11, 1), (11, 1));
        assert_eq!(icmp_key(PROTO_ICMP, 3, 3), (3, 3));
        assert_eq!(icmp_key(PROTO_ICMPV6, 135, 0), (135, 136));
        assert_eq!(icmp_key(PROTO_ICMPV6, 1, 4), (1, 4));
        assert_eq!(icmp_key(PROTO_ICMPV6, 131, 0), (131, 130));
    }
}
