//! Link layers: find the IP packet inside a frame and hand it to etherparse.
//!
//! Every link header (Ethernet with its VLAN tags, MPLS labels and PPPoE,
//! Linux cooked v1/v2, NULL, LOOP, PPP) is walked here with `get`-based
//! slicing; the IP packet and everything below it is then sliced by
//! etherparse's `LaxSlicedPacket::from_ip`, which tolerates snap-length cuts.

use etherparse::{err, LaxSlicedPacket};
use tapsentry_types::LinkType;

use crate::DecodeError;

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88a8;
// Pre-standard QinQ outer tags some switches still emit.
const ETH_QINQ_OLD: [u16; 3] = [0x9100, 0x9200, 0x9300];
const ETH_MPLS_UC: u16 = 0x8847;
const ETH_MPLS_MC: u16 = 0x8848;
const ETH_PPPOE_SESSION: u16 = 0x8864;

const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

/// ARPHRD_NETLINK: the SLL protocol field is a netlink family, not an ethertype.
const ARPHRD_NETLINK: u16 = 824;

/// More tags than this is not a network anyone runs; stop walking.
const MAX_VLAN_TAGS: usize = 8;
/// Deepest MPLS label stack we walk before giving up.
const MAX_MPLS_LABELS: usize = 16;

const AF_INET: u32 = 2;
/// AF_INET6 differs per BSD: NetBSD/OpenBSD 24, FreeBSD 28, Darwin 30.
const AF_INET6: [u32; 3] = [24, 28, 30];

/// The link layer's findings: the outer-most VLAN id and the sliced packet
/// from the network layer down.
pub(crate) struct Located<'a> {
    pub vlan: u16,
    pub pkt: LaxSlicedPacket<'a>,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..)?
        .first_chunk::<2>()
        .map(|c| u16::from_be_bytes(*c))
}

/// Slices the frame by its link type down to the IP layer.
pub(crate) fn locate(link: LinkType, data: &[u8]) -> Result<Located<'_>, DecodeError> {
    match link {
        LinkType::ETHERNET => ethernet(data),
        LinkType::RAW | LinkType::RAW_BSD12 | LinkType::RAW_BSD14 => ip(0, data),
        LinkType::IPV4 => raw_versioned(data, 4),
        LinkType::IPV6 => raw_versioned(data, 6),
        LinkType::LINUX_SLL => {
            let arphrd = be16(data, 2).ok_or(DecodeError::TruncatedLink)?;
            let proto = be16(data, 14).ok_or(DecodeError::TruncatedLink)?;
            cooked(arphrd, proto, data.get(16..))
        }
        LinkType::LINUX_SLL2 => {
            let proto = be16(data, 0).ok_or(DecodeError::TruncatedLink)?;
            let arphrd = be16(data, 8).ok_or(DecodeError::TruncatedLink)?;
            // The fixed header is 20 bytes (address field included).
            cooked(arphrd, proto, data.get(20..))
        }
        LinkType::NULL => {
            let fam = data.first_chunk::<4>().ok_or(DecodeError::TruncatedLink)?;
            let mut fam = u32::from_le_bytes(*fam);
            // Written in the capturing host's byte order: families are small,
            // so high bits set means the writer was the other endianness.
            if fam & 0xffff_0000 != 0 {
                fam = fam.swap_bytes();
            }
            family(fam, data.get(4..))
        }
        LinkType::LOOP => {
            let fam = data.first_chunk::<4>().ok_or(DecodeError::TruncatedLink)?;
            family(u32::from_be_bytes(*fam), data.get(4..))
        }
        LinkType::PPP => ppp(data),
        _ => Err(DecodeError::UnsupportedLinkType),
    }
}

fn raw_versioned(data: &[u8], version: u8) -> Result<Located<'_>, DecodeError> {
    // These link types promise one IP version; anything else is not what
    // the writer claimed, so do not guess.
    if let Some(b) = data.first() {
        if b >> 4 != version {
            return Err(DecodeError::MalformedIp);
        }
    }
    ip(0, data)
}

fn cooked(arphrd: u16, proto: u16, rest: Option<&[u8]>) -> Result<Located<'_>, DecodeError> {
    let rest = rest.ok_or(DecodeError::TruncatedLink)?;
    if arphrd == ARPHRD_NETLINK {
        return Err(DecodeError::NotIp);
    }
    let (vlan, ip_bytes) = walk_ether(proto, rest, None, 0)?;
    ip(vlan.unwrap_or(0), ip_bytes)
}

fn family(fam: u32, rest: Option<&[u8]>) -> Result<Located<'_>, DecodeError> {
    let rest = rest.ok_or(DecodeError::TruncatedLink)?;
    if fam == AF_INET || AF_INET6.contains(&fam) {
        ip(0, rest)
    } else {
        Err(DecodeError::NotIp)
    }
}

fn ppp(data: &[u8]) -> Result<Located<'_>, DecodeError> {
    // Address/control (0xff 0x03) may be omitted (ACFC).
    let rest = match data {
        [0xff, 0x03, rest @ ..] => rest,
        _ => data,
    };
    let first = *rest.first().ok_or(DecodeError::TruncatedLink)?;
    // With protocol-field compression the protocol is one odd byte.
    let (proto, rest) = if first & 1 == 1 {
        (u16::from(first), rest.get(1..))
    } else {
        (
            be16(rest, 0).ok_or(DecodeError::TruncatedLink)?,
            rest.get(2..),
        )
    };
    let rest = rest.ok_or(DecodeError::TruncatedLink)?;
    match proto {
        PPP_IPV4 | PPP_IPV6 => ip(0, rest),
        _ => Err(DecodeError::NotIp),
    }
}

fn ethernet(data: &[u8]) -> Result<Located<'_>, DecodeError> {
    // Destination and source MAC, then the ethertype. The walk is done here
    // rather than by `LaxSlicedPacket::from_ethernet` because that costs
    // 75 ns against 48 ns for `from_ip` on the same frame (criterion,
    // benches/decode.rs), stops at 3 tags and knows neither MPLS nor PPPoE.
    let ethertype = be16(data, 12).ok_or(DecodeError::TruncatedLink)?;
    let rest = data.get(14..).ok_or(DecodeError::TruncatedLink)?;
    let (vlan, ip_bytes) = walk_ether(ethertype, rest, None, 0)?;
    ip(vlan.unwrap_or(0), ip_bytes)
}

/// Follows ethertypes through VLAN tags, MPLS and PPPoE to the IP packet.
/// Returns the outer-most VLAN id seen (or the one passed in) and the bytes
/// from the IP header on. `tags` counts the tags already walked by etherparse.
fn walk_ether(
    mut ethertype: u16,
    mut rest: &[u8],
    mut vlan: Option<u16>,
    mut tags: usize,
) -> Result<(Option<u16>, &[u8]), DecodeError> {
    loop {
        match ethertype {
            ETH_IPV4 | ETH_IPV6 => return Ok((vlan, rest)),
            ETH_VLAN | ETH_QINQ => {}
            t if ETH_QINQ_OLD.contains(&t) => {}
            ETH_MPLS_UC | ETH_MPLS_MC => {
                rest = skip_mpls(rest)?;
                // No ethertype after the stack: the first nibble is all
                // there is. Anything but 4/6 is a pseudowire (EoMPLS control
                // word) or another tunnel we do not open.
                ethertype = match rest.first().map(|b| b >> 4) {
                    None => return Err(DecodeError::TruncatedLink),
                    Some(4) => ETH_IPV4,
                    Some(6) => ETH_IPV6,
                    Some(_) => return Err(DecodeError::NotIp),
                };
                continue;
            }
            ETH_PPPOE_SESSION => {
                let hdr = rest.first_chunk::<8>().ok_or(DecodeError::TruncatedLink)?;
                // ver=1 type=1, code 0 (session data), then PPP protocol.
                if hdr[0] != 0x11 || hdr[1] != 0 {
                    return Err(DecodeError::MalformedLink);
                }
                ethertype = match u16::from_be_bytes([hdr[6], hdr[7]]) {
                    PPP_IPV4 => ETH_IPV4,
                    PPP_IPV6 => ETH_IPV6,
                    _ => return Err(DecodeError::NotIp),
                };
                rest = rest.get(8..).ok_or(DecodeError::TruncatedLink)?;
                continue;
            }
            _ => return Err(DecodeError::NotIp),
        }
        // A VLAN tag: TCI then the next ethertype.
        tags += 1;
        if tags > MAX_VLAN_TAGS {
            return Err(DecodeError::MalformedLink);
        }
        let tag = rest.first_chunk::<4>().ok_or(DecodeError::TruncatedLink)?;
        vlan.get_or_insert(u16::from_be_bytes([tag[0], tag[1]]) & 0x0fff);
        ethertype = u16::from_be_bytes([tag[2], tag[3]]);
        rest = rest.get(4..).ok_or(DecodeError::TruncatedLink)?;
    }
}

fn skip_mpls(mut rest: &[u8]) -> Result<&[u8], DecodeError> {
    for _ in 0..MAX_MPLS_LABELS {
        let label = rest.first_chunk::<4>().ok_or(DecodeError::TruncatedLink)?;
        rest = rest.get(4..).ok_or(DecodeError::TruncatedLink)?;
        if label[2] & 0x01 != 0 {
            return Ok(rest);
        }
    }
    Err(DecodeError::MalformedLink)
}

fn ip(vlan: u16, bytes: &[u8]) -> Result<Located<'_>, DecodeError> {
    let pkt = LaxSlicedPacket::from_ip(bytes).map_err(|e| match e {
        err::ip::LaxHeaderSliceError::Len(_) => DecodeError::TruncatedIp,
        err::ip::LaxHeaderSliceError::Content(_) => DecodeError::MalformedIp,
    })?;
    Ok(Located { vlan, pkt })
}
