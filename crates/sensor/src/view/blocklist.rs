//! `tapsentry blocklist`: the outside addresses that acted against the site,
//! as one deduplicated, sorted set for a firewall.
//!
//! Who qualifies (the contract): the `src_ip` of an alert when it is outside
//! `home_net` (the contract's tables put the actor in `src_ip`: an inbound
//! scanner, an outside login source, a Tor exit connecting in). Never listed:
//! an address inside `home_net`; any address an inside host reached in an
//! alert (the `dest_ip` of an alert whose `src_ip` is inside: the target of
//! its scan, the receiver of its upload, the resolver of its DNS tunnel, its
//! mail server) or named as a target in its evidence; and addresses that are
//! no host on the Internet (loopback, link-local, multicast, unspecified,
//! broadcast, documentation ranges are kept: tests use them). The
//! exclusions win: an address that both scanned in and was reached from
//! inside is not blocked, because blocking it would cut the inside host off
//! from a counterpart the operator has to look at first.
//!
//! Addresses are listed one by one (no aggregation into prefixes). Memory:
//! one entry per distinct listed or excluded address, bounded by
//! [`MAX_ADDRESSES`]; past it further addresses are counted and left out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use tapsentry_detect::HomeNet;

use super::records::LogRecord;

/// The most distinct addresses (listed and excluded together) one run
/// keeps. About 200 bytes each with their alert names: 200 MB at worst.
pub const MAX_ADDRESSES: usize = 1_000_000;

/// The alert names kept per address for its comment.
const NAMES_PER_ADDRESS: usize = 4;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One address a line, `#` comments naming the alerts.
    Plain,
    /// An `nft -f` file: table `inet tapsentry` with sets and drop chains.
    Nft,
    /// `iptables-restore --noflush` input (IPv4): chain TAPSENTRY.
    Iptables,
    /// `ip6tables-restore --noflush` input (IPv6): chain TAPSENTRY.
    Ip6tables,
    /// `ipset restore` input: sets tapsentry-v4 and tapsentry-v6.
    Ipset,
}

/// Why an address is listed.
#[derive(Debug, Default, Clone)]
pub struct Entry {
    /// Alerts against the site with this address as actor.
    pub alerts: u64,
    /// Highest severity (lowest number) among them.
    pub severity: u8,
    /// Distinct signatures (at most four).
    pub signatures: BTreeSet<String>,
    /// The first alert's id, where the log carries ids.
    pub first_alert_id: Option<u64>,
}

/// The set being built.
#[derive(Debug, Default)]
pub struct Blocklist {
    listed: BTreeMap<IpAddr, Entry>,
    excluded: BTreeSet<IpAddr>,
    /// Addresses left out because [`MAX_ADDRESSES`] was reached.
    pub over_bound: u64,
}

fn routable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            !(v.is_loopback()
                || v.is_link_local()
                || v.is_multicast()
                || v.is_unspecified()
                || v.is_broadcast())
        }
        IpAddr::V6(v) => {
            !(v.is_loopback()
                || v.is_multicast()
                || v.is_unspecified()
                || v.is_unicast_link_local())
        }
    }
}

impl Blocklist {
    fn room(&mut self) -> bool {
        let ok = self.listed.len() + self.excluded.len() < MAX_ADDRESSES;
        if !ok {
            self.over_bound += 1;
        }
        ok
    }

    /// Takes one record into account. `min_severity`: alerts of that
    /// severity or higher (numerically at most) name attackers; every
    /// alert, whatever its severity, names victims.
    pub fn add(&mut self, rec: &LogRecord, home: &HomeNet, min_severity: u8) {
        if rec.event_type != "alert" {
            return;
        }
        let Some(src) = rec.src_ip else { return };
        if home.contains(src) {
            // An inside actor: what it reached is a victim or a service.
            let mut reached: Vec<IpAddr> = rec.dest_ip.into_iter().collect();
            if let Some(t) = rec
                .evidence
                .get("examples")
                .and_then(|e| e.get("targets"))
                .and_then(|t| t.as_array())
            {
                reached.extend(t.iter().filter_map(|v| v.as_str()?.parse::<IpAddr>().ok()));
            }
            for ip in reached {
                if !home.contains(ip) && !self.excluded.contains(&ip) && self.room() {
                    self.excluded.insert(ip);
                }
            }
            return;
        }
        let sev = rec.severity().unwrap_or(u8::MAX);
        if sev > min_severity || !routable(src) {
            return;
        }
        if !self.listed.contains_key(&src) && !self.room() {
            return;
        }
        let e = self.listed.entry(src).or_insert_with(|| Entry {
            severity: sev,
            ..Entry::default()
        });
        e.alerts += 1;
        e.severity = e.severity.min(sev);
        if let Some(sig) = rec.signature() {
            if e.signatures.len() < NAMES_PER_ADDRESS {
                e.signatures.insert(sig.to_string());
            }
        }
        if e.first_alert_id.is_none() {
            e.first_alert_id = rec.alert.as_ref().and_then(|a| a.alert_id);
        }
    }

    /// The listed addresses, sorted (IPv4 first), exclusions applied.
    pub fn entries(&self) -> impl Iterator<Item = (&IpAddr, &Entry)> {
        self.listed
            .iter()
            .filter(|(ip, _)| !self.excluded.contains(ip))
    }

    /// Addresses that acted against the site but were left out because an
    /// inside host reached them.
    pub fn withheld(&self) -> usize {
        self.listed
            .keys()
            .filter(|ip| self.excluded.contains(ip))
            .count()
    }

    /// The set in `format`.
    pub fn render(&self, format: Format, source: &str) -> String {
        let mut s = String::new();
        let (v4, v6): (Vec<_>, Vec<_>) = self.entries().partition(|(ip, _)| ip.is_ipv4());
        let header = format!(
            "# tapsentry blocklist from {}: {} addresses",
            clean(source),
            v4.len() + v6.len()
        );
        match format {
            Format::Plain => {
                let _ = writeln!(s, "{header}");
                for (ip, e) in v4.iter().chain(&v6) {
                    let _ = writeln!(s, "{ip} # {}", comment(e));
                }
            }
            Format::Nft => {
                let _ = writeln!(
                    s,
                    "{header}\n# load: nft -f FILE (replaces table inet tapsentry)"
                );
                // Declare, then delete, then define: reloading replaces the
                // table in one transaction, and the first load works too.
                s.push_str("table inet tapsentry\ndelete table inet tapsentry\n");
                s.push_str("table inet tapsentry {\n");
                for (name, ty, list) in [
                    ("attackers_v4", "ipv4_addr", &v4),
                    ("attackers_v6", "ipv6_addr", &v6),
                ] {
                    let _ = writeln!(s, "\tset {name} {{\n\t\ttype {ty}");
                    if !list.is_empty() {
                        s.push_str("\t\telements = {\n");
                        for (ip, e) in list.iter() {
                            let _ = writeln!(s, "\t\t\t{ip} comment \"{}\",", comment(e));
                        }
                        s.push_str("\t\t}\n");
                    }
                    s.push_str("\t}\n");
                }
                for hook in ["input", "forward"] {
                    let _ = writeln!(
                        s,
                        "\tchain {hook} {{\n\t\ttype filter hook {hook} priority filter - 10; policy accept;\n\t\tip saddr @attackers_v4 drop\n\t\tip6 saddr @attackers_v6 drop\n\t}}"
                    );
                }
                s.push_str("}\n");
            }
            Format::Iptables | Format::Ip6tables => {
                let (list, width) = if format == Format::Iptables {
                    (&v4, 32)
                } else {
                    (&v6, 128)
                };
                let _ = writeln!(
                    s,
                    "{header}\n# load: {}-restore --noflush FILE; then once: -I INPUT -j TAPSENTRY, -I FORWARD -j TAPSENTRY\n*filter\n:TAPSENTRY - [0:0]",
                    if width == 32 { "iptables" } else { "ip6tables" }
                );
                for (ip, e) in list.iter() {
                    let _ = writeln!(
                        s,
                        "-A TAPSENTRY -s {ip}/{width} -m comment --comment \"{}\" -j DROP",
                        comment(e)
                    );
                }
                s.push_str("COMMIT\n");
            }
            Format::Ipset => {
                let _ = writeln!(s, "{header}\n# load: ipset restore -exist < FILE");
                for (name, fam, list) in [
                    ("tapsentry-v4", "inet", &v4),
                    ("tapsentry-v6", "inet6", &v6),
                ] {
                    let _ = writeln!(
                        s,
                        "create {name} hash:ip family {fam} maxelem {} comment",
                        list.len().max(65536)
                    );
                    for (ip, e) in list.iter() {
                        let _ = writeln!(s, "add {name} {ip} comment \"{}\"", comment(e));
                    }
                }
            }
        }
        s
    }
}

/// Only characters every firewall's comment syntax takes.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " ._,:/#=-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What an address did, short enough for nft's 128-byte element comments.
fn comment(e: &Entry) -> String {
    let sigs: Vec<&str> = e.signatures.iter().map(String::as_str).collect();
    let mut c = format!("{} alerts sev {}: {}", e.alerts, e.severity, sigs.join(","));
    if let Some(id) = e.first_alert_id {
        let _ = write!(c, " first #{id}");
    }
    let mut c = clean(&c);
    c.truncate(120);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(json: &str) -> LogRecord {
        LogRecord::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn only_outside_actors_never_victims_or_resolvers() {
        let home = HomeNet::parse(&["10.0.0.0/8".into()]).unwrap();
        let mut b = Blocklist::default();
        for r in [
            r#"{"event_type":"alert","src_ip":"198.51.100.7","dest_ip":"10.0.0.5","alert":{"signature":"external_login.brute_force","severity":1}}"#,
            r#"{"event_type":"alert","src_ip":"198.51.100.7","alert":{"signature":"port_scan.horizontal","severity":2,"alert_id":5}}"#,
            // An inside host scans out: its target is a victim.
            r#"{"event_type":"alert","src_ip":"10.0.0.9","dest_ip":"203.0.113.1","alert":{"signature":"port_scan.vertical","severity":2}}"#,
            r#"{"event_type":"alert","src_ip":"10.0.0.9","alert":{"signature":"port_scan.horizontal","severity":2},"evidence":{"examples":{"targets":["203.0.113.2"]}}}"#,
            // DNS tunnel: the resolver.
            r#"{"event_type":"alert","src_ip":"10.0.0.3","dest_ip":"192.0.2.53","alert":{"signature":"exfiltration.dns_tunnel","severity":1}}"#,
            // Also scanned in: still a resolver, not listed.
            r#"{"event_type":"alert","src_ip":"192.0.2.53","alert":{"signature":"port_scan.horizontal","severity":2}}"#,
            r#"{"event_type":"alert","src_ip":"203.0.113.1","alert":{"signature":"port_scan.horizontal","severity":2}}"#,
            r#"{"event_type":"alert","src_ip":"2001:db8::66","alert":{"signature":"port_scan.vertical","severity":3}}"#,
            r#"{"event_type":"alert","src_ip":"127.0.0.1","alert":{"signature":"port_scan.vertical","severity":1}}"#,
            r#"{"event_type":"alert_update","src_ip":"198.18.0.1","alert":{"alert_id":5,"severity":1}}"#,
        ] {
            b.add(&rec(r), &home, 3);
        }
        let listed: Vec<String> = b.entries().map(|(ip, _)| ip.to_string()).collect();
        assert_eq!(listed, ["198.51.100.7", "2001:db8::66"]);
        assert_eq!(b.withheld(), 2);
        let e = b.entries().next().unwrap().1;
        assert_eq!((e.alerts, e.severity), (2, 1));
        let plain = b.render(Format::Plain, "x");
        assert!(plain.contains(
            "198.51.100.7 # 2 alerts sev 1: external_login.brute_force,port_scan.horizontal"
        ));
        // Severity 1 only: the IPv6 scanner (severity 3) goes.
        let mut hi = Blocklist::default();
        hi.add(
            &rec(r#"{"event_type":"alert","src_ip":"2001:db8::66","alert":{"severity":3}}"#),
            &home,
            1,
        );
        assert_eq!(hi.entries().count(), 0);
    }
}
