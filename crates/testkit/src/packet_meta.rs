//! One builder for decoded packets, for the flow-table tests and benches
//! that feed the table without decoding frames.

use tapsentry_types::{Fragment, IcmpError, PacketMeta, QuotedTuple, TcpFlags, Timestamp};

use crate::flow_record::Addr;

/// Builds a [`PacketMeta`] as the decoder would hand it to the flow table.
///
/// The defaults: capture time zero, VLAN 0, a 40-byte IP packet (a bare
/// TCP header), no TCP flags, not a fragment, no quoted ICMP error, no
/// payload. Each setter changes one field.
///
/// ```
/// use tapsentry_testkit::PacketMetaBuilder;
/// use tapsentry_types::TcpFlags;
///
/// let syn = PacketMetaBuilder::tcp("10.0.0.1", 40000, "192.0.2.1", 443, TcpFlags::SYN)
///     .at_micros(1_000_000)
///     .build();
/// assert_eq!(syn.proto, 6);
/// assert_eq!(syn.ip_len, 40);
/// assert_eq!(syn.ts.micros(), 1_000_000);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct PacketMetaBuilder {
    meta: PacketMeta<'static>,
}

impl PacketMetaBuilder {
    /// A packet of IP protocol `proto` from `src:sport` to `dst:dport`.
    pub fn new(src: impl Addr, sport: u16, dst: impl Addr, dport: u16, proto: u8) -> Self {
        PacketMetaBuilder {
            meta: PacketMeta {
                ts: Timestamp::ZERO,
                vlan: 0,
                src: src.addr(),
                dst: dst.addr(),
                proto,
                src_port: sport,
                dst_port: dport,
                ip_len: 40,
                tcp_flags: TcpFlags(0),
                fragment: Fragment::None,
                icmp_error: None,
                payload: &[],
            },
        }
    }

    /// A TCP segment carrying `flags` ([`TcpFlags`] bits).
    pub fn tcp(src: impl Addr, sport: u16, dst: impl Addr, dport: u16, flags: u8) -> Self {
        Self::new(src, sport, dst, dport, 6).flags(flags)
    }

    /// A UDP datagram.
    pub fn udp(src: impl Addr, sport: u16, dst: impl Addr, dport: u16) -> Self {
        Self::new(src, sport, dst, dport, 17)
    }

    /// Capture time, in microseconds since the Unix epoch.
    pub fn at_micros(mut self, us: i64) -> Self {
        self.meta.ts = Timestamp::from_micros(us);
        self
    }

    /// Capture time, in (fractional) seconds since the Unix epoch.
    pub fn at_secs(self, secs: f64) -> Self {
        self.at_micros((secs * 1e6) as i64)
    }

    /// The IP packet's length (header included), as the wire carried it.
    pub fn ip_len(mut self, len: u32) -> Self {
        self.meta.ip_len = len;
        self
    }

    /// TCP flags ([`TcpFlags`] bits).
    pub fn flags(mut self, flags: u8) -> Self {
        self.meta.tcp_flags = TcpFlags(flags);
        self
    }

    /// The innermost VLAN id.
    pub fn vlan(mut self, vlan: u16) -> Self {
        self.meta.vlan = vlan;
        self
    }

    /// Where the packet sits in a fragmented datagram.
    pub fn fragment(mut self, fragment: Fragment) -> Self {
        self.meta.fragment = fragment;
        self
    }

    /// An ICMP error quoting the packet of `quoted`.
    pub fn icmp_error(mut self, error: IcmpError, quoted: QuotedTuple) -> Self {
        self.meta.icmp_error = Some((error, quoted));
        self
    }

    /// The packet.
    pub fn build(self) -> PacketMeta<'static> {
        self.meta
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn defaults_are_a_bare_packet_and_setters_change_one_field() {
        let m = PacketMetaBuilder::udp([10, 0, 0, 1], 5000, "10.9.9.9", 53).build();
        assert_eq!(m.src, IpAddr::from([10, 0, 0, 1]));
        assert_eq!(m.dst, "10.9.9.9".parse::<IpAddr>().unwrap());
        assert_eq!((m.proto, m.src_port, m.dst_port), (17, 5000, 53));
        assert_eq!((m.ip_len, m.vlan, m.tcp_flags.0), (40, 0, 0));
        assert_eq!(m.fragment, Fragment::None);
        assert!(m.icmp_error.is_none() && m.payload.is_empty());
        let t = PacketMetaBuilder::tcp("10.0.0.1", 1, "10.0.0.2", 2, TcpFlags::ACK)
            .at_secs(1.5)
            .ip_len(1500)
            .vlan(7)
            .build();
        assert_eq!(
            (t.proto, t.tcp_flags.0, t.ip_len, t.vlan),
            (6, TcpFlags::ACK, 1500, 7)
        );
        assert_eq!(t.ts, Timestamp::from_micros(1_500_000));
    }
}
