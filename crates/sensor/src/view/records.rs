//! Records of the alert log as the readers (`alerts`, `blocklist`) see them.
//!
//! The log is input like any other: a line may be truncated, hand-edited or
//! written by another version. Every field is optional except `event_type`,
//! unknown fields are ignored (a newer sensor adds some), and a line that is
//! not a JSON object, or whose known fields have the wrong type (an
//! `src_ip` that is not an address), is not a record: the caller counts it.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::net::IpAddr;

use serde::Deserialize;
use time::OffsetDateTime;

/// The longest line a reader accepts (bytes). Records are a few KiB; a
/// longer line is skipped and counted as unreadable, so a corrupt file
/// (a binary blob without newlines) cannot make a reader allocate without
/// bound.
pub const MAX_LINE: usize = 1 << 20;

/// One record of the alert log, as far as the readers need it.
#[derive(Debug, Clone, Deserialize)]
pub struct LogRecord {
    /// `alert`, `alert_update`, `incident`, `inventory`, `stats`, ...
    pub event_type: String,
    /// RFC 3339 capture time.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// The sensor's name (on logs of sensors that write it).
    #[serde(default)]
    pub host: Option<String>,
    /// The host the record is about.
    #[serde(default)]
    pub src_ip: Option<IpAddr>,
    /// The counterpart.
    #[serde(default)]
    pub dest_ip: Option<IpAddr>,
    /// Source port.
    #[serde(default)]
    pub src_port: Option<u16>,
    /// Destination port.
    #[serde(default)]
    pub dest_port: Option<u16>,
    /// Transport name.
    #[serde(default)]
    pub proto: Option<String>,
    /// The `alert` object (alerts and alert updates).
    #[serde(default)]
    pub alert: Option<AlertPart>,
    /// The numbers behind the finding.
    #[serde(default)]
    pub evidence: BTreeMap<String, serde_json::Value>,
    /// GeoIP of the outside party.
    #[serde(default)]
    pub geo: Option<GeoPart>,
    /// The `incident` object of an incident record.
    #[serde(default)]
    pub incident: Option<IncidentPart>,
    /// The `inventory` object of an inventory record.
    #[serde(default)]
    pub inventory: Option<InventoryPart>,
}

/// The `alert` object.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AlertPart {
    /// Category, e.g. `port_scan`.
    #[serde(default)]
    pub category: Option<String>,
    /// Dotted signature, e.g. `port_scan.vertical`.
    #[serde(default)]
    pub signature: Option<String>,
    /// 1 high, 2 medium, 3 low.
    #[serde(default)]
    pub severity: Option<u8>,
    /// One human sentence.
    #[serde(default)]
    pub description: Option<String>,
    /// The alert's id (sensors that write it; always on alert updates).
    #[serde(default)]
    pub alert_id: Option<u64>,
}

/// The `geo` object.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GeoPart {
    /// The address looked up.
    #[serde(default)]
    pub ip: Option<IpAddr>,
    /// ISO country code.
    #[serde(default)]
    pub country: Option<String>,
    /// AS number.
    #[serde(default)]
    pub asn: Option<u32>,
    /// AS organisation.
    #[serde(default)]
    pub as_org: Option<String>,
}

/// The `incident` object.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IncidentPart {
    /// The incident's id.
    #[serde(default)]
    pub id: Option<serde_json::Value>,
    /// The hosts involved.
    #[serde(default)]
    pub hosts: Vec<IpAddr>,
    /// ATT&CK tactic ids in ATT&CK's order.
    #[serde(default)]
    pub stages: Vec<String>,
    /// Its score.
    #[serde(default)]
    pub score: Option<f64>,
    /// Its alerts.
    #[serde(default)]
    pub alert_ids: Vec<u64>,
}

/// The `inventory` object.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InventoryPart {
    /// `new_host` or `new_exposed_service`.
    #[serde(default)]
    pub kind: Option<String>,
    /// The host (when the record puts it here rather than in `src_ip`).
    #[serde(default)]
    pub host: Option<IpAddr>,
    /// Transport of a new service.
    #[serde(default)]
    pub transport: Option<String>,
    /// Port of a new service.
    #[serde(default)]
    pub port: Option<u16>,
    /// Application protocol of a new service.
    #[serde(default)]
    pub app_proto: Option<String>,
}

impl LogRecord {
    /// The record of one line, or `None` when the line is not one.
    pub fn parse(line: &[u8]) -> Option<LogRecord> {
        serde_json::from_slice(line).ok()
    }

    /// The capture time, when the record has a readable one.
    pub fn time(&self) -> Option<OffsetDateTime> {
        self.timestamp.as_deref().and_then(parse_time)
    }

    /// The alert's severity, where the record has one.
    pub fn severity(&self) -> Option<u8> {
        self.alert.as_ref().and_then(|a| a.severity)
    }

    /// The alert's category, where the record has one.
    pub fn category(&self) -> Option<&str> {
        self.alert.as_ref().and_then(|a| a.category.as_deref())
    }

    /// The alert's signature, where the record has one.
    pub fn signature(&self) -> Option<&str> {
        self.alert.as_ref().and_then(|a| a.signature.as_deref())
    }
}

/// An RFC 3339 time, or a bare date (`2024-05-01`, midnight UTC).
pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    OffsetDateTime::parse(&format!("{s}T00:00:00Z"), &Rfc3339).ok()
}

/// Splits a byte stream into lines of at most [`MAX_LINE`] bytes, keeping
/// an unfinished last line until the rest of it arrives (a writer may be
/// between two `write` calls; `--follow` must not parse half a record).
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
    /// Inside an over-long line: drop bytes up to the next newline.
    skipping: bool,
    /// Over-long lines dropped so far.
    pub too_long: u64,
}

impl LineSplitter {
    /// Reads what `r` has now (until it returns 0) and calls `each` with
    /// every complete line, without its newline.
    pub fn feed<R: Read + ?Sized>(
        &mut self,
        r: &mut R,
        mut each: impl FnMut(&[u8]),
    ) -> io::Result<()> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            let n = match r.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let mut rest = chunk.get(..n).unwrap_or_default();
            while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
                let (head, tail) = rest.split_at(pos);
                if self.skipping {
                    self.skipping = false;
                } else if self.pending.is_empty() {
                    each(head);
                } else {
                    self.pending.extend_from_slice(head);
                    each(&self.pending);
                    self.pending.clear();
                }
                rest = tail.get(1..).unwrap_or_default();
            }
            if !self.skipping {
                if self.pending.len() + rest.len() > MAX_LINE {
                    self.pending.clear();
                    self.skipping = true;
                    self.too_long += 1;
                } else {
                    self.pending.extend_from_slice(rest);
                }
            }
        }
    }

    /// The unfinished last line (at the end of a file that is not followed),
    /// if any, handed out and forgotten.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        self.skipping = false;
        (!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending))
    }

    /// Forgets a partial line (the file it came from was truncated or
    /// replaced).
    pub fn reset(&mut self) {
        self.pending.clear();
        self.skipping = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, LineSplitter) {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.feed(&mut &c[..], |l| out.push(l.to_vec())).unwrap();
        }
        (out, s)
    }

    #[test]
    fn a_line_split_between_reads_is_joined() {
        let (out, mut s) = lines(&[b"{\"a\":1}\n{\"b\"", b":2}\n{\"c\""]);
        assert_eq!(out, vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]);
        assert_eq!(s.finish(), Some(b"{\"c\"".to_vec()));
    }

    #[test]
    fn an_over_long_line_is_dropped_and_counted() {
        let big = vec![b'x'; MAX_LINE + 10];
        let (out, s) = lines(&[&big, b"still the long line\nok\n"]);
        assert_eq!(out, vec![b"ok".to_vec()]);
        assert_eq!(s.too_long, 1);
    }

    #[test]
    fn records_tolerate_unknown_fields_and_reject_wrong_types() {
        let r = LogRecord::parse(
            br#"{"event_type":"alert","host":"s1","flow_id":7,"src_ip":"10.0.0.1","alert":{"severity":2,"alert_id":99,"action":"allowed"}}"#,
        )
        .unwrap();
        assert_eq!(r.severity(), Some(2));
        assert_eq!(r.alert.unwrap().alert_id, Some(99));
        assert!(LogRecord::parse(br#"{"event_type":"alert","src_ip":"not an ip"}"#).is_none());
        assert!(LogRecord::parse(b"[1,2]").is_none());
        assert!(LogRecord::parse(b"").is_none());
    }

    proptest::proptest! {
        /// Any bytes, in any chunking: no panic, and every line of at most
        /// MAX_LINE bytes comes out exactly as split by newlines.
        #[test]
        fn any_bytes_in_any_chunks_split_like_lines(
            data in proptest::collection::vec(
                proptest::prop_oneof![proptest::num::u8::ANY, proptest::strategy::Just(b'\n')],
                0..2000,
            ),
            cuts in proptest::collection::vec(0usize..2000, 0..8),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|c| *c <= data.len()).collect();
            cuts.sort_unstable();
            cuts.dedup();
            let mut s = LineSplitter::default();
            let mut got: Vec<Vec<u8>> = Vec::new();
            let mut from = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                s.feed(&mut &data[from..c], |l| got.push(l.to_vec())).unwrap();
                from = c;
            }
            if let Some(last) = s.finish() {
                got.push(last);
            }
            let mut want: Vec<Vec<u8>> = data.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
            if want.last().is_some_and(Vec::is_empty) {
                want.pop();
            }
            proptest::prop_assert_eq!(&got, &want);
            for l in &got {
                // Hostile records never panic the parser.
                let _ = LogRecord::parse(l);
            }
        }
    }

    #[test]
    fn times_parse_with_and_without_a_clock() {
        let a = parse_time("2024-05-01T10:00:00.000001Z").unwrap();
        let b = parse_time("2024-05-01").unwrap();
        assert!(b < a);
        assert!(parse_time("yesterday").is_none());
    }
}
