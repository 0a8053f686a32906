//! The one DNS message encoder of the workspace's tests and generators:
//! a query with one question, and its response with answers whose owner
//! name points back at the question (the usual shape on the wire).

/// DNS header flags of a standard query asking for recursion (RD).
pub const QUERY_FLAGS: u16 = 0x0100;
/// DNS header flags of a response from a recursive resolver (QR RD RA),
/// rcode 0.
pub const RESPONSE_FLAGS: u16 = 0x8180;

/// A DNS message: header, one question and any answers.
///
/// ```
/// use tapsentry_testkit::DnsMessage;
///
/// let query = DnsMessage::query(0x1234, "www.example.com", 1);
/// let q = query.encode();
/// assert_eq!(q[..4], [0x12, 0x34, 0x01, 0x00]);
/// assert_eq!(q[12..17], *b"\x03www\x07");
///
/// // The answer: NOERROR, one A record for 93.184.216.34, TTL one hour.
/// let a = query.response(0).answer(1, 3600, &[93, 184, 216, 34]).encode();
/// assert_eq!(a[2..4], [0x81, 0x80]);
/// assert_eq!(a.len(), q.len() + 16);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a builder does nothing until encode() is called"]
pub struct DnsMessage {
    id: u16,
    flags: u16,
    /// The question name in wire form.
    qname: Vec<u8>,
    qtype: u16,
    qclass: u16,
    answers: Vec<Answer>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    rtype: u16,
    ttl: u32,
    rdata: Vec<u8>,
}

impl DnsMessage {
    /// A recursive query (flags [`QUERY_FLAGS`]) for `name`, type `qtype`,
    /// class IN. The name is encoded with [`encode_name`].
    pub fn query(id: u16, name: &str, qtype: u16) -> Self {
        let mut qname = Vec::with_capacity(name.len() + 2);
        encode_name(&mut qname, name);
        Self::query_wire(id, &qname, qtype)
    }

    /// A query whose question name is given in wire form, as is: for
    /// names the encoder would not write (compression pointers, over-long
    /// labels, a missing root).
    pub fn query_wire(id: u16, wire_name: &[u8], qtype: u16) -> Self {
        DnsMessage {
            id,
            flags: QUERY_FLAGS,
            qname: wire_name.to_vec(),
            qtype,
            qclass: 1,
            answers: Vec::new(),
        }
    }

    /// The response to this message: flags [`RESPONSE_FLAGS`] with `rcode`
    /// (its low four bits) in place of the query's; same id and question.
    pub fn response(mut self, rcode: u8) -> Self {
        self.flags = RESPONSE_FLAGS | u16::from(rcode & 0x0f);
        self
    }

    /// Any header flags word (QR, opcode, AA, TC, RD, RA, Z, rcode).
    pub fn flags(mut self, flags: u16) -> Self {
        self.flags = flags;
        self
    }

    /// Appends an answer of type `rtype`, class IN, owned by the question
    /// name (a compression pointer to offset 12).
    pub fn answer(mut self, rtype: u16, ttl: u32, rdata: &[u8]) -> Self {
        self.answers.push(Answer {
            rtype,
            ttl,
            rdata: rdata.to_vec(),
        });
        self
    }

    /// The message as on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.qname.len() + 16 * self.answers.len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the message as on the wire to `out` (for callers that reuse
    /// a buffer).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let ancount = u16::try_from(self.answers.len()).unwrap_or(u16::MAX);
        for word in [self.id, self.flags, 1, ancount, 0, 0] {
            out.extend_from_slice(&word.to_be_bytes());
        }
        out.extend_from_slice(&self.qname);
        out.extend_from_slice(&self.qtype.to_be_bytes());
        out.extend_from_slice(&self.qclass.to_be_bytes());
        for a in &self.answers {
            out.extend_from_slice(&[0xc0, 0x0c]);
            out.extend_from_slice(&a.rtype.to_be_bytes());
            out.extend_from_slice(&1u16.to_be_bytes());
            out.extend_from_slice(&a.ttl.to_be_bytes());
            let len = u16::try_from(a.rdata.len())
                .unwrap_or_else(|_| panic!("rdata of {} bytes", a.rdata.len()));
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&a.rdata);
        }
    }
}

/// Appends `name` in wire form (length-prefixed labels, then the root) to
/// `out`. Empty labels are skipped, so `"example.com."` and `""` (the root)
/// work; a label longer than 63 octets is cut at 63, the RFC 1035 limit,
/// so any string gives a name a parser accepts label by label.
pub fn encode_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let l = &label.as_bytes()[..label.len().min(63)];
        out.push(l.len() as u8);
        out.extend_from_slice(l);
    }
    out.push(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_bytes() {
        let q = DnsMessage::query(0xbeef, "mail.google.com", 28).encode();
        let mut want = vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        want.extend_from_slice(b"\x04mail\x06google\x03com\x00\x00\x1c\x00\x01");
        assert_eq!(q, want);
    }

    #[test]
    fn response_bytes() {
        let r = DnsMessage::query(0x1a2b, "www.Example.COM", 1)
            .response(3)
            .answer(1, 3600, &[93, 184, 216, 34])
            .encode();
        let mut want = vec![0x1a, 0x2b, 0x81, 0x83, 0, 1, 0, 1, 0, 0, 0, 0];
        want.extend_from_slice(b"\x03www\x07Example\x03COM\x00\x00\x01\x00\x01");
        want.extend_from_slice(&[
            0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 93, 184, 216, 34,
        ]);
        assert_eq!(r, want);
    }

    #[test]
    fn names_skip_empty_labels_and_cut_long_ones() {
        let mut v = Vec::new();
        encode_name(&mut v, "example.com.");
        assert_eq!(v, b"\x07example\x03com\x00");
        v.clear();
        encode_name(&mut v, "");
        assert_eq!(v, [0]);
        v.clear();
        encode_name(&mut v, &"a".repeat(70));
        assert_eq!((v[0], v.len()), (63, 65));
    }

    #[test]
    fn wire_names_are_kept_as_given() {
        let q = DnsMessage::query_wire(1, b"\xc0\x0c", 1).encode();
        assert_eq!(q[12..], [0xc0, 0x0c, 0, 1, 0, 1]);
    }

    #[test]
    fn encode_into_appends() {
        let m = DnsMessage::query(7, "a.b", 16).answer(16, 0, b"\x02hi");
        let mut buf = vec![0xaa];
        m.encode_into(&mut buf);
        assert_eq!(buf[0], 0xaa);
        assert_eq!(buf[1..], m.encode()[..]);
    }
}
