//! Captures built from conversations: TCP sessions, refused attempts,
//! datagrams, at chosen capture times. Used by integration tests and by the
//! `make-demo` example that writes `pcaps/demo.pcap`.

use std::net::IpAddr;
use std::path::Path;

use tapsentry_types::{LinkType, Timestamp};

use crate::{tcp_v4, tcp_v6, udp_v4, udp_v6, write_pcap, DnsMessage, TcpFlagsSpec};

/// Capture time 0 of every scenario: 2023-11-14T22:13:20Z.
pub const EPOCH_SECS: i64 = 1_700_000_000;

/// A capture under construction: frames with times, written in time order.
#[derive(Default)]
pub struct Scenario {
    frames: Vec<(Timestamp, Vec<u8>)>,
}

/// The capture time `secs` after [`EPOCH_SECS`].
pub fn at(secs: f64) -> Timestamp {
    Timestamp::from_micros(EPOCH_SECS * 1_000_000 + (secs * 1e6) as i64)
}

/// Parses an address literal; panics on a typo (test input).
pub fn ip(s: &str) -> IpAddr {
    match s.parse() {
        Ok(a) => a,
        Err(_) => panic!("not an IP address: {s}"),
    }
}

impl Scenario {
    /// An empty scenario.
    pub fn new() -> Self {
        Self::default()
    }

    /// Frames so far.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when no frame was added.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// One TCP segment.
    #[allow(
        clippy::too_many_arguments,
        reason = "a segment is exactly these fields"
    )]
    pub fn tcp(
        &mut self,
        t: f64,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        flags: u8,
        payload: usize,
    ) {
        let data = vec![0x41u8; payload];
        let frame = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => tcp_v4(
                s.octets(),
                sport,
                d.octets(),
                dport,
                TcpFlagsSpec::bits(flags),
                &data,
            ),
            (IpAddr::V6(s), IpAddr::V6(d)) => tcp_v6(
                s.octets(),
                sport,
                d.octets(),
                dport,
                TcpFlagsSpec::bits(flags),
                &data,
            ),
            _ => panic!("mixed address families: {src} -> {dst}"),
        };
        self.frames.push((at(t), frame));
    }

    /// One UDP datagram.
    pub fn udp(
        &mut self,
        t: f64,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        payload: &[u8],
    ) {
        let frame = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => udp_v4(s.octets(), sport, d.octets(), dport, payload),
            (IpAddr::V6(s), IpAddr::V6(d)) => udp_v6(s.octets(), sport, d.octets(), dport, payload),
            _ => panic!("mixed address families: {src} -> {dst}"),
        };
        self.frames.push((at(t), frame));
    }

    /// One IPv4 packet of IP protocol `proto` (GRE, ESP, ...) with `payload`
    /// zero bytes.
    pub fn ip_proto(&mut self, t: f64, src: IpAddr, dst: IpAddr, proto: u8, payload: usize) {
        let frame = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                crate::ip_proto_v4(s.octets(), d.octets(), proto, &vec![0u8; payload])
            }
            _ => panic!("ip_proto builds IPv4 only: {src} -> {dst}"),
        };
        self.frames.push((at(t), frame));
    }

    /// A full TCP session: handshake, `up` bytes client→server and `down`
    /// back in segments of at most 1000 bytes, FIN both ways, spread over
    /// about `dur` seconds.
    #[allow(
        clippy::too_many_arguments,
        reason = "a generated exchange is exactly these fields; a struct would only rename them"
    )]
    pub fn session(
        &mut self,
        t: f64,
        c: IpAddr,
        cport: u16,
        s: IpAddr,
        sport: u16,
        up: usize,
        down: usize,
        dur: f64,
    ) {
        self.tcp(t, c, cport, s, sport, 0x02, 0);
        self.tcp(t + 0.001, s, sport, c, cport, 0x12, 0);
        self.tcp(t + 0.002, c, cport, s, sport, 0x10, 0);
        let segs = up.div_ceil(1000) + down.div_ceil(1000);
        let step = (dur / (segs as f64 + 2.0)).max(0.0001);
        let mut now = t + 0.003;
        let (mut u, mut d) = (up, down);
        while u > 0 || d > 0 {
            if u > 0 {
                let n = u.min(1000);
                self.tcp(now, c, cport, s, sport, 0x18, n);
                u -= n;
                now += step;
            }
            if d > 0 {
                let n = d.min(1000);
                self.tcp(now, s, sport, c, cport, 0x18, n);
                d -= n;
                now += step;
            }
        }
        self.tcp(now, c, cport, s, sport, 0x11, 0);
        self.tcp(now + 0.001, s, sport, c, cport, 0x11, 0);
        self.tcp(now + 0.002, c, cport, s, sport, 0x10, 0);
    }

    /// A TCP session that never closes: its record comes only from an
    /// interim update, a timeout or the shutdown flush.
    pub fn open_session(&mut self, t: f64, c: IpAddr, cport: u16, s: IpAddr, sport: u16) {
        self.tcp(t, c, cport, s, sport, 0x02, 0);
        self.tcp(t + 0.001, s, sport, c, cport, 0x12, 0);
        self.tcp(t + 0.002, c, cport, s, sport, 0x18, 500);
    }

    /// A SYN answered by RST (a closed port).
    pub fn refused(&mut self, t: f64, c: IpAddr, cport: u16, s: IpAddr, sport: u16) {
        self.tcp(t, c, cport, s, sport, 0x02, 0);
        self.tcp(t + 0.001, s, sport, c, cport, 0x14, 0);
    }

    /// An NTP exchange between two quiet inside hosts at `t`: it only moves
    /// capture time forward, so sweeps run up to then.
    pub fn clock(&mut self, t: f64) {
        self.udp(t, ip("10.99.99.1"), 123, ip("10.99.99.2"), 123, &[0u8; 48]);
    }

    /// A DNS query for `name` (type A) and its NOERROR answer.
    pub fn dns_lookup(
        &mut self,
        t: f64,
        client: IpAddr,
        cport: u16,
        resolver: IpAddr,
        name: &str,
        id: u16,
    ) {
        let query = DnsMessage::query(id, name, 1);
        self.udp(t, client, cport, resolver, 53, &query.encode());
        let r = query
            .response(0)
            .answer(1, 3600, &[93, 184, 216, 34])
            .encode();
        self.udp(t + 0.01, resolver, 53, client, cport, &r);
    }

    /// Writes the frames, in time order, as an Ethernet pcap.
    pub fn write(mut self, path: &Path) -> Result<(), pcap::Error> {
        self.frames.sort_by_key(|(t, _)| *t);
        write_pcap(path, LinkType::ETHERNET, &self.frames)
    }
}
