use std::net::IpAddr;

use serde::Serialize;

use crate::{AppProto, Timestamp};

/// TCP flags as on the wire (FIN=0x01 ... CWR=0x80), OR-ed over a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize)]
#[serde(transparent)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;

    /// True when every bit of `mask` is set.
    pub const fn has(self, mask: u8) -> bool {
        self.0 & mask == mask
    }

    /// Flags as a compact string in tcpdump order, e.g. `"SA"` or `"FPA"`.
    pub fn letters(self) -> String {
        const L: [(u8, char); 8] = [
            (0x01, 'F'),
            (0x02, 'S'),
            (0x04, 'R'),
            (0x08, 'P'),
            (0x10, 'A'),
            (0x20, 'U'),
            (0x40, 'E'),
            (0x80, 'C'),
        ];
        L.iter()
            .filter(|(b, _)| self.0 & b != 0)
            .map(|(_, c)| *c)
            .collect()
    }
}

/// Which endpoint of a canonical [`FlowKey`] a packet came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Side {
    /// The endpoint stored as `a` (the lower address/port pair).
    A,
    /// The endpoint stored as `b`.
    B,
}

impl Side {
    /// The other side.
    pub const fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// The canonical bidirectional key of a flow: the two (address, port)
/// endpoints in a fixed order, so both directions of a conversation land on
/// the same entry, plus protocol and VLAN.
///
/// For ICMP/ICMPv6 the "ports" are the message type and, for query types
/// with a reply (echo, timestamp, ...), the paired type, else the code, as in
/// Community ID v1, so a request and its reply share one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct FlowKey {
    /// The lower endpoint address.
    pub a: IpAddr,
    /// The higher endpoint address.
    pub b: IpAddr,
    /// Port of `a`.
    pub a_port: u16,
    /// Port of `b`.
    pub b_port: u16,
    /// IP protocol number.
    pub proto: u8,
    /// Outer-most VLAN id (0 untagged).
    pub vlan: u16,
}

impl FlowKey {
    /// Builds the canonical key for a packet from `src:sport` to `dst:dport`
    /// and says which side of the key the sender is.
    pub fn canonical(
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        proto: u8,
        vlan: u16,
    ) -> (FlowKey, Side) {
        if (src, sport) <= (dst, dport) {
            (
                FlowKey {
                    a: src,
                    b: dst,
                    a_port: sport,
                    b_port: dport,
                    proto,
                    vlan,
                },
                Side::A,
            )
        } else {
            (
                FlowKey {
                    a: dst,
                    b: src,
                    a_port: dport,
                    b_port: sport,
                    proto,
                    vlan,
                },
                Side::B,
            )
        }
    }

    /// Address and port of one side.
    pub fn endpoint(&self, side: Side) -> (IpAddr, u16) {
        match side {
            Side::A => (self.a, self.a_port),
            Side::B => (self.b, self.b_port),
        }
    }
}

/// Packets and bytes in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct DirCounts {
    /// Packets (IP fragments count one each).
    pub packets: u64,
    /// Bytes counted from the IP header (wire length of the IP packet).
    pub bytes: u64,
}

/// The connection state of a flow as the flow table tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowState {
    /// Only the initiator has sent (a SYN or datagrams with no answer yet).
    Attempt,
    /// The responder refused: RST to a SYN, or an ICMP unreachable.
    Rejected,
    /// The responder answered (SYN-ACK, or any packet back for non-TCP).
    Established,
    /// Closed by FIN from both sides or a FIN followed by silence.
    ClosedFin,
    /// Closed by RST after being established.
    ClosedRst,
}

/// Why a flow record was emitted at the end of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Idle longer than the timeout for its protocol and state.
    Timeout,
    /// Evicted to make room at the flow-table cap.
    Evicted,
    /// The sensor is shutting down (or the capture ended) and flushed it.
    Shutdown,
}

/// Whether a flow record is an interim update of a live flow or its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// The flow is still alive; counts are totals so far, `reported_*` what
    /// earlier records of this flow already carried.
    Interim,
    /// The flow has ended for the given reason.
    End(EndReason),
}

/// A flow as the flow table hands it to detectors, oriented from the
/// initiator (client) to the responder (server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FlowRecord {
    /// The canonical key.
    pub key: FlowKey,
    /// The initiator: sender of the first SYN, else of the first packet seen.
    pub client: IpAddr,
    /// Initiator's port (ICMP: type, see [`FlowKey`]).
    pub client_port: u16,
    /// The responder.
    pub server: IpAddr,
    /// Responder's port.
    pub server_port: u16,
    /// IP protocol.
    pub proto: u8,
    /// VLAN id.
    pub vlan: u16,
    /// Capture time of the first packet.
    pub first_seen: Timestamp,
    /// Capture time of the latest packet.
    pub last_seen: Timestamp,
    /// Totals from client to server.
    pub to_server: DirCounts,
    /// Totals from server to client.
    pub to_client: DirCounts,
    /// Counts from client to server already carried by earlier interim records.
    pub reported_to_server: DirCounts,
    /// Counts from server to client already carried by earlier interim records.
    pub reported_to_client: DirCounts,
    /// TCP flags the client sent.
    pub client_flags: TcpFlags,
    /// TCP flags the server sent.
    pub server_flags: TcpFlags,
    /// Connection state.
    pub state: FlowState,
    /// Whether the responder ever sent anything (including RST or ICMP errors).
    pub responder_answered: bool,
    /// The application protocol identified from the flow's payload so far
    /// ([`AppProto::Unknown`] when nothing matched; `ipsec` for ESP and AH).
    pub app_proto: AppProto,
    /// Interim update or end.
    pub kind: RecordKind,
}

impl FlowRecord {
    /// Bytes client to server not carried by any earlier record of this flow.
    pub fn new_bytes_to_server(&self) -> u64 {
        self.to_server
            .bytes
            .saturating_sub(self.reported_to_server.bytes)
    }

    /// Bytes server to client not carried by any earlier record of this flow.
    pub fn new_bytes_to_client(&self) -> u64 {
        self.to_client
            .bytes
            .saturating_sub(self.reported_to_client.bytes)
    }

    /// Packets client to server not carried by any earlier record of this flow.
    pub fn new_packets_to_server(&self) -> u64 {
        self.to_server
            .packets
            .saturating_sub(self.reported_to_server.packets)
    }

    /// Packets server to client not carried by any earlier record of this flow.
    pub fn new_packets_to_client(&self) -> u64 {
        self.to_client
            .packets
            .saturating_sub(self.reported_to_client.packets)
    }

    /// True for the first record emitted for this flow (nothing reported before).
    pub fn is_first_report(&self) -> bool {
        self.reported_to_server.packets == 0 && self.reported_to_client.packets == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// Any IPv4 or IPv6 address, and often one of a few fixed ones (an
    /// IPv4 address, its v4-mapped IPv6 form, the unspecified addresses)
    /// so that both ends of a packet share an address often enough.
    fn addr() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<Ipv4Addr>().prop_map(IpAddr::V4),
            any::<Ipv6Addr>().prop_map(IpAddr::V6),
            prop::sample::select(vec![
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped()),
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ]),
        ]
    }

    /// Any port, and often one of the lowest four (equal ports, port 0).
    fn port() -> impl Strategy<Value = u16> {
        prop_oneof![any::<u16>(), 0u16..4]
    }

    proptest! {
        /// A packet and its reply build the same key, with protocol and
        /// VLAN kept; the key names the sender on the side it returns, and
        /// the reply's side is the other one (unless both ends are one
        /// address and port, where there is no other side).
        #[test]
        fn a_key_is_the_same_from_both_directions(
            src in addr(),
            sport in port(),
            dst in addr(),
            dport in port(),
            proto in any::<u8>(),
            vlan in any::<u16>(),
        ) {
            let (there, from_src) = FlowKey::canonical(src, sport, dst, dport, proto, vlan);
            let (back, from_dst) = FlowKey::canonical(dst, dport, src, sport, proto, vlan);
            prop_assert_eq!(there, back);
            prop_assert_eq!((there.proto, there.vlan), (proto, vlan));
            prop_assert!((there.a, there.a_port) <= (there.b, there.b_port));
            prop_assert_eq!(there.endpoint(from_src), (src, sport));
            prop_assert_eq!(there.endpoint(from_src.other()), (dst, dport));
            prop_assert_eq!(back.endpoint(from_dst), (dst, dport));
            if (src, sport) == (dst, dport) {
                prop_assert_eq!((from_src, from_dst), (Side::A, Side::A));
            } else {
                prop_assert_eq!(from_dst, from_src.other());
            }
        }
    }
}
