use std::net::IpAddr;

use crate::Timestamp;

/// Longest DNS name in presentation form (RFC 1035: 255 octets on the wire).
pub const DNS_NAME_MAX: usize = 255;

/// A DNS name held inline (no heap), lower-cased, dotted, without the
/// trailing dot. Bytes outside printable ASCII are kept as they are: callers
/// that print it should escape.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DnsName {
    len: u8,
    buf: [u8; DNS_NAME_MAX],
}

impl Default for DnsName {
    fn default() -> Self {
        DnsName {
            len: 0,
            buf: [0; DNS_NAME_MAX],
        }
    }
}

impl DnsName {
    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True for the root name.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends bytes; returns false (and leaves the name unchanged) if the
    /// result would exceed [`DNS_NAME_MAX`].
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        let start = usize::from(self.len);
        let Some(end) = start
            .checked_add(bytes.len())
            .filter(|e| *e <= DNS_NAME_MAX)
        else {
            return false;
        };
        let Some(dst) = self.buf.get_mut(start..end) else {
            return false;
        };
        dst.copy_from_slice(bytes);
        self.len = end as u8;
        true
    }

    /// The name as text, with bytes outside printable ASCII replaced by `?`.
    pub fn to_lossy_string(&self) -> String {
        self.as_bytes()
            .iter()
            .map(|&b| {
                if (0x21..0x7f).contains(&b) {
                    b as char
                } else {
                    '?'
                }
            })
            .collect()
    }
}

impl std::fmt::Debug for DnsName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DnsName({:?})", self.to_lossy_string())
    }
}

/// One DNS message (query or response) seen on the wire, summarised for
/// detectors: who asked whom, the first question, and the response code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsEvent {
    /// Capture time.
    pub ts: Timestamp,
    /// The client (sender of a query, receiver of a response).
    pub client: IpAddr,
    /// The server (resolver or authoritative server).
    pub server: IpAddr,
    /// Client port.
    pub client_port: u16,
    /// Server port: 53, or the port of a flow the classifier named DNS.
    pub server_port: u16,
    /// Transport: 17 UDP or 6 TCP.
    pub proto: u8,
    /// DNS message id.
    pub id: u16,
    /// True for a response (QR bit set).
    pub is_response: bool,
    /// Question name (first question).
    pub qname: DnsName,
    /// Question type (1 A, 16 TXT, 10 NULL, 5 CNAME, 28 AAAA, ...).
    pub qtype: u16,
    /// Response code (0 NOERROR, 3 NXDOMAIN, ...); 0 for queries.
    pub rcode: u8,
    /// Number of answer records (responses).
    pub answers: u16,
    /// Bytes of the DNS message as captured.
    pub msg_len: u16,
    /// The first A/AAAA addresses in the answer section of a NOERROR
    /// response (at most [`DNS_ANSWER_ADDRS`]; `None` past the last), so an
    /// inventory can name the hosts it sees ("`qname` is at this address").
    pub answer_addrs: [Option<IpAddr>; DNS_ANSWER_ADDRS],
}

/// Answer addresses kept per DNS response: enough for the usual one or
/// two, small enough that the event stays a fixed-size copy.
pub const DNS_ANSWER_ADDRS: usize = 2;
