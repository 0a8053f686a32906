use etherparse::{IpNumber, PacketBuilder, PacketBuilderStep, TcpHeader};

/// Which TCP flags a built segment carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlagsSpec {
    /// SYN.
    pub syn: bool,
    /// ACK (the acknowledgment number is then non-zero).
    pub ack: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
    /// PSH.
    pub psh: bool,
}

impl TcpFlagsSpec {
    /// A connection attempt.
    pub const SYN: Self = Self::bits(0x02);
    /// The answer to a SYN on an open port.
    pub const SYN_ACK: Self = Self::bits(0x12);
    /// A bare acknowledgment.
    pub const ACK: Self = Self::bits(0x10);
    /// Data.
    pub const PSH_ACK: Self = Self::bits(0x18);
    /// An orderly close.
    pub const FIN_ACK: Self = Self::bits(0x11);
    /// The answer to a SYN on a closed port.
    pub const RST: Self = Self::bits(0x04);
    /// A reset that acknowledges.
    pub const RST_ACK: Self = Self::bits(0x14);

    /// From the TCP header's flag bits (FIN 0x01, SYN 0x02, RST 0x04,
    /// PSH 0x08, ACK 0x10); other bits are ignored.
    pub const fn bits(b: u8) -> Self {
        TcpFlagsSpec {
            fin: b & 0x01 != 0,
            syn: b & 0x02 != 0,
            rst: b & 0x04 != 0,
            psh: b & 0x08 != 0,
            ack: b & 0x10 != 0,
        }
    }
}

impl From<u8> for TcpFlagsSpec {
    fn from(b: u8) -> Self {
        TcpFlagsSpec::bits(b)
    }
}

/// A locally administered MAC derived from an address's last four bytes, so
/// frames between the same hosts always carry the same MACs.
pub fn mac_for(addr: &[u8]) -> [u8; 6] {
    let mut mac = [0x02, 0, 0, 0, 0, 0];
    let tail = &addr[addr.len().saturating_sub(4)..];
    mac[6 - tail.len()..].copy_from_slice(tail);
    mac
}

const TTL: u8 = 64;
const WINDOW: u16 = 64_240;
const INITIAL_SEQ: u32 = 1_000;

fn finish_vec(
    result: Result<(), etherparse::err::packet::BuildVecWriteError>,
    out: Vec<u8>,
) -> Vec<u8> {
    match result {
        Ok(()) => out,
        Err(e) => panic!("cannot build the test frame: {e}"),
    }
}

fn tcp_flags(
    mut step: PacketBuilderStep<TcpHeader>,
    flags: TcpFlagsSpec,
    ack: u32,
) -> PacketBuilderStep<TcpHeader> {
    if flags.syn {
        step = step.syn();
    }
    if flags.ack {
        step = step.ack(ack);
    }
    if flags.fin {
        step = step.fin();
    }
    if flags.rst {
        step = step.rst();
    }
    if flags.psh {
        step = step.psh();
    }
    step
}

fn write_tcp(
    step: PacketBuilderStep<TcpHeader>,
    flags: TcpFlagsSpec,
    ack: u32,
    payload: &[u8],
) -> Vec<u8> {
    let step = tcp_flags(step, flags, ack);
    let mut out = Vec::with_capacity(step.size(payload.len()));
    let r = step.write_to_vec(&mut out, payload);
    finish_vec(r, out)
}

/// An Ethernet II / IPv4 / TCP frame (sequence number 1000, acknowledgment
/// 1 when ACK is set).
pub fn tcp_v4(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    flags: impl Into<TcpFlagsSpec>,
    payload: &[u8],
) -> Vec<u8> {
    tcp_v4_seq(src, sport, dst, dport, flags, INITIAL_SEQ, 1, payload)
}

/// [`tcp_v4`] with explicit sequence and acknowledgment numbers.
#[allow(
    clippy::too_many_arguments,
    reason = "mirrors the header fields one to one"
)]
pub fn tcp_v4_seq(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    flags: impl Into<TcpFlagsSpec>,
    seq: u32,
    ack: u32,
    payload: &[u8],
) -> Vec<u8> {
    let step = PacketBuilder::ethernet2(mac_for(&src), mac_for(&dst))
        .ipv4(src, dst, TTL)
        .tcp(sport, dport, seq, WINDOW);
    write_tcp(step, flags.into(), ack, payload)
}

/// An Ethernet II / IPv6 / TCP frame.
pub fn tcp_v6(
    src: [u8; 16],
    sport: u16,
    dst: [u8; 16],
    dport: u16,
    flags: impl Into<TcpFlagsSpec>,
    payload: &[u8],
) -> Vec<u8> {
    let step = PacketBuilder::ethernet2(mac_for(&src), mac_for(&dst))
        .ipv6(src, dst, TTL)
        .tcp(sport, dport, INITIAL_SEQ, WINDOW);
    write_tcp(step, flags.into(), 1, payload)
}

/// An Ethernet II / IPv4 / UDP frame.
pub fn udp_v4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let step = PacketBuilder::ethernet2(mac_for(&src), mac_for(&dst))
        .ipv4(src, dst, TTL)
        .udp(sport, dport);
    let mut out = Vec::with_capacity(step.size(payload.len()));
    let r = step.write_to_vec(&mut out, payload);
    finish_vec(r, out)
}

/// An Ethernet II / IPv6 / UDP frame.
pub fn udp_v6(src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16, payload: &[u8]) -> Vec<u8> {
    let step = PacketBuilder::ethernet2(mac_for(&src), mac_for(&dst))
        .ipv6(src, dst, TTL)
        .udp(sport, dport);
    let mut out = Vec::with_capacity(step.size(payload.len()));
    let r = step.write_to_vec(&mut out, payload);
    finish_vec(r, out)
}

/// An Ethernet II / IPv4 / ICMP echo request.
pub fn icmp_echo_v4(src: [u8; 4], dst: [u8; 4], id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let step = PacketBuilder::ethernet2(mac_for(&src), mac_for(&dst))
        .ipv4(src, dst, TTL)
        .icmpv4_echo_request(id, seq);
    let mut out = Vec::with_capacity(step.size(payload.len()));
    let r = step.write_to_vec(&mut out, payload);
    finish_vec(r, out)
}

/// An Ethernet II / IPv6 / ICMPv6 echo request.
pub fn icmp_echo_v6(src: [u8; 16], dst: [u8; 16], id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let step = PacketBuilder::ethernet2(mac_for(&src), mac_for(&dst))
        .ipv6(src, dst, TTL)
        .icmpv6_echo_request(id, seq);
    let mut out = Vec::with_capacity(step.size(payload.len()));
    let r = step.write_to_vec(&mut out, payload);
    finish_vec(r, out)
}

/// An Ethernet II / IPv4 frame of any IP protocol (e.g. 47 GRE, 50 ESP,
/// 132 SCTP) with `payload` right after the IP header.
pub fn ip_proto_v4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let step = PacketBuilder::ethernet2(mac_for(&src), mac_for(&dst)).ipv4(src, dst, TTL);
    let mut out = Vec::with_capacity(step.size(payload.len()));
    let r = step.write_to_vec(&mut out, IpNumber(proto), payload);
    finish_vec(r, out)
}

/// An Ethernet II / IPv6 frame whose next header is `proto`.
pub fn ip_proto_v6(src: [u8; 16], dst: [u8; 16], proto: u8, payload: &[u8]) -> Vec<u8> {
    let step = PacketBuilder::ethernet2(mac_for(&src), mac_for(&dst)).ipv6(src, dst, TTL);
    let mut out = Vec::with_capacity(step.size(payload.len()));
    let r = step.write_to_vec(&mut out, IpNumber(proto), payload);
    finish_vec(r, out)
}

/// The same Ethernet frame with an 802.1Q tag (VLAN `vid`, priority 0)
/// inserted after the MAC addresses. Frames shorter than 14 bytes are
/// returned unchanged.
pub fn with_vlan(frame: &[u8], vid: u16) -> Vec<u8> {
    if frame.len() < 14 {
        return frame.to_vec();
    }
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&frame[..12]);
    out.extend_from_slice(&[0x81, 0x00]);
    out.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    out.extend_from_slice(&frame[12..]);
    out
}
