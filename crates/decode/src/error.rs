//! The decoder's error type: one small `Copy` enum, counted by variant.

/// Why a frame did not yield a [`PacketMeta`](tapsentry_types::PacketMeta).
///
/// Data only (no heap, no offsets), so the hot path can count it by
/// [`index`](DecodeError::index) into a plain array. The stable
/// [`reason`](DecodeError::reason) labels, in index order:
///
/// | index | reason | meaning |
/// |---|---|---|
/// | 0 | `unsupported_link_type` | the frame's link type is not one this crate decodes |
/// | 1 | `truncated_link` | the capture ends inside a link-layer header (Ethernet, VLAN tag, MPLS label, PPPoE, SLL, NULL family, PPP protocol) |
/// | 2 | `malformed_link` | a link-layer header is invalid or nests deeper than the walk allows (e.g. more than 8 VLAN tags or 16 MPLS labels, PPPoE version not 1) |
/// | 3 | `not_ip` | the frame carries no IP packet (ARP, STP, LLDP, PPP control, MPLS pseudowire, ...); counted, not a malformation |
/// | 4 | `truncated_ip` | the capture ends inside the IPv4/IPv6 header or an IPv6 extension header |
/// | 5 | `malformed_ip` | invalid IP header: version not 4/6 (or not the one a raw IPv4/IPv6 link type promises), IHL under 5, total length shorter than the header, hop-by-hop header not first, bad AH length, jumbo length under 65536 |
/// | 6 | `truncated_transport` | the capture ends inside a TCP, UDP, ICMP or ICMPv6 header |
/// | 7 | `malformed_transport` | invalid transport header (TCP data offset under 5) |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecodeError {
    /// The frame's link type is not decoded by this crate.
    #[error("unsupported link type")]
    UnsupportedLinkType,
    /// The capture ends inside a link-layer header.
    #[error("frame cut inside the link-layer header")]
    TruncatedLink,
    /// A link-layer header is invalid or nested too deep.
    #[error("malformed link-layer header")]
    MalformedLink,
    /// Not an IP packet (ARP, STP, LLDP, PPP control, ...).
    #[error("not an IP packet")]
    NotIp,
    /// The capture ends inside the IP header or an IPv6 extension header.
    #[error("frame cut inside the IP header")]
    TruncatedIp,
    /// The IP header (or an extension header) is invalid.
    #[error("malformed IP header")]
    MalformedIp,
    /// The capture ends inside the TCP, UDP, ICMP or ICMPv6 header.
    #[error("frame cut inside the transport header")]
    TruncatedTransport,
    /// The transport header is invalid.
    #[error("malformed transport header")]
    MalformedTransport,
}

impl DecodeError {
    /// Number of variants (and of [`ALL_REASONS`](Self::ALL_REASONS)).
    pub const COUNT: usize = 8;

    /// Every reason label, in [`index`](Self::index) order.
    pub const ALL_REASONS: [&'static str; Self::COUNT] = [
        "unsupported_link_type",
        "truncated_link",
        "malformed_link",
        "not_ip",
        "truncated_ip",
        "malformed_ip",
        "truncated_transport",
        "malformed_transport",
    ];

    /// Every variant, in [`index`](Self::index) order.
    pub const ALL: [DecodeError; Self::COUNT] = [
        DecodeError::UnsupportedLinkType,
        DecodeError::TruncatedLink,
        DecodeError::MalformedLink,
        DecodeError::NotIp,
        DecodeError::TruncatedIp,
        DecodeError::MalformedIp,
        DecodeError::TruncatedTransport,
        DecodeError::MalformedTransport,
    ];

    /// Stable index in `0..COUNT`, for counter arrays.
    pub const fn index(self) -> usize {
        match self {
            DecodeError::UnsupportedLinkType => 0,
            DecodeError::TruncatedLink => 1,
            DecodeError::MalformedLink => 2,
            DecodeError::NotIp => 3,
            DecodeError::TruncatedIp => 4,
            DecodeError::MalformedIp => 5,
            DecodeError::TruncatedTransport => 6,
            DecodeError::MalformedTransport => 7,
        }
    }

    /// The snake_case label used as a stats key.
    pub const fn reason(self) -> &'static str {
        match self {
            DecodeError::UnsupportedLinkType => "unsupported_link_type",
            DecodeError::TruncatedLink => "truncated_link",
            DecodeError::MalformedLink => "malformed_link",
            DecodeError::NotIp => "not_ip",
            DecodeError::TruncatedIp => "truncated_ip",
            DecodeError::MalformedIp => "malformed_ip",
            DecodeError::TruncatedTransport => "truncated_transport",
            DecodeError::MalformedTransport => "malformed_transport",
        }
    }

    /// True for frames that are fine but simply not IP, as opposed to
    /// broken or cut ones.
    pub const fn is_not_ip(self) -> bool {
        matches!(self, DecodeError::NotIp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_reason_and_tables_agree() {
        for (i, e) in DecodeError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert_eq!(e.reason(), DecodeError::ALL_REASONS[i]);
        }
        let mut seen = std::collections::HashSet::new();
        for r in DecodeError::ALL_REASONS {
            assert!(seen.insert(r), "duplicate reason {r}");
            assert!(r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
    }

    #[test]
    fn is_small_and_copy() {
        fn copy<T: Copy>() {}
        copy::<DecodeError>();
        assert!(std::mem::size_of::<DecodeError>() <= 1);
    }
}
