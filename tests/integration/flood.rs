//! Floods (issue 16): a spoofed SYN flood of unique 5-tuples gives one
//! aggregated `flood` alert about the host flooded, not silence and not a
//! line per source, while the flow table stays within its cap and counts
//! what it could not keep.

use std::path::Path;

use tapsentry_testkit::{syn_flood, SynFlood};

use crate::common::{replay, stderr};

/// 200 000 SYNs from 200 000 spoofed sources at 20 000 a second (10 s) to
/// 10.1.0.80:80, through a flow table capped at 50 000 flows.
#[test]
fn a_spoofed_syn_flood_is_one_flood_alert_within_the_caps() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("flood.pcap");
    syn_flood(
        &SynFlood {
            target: [10, 1, 0, 80],
            port: 80,
            packets: 200_000,
            rate_per_sec: 20_000.0,
            start_secs: 0.0,
            seed: 16,
        },
        &pcap,
    )
    .unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[intel]\ntor_exit_list = \"\"\ngeoip_city = \"\"\ngeoip_asn = \"\"\n[flow]\nmax_flows = 50000\n",
    )
    .unwrap();
    let (out, alerts, stats) = replay(
        dir.path(),
        &["--config", cfg.to_str().unwrap(), "--workers", "2"],
        &[Path::new(&pcap)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let floods: Vec<_> = alerts
        .iter()
        .filter(|a| a["alert"]["category"] == "flood")
        .collect();
    assert_eq!(floods.len(), 1, "{alerts:#?}");
    let f = floods[0];
    assert_eq!(f["src_ip"], "10.1.0.80");
    assert!(f.get("dest_ip").is_none(), "{f}");
    assert_eq!(f["alert"]["signature"], "flood.syn");
    assert_eq!(f["alert"]["mitre"]["tactic"], "TA0040");
    assert_eq!(f["alert"]["mitre"]["technique"], "T1498.001");
    let e = &f["evidence"];
    assert_eq!(e["spoofed"], true, "{e}");
    assert!(e["rate_per_sec"].as_f64().unwrap() >= 5_000.0, "{e}");
    assert!(e["distinct_sources"].as_u64().unwrap() >= 5_000, "{e}");
    assert_eq!(e["dest_ports"][0]["port"], 80);
    // Not a line per source: besides the flood, at most a handful.
    assert!(alerts.len() < 10, "{} alerts", alerts.len());
    // The caps held; what did not fit was evicted or refused, and counted.
    let flows = &stats["flows"];
    assert!(flows["active"].as_u64().unwrap() <= 50_000, "{flows}");
    let created = flows["created"].as_u64().unwrap();
    let refused = flows["refused"].as_u64().unwrap();
    assert_eq!(created + refused, 200_000, "{flows}");
    assert!(flows["evicted"].as_u64().unwrap() > 0, "{flows}");
    assert_eq!(stats["capture"]["packets"], 200_000);
}
