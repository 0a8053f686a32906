//! `exfiltration.dns_tunnel`: data carried in DNS query names (iodine,
//! dnscat, dns2tcp, DNSExfiltrator and the like).
//!
//! Per (client, registered domain), over a window of capture time: the
//! number of unique names queried under the domain, the information those
//! names carry (bytes of the unique subdomain parts), their length and
//! character entropy, and the query-type mix (TXT, NULL, CNAME, MX are the
//! tunnels' favourites). A tunnel has to put its data in fresh, long,
//! random-looking names under one domain it controls; CDNs, reverse lookups
//! and DNSBL queries produce unique names too, but short, or under domains
//! on the allow-list.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tapsentry_types::{
    AppProto, Category, DnsEvent, FlowRecord, Mitre, Problem, SectionProblems, Timestamp,
};

use crate::common::{Finding, HostTable};
use crate::{Bound, DetectCx, Detector};

/// The `[detect.dns_tunnel]` section.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DnsTunnelConfig {
    /// Run this detector. Default true.
    pub enabled: bool,
    /// Seconds of capture time over which one client's queries under one
    /// domain are judged together. Default 600.
    pub window_secs: u64,
    /// Unique names under one domain needed before judging. Default 10.
    pub min_unique_names: u64,
    /// Mean length of the unique subdomain parts (bytes) that makes names
    /// carriers of data. Default 24.
    pub min_mean_subdomain_len: f64,
    /// Mean Shannon entropy of the subdomain parts, bits per character: a
    /// floor that keeps out long repetitive names. Per-name entropy of short
    /// strings is low even when random (iodine's names average 2.7), so it
    /// is not the main signal. Default 2.5.
    pub min_entropy: f64,
    /// Bytes carried in unique subdomain parts that settle a verdict, with
    /// the length and entropy conditions (so do 3x `min_unique_names` unique
    /// names, or half the queries asking TXT/NULL/CNAME/MX). Default 1500.
    pub min_bytes: u64,
    /// Domains never judged (suffix match): reverse lookups, DNSBLs, and
    /// what your network legitimately encodes in names.
    pub allow: Vec<String>,
    /// (client, domain) pairs tracked per worker (memory bound; least
    /// recently seen dropped). Default 50000.
    pub max_tracked: usize,
}

impl Default for DnsTunnelConfig {
    fn default() -> Self {
        DnsTunnelConfig {
            enabled: true,
            window_secs: 600,
            min_unique_names: 10,
            min_mean_subdomain_len: 24.0,
            min_entropy: 2.5,
            min_bytes: 1500,
            allow: [
                "in-addr.arpa",
                "ip6.arpa",
                "spamhaus.org",
                "spamcop.net",
                "sorbs.net",
                "barracudacentral.org",
                "surbl.org",
                "uribl.com",
                "dnswl.org",
                "mailspike.net",
            ]
            .map(String::from)
            .to_vec(),
            max_tracked: 50_000,
        }
    }
}

impl DnsTunnelConfig {
    /// Every problem with the values, each under `section`. (`min_bytes`
    /// may be 0: the length and entropy conditions then decide alone.)
    pub fn problems(&self, section: &str) -> Vec<Problem> {
        let mut p = SectionProblems::new(section);
        p.at_least("window_secs", self.window_secs, 1);
        p.at_least("min_unique_names", self.min_unique_names, 1);
        // A DNS name is at most 253 bytes.
        p.within(
            "min_mean_subdomain_len",
            self.min_mean_subdomain_len,
            0.0,
            253.0,
        );
        // Entropy of bytes: at most 8 bits each.
        p.within("min_entropy", self.min_entropy, 0.0, 8.0);
        for a in &self.allow {
            if a.trim().trim_matches('.').is_empty() {
                p.push("allow", format!("'{a}' is not a domain"));
            }
        }
        p.at_least("max_tracked", self.max_tracked, 1);
        p.into_vec()
    }
}

/// Unique names remembered per (client, domain) and window; beyond it the
/// counts stop growing, which only makes a verdict later, never wrong.
const MAX_NAMES: usize = 4096;

#[derive(Debug, Clone, Default)]
struct DomainActivity {
    domain: String,
    server: Option<IpAddr>,
    window_start: Timestamp,
    queries: u64,
    names: BTreeSet<u64>,
    sub_bytes: u64,
    entropy_sum: f64,
    max_label: usize,
    qtypes: BTreeMap<u16, u64>,
    alerted: bool,
}

/// Inside resolvers remembered per worker.
const MAX_RESOLVERS: usize = 1024;

/// See the module documentation.
pub struct DnsTunnelDetector {
    cfg: DnsTunnelConfig,
    allow: Vec<String>,
    pairs: HostTable<(IpAddr, u64), DomainActivity>,
    /// Inside hosts seen answering DNS for other inside hosts: forwarding
    /// resolvers. Their own queries repeat their clients' (who are judged
    /// themselves, with the resolver as `dest_ip`), and aggregate every
    /// client's CDN names under a few domains, so they are not judged.
    resolvers: HostTable<IpAddr, ()>,
}

impl DnsTunnelDetector {
    /// A detector with the given settings.
    pub fn new(cfg: DnsTunnelConfig) -> Self {
        let allow = cfg
            .allow
            .iter()
            .map(|d| d.trim().trim_matches('.').to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect();
        let pairs = HostTable::new(cfg.max_tracked);
        DnsTunnelDetector {
            cfg,
            allow,
            pairs,
            resolvers: HostTable::new(MAX_RESOLVERS),
        }
    }

    fn allowed(&self, name: &[u8]) -> bool {
        self.allow.iter().any(|a| {
            let a = a.as_bytes();
            name == a || (name.ends_with(a) && name[..name.len() - a.len()].ends_with(b"."))
        })
    }
}

/// The pseudo-domain that gathers names with no listed public suffix and a
/// random-looking last label.
const UNLISTED: &str = "(unlisted suffix)";

/// The registered domain of a name: the public suffix list's answer for a
/// listed suffix; for an unlisted one, the last two labels when the last is
/// short enough to be a private TLD (`lan`, `corp`, `sea`), else `None`
/// (a data-bearing label in the TLD position).
fn registered_domain(name: &[u8]) -> Option<&[u8]> {
    if let Some(d) = psl::domain(name) {
        if d.suffix().is_known() {
            return Some(d.as_bytes());
        }
    }
    let last = name.rsplit(|&b| b == b'.').next()?;
    if last.is_empty() || last.len() > 8 {
        return None;
    }
    let mut dots = name
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, &b)| b == b'.')
        .map(|(i, _)| i);
    let _last_dot = dots.next()?;
    Some(match dots.next() {
        Some(i) => &name[i + 1..],
        None => name,
    })
}

/// Shannon entropy of the bytes, in bits per byte (0 for empty input).
fn entropy(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

fn hash64(bytes: &[u8]) -> u64 {
    // SipHash with fixed keys: the same value on every run and worker.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

fn qtype_name(t: u16) -> String {
    match t {
        1 => "A".into(),
        5 => "CNAME".into(),
        10 => "NULL".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        255 => "ANY".into(),
        n => n.to_string(),
    }
}

impl Detector for DnsTunnelDetector {
    fn name(&self) -> &'static str {
        "dns_tunnel"
    }

    fn bounds(&self, out: &mut dyn FnMut(Bound)) {
        out(self.pairs.bound("(client, domain) pairs", "max_tracked"));
        out(self.resolvers.bound("inside resolvers", ""));
        out(Bound {
            map: "names per (client, domain) pair",
            key: "",
            len: self
                .pairs
                .iter()
                .map(|(_, a)| a.names.len())
                .max()
                .unwrap_or(0),
            cap: MAX_NAMES,
        });
    }

    /// Registered [`crate::Perspective::InsideServer`]: `host` is the
    /// record's server, inside; it is a resolver when it answers DNS for
    /// another inside host.
    fn on_flow(&mut self, host: IpAddr, rec: &FlowRecord, cx: &mut DetectCx<'_>) {
        // A resolver answers on 53, or wherever the classifier found DNS,
        // except the multicast and NetBIOS name services that share its
        // format: any host answers LLMNR or NetBIOS name queries for its
        // own name, and would otherwise be taken for a resolver whose own
        // queries are not judged.
        let dns_service = rec.server_port == 53
            || (rec.app_proto == AppProto::Dns && !matches!(rec.server_port, 137 | 5353 | 5355));
        if dns_service
            && matches!(rec.proto, 6 | 17)
            && rec.responder_answered
            && rec.client != host
            && cx.home.contains(rec.client)
        {
            self.resolvers.touch(host, rec.last_seen, || ());
        }
    }

    fn on_dns(&mut self, ev: &DnsEvent, cx: &mut DetectCx<'_>) {
        if ev.is_response || ev.qname.is_empty() {
            return;
        }
        if self.resolvers.get(&ev.client).is_some() {
            self.resolvers.touch(ev.client, ev.ts, || ());
            return;
        }
        // Bytes, not text: tunnels (iodine's base128) put any byte in names.
        let name = ev.qname.as_bytes();
        if self.allowed(name) {
            return;
        }
        let (domain, sub): (&[u8], &[u8]) = match registered_domain(name) {
            Some(d) if d.len() < name.len() => {
                // The subdomain part: what the client chose, i.e. where data hides.
                let sub = &name[..name.len() - d.len()];
                (d, sub.strip_suffix(b".").unwrap_or(sub))
            }
            Some(_) => return,
            // Data in the "TLD" position (old dnscat talks straight to its
            // server): every name has its own fake domain, so judge them
            // together, whole names as the carried part.
            None => (UNLISTED.as_bytes(), name),
        };
        let domain = String::from_utf8_lossy(domain);
        let domain = domain.as_ref();
        let window_us = self.cfg.window_secs.saturating_mul(1_000_000);
        let key = (ev.client, hash64(domain.as_bytes()));
        let a = self.pairs.touch(key, ev.ts, DomainActivity::default);
        if a.domain.is_empty() || ev.ts.micros_since(a.window_start) >= window_us {
            let alerted = a.alerted && a.domain == domain;
            *a = DomainActivity {
                domain: domain.to_string(),
                window_start: ev.ts,
                alerted,
                ..DomainActivity::default()
            };
        }
        a.queries += 1;
        a.server = Some(ev.server);
        *a.qtypes.entry(ev.qtype).or_default() += 1;
        if a.names.len() < MAX_NAMES && a.names.insert(hash64(sub)) {
            let letters: Vec<u8> = sub.iter().copied().filter(|&b| b != b'.').collect();
            a.sub_bytes += letters.len() as u64;
            a.entropy_sum += entropy(&letters);
            a.max_label = a.max_label.max(
                sub.split(|&b| b == b'.')
                    .map(<[u8]>::len)
                    .max()
                    .unwrap_or(0),
            );
        }
        let unique = a.names.len() as u64;
        if a.alerted || unique < self.cfg.min_unique_names {
            return;
        }
        let mean_len = a.sub_bytes as f64 / unique as f64;
        let mean_entropy = a.entropy_sum / unique as f64;
        let tunnel_types: u64 = [5u16, 10, 15, 16]
            .iter()
            .map(|t| a.qtypes.get(t).copied().unwrap_or(0))
            .sum();
        let tunnel_share = tunnel_types as f64 / a.queries.max(1) as f64;
        // Long, fresh, non-repetitive names under one domain are the carrier;
        // then any one of volume, sheer count, or the record types tunnels
        // need for their answers (TXT, NULL, CNAME, MX) settles it.
        let carrier =
            mean_len >= self.cfg.min_mean_subdomain_len && mean_entropy >= self.cfg.min_entropy;
        let settled = a.sub_bytes >= self.cfg.min_bytes
            || unique >= 3 * self.cfg.min_unique_names
            || tunnel_share >= 0.5;
        if !(carrier && settled) {
            return;
        }
        a.alerted = true;
        let mut evidence = BTreeMap::new();
        evidence.insert("domain", json!(a.domain));
        evidence.insert("queries", json!(a.queries));
        evidence.insert("unique_names", json!(unique));
        evidence.insert("bytes_in_names", json!(a.sub_bytes));
        evidence.insert(
            "mean_subdomain_len",
            json!((mean_len * 10.0).round() / 10.0),
        );
        evidence.insert(
            "mean_entropy_bits",
            json!((mean_entropy * 100.0).round() / 100.0),
        );
        evidence.insert("max_label_len", json!(a.max_label));
        evidence.insert(
            "qtypes",
            json!(a
                .qtypes
                .iter()
                .map(|(t, n)| (qtype_name(*t), *n))
                .collect::<BTreeMap<_, _>>()),
        );
        evidence.insert(
            "tunnel_qtype_share",
            json!((tunnel_share * 100.0).round() / 100.0),
        );
        evidence.insert("window_secs", json!(self.cfg.window_secs));
        evidence.insert("window_start", json!(a.window_start));
        evidence.insert("example_name", json!(ev.qname.to_lossy_string()));
        let severity = if a.sub_bytes >= 5 * self.cfg.min_bytes {
            1
        } else {
            2
        };
        let description = format!(
            "{} sent {} unique long random names under {} to {} ({} bytes carried in names, mean {:.0} chars, {:.1} bits/char entropy)",
            ev.client, unique, a.domain, ev.server, a.sub_bytes, mean_len, mean_entropy
        );
        let outside = (!cx.home.contains(ev.server)).then_some(ev.server);
        let alert = Finding {
            ts: ev.ts,
            category: Category::EXFILTRATION,
            signature: "exfiltration.dns_tunnel",
            severity,
            description,
            mitre: Mitre {
                tactic: "TA0010",
                technique: "T1048",
            },
            src: ev.client,
            dest: Some(ev.server),
            ports: Some((ev.client_port, ev.server_port)),
            proto: Some(ev.proto),
            evidence,
            community_id: None,
            app_proto: None,
            outside,
        }
        .into_alert(cx);
        cx.raise(alert);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HomeNet;
    use tapsentry_intel::IntelSnapshot;
    use tapsentry_testkit::DnsEventBuilder;

    fn query(client: &str, name: &str, qtype: u16, t: i64) -> DnsEvent {
        assert!(name.len() <= tapsentry_types::DNS_NAME_MAX);
        DnsEventBuilder::query(client, "10.0.0.53", name)
            .qtype(qtype)
            .at_micros(t * 1_000_000)
            .build()
    }

    fn run(d: &mut DnsTunnelDetector, evs: &[DnsEvent]) -> Vec<tapsentry_types::Alert> {
        let home = HomeNet::parse(&["10.0.0.0/8".into()]).unwrap();
        let intel = IntelSnapshot::empty();
        let mut out = Vec::new();
        let mut cx = DetectCx::new(&home, &intel, &mut out);
        for e in evs {
            d.on_dns(e, &mut cx);
        }
        out
    }

    /// A deterministic base32-looking label of `n` characters.
    fn random_label(seed: u64, n: usize) -> String {
        const ALPHA: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ALPHA[(x % 32) as usize] as char
            })
            .collect()
    }

    #[test]
    fn tunnel_of_txt_queries_alerts_once() {
        let mut d = DnsTunnelDetector::new(DnsTunnelConfig::default());
        let evs: Vec<_> = (0..40)
            .map(|i| {
                query(
                    "10.0.0.7",
                    &format!(
                        "{}.{}.t.evil-tunnel.com",
                        random_label(i, 50),
                        random_label(i + 1000, 40)
                    ),
                    16,
                    i as i64,
                )
            })
            .collect();
        let a = run(&mut d, &evs);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].alert.signature, "exfiltration.dns_tunnel");
        assert_eq!(a[0].src_ip.to_string(), "10.0.0.7");
        assert_eq!(a[0].dest_ip.unwrap().to_string(), "10.0.0.53");
        assert_eq!(a[0].evidence["domain"], "evil-tunnel.com");
        assert!(a[0].evidence["mean_entropy_bits"].as_f64().unwrap() > 4.0);
        // The verdict came with the tenth unique name (TXT settles it).
        assert_eq!(a[0].evidence["unique_names"], 10);
    }

    #[test]
    fn a_forwarding_resolver_is_not_judged_for_its_clients_queries() {
        let mut d = DnsTunnelDetector::new(DnsTunnelConfig::default());
        // 10.0.0.53 answered an inside client on port 53: a resolver.
        let rec = tapsentry_testkit::FlowRecordBuilder::udp("10.0.0.7", 40000, "10.0.0.53", 53)
            .answered(true)
            .build();
        assert!(crate::testutil::run_at(&mut d, "10.0.0.53", &rec, 0).is_empty());
        // The client's view of the same flow does not make the client one.
        assert!(crate::testutil::run_at(&mut d, "10.0.0.7", &rec, 0).is_empty());
        let tunnel = |client: &str, server: &str| -> Vec<DnsEvent> {
            (0..40)
                .map(|i| {
                    let mut q = query(
                        client,
                        &format!("{}.t.evil-tunnel.com", random_label(i, 60)),
                        16,
                        10 + i as i64,
                    );
                    q.server = server.parse().unwrap();
                    q
                })
                .collect()
        };
        // Forwarded upstream by the resolver: quiet.
        assert!(run(&mut d, &tunnel("10.0.0.53", "198.51.100.1")).is_empty());
        // The client itself is still judged.
        assert_eq!(run(&mut d, &tunnel("10.0.0.7", "10.0.0.53")).len(), 1);

        // A resolver on 5300, named DNS by the classifier, is one too; a
        // host answering LLMNR (5355) for its own name is not.
        let dns_on = |server: &str, port: u16| {
            tapsentry_testkit::FlowRecordBuilder::udp("10.0.0.7", 40000, server, port)
                .answered(true)
                .app_proto(AppProto::Dns)
                .build()
        };
        let mut d = DnsTunnelDetector::new(DnsTunnelConfig::default());
        let r = dns_on("10.0.0.54", 5300);
        assert!(crate::testutil::run_at(&mut d, "10.0.0.54", &r, 0).is_empty());
        let r = dns_on("10.0.0.9", 5355);
        assert!(crate::testutil::run_at(&mut d, "10.0.0.9", &r, 0).is_empty());
        assert!(run(&mut d, &tunnel("10.0.0.54", "198.51.100.1")).is_empty());
        let a = run(&mut d, &tunnel("10.0.0.9", "198.51.100.1"));
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn the_alert_names_the_server_port_of_dns_on_another_port() {
        let mut d = DnsTunnelDetector::new(DnsTunnelConfig::default());
        let evs: Vec<DnsEvent> = (0..40)
            .map(|i| {
                let mut q = query(
                    "10.0.0.7",
                    &format!("{}.t.evil-tunnel.com", random_label(i, 60)),
                    16,
                    i as i64,
                );
                q.server_port = 1053;
                q
            })
            .collect();
        let a = run(&mut d, &evs);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].dest_port, Some(1053));
    }

    #[test]
    fn cdn_names_reverse_lookups_and_dnsbl_stay_quiet() {
        let mut d = DnsTunnelDetector::new(DnsTunnelConfig::default());
        let mut evs = Vec::new();
        for i in 0..300 {
            evs.push(query(
                "10.0.0.8",
                &format!("e{i}.dscb.akamaiedge.net"),
                1,
                i,
            ));
            evs.push(query(
                "10.0.0.8",
                &format!("{}.{}.10.in-addr.arpa", i % 250, i / 250),
                12,
                i,
            ));
            evs.push(query(
                "10.0.0.25",
                &format!("{}.{}.113.203.zen.spamhaus.org", i % 250, i / 250),
                1,
                i,
            ));
            evs.push(query(
                "10.0.0.8",
                &format!("img{i}.static.example.com"),
                28,
                i,
            ));
        }
        assert!(run(&mut d, &evs).is_empty());
    }

    #[test]
    fn few_names_or_short_names_are_not_enough() {
        let mut d = DnsTunnelDetector::new(DnsTunnelConfig::default());
        let few: Vec<_> = (0..9)
            .map(|i| {
                query(
                    "10.0.0.9",
                    &format!("{}.x.evil.org", random_label(i, 60)),
                    16,
                    i as i64,
                )
            })
            .collect();
        assert!(run(&mut d, &few).is_empty());
        let short: Vec<_> = (0..200)
            .map(|i| {
                query(
                    "10.0.0.10",
                    &format!("{}.evil.org", random_label(i, 8)),
                    16,
                    i as i64,
                )
            })
            .collect();
        assert!(run(&mut d, &short).is_empty());
    }

    #[test]
    fn entropy_is_bounded_and_memory_is_bounded() {
        assert_eq!(entropy(b""), 0.0);
        assert_eq!(entropy(b"aaaa"), 0.0);
        assert!((entropy(b"ab") - 1.0).abs() < 1e-9);
        let mut d = DnsTunnelDetector::new(DnsTunnelConfig {
            max_tracked: 20,
            ..DnsTunnelConfig::default()
        });
        let evs: Vec<_> = (0..500)
            .map(|i| query("10.0.0.11", &format!("a.domain{i}.com"), 1, i))
            .collect();
        run(&mut d, &evs);
        assert!(d.pairs.len() <= 20);
    }
}
