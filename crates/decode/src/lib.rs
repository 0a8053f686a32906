//! Zero-copy packet decoding: one captured [`Frame`] in, one
//! [`PacketMeta`] out, plus DNS message summaries in [`dns`].
//!
//! [`decode`] branches on the frame's link type, walks the link layer to the
//! IP header and slices the rest with etherparse's *lax* slicers
//! (`LaxSlicedPacket::from_ip`), so packets cut by a snap
//! length still decode. It borrows the frame's bytes, allocates nothing and
//! never panics on any input; failures are a small `Copy`
//! [`DecodeError`] whose [`reason`](DecodeError::reason) is a stats key.
//!
//! ```
//! use etherparse::PacketBuilder;
//! use tapsentry_decode::decode;
//! use tapsentry_types::{Frame, LinkType, TcpFlags, Timestamp};
//!
//! let builder = PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12])
//!     .single_vlan(42.try_into().unwrap())
//!     .ipv4([10, 0, 0, 1], [93, 184, 216, 34], 64)
//!     .tcp(40000, 443, 1, 65535)
//!     .syn();
//! let payload = b"hello";
//! let mut bytes = Vec::with_capacity(builder.size(payload.len()));
//! builder.write(&mut bytes, payload).unwrap();
//!
//! let frame = Frame {
//!     ts: Timestamp::from_micros(1),
//!     wire_len: bytes.len() as u32,
//!     link: LinkType::ETHERNET,
//!     data: &bytes,
//! };
//! let m = decode(&frame).unwrap();
//! assert_eq!(m.src, "10.0.0.1".parse::<std::net::IpAddr>().unwrap());
//! assert_eq!((m.proto, m.src_port, m.dst_port, m.vlan), (6, 40000, 443, 42));
//! assert!(m.tcp_flags.has(TcpFlags::SYN));
//! assert_eq!(m.ip_len, 20 + 20 + 5);
//! assert_eq!(m.payload, b"hello");
//! ```
//!
//! # Link types
//!
//! Ethernet II (802.1Q, 802.1ad/QinQ and deeper stacks up to 8 tags; `vlan`
//! is the outer-most tag's id; MPLS label stacks and PPPoE sessions are
//! skipped to the IP packet inside), Linux cooked v1 and v2, raw IP (101, 12,
//! 14), raw IPv4 (228) and IPv6 (229), BSD NULL (address family in either
//! byte order; AF_INET6 as 24, 28 or 30), OpenBSD LOOP and PPP. Other link
//! types give [`DecodeError::UnsupportedLinkType`]; frames that carry no IP
//! (ARP, STP, LLDP, PPP control, MPLS pseudowires) give
//! [`DecodeError::NotIp`], which is counted but is no malformation.
//!
//! # `ip_len`: bytes counted from the IP header
//!
//! `ip_len` is the IP packet's size from its own length fields, never the
//! captured length, so snap-length cut packets still count their true
//! volume:
//!
//! * IPv4: `total_length`. A total length of 0 (Linux BIG TCP, TSO captures)
//!   falls back to the frame's wire length minus the link header; a non-zero
//!   total length below the header length is [`DecodeError::MalformedIp`].
//! * IPv6: 40 + `payload_length`. A payload length of 0 takes the jumbo
//!   payload option of the hop-by-hop header (40 + jumbo length; a jumbo
//!   length under 65536 is malformed); without one, next header 59 means 40
//!   bytes, anything else falls back to the wire length minus the link
//!   header (BIG TCP after the kernel stripped the option).
//!
//! # Fragments
//!
//! [`Fragment::First`](tapsentry_types::Fragment::First) (offset 0, more-fragments set) still carries the
//! transport header, so ports and flags are read, from the first four bytes
//! when the header itself is split. [`Fragment::NonFirst`](tapsentry_types::Fragment::NonFirst) has ports 0, flags
//! 0 and an empty payload, and `proto` is the protocol the fragment header
//! names; joining it to its flow is the flow table's job. Atomic fragments
//! (offset 0, more-fragments clear, e.g. an IPv6 fragment header alone) are
//! [`Fragment::None`](tapsentry_types::Fragment::None).
//!
//! # ICMP keying (Community ID v1)
//!
//! For ICMP and ICMPv6, `src_port` is the type and `dst_port` is the paired
//! type of a request/reply (ICMPv4 echo 8/0, timestamp 13/14, information
//! 15/16, router solicitation/advertisement 10/9, mask 17/18; ICMPv6 echo
//! 128/129, router 133/134, neighbour 135/136, MLD 130/131, node information
//! 139/140, home agent discovery 144/145) or, for one-way types, the code.
//! A destination unreachable also fills `icmp_error` with the tuple of the
//! packet it quotes (ports 0 when the quote is cut before them or the quoted
//! protocol is not TCP/UDP); a quote without a whole IP header of the same
//! family leaves `icmp_error` at `None` and the packet itself stays valid.
//!
//! # What this crate does not do
//!
//! It does not reassemble IP fragments or TCP streams, does not decapsulate
//! tunnels (GRE, IP-in-IP, ESP, VXLAN, ... are the outer flow with ports 0),
//! does not verify checksums and does no I/O: capture is
//! `tapsentry-capture`'s job and flow state the flow table's.

mod error;
mod ip;
mod link;

pub mod dns;

pub use error::DecodeError;

use tapsentry_types::{Frame, PacketMeta};

/// Decodes one frame into a [`PacketMeta`] borrowing the frame's bytes.
///
/// Never panics and never allocates; see the crate docs for the rules on
/// `ip_len`, fragments and ICMP keys.
pub fn decode<'a>(frame: &Frame<'a>) -> Result<PacketMeta<'a>, DecodeError> {
    let located = link::locate(frame.link, frame.data)?;
    ip::build(frame, located)
}

/// The Ethernet addresses of a frame: destination then source MAC, from
/// the outer-most header. `None` for other link types (cooked captures
/// hold only the sender's address, raw IP none) and for frames too short
/// for a header. Nothing here is checked: the IP decode says whether the
/// frame is worth anything.
pub fn ethernet_addrs(frame: &Frame<'_>) -> Option<([u8; 6], [u8; 6])> {
    if frame.link != tapsentry_types::LinkType::ETHERNET {
        return None;
    }
    let dst = frame.data.first_chunk::<6>()?;
    let src = frame.data.get(6..)?.first_chunk::<6>()?;
    Some((*dst, *src))
}

#[cfg(test)]
mod tests;
