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

    /// True for the first record emitted for this flow (nothing reported before).
    pub fn is_first_report(&self) -> bool {
        self.reported_to_server.packets == 0 && self.reported_to_client.packets == 0
    }
}
