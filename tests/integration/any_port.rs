//! Detectors that recognise services by protocol, whatever the port, on
//! real packets: the shared captures as they are (SSH on 8000, VNC on
//! 5901) and moved to other ports with [`remapped`] (the same packets,
//! the service's port changed, checksums kept): nmap-style SSH brute force
//! on 902, VNC logins on 6900, Telnet, RDP, a DNS tunnel on 1053, spam
//! through a proxy on 8240, an upload over QUIC on 4443.

use std::path::Path;

use serde_json::Value;

use crate::common::{remapped, replay, shared, stderr};

/// A config with `home` inside, no intel files, and `extra` TOML appended.
fn config(dir: &Path, home: &str, extra: &str) -> String {
    let cfg = dir.join("any-port.toml");
    std::fs::write(
        &cfg,
        format!(
            "[network]\nhome_net = [{home}]\n[intel]\ntor_exit_list = \"\"\n\
             geoip_city = \"\"\ngeoip_asn = \"\"\n{extra}"
        ),
    )
    .unwrap();
    cfg.display().to_string()
}

/// Replays `pcap` with `cfg` and returns its alert lines (not the
/// `alert_update` records of findings that went on).
fn alerts_of(dir: &Path, cfg: &str, pcap: &Path) -> Vec<Value> {
    let (out, alerts, _) = replay(dir, &["--config", cfg], &[pcap]);
    assert!(out.status.success(), "{}", stderr(&out));
    alerts
        .into_iter()
        .filter(|a| a["event_type"] == "alert")
        .collect()
}

fn signatures(alerts: &[Value]) -> Vec<&str> {
    alerts
        .iter()
        .map(|a| a["alert"]["signature"].as_str().unwrap())
        .collect()
}

/// Learning off for the login detector: every session is judged, so a
/// failed attempt mistaken for a login would alert.
const LOGIN_NO_LEARNING: &str = "[detect.external_login]\nlearning_secs = 0\n";

#[test]
fn ssh_brute_force_on_port_902_is_found_by_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "\"240.125.0.0/16\"", LOGIN_NO_LEARNING);
    for (file, attacker) in [
        ("ssh-bruteforce-hydra-1task.pcap", "240.0.1.2"),
        ("ssh-bruteforce-medusa-1task.pcap", "240.0.2.2"),
        ("ssh-bruteforce-ncrack-polite.pcap", "240.0.3.4"),
    ] {
        let pcap = remapped(&shared(&format!("attacks/{file}")), dir.path(), 22, 902);
        let alerts = alerts_of(dir.path(), &cfg, &pcap);
        // One brute force, and not one of its hundreds of failed sessions
        // taken for a login (learning is off: each would be judged).
        assert_eq!(
            signatures(&alerts),
            ["external_login.brute_force"],
            "{file}: {alerts:#?}"
        );
        let a = &alerts[0];
        assert_eq!(a["src_ip"], attacker, "{file}");
        assert_eq!(a["dest_ip"], "240.125.0.2", "{file}");
        assert_eq!(a["dest_port"], 902, "{file}");
        assert_eq!(a["app_proto"], "ssh", "{file}");
        assert_eq!(a["evidence"]["service"], "SSH", "{file}");
    }
}

#[test]
fn vnc_login_on_port_6900_is_found_by_what_was_exchanged() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "\"192.168.2.125/32\"", LOGIN_NO_LEARNING);
    // As captured (5901, not in `ports`) and moved to 6900.
    let original = shared("protocols/vnc-mac-to-linux-5901.pcap");
    for (pcap, port) in [
        (original.clone(), 5901),
        (remapped(&original, dir.path(), 5901, 6900), 6900),
    ] {
        let alerts = alerts_of(dir.path(), &cfg, &pcap);
        assert_eq!(
            signatures(&alerts),
            ["external_login.unusual_source"],
            "{alerts:#?}"
        );
        let a = &alerts[0];
        // The full session (31 kB), not the two that stopped at the VNC
        // authentication challenge, although those came first.
        assert_eq!(a["src_port"], 49259);
        assert_eq!(a["dest_port"], port);
        assert_eq!(a["app_proto"], "rfb");
        assert_eq!(a["evidence"]["service"], "VNC");
        assert_eq!(a["evidence"]["judged_by"], "exchange");
    }
}

#[test]
fn short_telnet_ssh_and_rdp_logins_on_other_ports_are_logins() {
    let dir = tempfile::tempdir().unwrap();
    for (file, from, to, home, client_port, app) in [
        // 40 s: under the 60 s the duration rule asks for.
        (
            "protocols/telnet-login.pcap",
            23,
            2323,
            "192.168.0.1/32",
            1550,
            "telnet",
        ),
        (
            "protocols/ssh-lan-and-port-8000.pcap",
            22,
            2222,
            "172.16.238.168/32",
            58395,
            "ssh",
        ),
        // The 41 s session, not the 1.9 kB connection before it.
        (
            "protocols/lm-rdp-lan-tls.pcap",
            3389,
            13389,
            "192.168.1.150/32",
            49207,
            "rdp",
        ),
    ] {
        let cfg = config(dir.path(), &format!("\"{home}\""), LOGIN_NO_LEARNING);
        let pcap = remapped(&shared(file), dir.path(), from, to);
        let alerts = alerts_of(dir.path(), &cfg, &pcap);
        let logins: Vec<&Value> = alerts
            .iter()
            .filter(|a| a["alert"]["category"] == "external_login")
            .collect();
        assert_eq!(logins.len(), 1, "{file}: {alerts:#?}");
        let a = logins[0];
        assert_eq!(a["alert"]["signature"], "external_login.unusual_source");
        assert_eq!(a["src_port"], client_port, "{file}");
        assert_eq!(a["dest_port"], to, "{file}");
        assert_eq!(a["app_proto"], app, "{file}");
    }
}

#[test]
fn refused_and_challenge_only_sessions_are_not_logins() {
    let dir = tempfile::tempdir().unwrap();
    // One RDP/TLS attempt from outside, reset after 1.2 s, moved to 33890.
    let cfg = config(dir.path(), "\"89.31.79.12/32\"", LOGIN_NO_LEARNING);
    let pcap = remapped(
        &shared("attacks/rdp-from-outside-single.pcap"),
        dir.path(),
        3389,
        33890,
    );
    let alerts = alerts_of(dir.path(), &cfg, &pcap);
    assert!(alerts.is_empty(), "{alerts:#?}");
    // The zeek SSH password guessing: 11 sessions of banner and key
    // exchange, each 3-4 kB; a brute force, no login.
    let cfg = config(dir.path(), "\"192.168.56.103/32\"", LOGIN_NO_LEARNING);
    let pcap = remapped(
        &shared("attacks/ssh-password-guessing-zeek.pcap"),
        dir.path(),
        22,
        2200,
    );
    let alerts = alerts_of(dir.path(), &cfg, &pcap);
    assert_eq!(
        signatures(&alerts),
        ["external_login.brute_force"],
        "{alerts:#?}"
    );
}

#[test]
fn ssh_on_port_8000_between_inside_hosts_is_an_unusual_port() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "\"127.0.0.0/8\", \"172.16.238.0/24\"",
        "[detect.unusual_protocol]\nlearning_secs = 0\n",
    );
    let alerts = alerts_of(
        dir.path(),
        &cfg,
        &shared("protocols/ssh-lan-and-port-8000.pcap"),
    );
    // The loopback SSH on 8000, not the LAN one on 22.
    assert_eq!(
        signatures(&alerts),
        ["unusual_protocol.unusual_port"],
        "{alerts:#?}"
    );
    let a = &alerts[0];
    assert_eq!(
        (a["src_ip"].as_str(), a["dest_ip"].as_str()),
        (Some("127.0.0.1"), Some("127.0.0.1"))
    );
    assert_eq!(a["dest_port"], 8000);
    assert_eq!(a["app_proto"], "ssh");
    assert_eq!(a["alert"]["mitre"]["technique"], "T1571");
}

#[test]
fn unusual_ports_stay_quiet_on_the_shared_benign_captures() {
    let dir = tempfile::tempdir().unwrap();
    // Learning off: every named flow between inside hosts is judged.
    let cfg = config(
        dir.path(),
        "\"10.0.0.0/8\", \"172.16.0.0/12\", \"192.168.0.0/16\"",
        "[detect.unusual_protocol]\nlearning_secs = 0\n",
    );
    let mut files: Vec<_> = std::fs::read_dir(shared("benign"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 17, "{files:?}");
    for pcap in files {
        let alerts = alerts_of(dir.path(), &cfg, &pcap);
        let odd: Vec<_> = alerts
            .iter()
            .filter(|a| a["alert"]["signature"] == "unusual_protocol.unusual_port")
            .collect();
        assert!(odd.is_empty(), "{}: {odd:#?}", pcap.display());
    }
}

#[test]
fn dns_tunnels_on_port_1053_are_found() {
    let dir = tempfile::tempdir().unwrap();
    // The six tunnels of the corpus (iodine x2, dnscat, dnscat2, dns2tcp,
    // DNSExfiltrator), as `detections.rs` finds them on 53.
    for (file, client, resolver) in [
        ("dns-tunnel-iodine-elastic.pcap", "10.0.2.30", "10.0.2.20"),
        (
            "dns-tunnel-dnscat-ndpi.pcap",
            "192.168.220.56",
            "192.168.203.167",
        ),
        (
            "dns-tunnel-dns2tcp-small.pcap",
            "192.168.1.17",
            "192.168.1.210",
        ),
        (
            "dns-tunnel-iodine-small.pcap",
            "192.168.1.17",
            "192.168.1.210",
        ),
        (
            "dns-tunnel-dnscat2-small.pcap",
            "192.168.1.17",
            "192.168.1.210",
        ),
        (
            "dns-exfil-dnsexfiltrator-small.pcap",
            "192.168.1.102",
            "192.168.1.210",
        ),
    ] {
        let pcap = remapped(&shared(&format!("attacks/{file}")), dir.path(), 53, 1053);
        let (out, alerts, stats) = replay(dir.path(), &[], &[&pcap]);
        assert!(out.status.success(), "{file}: {}", stderr(&out));
        // Nothing left on 53: every message was summarised by the ingest
        // stage, none by the reader.
        assert_eq!(stats["capture"]["dns_messages"], 0, "{file}");
        assert!(
            stats["capture"]["dns_messages_other_ports"]
                .as_u64()
                .unwrap()
                > 10,
            "{file}: {stats:#}"
        );
        let tunnel: Vec<_> = alerts
            .iter()
            .filter(|a| a["alert"]["signature"] == "exfiltration.dns_tunnel")
            .collect();
        assert_eq!(tunnel.len(), 1, "{file}: {alerts:#?}");
        assert_eq!(tunnel[0]["src_ip"], client, "{file}");
        assert_eq!(tunnel[0]["dest_ip"], resolver, "{file}");
        assert_eq!(tunnel[0]["dest_port"], 1053, "{file}");
    }
}

#[test]
fn spam_through_an_open_proxy_on_8240_is_smtp() {
    let dir = tempfile::tempdir().unwrap();
    // One connection: HTTP CONNECT, then SMTP inside it. Thresholds at one
    // connection so the single real session can decide.
    let cfg = config(
        dir.path(),
        "\"79.26.245.236/32\"",
        "[detect.spambot]\nlearning_secs = 0\nmin_connections = 1\n",
    );
    let alerts = alerts_of(
        dir.path(),
        &cfg,
        &shared("protocols/smtp-via-http-connect-8240.pcap"),
    );
    assert_eq!(
        signatures(&alerts),
        ["spambot.outbound_smtp"],
        "{alerts:#?}"
    );
    let a = &alerts[0];
    assert_eq!(a["src_ip"], "79.26.245.236");
    assert_eq!(a["dest_ip"], "254.228.86.79");
    assert_eq!(
        a["evidence"]["smtp_on_other_ports"],
        serde_json::json!([8240])
    );
    // The inside sender's SMTP egress, never the mail servers it reached.
    assert_eq!(a["response"]["action"], "isolate");
    assert!(a["response"]["isolate"]["nftables"]
        .as_str()
        .unwrap()
        .contains("8240"));
}

#[test]
fn exfiltration_names_the_protocol_from_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "\"192.168.0.0/16\"",
        "[detect.exfiltration]\nlearning_secs = 0\nmin_bytes = 100000\n\
         [detect.data_collection]\nlearning_secs = 0\nmin_bytes = 100000\n",
    );
    // The YouTube upload over QUIC moved from 443 to 4443: the port would
    // say "other", the bytes say QUIC.
    let pcap = remapped(
        &shared("attacks/http-upload-youtube.pcap"),
        dir.path(),
        443,
        4443,
    );
    let alerts = alerts_of(dir.path(), &cfg, &pcap);
    assert_eq!(signatures(&alerts), ["exfiltration.volume"], "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a["dest_port"], 4443);
    assert_eq!(a["evidence"]["app_protocol"], "HTTPS");
    assert_eq!(a["evidence"]["top_destinations"][0]["app_proto"], "quic");
    assert_eq!(a["alert"]["mitre"]["technique"], "T1048.002");
    assert!(a["alert"]["description"]
        .as_str()
        .unwrap()
        .contains("(HTTPS, 4443/UDP)"));
    // An active-mode FTP upload whose control connection moved to 2121:
    // its data connections, opened from port 20, are still FTP's (the
    // passive case, named through the control connection's verdict, is
    // the detector's unit test).
    let cfg = config(
        dir.path(),
        "\"192.168.1.228/32\"",
        "[detect.exfiltration]\nlearning_secs = 0\nmin_bytes = 100000\n",
    );
    let pcap = remapped(&shared("attacks/ftp-upload-lan.pcap"), dir.path(), 21, 2121);
    let alerts = alerts_of(dir.path(), &cfg, &pcap);
    assert_eq!(signatures(&alerts), ["exfiltration.volume"], "{alerts:#?}");
    assert_eq!(alerts[0]["evidence"]["app_protocol"], "FTP");
}
