//! The one [`FlowRecord`] builder of the workspace's tests: detector unit
//! tests, the detect crate's integration tests and anything else that feeds
//! a detector a record without running the flow table.

use std::net::IpAddr;

use tapsentry_types::{
    AppProto, DirCounts, EndReason, FlowKey, FlowRecord, FlowState, RecordKind, TcpFlags, Timestamp,
};

/// Capture start of the built records, in seconds since the Unix epoch
/// (2023-11-14T22:13:20Z): [`FlowRecordBuilder::at`] counts from here.
pub const START_SECS: i64 = 1_700_000_000;

/// SYN ACK PSH FIN: the flags each side of an ordinary TCP session sends.
pub const SESSION_FLAGS: u8 = 0x1b;

/// An address given to the builder: a literal (`"10.0.0.1"`, which must
/// parse: a typo in a test is reported by a panic) or an [`IpAddr`].
pub trait Addr {
    /// The address.
    fn addr(self) -> IpAddr;
}

impl Addr for IpAddr {
    fn addr(self) -> IpAddr {
        self
    }
}

impl Addr for &str {
    fn addr(self) -> IpAddr {
        match self.parse() {
            Ok(a) => a,
            Err(e) => panic!("test address {self:?}: {e}"),
        }
    }
}

impl Addr for &String {
    fn addr(self) -> IpAddr {
        self.as_str().addr()
    }
}

impl Addr for [u8; 4] {
    fn addr(self) -> IpAddr {
        IpAddr::from(self)
    }
}

impl Addr for std::net::Ipv4Addr {
    fn addr(self) -> IpAddr {
        IpAddr::V4(self)
    }
}

/// Builds a [`FlowRecord`] as the flow table would hand it to a detector.
///
/// The defaults describe the most common test record: the end of a
/// finished exchange, first reported (nothing reported before), seen at
/// [`START_SECS`] for one second, 10 packets / 1,500 bytes from the client
/// and 8 packets / 4,000 bytes back, state [`FlowState::ClosedFin`], the
/// responder answered, both sides sent [`SESSION_FLAGS`] (no flags unless
/// the protocol is TCP), VLAN 0, ended by timeout. Each setter changes one
/// aspect; the canonical key is derived from the endpoints at
/// [`build`](Self::build).
///
/// ```
/// use tapsentry_testkit::FlowRecordBuilder;
/// use tapsentry_types::FlowState;
///
/// let r = FlowRecordBuilder::tcp("10.0.0.1", 40000, "192.0.2.1", 443)
///     .at(60)
///     .bytes(2_000_000, 800)
///     .state(FlowState::Established)
///     .build();
/// assert_eq!(r.server_port, 443);
/// assert_eq!(r.to_server.bytes, 2_000_000);
/// assert_eq!(r.first_seen.secs(), 1_700_000_060);
/// assert_eq!(r.client_flags.0, 0x1b);
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use = "a builder does nothing until build() is called"]
pub struct FlowRecordBuilder {
    client: IpAddr,
    client_port: u16,
    server: IpAddr,
    server_port: u16,
    proto: u8,
    vlan: u16,
    first_seen: Timestamp,
    last_seen: Timestamp,
    to_server: DirCounts,
    to_client: DirCounts,
    reported_to_server: DirCounts,
    reported_to_client: DirCounts,
    /// `None`: [`SESSION_FLAGS`] both ways for TCP, none otherwise, decided
    /// at build time so that `.proto()` after `.flags()` keeps the flags.
    flags: Option<(u8, u8)>,
    state: FlowState,
    answered: bool,
    app_proto: AppProto,
    kind: RecordKind,
}

impl FlowRecordBuilder {
    /// A record of IP protocol `proto` from `client:client_port` to
    /// `server:server_port` (ICMP: type and code in the ports, as in
    /// [`FlowKey`]).
    pub fn new(
        client: impl Addr,
        client_port: u16,
        server: impl Addr,
        server_port: u16,
        proto: u8,
    ) -> Self {
        let first = Timestamp::from_micros(START_SECS * 1_000_000);
        FlowRecordBuilder {
            client: client.addr(),
            client_port,
            server: server.addr(),
            server_port,
            proto,
            vlan: 0,
            first_seen: first,
            last_seen: first.plus_secs(1),
            to_server: DirCounts {
                packets: 10,
                bytes: 1_500,
            },
            to_client: DirCounts {
                packets: 8,
                bytes: 4_000,
            },
            reported_to_server: DirCounts::default(),
            reported_to_client: DirCounts::default(),
            flags: None,
            state: FlowState::ClosedFin,
            answered: true,
            app_proto: AppProto::Unknown,
            kind: RecordKind::End(EndReason::Timeout),
        }
    }

    /// A TCP record.
    pub fn tcp(client: impl Addr, client_port: u16, server: impl Addr, server_port: u16) -> Self {
        Self::new(client, client_port, server, server_port, 6)
    }

    /// A UDP record.
    pub fn udp(client: impl Addr, client_port: u16, server: impl Addr, server_port: u16) -> Self {
        Self::new(client, client_port, server, server_port, 17)
    }

    /// Another IP protocol (the ports stay as given).
    pub fn proto(mut self, proto: u8) -> Self {
        self.proto = proto;
        self
    }

    /// The client and server ports.
    pub fn ports(mut self, client_port: u16, server_port: u16) -> Self {
        self.client_port = client_port;
        self.server_port = server_port;
        self
    }

    /// First seen `secs` seconds after [`START_SECS`]; the duration so far
    /// (one second by default) is kept.
    pub fn at(self, secs: i64) -> Self {
        let from = Timestamp::from_micros((START_SECS + secs) * 1_000_000);
        let micros = self.last_seen.micros() - self.first_seen.micros();
        self.seen(from, Timestamp::from_micros(from.micros() + micros))
    }

    /// Last seen `secs` seconds after first seen.
    pub fn lasting(mut self, secs: u64) -> Self {
        self.last_seen = self.first_seen.plus_secs(secs);
        self
    }

    /// First and last seen, as capture times.
    pub fn seen(mut self, first: Timestamp, last: Timestamp) -> Self {
        self.first_seen = first;
        self.last_seen = last;
        self
    }

    /// Bytes client to server and server to client (packet counts stay).
    pub fn bytes(mut self, to_server: u64, to_client: u64) -> Self {
        self.to_server.bytes = to_server;
        self.to_client.bytes = to_client;
        self
    }

    /// Packets client to server and server to client (byte counts stay).
    pub fn packets(mut self, to_server: u64, to_client: u64) -> Self {
        self.to_server.packets = to_server;
        self.to_client.packets = to_client;
        self
    }

    /// What earlier interim records of this flow already carried, each way:
    /// this record is then not the first report.
    pub fn reported(mut self, to_server: DirCounts, to_client: DirCounts) -> Self {
        self.reported_to_server = to_server;
        self.reported_to_client = to_client;
        self
    }

    /// The TCP flag bits each side sent (also for other protocols, where
    /// the flow table leaves them zero).
    pub fn flags(mut self, client: u8, server: u8) -> Self {
        self.flags = Some((client, server));
        self
    }

    /// The connection state.
    pub fn state(mut self, state: FlowState) -> Self {
        self.state = state;
        self
    }

    /// Whether the responder ever sent anything.
    pub fn answered(mut self, answered: bool) -> Self {
        self.answered = answered;
        self
    }

    /// An interim update or the end, and why.
    pub fn kind(mut self, kind: RecordKind) -> Self {
        self.kind = kind;
        self
    }

    /// The application protocol the flow table identified.
    pub fn app_proto(mut self, p: AppProto) -> Self {
        self.app_proto = p;
        self
    }

    /// The VLAN id (also part of the key).
    pub fn vlan(mut self, vlan: u16) -> Self {
        self.vlan = vlan;
        self
    }

    /// The record.
    pub fn build(self) -> FlowRecord {
        let (key, _) = FlowKey::canonical(
            self.client,
            self.client_port,
            self.server,
            self.server_port,
            self.proto,
            self.vlan,
        );
        let (client_flags, server_flags) = self.flags.unwrap_or(if self.proto == 6 {
            (SESSION_FLAGS, SESSION_FLAGS)
        } else {
            (0, 0)
        });
        FlowRecord {
            key,
            client: self.client,
            client_port: self.client_port,
            server: self.server,
            server_port: self.server_port,
            proto: self.proto,
            vlan: self.vlan,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            to_server: self.to_server,
            to_client: self.to_client,
            reported_to_server: self.reported_to_server,
            reported_to_client: self.reported_to_client,
            client_flags: TcpFlags(client_flags),
            server_flags: TcpFlags(server_flags),
            state: self.state,
            responder_answered: self.answered,
            app_proto: self.app_proto,
            kind: self.kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.addr()
    }

    #[test]
    fn defaults_are_a_finished_first_reported_exchange() {
        let r = FlowRecordBuilder::tcp("10.0.0.1", 40000, "192.0.2.1", 443).build();
        assert_eq!((r.client, r.client_port), (ip("10.0.0.1"), 40000));
        assert_eq!((r.server, r.server_port), (ip("192.0.2.1"), 443));
        assert_eq!((r.proto, r.vlan), (6, 0));
        assert_eq!(r.first_seen.micros(), START_SECS * 1_000_000);
        assert_eq!(r.last_seen.micros(), (START_SECS + 1) * 1_000_000);
        assert_eq!((r.to_server.packets, r.to_server.bytes), (10, 1_500));
        assert_eq!((r.to_client.packets, r.to_client.bytes), (8, 4_000));
        assert!(r.is_first_report());
        assert_eq!((r.client_flags.0, r.server_flags.0), (0x1b, 0x1b));
        assert_eq!(r.state, FlowState::ClosedFin);
        assert!(r.responder_answered);
        assert_eq!(r.kind, RecordKind::End(EndReason::Timeout));
        let (key, _) = FlowKey::canonical(r.client, 40000, r.server, 443, 6, 0);
        assert_eq!(r.key, key);
    }

    #[test]
    fn non_tcp_records_carry_no_flags_unless_given() {
        let u = FlowRecordBuilder::udp("10.0.0.1", 5353, "10.0.0.53", 53).build();
        assert_eq!((u.proto, u.client_flags.0, u.server_flags.0), (17, 0, 0));
        let i = FlowRecordBuilder::tcp("10.0.0.1", 8, "10.0.0.2", 0)
            .proto(1)
            .build();
        assert_eq!((i.proto, i.client_flags.0), (1, 0));
        let f = FlowRecordBuilder::tcp("10.0.0.1", 1, "10.0.0.2", 2)
            .flags(0x02, 0)
            .proto(17)
            .build();
        assert_eq!((f.client_flags.0, f.server_flags.0), (0x02, 0));
    }

    #[test]
    fn setters_change_only_their_fields() {
        let base = FlowRecordBuilder::tcp("10.0.0.1", 40000, "192.0.2.1", 443);
        let r = base
            .at(60)
            .lasting(30)
            .bytes(7, 9)
            .packets(1, 0)
            .state(FlowState::Attempt)
            .answered(false)
            .kind(RecordKind::Interim)
            .vlan(12)
            .ports(1, 2)
            .build();
        assert_eq!(r.first_seen.secs(), START_SECS + 60);
        assert_eq!(r.last_seen.secs(), START_SECS + 90);
        assert_eq!((r.to_server.packets, r.to_server.bytes), (1, 7));
        assert_eq!((r.to_client.packets, r.to_client.bytes), (0, 9));
        assert_eq!((r.state, r.responder_answered), (FlowState::Attempt, false));
        assert_eq!((r.kind, r.vlan, r.key.vlan), (RecordKind::Interim, 12, 12));
        assert_eq!((r.client_port, r.server_port), (1, 2));
        // `at` keeps the duration set before it.
        let moved = base.lasting(5).at(10).build();
        assert_eq!(moved.last_seen.secs() - moved.first_seen.secs(), 5);
        let rep = base
            .reported(
                DirCounts {
                    packets: 1,
                    bytes: 100,
                },
                DirCounts::default(),
            )
            .build();
        assert!(!rep.is_first_report());
        assert_eq!(rep.new_bytes_to_server(), 1_400);
    }

    #[test]
    fn the_key_is_canonical_whichever_side_is_lower() {
        let a = FlowRecordBuilder::tcp("192.0.2.1", 443, "10.0.0.1", 40000).build();
        let b = FlowRecordBuilder::tcp("10.0.0.1", 40000, "192.0.2.1", 443).build();
        assert_eq!(a.key, b.key);
        assert_eq!(a.client, ip("192.0.2.1"));
    }

    #[test]
    #[should_panic(expected = "test address")]
    fn a_mistyped_address_is_a_panic() {
        let _ = FlowRecordBuilder::tcp("10.0.0", 1, "10.0.0.2", 2);
    }
}
