//! The volume detectors (`exfiltration.volume`, `data_collection`) on real
//! uploads from `../shared/pcaps/attacks`. The captures last seconds and
//! move kilobytes, so the floors are lowered and learning is off: these
//! tests check what is counted, attributed and named on real packets; the
//! baselines and the defaults are exercised on generated offices
//! (`office.rs`).

use crate::common::{replay, shared, stderr};

fn config(dir: &std::path::Path, home: &str) -> String {
    let cfg = dir.join("volume.toml");
    std::fs::write(
        &cfg,
        format!(
            "[network]\nhome_net = [{home}]\n[intel]\ntor_exit_list = \"\"\n\
             [detect.exfiltration]\nlearning_secs = 0\nmin_bytes = 100000\n\
             [detect.data_collection]\nlearning_secs = 0\nmin_bytes = 100000\n"
        ),
    )
    .unwrap();
    cfg.display().to_string()
}

#[test]
fn a_quic_upload_is_exfiltration_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "\"192.168.0.0/16\"");
    let pcap = shared("attacks/http-upload-youtube.pcap");
    let (out, alerts, _) = replay(dir.path(), &["--config", &cfg], &[&pcap]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a["alert"]["signature"], "exfiltration.volume");
    assert_eq!(a["src_ip"], "192.168.2.27");
    assert_eq!(a["dest_ip"], "172.217.23.111");
    assert_eq!(
        (a["dest_port"].as_u64(), a["proto"].as_str()),
        (Some(443), Some("UDP"))
    );
    assert_eq!(a["evidence"]["app_protocol"], "HTTPS");
    assert_eq!(a["alert"]["mitre"]["technique"], "T1048.002");
    let sent = a["evidence"]["bytes_sent_outside"].as_u64().unwrap();
    // The manifest's 108 kB up (tshark), counted from the IP header.
    assert!((100_000..=130_000).contains(&sent), "{sent}");
    // The leaking inside host is isolated; no rule against the receiver.
    assert_eq!(a["response"]["action"], "isolate");
    let rule = a["response"]["isolate"]["nftables"].as_str().unwrap();
    assert!(
        rule.contains("192.168.2.27") && !rule.contains("172.217.23.111"),
        "{rule}"
    );
    assert!(a["response"].get("block").is_none());
}

#[test]
fn active_mode_ftp_data_connections_are_attributed_to_ftp() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = shared("attacks/ftp-upload-lan.pcap");
    // The uploader inside, the FTP server outside: exfiltration over FTP,
    // although every data connection is opened by the server from port 20
    // to a high port of the uploader.
    let cfg = config(dir.path(), "\"192.168.1.228/32\"");
    let (out, alerts, _) = replay(dir.path(), &["--config", &cfg], &[&pcap]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a["alert"]["signature"], "exfiltration.volume");
    assert_eq!(
        (a["src_ip"].as_str(), a["dest_ip"].as_str()),
        (Some("192.168.1.228"), Some("192.168.1.8"))
    );
    assert_eq!(a["evidence"]["app_protocol"], "FTP");
    assert_eq!(a["dest_port"], 20);
    assert_eq!(a["alert"]["mitre"]["technique"], "T1048.003");

    // Both inside: the server collecting the files is a data_collection
    // finding about the server, naming the uploader; the uploader's side of
    // the same flows is not counted a second time.
    let cfg = config(dir.path(), "\"192.168.1.0/24\"");
    let (out, alerts, _) = replay(dir.path(), &["--config", &cfg], &[&pcap]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a["alert"]["category"], "data_collection");
    assert_eq!(
        (a["src_ip"].as_str(), a["dest_ip"].as_str()),
        (Some("192.168.1.8"), Some("192.168.1.228"))
    );
    assert_eq!(a["evidence"]["app_protocol"], "FTP");
    assert!(a.get("response").is_none());
}

#[test]
fn a_download_is_not_an_upload() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "\"192.168.0.0/16\"");
    // 117 kB fetched over passive-mode FTP: above the lowered floor, but
    // received, not sent.
    let pcap = shared("attacks/ftp-download-internet.pcap");
    let (out, alerts, _) = replay(dir.path(), &["--config", &cfg], &[&pcap]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(alerts.is_empty(), "{alerts:#?}");
}
