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
    /// An inside host administering or executing code on another (TA0008).
    pub const LATERAL_MOVEMENT: Category = Category("lateral_movement");

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

/// A suggested response: ready firewall commands that block the outside party.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Response {
    /// Block commands keyed by firewall (`nftables`, `iptables`).
    pub block: BTreeMap<&'static str, String>,
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

impl Alert {
    /// The suppression identity of the alert: signature, subject and counterpart.
    pub fn identity(&self) -> (&'static str, IpAddr, Option<IpAddr>) {
        (self.alert.signature, self.src_ip, self.dest_ip)
    }
}
