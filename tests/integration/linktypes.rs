//! One replay per link type and container format: packet and byte totals
//! equal capinfos, and every frame tshark decodes as IP is decoded as IP.

use std::path::Path;
use std::process::Command;

use crate::common::{capinfos, fixture, replay, shared};

/// Frames tshark sees as IPv4 or IPv6.
fn tshark_ip_frames(path: &Path) -> Option<u64> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(path)
        .args(["-Y", "ip or ipv6", "-T", "fields", "-e", "frame.number"])
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).lines().count() as u64)
}

fn check(rel: &str, min_flows: u64) {
    let path = fixture(rel);
    let dir = tempfile::tempdir().unwrap();
    let (out, _alerts, stats) = replay(dir.path(), &[], &[&path]);
    assert!(
        out.status.success(),
        "{rel}: {}",
        crate::common::stderr(&out)
    );
    let packets = stats["capture"]["packets"].as_u64().unwrap();
    let bytes = stats["capture"]["wire_bytes"].as_u64().unwrap();
    let not_decoded = stats["capture"]["decode_errors_total"].as_u64().unwrap();
    if let Some((cp, cb)) = capinfos(&path) {
        assert_eq!(
            (packets, bytes),
            (cp, cb),
            "{rel}: totals differ from capinfos"
        );
    }
    if let Some(ip) = tshark_ip_frames(&path) {
        assert_eq!(
            packets - not_decoded,
            ip,
            "{rel}: decoded IP packets differ from tshark ({})",
            stats["capture"]["decode_errors"]
        );
    }
    let flows = stats["flows"]["created"].as_u64().unwrap();
    assert!(
        flows >= min_flows,
        "{rel}: {flows} flows, expected at least {min_flows}"
    );
}

macro_rules! linktype_tests {
    ($($name:ident: $file:literal, $min_flows:literal;)*) => {
        $(#[test] fn $name() { check(concat!("linktypes/", $file), $min_flows); })*
    };
}

linktype_tests! {
    ethernet: "ethernet-http-get.pcap", 1;
    vlan_8021q: "vlan-8021q-icmp.pcap", 1;
    vlan_vid0: "vlan-8021q-vid0-http.pcap", 1;
    qinq_8021ad: "qinq-8021ad.pcap", 1;
    qinq_three_tags: "vlan-qinqinq-http.pcap", 1;
    stacked_three_tags: "vlan-stacked-3-tags-icmp.pcap", 1;
    linux_sll: "linux-sll-tcp-fastopen.pcap", 2;
    linux_sll_in_pcapng: "linux-sll-in-pcapng.pcapng", 1;
    linux_sll2: "linux-sll2-http.pcap", 1;
    linux_sll2_tls: "linux-sll2-tls.pcap", 1;
    raw_101_ipv4: "raw-linktype-raw-101-ipv4-dns.pcap", 1;
    raw_101_ipv6: "raw-linktype-raw-101-ipv6-dns.pcap", 1;
    raw_228_ipv4: "raw-linktype-ipv4-228-dns.pcap", 1;
    raw_229_ipv6: "raw-linktype-ipv6-229-dns.pcap", 1;
    bsd_null_ipv4: "bsd-null-ipv4-http.pcap", 1;
    bsd_null_ipv6_af28: "bsd-null-ipv6-af28-icmpv6.pcap", 1;
    bsd_null_ipv6_af30: "bsd-null-ipv6-af30-http.pcap", 1;
    ppp: "ppp-fragmented-syn.pcap", 1;
    pppoe: "pppoe-session.pcap", 1;
    mpls_in_vlan: "mpls-in-vlan.pcap", 1;
    pcapng_two_interfaces: "pcapng-two-interfaces.pcapng", 1;
    pcapng_mixed_linktypes: "mixed-linktypes-merged.pcapng", 6;
    pcapng_126_interfaces: "pcapng-126-idbs-mixed-linktypes.pcapng", 1;
    pcap_nanosecond: "pcap-nanosecond-ether-http.pcap", 1;
    pcap_nanosecond_sll: "pcap-nanosecond-sll-tcp.pcap", 1;
    pcap_big_endian: "pcap-bigendian-nfs.pcap", 1;
    ipv6_extension_headers: "ipv6-hbh-routing0-dns.pcap", 1;
    ipv4_fragments: "ipv4-fragments-dns.pcap", 1;
    ipv6_fragments: "ipv6-fragments-dns.pcap", 1;
    bigtcp_ipv4: "ipv4-bigtcp-totlen0.pcap", 1;
    bigtcp_ipv6: "ipv6-bigtcp-hbh.pcap", 1;
    gre_tunnel_is_one_flow: "gre-ipv4-ssh-icmp.pcap", 1;
    esp: "ipsec-esp-ipv4.pcap", 1;
}

#[test]
fn arp_only_capture_has_no_flows_and_counts_not_ip() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _, stats) = replay(dir.path(), &[], &[&fixture("linktypes/linux-sll-arp.pcap")]);
    assert!(out.status.success());
    assert_eq!(stats["flows"]["created"], 0);
    assert_eq!(stats["capture"]["packets"], 12);
    assert_eq!(stats["capture"]["decode_errors_total"], 12);
}

#[test]
fn every_linktype_file_replays_and_matches_capinfos() {
    let dir = tempfile::tempdir().unwrap();
    let mut entries: Vec<_> = std::fs::read_dir(shared("linktypes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    assert!(entries.len() > 60);
    for path in entries {
        let (out, _, stats) = replay(dir.path(), &[], &[&path]);
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            crate::common::stderr(&out)
        );
        if let Some((cp, cb)) = capinfos(&path) {
            assert_eq!(stats["capture"]["packets"], cp, "{}", path.display());
            assert_eq!(stats["capture"]["wire_bytes"], cb, "{}", path.display());
        }
    }
}

#[test]
fn several_files_are_one_capture() {
    let dir = tempfile::tempdir().unwrap();
    let a = fixture("linktypes/ethernet-http-get.pcap");
    let b = fixture("linktypes/linux-sll2-http.pcap");
    let c = fixture("linktypes/raw-linktype-ipv6-229-dns.pcap");
    let (out, _, stats) = replay(dir.path(), &[], &[&a, &b, &c]);
    assert!(out.status.success());
    assert_eq!(stats["capture"]["packets"], 14 + 5 + 1);
    assert_eq!(stats["capture"]["wire_bytes"], 6087 + 458 + 77);
}

#[test]
fn unsupported_link_type_is_reported_once_counted_and_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = shared("malformed/derived-unknown-linktype.pcap");
    let good = fixture("linktypes/ethernet-http-get.pcap");
    let (out, _, stats) = replay(dir.path(), &[], &[&unknown, &good]);
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    let err = crate::common::stderr(&out);
    assert_eq!(
        err.matches("unsupported link type 65000").count(),
        1,
        "{err}"
    );
    // The good file after it is read in full.
    assert_eq!(stats["flows"]["created"], 1);
    let skipped = stats["capture"]["unsupported_link_frames"]
        .as_u64()
        .unwrap();
    if let Some((packets, _)) = capinfos(&unknown) {
        assert_eq!(skipped, packets);
    }
    assert!(skipped > 0);
}
