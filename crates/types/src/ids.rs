//! The record identities of the contract's second round: `flow_id`,
//! `alert.alert_id`, `incident.id` and `alert.signature_id`.
//!
//! Every id is a pure function of what it names, never of a counter, the
//! wall clock or a per-process hash seed, so a replay yields the same ids
//! at any speed and worker count and on any machine (tests pin
//! `output.host`, which enters `alert_id`).
//!
//! The 64-bit ids are the first eight bytes of a SHA-1 over a tagged,
//! length-prefixed encoding of the inputs, cut to 53 bits: JSON readers
//! that hold numbers as doubles (jq before 1.7, JavaScript, many SIEM
//! ingest pipelines) keep every integer below 2^53 exact, and a SIEM joins
//! on these ids, so an id that a reader rounds would silently join the
//! wrong records. 53 bits still make a collision among a billion ids
//! unlikely (about 5 %), far beyond what one sensor's log holds.

use std::net::IpAddr;

use sha1::{Digest, Sha1};

use crate::{FlowKey, FlowRecord, Timestamp};

/// The largest id plus one: ids are below 2^53 (see the module docs).
pub const ID_LIMIT: u64 = 1 << 53;

/// Feeds the hash in a form that cannot be ambiguous: each variable-length
/// part is length-prefixed, each address carries its family.
struct IdHasher(Sha1);

impl IdHasher {
    fn new(tag: &str) -> IdHasher {
        let mut h = IdHasher(Sha1::new());
        h.bytes(tag.as_bytes());
        h
    }

    fn bytes(&mut self, b: &[u8]) {
        self.0.update((b.len() as u64).to_be_bytes());
        self.0.update(b);
    }

    fn ip(&mut self, ip: Option<IpAddr>) {
        match ip {
            None => self.0.update([0u8]),
            Some(IpAddr::V4(a)) => {
                self.0.update([4u8]);
                self.0.update(a.octets());
            }
            Some(IpAddr::V6(a)) => {
                self.0.update([6u8]);
                self.0.update(a.octets());
            }
        }
    }

    fn u64(&mut self, v: u64) {
        self.0.update(v.to_be_bytes());
    }

    fn finish(self) -> u64 {
        let d = self.0.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&d[..8]);
        u64::from_be_bytes(first) % ID_LIMIT
    }
}

/// The contract's `flow_id`: from the flow's canonical key (both addresses
/// and ports, protocol, VLAN) and its first packet's capture time. The flow
/// log record and every alert about the flow carry the same value: each is
/// computed from the same [`FlowRecord`] fields ([`FlowRecord::flow_id`]).
pub fn flow_id(key: &FlowKey, first_seen: Timestamp) -> u64 {
    let mut h = IdHasher::new("tapsentry flow_id v1");
    h.ip(Some(key.a));
    h.ip(Some(key.b));
    h.u64(u64::from(key.a_port));
    h.u64(u64::from(key.b_port));
    h.u64(u64::from(key.proto));
    h.u64(u64::from(key.vlan));
    h.u64(first_seen.micros() as u64);
    h.finish()
}

impl FlowRecord {
    /// This flow's `flow_id` (see [`flow_id`]).
    pub fn flow_id(&self) -> u64 {
        flow_id(&self.key, self.first_seen)
    }
}

/// The contract's `alert.alert_id`: from the sensor's name (`output.host`),
/// the signature, `src_ip`, `dest_ip` and the capture time of the finding's
/// first line (the `timestamp` of the alert record). An `alert_update`
/// about that finding carries the same value, computed from the written
/// alert by this function.
pub fn alert_id(
    host: &str,
    signature: &str,
    src_ip: IpAddr,
    dest_ip: Option<IpAddr>,
    first: Timestamp,
) -> u64 {
    let mut h = IdHasher::new("tapsentry alert_id v1");
    h.bytes(host.as_bytes());
    h.bytes(signature.as_bytes());
    h.ip(Some(src_ip));
    h.ip(dest_ip);
    h.u64(first.micros() as u64);
    h.finish()
}

/// An incident's `incident.id`: from the sensor's name and the `alert_id`
/// of the alert that opened it (an alert opens at most one incident).
pub fn incident_id(host: &str, first_alert_id: u64) -> u64 {
    let mut h = IdHasher::new("tapsentry incident_id v1");
    h.bytes(host.as_bytes());
    h.u64(first_alert_id);
    h.finish()
}

/// `alert.signature_id` of every signature, in one fixed table: a number
/// never changes once given, and a retired signature's number is never
/// reused. Numbers come in blocks of 100 per category (1100 exfiltration,
/// 1200 data_collection, 1300 tor, 1400 port_scan, 1500 spambot, 1600
/// unusual_protocol, 1700 external_login, 1800 lateral_movement, 1900
/// flood). `docs/records.md` lists the same table; a test holds the two
/// together and checks that every signature the detectors raise is here.
pub const SIGNATURE_IDS: &[(&str, u32)] = &[
    ("exfiltration.volume", 1101),
    ("exfiltration.slow", 1102),
    ("exfiltration.dns_tunnel", 1103),
    ("data_collection.internal_transfer", 1201),
    ("tor.exit_outbound", 1301),
    ("tor.exit_inbound", 1302),
    ("port_scan.vertical", 1401),
    ("port_scan.horizontal", 1402),
    ("port_scan.mixed", 1403),
    ("port_scan.icmp_sweep", 1404),
    ("spambot.outbound_smtp", 1501),
    ("unusual_protocol.internal", 1601),
    ("unusual_protocol.outbound", 1602),
    ("unusual_protocol.unusual_port", 1603),
    ("external_login.brute_force", 1701),
    ("external_login.many_sources", 1702),
    ("external_login.unusual_source", 1703),
    ("lateral_movement.remote_service", 1801),
    ("lateral_movement.scheduled_task", 1802),
    ("lateral_movement.wmi_exec", 1803),
    ("lateral_movement.tool_transfer", 1804),
    ("lateral_movement.netlogon_exploit", 1805),
    ("lateral_movement.new_admin_source", 1806),
    ("flood.syn", 1901),
    ("flood.new_flows", 1902),
];

/// The `alert.signature_id` of `signature`: its number in [`SIGNATURE_IDS`],
/// or 0 for a signature missing from the table (a bug the table's test
/// catches; 0 is never given to a signature).
pub fn signature_id(signature: &str) -> u32 {
    SIGNATURE_IDS
        .iter()
        .find(|(s, _)| *s == signature)
        .map_or(0, |&(_, id)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn signature_ids_are_unique_and_nonzero() {
        let mut ids: Vec<u32> = SIGNATURE_IDS.iter().map(|(_, id)| *id).collect();
        let mut names: Vec<&str> = SIGNATURE_IDS.iter().map(|(s, _)| *s).collect();
        ids.sort_unstable();
        names.sort_unstable();
        let n = ids.len();
        ids.dedup();
        names.dedup();
        assert_eq!((ids.len(), names.len()), (n, n), "a number or a name twice");
        assert!(!ids.contains(&0));
        assert_eq!(signature_id("tor.exit_outbound"), 1301);
        assert_eq!(signature_id("no.such"), 0);
    }

    #[test]
    fn alert_ids_depend_on_every_input_and_nothing_else() {
        let t = Timestamp::from_micros(1_700_000_000_000_000);
        let base = alert_id(
            "s1",
            "port_scan.vertical",
            ip("10.0.0.1"),
            Some(ip("10.0.0.2")),
            t,
        );
        // Pinned: the id of a finding must not change between versions,
        // or a SIEM's joins across an upgrade break.
        assert_eq!(base, 0x001b_acb7_4d11_0bf5, "{base:#x}");
        assert!(base < ID_LIMIT);
        let variants = [
            alert_id(
                "s2",
                "port_scan.vertical",
                ip("10.0.0.1"),
                Some(ip("10.0.0.2")),
                t,
            ),
            alert_id(
                "s1",
                "port_scan.horizontal",
                ip("10.0.0.1"),
                Some(ip("10.0.0.2")),
                t,
            ),
            alert_id(
                "s1",
                "port_scan.vertical",
                ip("10.0.0.3"),
                Some(ip("10.0.0.2")),
                t,
            ),
            alert_id("s1", "port_scan.vertical", ip("10.0.0.1"), None, t),
            alert_id(
                "s1",
                "port_scan.vertical",
                ip("10.0.0.1"),
                Some(ip("10.0.0.2")),
                Timestamp::from_micros(t.micros() + 1),
            ),
            // Length prefixes: moving a byte between host and signature
            // is another id.
            alert_id(
                "s1p",
                "ort_scan.vertical",
                ip("10.0.0.1"),
                Some(ip("10.0.0.2")),
                t,
            ),
        ];
        for v in variants {
            assert_ne!(v, base);
        }
    }

    #[test]
    fn flow_ids_follow_the_key_and_the_first_packet() {
        let t = Timestamp::from_micros(1_700_000_000_000_000);
        let (k, _) = FlowKey::canonical(ip("10.0.0.1"), 40000, ip("1.2.3.4"), 443, 6, 0);
        let (k_rev, _) = FlowKey::canonical(ip("1.2.3.4"), 443, ip("10.0.0.1"), 40000, 6, 0);
        let (k_vlan, _) = FlowKey::canonical(ip("10.0.0.1"), 40000, ip("1.2.3.4"), 443, 6, 7);
        assert_eq!(flow_id(&k, t), flow_id(&k_rev, t));
        assert_ne!(flow_id(&k, t), flow_id(&k_vlan, t));
        assert_ne!(
            flow_id(&k, t),
            flow_id(&k, Timestamp::from_micros(t.micros() + 1))
        );
        assert!(flow_id(&k, t) < ID_LIMIT);
    }

    #[test]
    fn incident_ids_follow_host_and_first_alert() {
        assert_eq!(incident_id("a", 5), incident_id("a", 5));
        assert_ne!(incident_id("a", 5), incident_id("b", 5));
        assert_ne!(incident_id("a", 5), incident_id("a", 6));
    }
}
