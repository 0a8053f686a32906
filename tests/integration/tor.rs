//! The Tor exit detector end to end: both list formats, both directions,
//! the alert record's contract fields, GeoIP, suppression.

use std::path::Path;

use serde_json::Value;

use crate::common::{replay, stderr};
use tapsentry_testkit::scenario::{ip, Scenario};

const PLAIN_LIST: &str =
    "# Tor exits (test list)\n185.220.101.4\n\n  171.25.193.20  \n2a0b:f4c2::1\n";
const EXIT_ADDRESSES: &str = "ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E\nPublished 2024-03-01 09:00:00\nLastStatus 2024-03-01 10:00:00\nExitAddress 185.220.101.4 2024-03-01 10:02:13\nExitNode 0091174DE56EA5E6BBA6A8E34E0B3B9B6E9C8B7A\nPublished 2024-03-01 08:00:00\nLastStatus 2024-03-01 09:00:00\nExitAddress 171.25.193.20 2024-03-01 09:14:02\nExitNode 00A5A6B1E5B9E8E6E0C9B0D7F7E1A2B3C4D5E6F7\nPublished 2024-03-01 08:00:00\nLastStatus 2024-03-01 09:00:00\nExitAddress 2a0b:f4c2::1 2024-03-01 09:20:00\n";

fn scenario(path: &Path) {
    let mut s = Scenario::new();
    // Outbound to an exit: established, data both ways.
    s.session(
        1.0,
        ip("10.1.0.5"),
        50000,
        ip("185.220.101.4"),
        443,
        1200,
        5400,
        2.0,
    );
    // A later refused attempt to the same exit: same finding, suppressed.
    s.refused(5.0, ip("10.1.0.5"), 50001, ip("185.220.101.4"), 9001);
    // Inbound from an exit to an inside SSH server, answered.
    s.session(
        3.0,
        ip("171.25.193.20"),
        40000,
        ip("10.1.0.9"),
        22,
        3000,
        3000,
        1.0,
    );
    // IPv6 outbound.
    s.session(
        4.0,
        ip("fd00::5"),
        50010,
        ip("2a0b:f4c2::1"),
        443,
        100,
        100,
        0.5,
    );
    // Ordinary browsing to an unlisted server: no alert.
    s.session(
        2.0,
        ip("10.1.0.5"),
        50002,
        ip("93.184.216.34"),
        443,
        500,
        20_000,
        1.0,
    );
    s.clock(120.0);
    s.write(path).unwrap();
}

fn config(dir: &Path, list: &str, geo: bool) -> String {
    let list_path = dir.join("tor.txt");
    std::fs::write(&list_path, list).unwrap();
    let geo_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/geoip");
    let (city, asn) = if geo {
        (
            geo_dir
                .join("GeoLite2-City-Test.mmdb")
                .display()
                .to_string(),
            geo_dir.join("GeoLite2-ASN-Test.mmdb").display().to_string(),
        )
    } else {
        (String::new(), String::new())
    };
    let cfg = dir.join("sensor.toml");
    std::fs::write(
        &cfg,
        format!(
            "[intel]\ntor_exit_list = {:?}\ngeoip_city = {city:?}\ngeoip_asn = {asn:?}\n",
            list_path.display().to_string()
        ),
    )
    .unwrap();
    cfg.display().to_string()
}

fn by_sig<'a>(alerts: &'a [Value], sig: &str, src: &str) -> &'a Value {
    alerts
        .iter()
        .find(|a| a["alert"]["signature"] == sig && a["src_ip"] == src)
        .unwrap_or_else(|| panic!("no {sig} from {src} in {alerts:#?}"))
}

fn check_alerts(alerts: &[Value], stats: &Value) {
    assert_eq!(alerts.len(), 3, "{alerts:#?}");
    let out = by_sig(alerts, "tor.exit_outbound", "10.1.0.5");
    assert_eq!(out["dest_ip"], "185.220.101.4");
    assert_eq!(out["dest_port"], 443);
    assert_eq!(out["proto"], "TCP");
    assert_eq!(out["event_type"], "alert");
    assert_eq!(out["alert"]["category"], "tor");
    assert_eq!(out["alert"]["severity"], 2);
    assert_eq!(out["alert"]["mitre"]["tactic"], "TA0011");
    assert_eq!(out["alert"]["mitre"]["technique"], "T1090.003");
    assert_eq!(out["timestamp"], "2023-11-14T22:13:21.000000Z");
    // Six packets with 40 bytes of IPv4+TCP headers, plus 1200 bytes of data.
    assert_eq!(out["evidence"]["bytes_to_server"], 6 * 40 + 1200);
    assert!(out["community_id"].as_str().unwrap().starts_with("1:"));
    assert!(out["response"]["block"]["nftables"]
        .as_str()
        .unwrap()
        .contains("185.220.101.4"));
    assert!(out["response"]["block"]["iptables"]
        .as_str()
        .unwrap()
        .contains("185.220.101.4"));
    let inbound = by_sig(alerts, "tor.exit_inbound", "171.25.193.20");
    assert_eq!(inbound["dest_ip"], "10.1.0.9");
    assert_eq!(inbound["dest_port"], 22);
    assert_eq!(inbound["alert"]["severity"], 1);
    let v6 = by_sig(alerts, "tor.exit_outbound", "fd00::5");
    assert_eq!(v6["dest_ip"], "2a0b:f4c2::1");
    // The refused attempt to the same exit is the same finding.
    assert_eq!(stats["alerts"]["suppressed"], 1);
    assert_eq!(stats["alerts"]["by_category"]["tor"], 3);
}

#[test]
fn plain_list_both_directions() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("tor.pcap");
    scenario(&pcap);
    let cfg = config(dir.path(), PLAIN_LIST, false);
    let (out, alerts, stats) = replay(dir.path(), &["--config", &cfg], &[&pcap]);
    assert!(out.status.success(), "{}", stderr(&out));
    check_alerts(&alerts, &stats);
    assert!(alerts.iter().all(|a| a.get("geo").is_none()));
}

#[test]
fn exit_addresses_format_gives_the_same_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("tor.pcap");
    scenario(&pcap);
    let cfg = config(dir.path(), PLAIN_LIST, false);
    let (_, plain, _) = replay(dir.path(), &["--config", &cfg], &[&pcap]);
    let cfg = config(dir.path(), EXIT_ADDRESSES, false);
    let (out, alerts, stats) = replay(dir.path(), &["--config", &cfg], &[&pcap]);
    assert!(out.status.success(), "{}", stderr(&out));
    check_alerts(&alerts, &stats);
    assert_eq!(plain, alerts);
}

#[test]
fn geoip_of_the_outside_party() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("geo.pcap");
    let mut s = Scenario::new();
    // Addresses the MaxMind test databases know: 81.2.69.142 (GB), 1.128.0.1 (AS1221).
    s.session(
        1.0,
        ip("10.1.0.5"),
        50000,
        ip("81.2.69.142"),
        443,
        100,
        100,
        0.1,
    );
    s.session(
        2.0,
        ip("10.1.0.6"),
        50000,
        ip("1.128.0.1"),
        443,
        100,
        100,
        0.1,
    );
    s.clock(100.0);
    s.write(&pcap).unwrap();
    let cfg = config(dir.path(), "81.2.69.142\n1.128.0.1\n", true);
    let (out, alerts, _) = replay(dir.path(), &["--config", &cfg], &[&pcap]);
    assert!(out.status.success(), "{}", stderr(&out));
    let gb = by_sig(&alerts, "tor.exit_outbound", "10.1.0.5");
    assert_eq!(gb["geo"]["country"], "GB");
    let asn = by_sig(&alerts, "tor.exit_outbound", "10.1.0.6");
    assert_eq!(asn["geo"]["asn"], 1221);
}
