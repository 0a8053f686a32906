//! Detectors on the real captures of the shared corpus: the attacks are
//! found with the right `src_ip` and `dest_ip`, the benign captures raise
//! nothing.

use std::path::Path;

use crate::common::{replay, shared, stderr};

#[test]
fn dns_tunnels_are_found_with_client_and_resolver() {
    let dir = tempfile::tempdir().unwrap();
    for (file, client, resolver) in [
        ("dns-tunnel-iodine-elastic.pcap", "10.0.2.30", "10.0.2.20"),
        (
            "dns-tunnel-iodine-small.pcap",
            "192.168.1.17",
            "192.168.1.210",
        ),
        (
            "dns-tunnel-dnscat-ndpi.pcap",
            "192.168.220.56",
            "192.168.203.167",
        ),
        (
            "dns-tunnel-dnscat2-small.pcap",
            "192.168.1.17",
            "192.168.1.210",
        ),
        (
            "dns-tunnel-dns2tcp-small.pcap",
            "192.168.1.17",
            "192.168.1.210",
        ),
        (
            "dns-exfil-dnsexfiltrator-small.pcap",
            "192.168.1.102",
            "192.168.1.210",
        ),
    ] {
        let (out, alerts, _) = replay(dir.path(), &[], &[&shared(&format!("attacks/{file}"))]);
        assert!(out.status.success(), "{file}: {}", stderr(&out));
        let tunnel: Vec<_> = alerts
            .iter()
            .filter(|a| a["alert"]["signature"] == "exfiltration.dns_tunnel")
            .collect();
        assert_eq!(tunnel.len(), 1, "{file}: {alerts:#?}");
        assert_eq!(tunnel[0]["src_ip"], client, "{file}");
        assert_eq!(tunnel[0]["dest_ip"], resolver, "{file}");
        assert_eq!(tunnel[0]["alert"]["category"], "exfiltration");
    }
}

#[test]
fn ssh_brute_force_from_outside_is_found() {
    let dir = tempfile::tempdir().unwrap();
    // The captures use 240.0.0.0/4 addresses; the SSH server's network is "inside".
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[network]\nhome_net = [\"240.125.0.0/16\"]\n[intel]\ntor_exit_list = \"\"\ngeoip_city = \"\"\ngeoip_asn = \"\"\n",
    )
    .unwrap();
    for (file, attacker) in [
        ("ssh-bruteforce-hydra-1task.pcap", "240.0.1.2"),
        ("ssh-bruteforce-hydra-4tasks.pcap", "240.0.1.3"),
        ("ssh-bruteforce-medusa-1task.pcap", "240.0.2.2"),
        ("ssh-bruteforce-ncrack-paranoid.pcap", "240.0.3.2"),
        ("ssh-bruteforce-ncrack-polite.pcap", "240.0.3.4"),
    ] {
        let (out, alerts, _) = replay(
            dir.path(),
            &["--config", cfg.to_str().unwrap()],
            &[&shared(&format!("attacks/{file}"))],
        );
        assert!(out.status.success(), "{file}: {}", stderr(&out));
        let bf: Vec<_> = alerts
            .iter()
            .filter(|a| {
                a["alert"]["signature"] == "external_login.brute_force"
                    && a["event_type"] == "alert"
            })
            .collect();
        assert_eq!(bf.len(), 1, "{file}: {alerts:#?}");
        assert_eq!(bf[0]["src_ip"], attacker, "{file}");
        assert_eq!(bf[0]["dest_ip"], "240.125.0.2", "{file}");
        assert_eq!(bf[0]["alert"]["mitre"]["technique"], "T1110");
    }
}

#[test]
fn benign_captures_raise_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<_> = std::fs::read_dir(shared("benign"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 15);
    assert!(files.iter().any(|f| f.ends_with("gnutella-p2p.pcap")));
    for f in &files {
        let (out, alerts, _) = replay(dir.path(), &[], &[Path::new(f)]);
        assert!(out.status.success(), "{}: {}", f.display(), stderr(&out));
        // gnutella-p2p.pcap is among them: a P2P client whose stale peer
        // list makes most of its first contacts fail; port_scan's peer-list
        // exemption keeps it quiet (docs/detections.md, port_scan).
        assert!(alerts.is_empty(), "{}: {alerts:#?}", f.display());
    }
}

#[test]
fn port_scans_are_found_with_the_scanner() {
    let dir = tempfile::tempdir().unwrap();
    for (file, scanner, target, signature) in [
        (
            "masscan-tcp-ports-0-1000.pcap",
            "172.31.15.102",
            Some("198.124.152.15"),
            "port_scan.vertical",
        ),
        (
            "masscan-udp-ports-0-1000.pcap",
            "172.31.15.102",
            Some("198.124.152.15"),
            "port_scan.vertical",
        ),
        (
            "nmap-syn-scan-1000-ports.pcap",
            "172.16.0.8",
            Some("64.13.134.52"),
            "port_scan.vertical",
        ),
        (
            "nmap-syn-ping-sweep-256-hosts.pcapng",
            "10.0.0.128",
            None,
            "port_scan.horizontal",
        ),
        // Bare ACKs from one port to port 80 of a /24, nothing answers: the
        // count fallback of a one-way view.
        (
            "nmap-ack-ping-sweep-256-hosts.pcapng",
            "10.0.0.128",
            None,
            "port_scan.horizontal",
        ),
    ] {
        let (out, alerts, _) = replay(dir.path(), &[], &[&shared(&format!("attacks/{file}"))]);
        assert!(out.status.success(), "{file}: {}", stderr(&out));
        let scans: Vec<_> = alerts
            .iter()
            // Alert lines only: a scan that went on is also told in an
            // alert_update (tests/integration/operator.rs).
            .filter(|a| a["alert"]["category"] == "port_scan" && a["event_type"] == "alert")
            .collect();
        assert_eq!(scans.len(), 1, "{file}: {alerts:#?}");
        assert_eq!(scans[0]["alert"]["signature"], signature, "{file}");
        assert_eq!(scans[0]["src_ip"], scanner, "{file}");
        match target {
            Some(t) => assert_eq!(scans[0]["dest_ip"], t, "{file}"),
            None => assert!(scans[0].get("dest_ip").is_none(), "{file}"),
        }
        if file.contains("ack-ping") {
            assert_eq!(scans[0]["evidence"]["scan_type"], "ack", "{file}");
        }
    }
}
