//! One builder for DNS summaries, for detector tests that feed DNS events
//! without decoding packets.

use tapsentry_types::{DnsEvent, DnsName, Timestamp};

use crate::flow_record::{Addr, START_SECS};

/// Builds a [`DnsEvent`] as the decoder would hand it to the detectors.
///
/// The defaults: a UDP query (id 1) from port 40000 for type A, seen at
/// [`START_SECS`], 100 bytes, no answers, rcode 0. Each setter changes one
/// field.
///
/// ```
/// use tapsentry_testkit::DnsEventBuilder;
///
/// let q = DnsEventBuilder::query("10.0.0.5", "10.0.0.53", "a.example").qtype(16).at(30).build();
/// assert_eq!(q.qname.as_bytes(), b"a.example");
/// assert_eq!((q.qtype, q.is_response, q.proto), (16, false, 17));
/// assert_eq!(q.ts.secs(), 1_700_000_030);
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use = "a builder does nothing until build() is called"]
pub struct DnsEventBuilder {
    ev: DnsEvent,
}

impl DnsEventBuilder {
    /// A query from `client` to `server` for `name` (cut to the longest
    /// name a [`DnsName`] holds).
    pub fn query(client: impl Addr, server: impl Addr, name: &str) -> Self {
        DnsEventBuilder {
            ev: DnsEvent {
                ts: Timestamp::from_micros(START_SECS * 1_000_000),
                client: client.addr(),
                server: server.addr(),
                client_port: 40000,
                server_port: 53,
                proto: 17,
                id: 1,
                is_response: false,
                qname: DnsName::default(),
                qtype: 1,
                rcode: 0,
                answers: 0,
                msg_len: 100,
                answer_addrs: [None; tapsentry_types::DNS_ANSWER_ADDRS],
            },
        }
        .name(name.as_bytes())
    }

    /// A response (QR set) answering with `addrs` (the first
    /// `DNS_ANSWER_ADDRS` of them kept, as the decoder keeps them).
    pub fn answered(mut self, addrs: &[std::net::IpAddr]) -> Self {
        self.ev.is_response = true;
        self.ev.answers = u16::try_from(addrs.len()).unwrap_or(u16::MAX);
        for (slot, a) in self.ev.answer_addrs.iter_mut().zip(addrs) {
            *slot = Some(*a);
        }
        self
    }

    /// The question name, as bytes (lower-cased and dotted, as the decoder
    /// gives it; cut to fit).
    pub fn name(mut self, name: &[u8]) -> Self {
        let mut qname = DnsName::default();
        let fit = name.len().min(tapsentry_types::DNS_NAME_MAX);
        qname.push(&name[..fit]);
        self.ev.qname = qname;
        self
    }

    /// Seen `secs` seconds after [`START_SECS`].
    pub fn at(self, secs: i64) -> Self {
        self.at_micros((START_SECS + secs) * 1_000_000)
    }

    /// Capture time, in microseconds since the Unix epoch.
    pub fn at_micros(mut self, us: i64) -> Self {
        self.ev.ts = Timestamp::from_micros(us);
        self
    }

    /// The question type.
    pub fn qtype(mut self, qtype: u16) -> Self {
        self.ev.qtype = qtype;
        self
    }

    /// A response with `rcode` and `answers` answer records.
    pub fn response(mut self, rcode: u8, answers: u16) -> Self {
        self.ev.is_response = true;
        self.ev.rcode = rcode;
        self.ev.answers = answers;
        self
    }

    /// The client's port and the transport (17 UDP, 6 TCP).
    pub fn transport(mut self, client_port: u16, proto: u8) -> Self {
        self.ev.client_port = client_port;
        self.ev.proto = proto;
        self
    }

    /// The message's length in bytes.
    pub fn msg_len(mut self, len: u16) -> Self {
        self.ev.msg_len = len;
        self
    }

    /// The event.
    pub fn build(self) -> DnsEvent {
        self.ev
    }
}
