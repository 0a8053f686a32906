use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::Timestamp;

/// An alert category: the `alert.category` string of the outside contract.
///
/// A small `Copy` name rather than an enum, so a detector with a new
/// category declares it where the detector is registered
/// (`crates/detect/src/registry.rs`) without an edit here; the list of all
/// categories (the stats log's `alerts.by_category`) comes from that
/// registry. The seven categories of the contract are the constants below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Category(&'static str);

impl Category {
    /// Outbound data over a host's baseline, or a covert channel.
    pub const EXFILTRATION: Category = Category("exfiltration");
    /// Large internal transfer towards one host.
    pub const DATA_COLLECTION: Category = Category("data_collection");
    /// Traffic to or from a listed Tor exit.
    pub const TOR: Category = Category("tor");
    /// Port scans of every kind.
    pub const PORT_SCAN: Category = Category("port_scan");
    /// Outbound SMTP from a host with no mail history.
    pub const SPAMBOT: Category = Category("spambot");
    /// An IP protocol not seen before between an inside client and server.
    pub const UNUSUAL_PROTOCOL: Category = Category("unusual_protocol");
    /// Logins to remote-access services from outside addresses.
    pub const EXTERNAL_LOGIN: Category = Category("external_login");

    /// A category spelled `name` (snake_case, as the contract spells it).
    pub const fn new(name: &'static str) -> Category {
        Category(name)
    }

    /// The contract's spelling.
    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// MITRE ATT&CK tactic and technique ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Mitre {
    /// Tactic id, e.g. `TA0011`.
    pub tactic: &'static str,
    /// Technique id, e.g. `T1090.003`.
    pub technique: &'static str,
}

/// GeoIP facts about the external party.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct GeoInfo {
    /// The address looked up.
    pub ip: Option<IpAddr>,
    /// ISO 3166-1 alpha-2 country code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// City name (English), when the City database knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Autonomous system number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// Autonomous system organisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_org: Option<String>,
}

impl GeoInfo {
    /// True when no database knew anything about the address.
    pub fn is_unknown(&self) -> bool {
        self.country.is_none() && self.city.is_none() && self.asn.is_none()
    }
}

/// A suggested response: ready firewall commands for the party the finding
/// calls for acting on, never its victim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Response {
    /// `"block"`: all traffic to and from an outside attacker; `"isolate"`:
    /// all forwarded traffic of an inside host that scans out or leaks.
    pub action: &'static str,
    /// The address the rules are about.
    pub ip: IpAddr,
    /// Block commands keyed by firewall (`nftables`, `iptables`), when
    /// `action` is `block`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub block: BTreeMap<&'static str, String>,
    /// Isolation (egress) commands keyed by firewall, when `action` is
    /// `isolate`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub isolate: BTreeMap<&'static str, String>,
}

/// One alert, shaped as the outside contract's alert record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Capture time of the packet that completed the evidence.
    pub timestamp: Timestamp,
    /// Always `"alert"`.
    pub event_type: &'static str,
    /// The host the alert is about.
    pub src_ip: IpAddr,
    /// The counterpart, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_ip: Option<IpAddr>,
    /// Source port, where it applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    /// Destination port, where it applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_port: Option<u16>,
    /// `"TCP"`, `"UDP"`, `"ICMP"`, `"ICMPv6"` or the protocol number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proto: Option<String>,
    /// Category, signature, severity, description, ATT&CK.
    pub alert: AlertBody,
    /// The numbers that justify the alert.
    pub evidence: BTreeMap<&'static str, serde_json::Value>,
    /// Community ID v1 of the flow, when the alert is about one flow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub community_id: Option<String>,
    /// The application protocol of the flow, when the alert is about one
    /// flow (as on that flow's flow-log record).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_proto: Option<crate::AppProto>,
    /// GeoIP of the external side, when a database is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geo: Option<GeoInfo>,
    /// Suggested response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Response>,
    /// Set on an `alert_update` (`event_type`): the capture time of the
    /// alert it updates, which with the identity names that alert
    /// ([`alert_id`]). The writer turns such a record into the contract's
    /// `alert_update` record; never serialised here.
    #[serde(skip)]
    pub updates: Option<Timestamp>,
}

/// The `alert` object of the record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertBody {
    /// Category.
    pub category: Category,
    /// Stable dotted id, e.g. `tor.exit_outbound`.
    pub signature: &'static str,
    /// 1 high, 2 medium, 3 low.
    pub severity: u8,
    /// One human sentence with the key numbers.
    pub description: String,
    /// ATT&CK mapping.
    pub mitre: Mitre,
}

/// The contract's `alert.alert_id`: a 64-bit integer from (host,
/// signature, src_ip, dest_ip, first timestamp), the same in every replay.
///
/// The first eight bytes of a SHA-1 over a fixed encoding (host and
/// signature each followed by a zero byte; each address as 16 bytes,
/// IPv4 mapped into IPv6, a missing `dest_ip` as a 0 marker byte instead of
/// 1 and 16 zero bytes; the time as big-endian microseconds), kept to 53
/// bits: jq and JavaScript read JSON numbers as doubles, and an id they
/// round is no id. One definition for every record that carries or names
/// an alert id (`alert`, `alert_update`, `incident.alert_ids`).
pub fn alert_id(
    host: &str,
    signature: &str,
    src_ip: IpAddr,
    dest_ip: Option<IpAddr>,
    first: Timestamp,
) -> u64 {
    use sha1::{Digest, Sha1};
    let v6 = |ip: IpAddr| match ip {
        IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
        IpAddr::V6(v) => v.octets(),
    };
    let mut h = Sha1::new();
    h.update(host.as_bytes());
    h.update([0]);
    h.update(signature.as_bytes());
    h.update([0]);
    h.update(v6(src_ip));
    match dest_ip {
        Some(d) => {
            h.update([1]);
            h.update(v6(d));
        }
        None => h.update([0; 17]),
    }
    h.update(first.micros().to_be_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    for (dst, src) in b.iter_mut().zip(d.iter()) {
        *dst = *src;
    }
    u64::from_be_bytes(b) & ((1 << 53) - 1)
}

impl Alert {
    /// The suppression identity of the alert: signature, subject and counterpart.
    pub fn identity(&self) -> (&'static str, IpAddr, Option<IpAddr>) {
        (self.alert.signature, self.src_ip, self.dest_ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_ids_are_stable_and_tell_findings_apart() {
        let src: IpAddr = [10, 0, 0, 1].into();
        let t = Timestamp::from_micros(1_700_000_000_000_001);
        let id = alert_id("s1", "port_scan.vertical", src, None, t);
        // Pinned: a change of the encoding changes every id in every SIEM.
        assert_eq!(id, alert_id("s1", "port_scan.vertical", src, None, t));
        assert!(id < 1 << 53);
        let others = [
            alert_id("s2", "port_scan.vertical", src, None, t),
            alert_id("s1", "port_scan.horizontal", src, None, t),
            alert_id("s1", "port_scan.vertical", [10, 0, 0, 2].into(), None, t),
            alert_id("s1", "port_scan.vertical", src, Some(src), t),
            alert_id("s1", "port_scan.vertical", src, None, t.plus_secs(1)),
        ];
        assert!(others.iter().all(|o| *o != id));
    }
}
