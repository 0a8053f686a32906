//! Value types shared by every tapsentry crate.
//!
//! Everything here is plain data: timestamps in capture time, link types, the
//! per-packet summary the decoder produces ([`PacketMeta`]), the canonical
//! bidirectional flow key ([`FlowKey`]), the flow records the flow table hands
//! to detectors ([`FlowRecord`]), DNS query summaries ([`DnsEvent`]) and the
//! alert record of the outside contract ([`Alert`]), and the [`Problem`] every
//! configuration section reports a value that makes no sense with.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use tapsentry_types::{FlowKey, Timestamp};
//!
//! let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
//! let b = IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34));
//! let (k1, _) = FlowKey::canonical(a, 40000, b, 443, 6, 0);
//! let (k2, _) = FlowKey::canonical(b, 443, a, 40000, 6, 0);
//! assert_eq!(k1, k2);
//! assert_eq!(Timestamp::from_micros(1_500_000).secs(), 1);
//! ```
//!
//! This crate does no I/O and has no behaviour beyond small conversions: it
//! does not parse packets, keep state, or write records.

mod admin;
mod alert;
mod app_proto;
mod community_id;
mod dns;
mod flow;
mod ids;
mod problem;
mod time_fmt;

pub use admin::{
    AdminAction, AdminEvent, AdminText, RpcInterface, RpcOutcome, ShareKind, ADMIN_TEXT_MAX,
};
pub use alert::{
    Alert, AlertBody, AlertBodyRecord, AlertRecord, Category, GeoInfo, Mitre, Response,
};
pub use app_proto::AppProto;
pub use community_id::{community_id_of_key, community_id_v1};
pub use dns::{DnsEvent, DnsName, DNS_ANSWER_ADDRS, DNS_NAME_MAX};
pub use flow::{DirCounts, EndReason, FlowKey, FlowRecord, FlowState, RecordKind, Side, TcpFlags};
pub use ids::{alert_id, flow_id, incident_id, signature_id, ID_LIMIT, SIGNATURE_IDS};
pub use problem::{Problem, SectionProblems};
pub use time_fmt::Timestamp;

use std::net::IpAddr;

/// A libpcap link-layer header type (DLT / LINKTYPE number as stored in pcap
/// and pcapng files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkType(pub u32);

impl LinkType {
    /// BSD loopback: 4-byte address family in host byte order of the writer.
    pub const NULL: LinkType = LinkType(0);
    /// Ethernet II (with 802.1Q/802.1ad tags).
    pub const ETHERNET: LinkType = LinkType(1);
    /// PPP (RFC 1661 framing, protocol field first).
    pub const PPP: LinkType = LinkType(9);
    /// Raw IP on some BSDs (DLT 12).
    pub const RAW_BSD12: LinkType = LinkType(12);
    /// Raw IP on OpenBSD (DLT 14).
    pub const RAW_BSD14: LinkType = LinkType(14);
    /// Raw IPv4 or IPv6 (LINKTYPE_RAW).
    pub const RAW: LinkType = LinkType(101);
    /// OpenBSD loopback: like NULL but the family is big-endian.
    pub const LOOP: LinkType = LinkType(108);
    /// Linux cooked capture v1.
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// Raw IPv4 only.
    pub const IPV4: LinkType = LinkType(228);
    /// Raw IPv6 only.
    pub const IPV6: LinkType = LinkType(229);
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: LinkType = LinkType(276);

    /// Every link type the decoder handles, in one place: the capture
    /// reader admits these, the fuzz target and the property tests pick
    /// from them (an index into this list is part of the fuzz seeds'
    /// layout, so new types go at the end).
    pub const DECODED: [LinkType; 11] = [
        LinkType::NULL,
        LinkType::ETHERNET,
        LinkType::PPP,
        LinkType::RAW_BSD12,
        LinkType::RAW_BSD14,
        LinkType::RAW,
        LinkType::LOOP,
        LinkType::LINUX_SLL,
        LinkType::IPV4,
        LinkType::IPV6,
        LinkType::LINUX_SLL2,
    ];

    /// The libpcap name of the link type, for messages.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "NULL",
            1 => "EN10MB",
            9 => "PPP",
            12 | 14 | 101 => "RAW",
            108 => "LOOP",
            113 => "LINUX_SLL",
            228 => "IPV4",
            229 => "IPV6",
            276 => "LINUX_SLL2",
            _ => "unsupported",
        }
    }
}

/// One captured frame as the capture layer yields it: borrowed bytes, no copy.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Capture time of the frame.
    pub ts: Timestamp,
    /// Length of the frame on the wire (may exceed `data.len()` under a snap length).
    pub wire_len: u32,
    /// Link type of the interface the frame came from.
    pub link: LinkType,
    /// The captured bytes (at most the snap length).
    pub data: &'a [u8],
}

/// How an IP packet relates to fragmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fragment {
    /// Not a fragment (or an atomic fragment: offset 0, no more fragments).
    #[default]
    None,
    /// The first fragment of a datagram: it carries the transport header.
    First {
        /// The IP identification shared by every fragment of the datagram.
        id: u32,
    },
    /// A later fragment: no transport header, ports unknown from the packet itself.
    NonFirst {
        /// The IP identification shared by every fragment of the datagram.
        id: u32,
    },
}

/// The 5-tuple of the packet an ICMP error quotes (e.g. the UDP datagram a
/// port-unreachable answers), as the original sender sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedTuple {
    /// Source of the quoted packet (the host that receives the ICMP error).
    pub src: IpAddr,
    /// Destination of the quoted packet (usually the host sending the error).
    pub dst: IpAddr,
    /// IP protocol of the quoted packet.
    pub proto: u8,
    /// Source port of the quoted packet (0 when not TCP/UDP or cut off).
    pub src_port: u16,
    /// Destination port of the quoted packet (0 when not TCP/UDP or cut off).
    pub dst_port: u16,
}

/// ICMP error kinds the flow table and detectors care about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpError {
    /// Destination unreachable, port unreachable (ICMPv4 3/3, ICMPv6 1/4).
    PortUnreachable,
    /// Any other destination-unreachable code (host, net, admin prohibited, ...).
    Unreachable,
}

/// An inside host's MAC address as a new flow showed it: the source
/// address of the flow's first frame for its initiator, the destination
/// address for its responder. Behind a router the address is the router's
/// (a tap sees the last hop), which is what the inventory then lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacSighting {
    /// Capture time of the frame.
    pub ts: Timestamp,
    /// The host's IP address.
    pub ip: IpAddr,
    /// Its MAC address.
    pub mac: [u8; 6],
    /// The frame's outer 802.1Q VLAN (0 untagged).
    pub vlan: u16,
}

impl MacSighting {
    /// `aa:bb:cc:dd:ee:ff`, as inventories and DHCP logs write MACs.
    pub fn mac_string(&self) -> String {
        let m = self.mac;
        format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// What the decoder extracts from one packet: a `Copy` summary built straight
/// from the slices, plus a borrowed view of the transport payload.
#[derive(Debug, Clone, Copy)]
pub struct PacketMeta<'a> {
    /// Capture time.
    pub ts: Timestamp,
    /// Outer-most 802.1Q VLAN id (0 when untagged).
    pub vlan: u16,
    /// IP source address.
    pub src: IpAddr,
    /// IP destination address.
    pub dst: IpAddr,
    /// IP protocol number (for IPv6 the final next-header after extension headers).
    pub proto: u8,
    /// TCP/UDP source port; for ICMP/ICMPv6 the type (see [`FlowKey`] on ICMP keys); else 0.
    pub src_port: u16,
    /// TCP/UDP destination port; for ICMP/ICMPv6 the paired type or the code; else 0.
    pub dst_port: u16,
    /// Bytes of the IP packet on the wire, from the IP header's length fields
    /// (not the captured length), so snap-length cut packets still count true volume.
    pub ip_len: u32,
    /// TCP flags (0 for other protocols).
    pub tcp_flags: TcpFlags,
    /// Fragmentation status.
    pub fragment: Fragment,
    /// For ICMP destination-unreachable errors: the kind and the quoted tuple.
    pub icmp_error: Option<(IcmpError, QuotedTuple)>,
    /// Transport payload as captured (may be cut short by the snap length).
    pub payload: &'a [u8],
}

impl PacketMeta<'_> {
    /// True when either port is 53 and the protocol is UDP or TCP.
    pub fn is_dns_port(&self) -> bool {
        (self.proto == 6 || self.proto == 17) && (self.src_port == 53 || self.dst_port == 53)
    }
}

/// The IP protocol as the alert record's `proto` field spells it.
pub fn proto_name(proto: u8) -> std::borrow::Cow<'static, str> {
    match proto {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "ICMPv6".into(),
        n => n.to_string().into(),
    }
}
