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
    /// The flow's `flow_id` ([`crate::FlowRecord::flow_id`]), when the
    /// alert is about one flow (set together with `community_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<u64>,
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
    /// ([`crate::alert_id`]). The writer turns such a record into the contract's
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

impl Alert {
    /// The suppression identity of the alert: signature, subject and counterpart.
    pub fn identity(&self) -> (&'static str, IpAddr, Option<IpAddr>) {
        (self.alert.signature, self.src_ip, self.dest_ip)
    }
}

/// One line of the alert log: the detector's [`Alert`] with what the
/// sensor adds when it writes it (the contract's second-round fields:
/// `host`, `flow_id`, `alert.action`, `alert.alert_id`,
/// `alert.signature_id`). Field names and order follow Suricata's EVE
/// where EVE has the field; the alert's own fields keep their order.
#[derive(Debug, Serialize)]
pub struct AlertRecord<'a> {
    /// See [`Alert::timestamp`].
    pub timestamp: Timestamp,
    /// See [`Alert::flow_id`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<u64>,
    /// Always `"alert"`.
    pub event_type: &'static str,
    /// The sensor's name (`output.host`).
    pub host: &'a str,
    /// See [`Alert::src_ip`].
    pub src_ip: IpAddr,
    /// See [`Alert::dest_ip`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_ip: Option<IpAddr>,
    /// See [`Alert::src_port`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    /// See [`Alert::dest_port`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_port: Option<u16>,
    /// See [`Alert::proto`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proto: Option<&'a str>,
    /// The `alert` object: identity fields, then [`AlertBody`]'s.
    pub alert: AlertBodyRecord<'a>,
    /// See [`Alert::evidence`].
    pub evidence: &'a BTreeMap<&'static str, serde_json::Value>,
    /// See [`Alert::community_id`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub community_id: Option<&'a str>,
    /// See [`Alert::app_proto`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_proto: Option<crate::AppProto>,
    /// See [`Alert::geo`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geo: Option<&'a GeoInfo>,
    /// See [`Alert::response`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<&'a Response>,
}

/// The `alert` object of an [`AlertRecord`].
#[derive(Debug, Serialize)]
pub struct AlertBodyRecord<'a> {
    /// Always `"allowed"`: the sensor is passive and stops nothing.
    pub action: &'static str,
    /// [`crate::alert_id`] of the finding.
    pub alert_id: u64,
    /// [`crate::signature_id`] of the signature.
    pub signature_id: u32,
    /// Category, signature, severity, description, ATT&CK.
    #[serde(flatten)]
    pub body: &'a AlertBody,
}

impl<'a> AlertRecord<'a> {
    /// The line for `alert`, written by the sensor named `host`; its
    /// `alert_id` is computed here, from the alert's own fields.
    pub fn new(alert: &'a Alert, host: &'a str) -> AlertRecord<'a> {
        AlertRecord {
            timestamp: alert.timestamp,
            flow_id: alert.flow_id,
            event_type: alert.event_type,
            host,
            src_ip: alert.src_ip,
            dest_ip: alert.dest_ip,
            src_port: alert.src_port,
            dest_port: alert.dest_port,
            proto: alert.proto.as_deref(),
            alert: AlertBodyRecord {
                action: "allowed",
                alert_id: alert.alert_id(host),
                signature_id: crate::signature_id(alert.alert.signature),
                body: &alert.alert,
            },
            evidence: &alert.evidence,
            community_id: alert.community_id.as_deref(),
            app_proto: alert.app_proto,
            geo: alert.geo.as_ref(),
            response: alert.response.as_ref(),
        }
    }
}

impl Alert {
    /// The contract's `alert.alert_id` of this alert as the sensor named
    /// `host` writes it (see [`crate::alert_id`]).
    pub fn alert_id(&self, host: &str) -> u64 {
        crate::alert_id(
            host,
            self.alert.signature,
            self.src_ip,
            self.dest_ip,
            self.timestamp,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_alert() -> Alert {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut evidence = BTreeMap::new();
        evidence.insert("flows", serde_json::json!(3));
        Alert {
            timestamp: Timestamp::from_micros(1_700_000_000_000_042),
            event_type: "alert",
            src_ip: ip("10.0.0.1"),
            dest_ip: Some(ip("185.220.101.4")),
            src_port: Some(51000),
            dest_port: Some(443),
            proto: Some("TCP".into()),
            alert: AlertBody {
                category: Category::TOR,
                signature: "tor.exit_outbound",
                severity: 2,
                description: "10.0.0.1 connected to a Tor exit.".into(),
                mitre: Mitre {
                    tactic: "TA0011",
                    technique: "T1090.003",
                },
            },
            evidence,
            community_id: Some("1:LQU9qZlK+B5F3KDmev6m5PMibrg=".into()),
            flow_id: Some(77),
            app_proto: Some(crate::AppProto::Tls),
            geo: Some(GeoInfo {
                ip: Some(ip("185.220.101.4")),
                country: Some("DE".into()),
                ..GeoInfo::default()
            }),
            response: Some(Response {
                action: "block",
                ip: ip("185.220.101.4"),
                block: BTreeMap::from([("nftables", "nft add ...".to_string())]),
                isolate: BTreeMap::new(),
            }),
            updates: None,
        }
    }

    /// The line carries every field of the alert, unchanged, plus the
    /// identity fields: a field added to [`Alert`] but not to the record
    /// fails here rather than vanishing from the log.
    #[test]
    fn the_record_carries_every_alert_field_and_the_ids() {
        let a = full_alert();
        let plain = serde_json::to_value(&a).unwrap();
        let line = serde_json::to_value(AlertRecord::new(&a, "sensor-1")).unwrap();
        for (k, v) in plain.as_object().unwrap() {
            if k == "alert" {
                for (bk, bv) in v.as_object().unwrap() {
                    assert_eq!(&line["alert"][bk], bv, "alert.{bk}");
                }
            } else {
                assert_eq!(&line[k], v, "{k}");
            }
        }
        assert_eq!(line["host"], "sensor-1");
        assert_eq!(line["flow_id"], 77);
        assert_eq!(line["alert"]["action"], "allowed");
        assert_eq!(line["alert"]["signature_id"], 1301);
        assert_eq!(line["alert"]["alert_id"], a.alert_id("sensor-1"));
        assert_ne!(a.alert_id("sensor-1"), a.alert_id("sensor-2"));
        // EVE's order at the top: timestamp, flow_id, event_type.
        let text = serde_json::to_string(&AlertRecord::new(&a, "s")).unwrap();
        assert!(
            text.starts_with(
                "{\"timestamp\":\"2023-11-14T22:13:20.000042Z\",\"flow_id\":77,\"event_type\":\"alert\",\"host\":\"s\",\"src_ip\":\"10.0.0.1\""
            ),
            "{text}"
        );
        assert!(
            text.contains("\"alert\":{\"action\":\"allowed\",\"alert_id\":"),
            "{text}"
        );
    }
}
