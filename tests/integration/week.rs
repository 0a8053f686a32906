//! The generated benign week (tapsentry-testkit's `week`): a short window
//! of a small office goes through the real binary, and the first messages
//! the generator writes decode as what they claim to be.

use std::net::IpAddr;

use tapsentry::config::SensorConfig;
use tapsentry::control::Control;
use tapsentry::pipeline::{Mode, Pipeline, Speed};
use tapsentry_intel::IntelSnapshot;
use tapsentry_output::JsonlSink;
use tapsentry_testkit::week::{Role, Week, WeekSpec};

use crate::common::{read_jsonl, replay, stderr};
use crate::week_source::WeekSource;

/// The server name of a TLS ClientHello that starts `p` (a TCP payload),
/// read by walking the record as a parser would: record and handshake
/// headers, random, session id, cipher suites, compression, extensions.
fn client_hello_sni(p: &[u8]) -> Option<String> {
    if p.len() < 9 || p[0] != 0x16 || p[5] != 1 {
        return None;
    }
    let rec_end = 5 + usize::from(u16::from_be_bytes([p[3], p[4]]));
    let p = p.get(..rec_end)?;
    let mut i = 9 + 2 + 32; // headers, legacy version, random
    i += 1 + usize::from(*p.get(i)?); // session id
    i += 2 + usize::from(u16::from_be_bytes([*p.get(i)?, *p.get(i + 1)?])); // suites
    i += 1 + usize::from(*p.get(i)?); // compression
    let ext_end = i + 2 + usize::from(u16::from_be_bytes([*p.get(i)?, *p.get(i + 1)?]));
    i += 2;
    while i + 4 <= ext_end.min(p.len()) {
        let ty = u16::from_be_bytes([p[i], p[i + 1]]);
        let len = usize::from(u16::from_be_bytes([p[i + 2], p[i + 3]]));
        let body = p.get(i + 4..i + 4 + len)?;
        if ty == 0 {
            // List length, name type 0, name length, name.
            let n = usize::from(u16::from_be_bytes([*body.get(3)?, *body.get(4)?]));
            return String::from_utf8(body.get(5..5 + n)?.to_vec()).ok();
        }
        i += 4 + len;
    }
    None
}

#[test]
fn two_office_hours_replay_and_first_messages_decode() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("week.pcap");
    // Two hours of a 20-host office on a Thursday morning; bulk volumes at
    // a fifth so the debug-built generator stays quick.
    let spec = WeekSpec {
        seed: 4,
        hosts: 20,
        days: 2.0 / 24.0,
        start_weekday: 3,
        start_hour: 9.0,
        density: 1.0,
        volume: 0.2,
    };
    let mut week = Week::new(&spec);
    let (frames, _) = week.write_pcap(&pcap).unwrap();
    assert!(frames > 100_000, "{frames} frames");

    // Walk the file's records: Ethernet, IPv4 (20 bytes), TCP (20 bytes).
    let bytes = std::fs::read(&pcap).unwrap();
    let (mut at, mut records) = (24usize, 0u64);
    let (mut snis, mut smb2, mut ssh) = (Vec::new(), 0, 0);
    while at + 16 <= bytes.len() {
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &bytes[at + 16..at + 16 + caplen];
        at += 16 + caplen;
        records += 1;
        if frame.len() > 54 && frame[23] == 6 {
            let payload = &frame[54..];
            if let Some(name) = client_hello_sni(payload) {
                snis.push(name);
            }
            smb2 += usize::from(payload.len() > 8 && &payload[4..8] == b"\xfeSMB");
            ssh += usize::from(payload.starts_with(b"SSH-2.0-"));
        }
    }
    assert_eq!(records, frames);
    assert!(snis.iter().any(|s| s == "mail.office.example"), "{snis:?}");
    assert!(snis.iter().any(|s| s.starts_with("www.")));
    assert!(smb2 > 0 && ssh > 0, "smb2 {smb2} ssh {ssh}");

    let cfg = dir.path().join("week.toml");
    std::fs::write(
        &cfg,
        "[network]\nhome_net = [\"10.30.0.0/16\"]\n[intel]\ntor_exit_list = \"\"\ngeoip_city = \"\"\ngeoip_asn = \"\"\n",
    )
    .unwrap();
    let (out, _alerts, stats) = replay(
        dir.path(),
        &["--config", cfg.to_str().unwrap()],
        &[pcap.as_path()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stats["capture"]["packets"].as_u64(), Some(frames));
    assert_eq!(stats["capture"]["decode_errors_total"].as_u64(), Some(0));
    assert!(stats["flows"]["created"].as_u64().unwrap() > 500, "{stats}");
    assert!(
        stats["capture"]["dns_messages"].as_u64().unwrap() > 500,
        "{stats}"
    );
}

/// Runs `spec`'s week through the sensor in-process; returns the alerts,
/// the flow log and the week's hosts.
fn week_run(
    spec: &WeekSpec,
) -> (
    Vec<serde_json::Value>,
    Vec<serde_json::Value>,
    Vec<(IpAddr, Role)>,
) {
    let dir = tempfile::tempdir().unwrap();
    let text = "[network]\nhome_net = [\"10.30.0.0/16\"]\n[intel]\ntor_exit_list = \"\"\ngeoip_city = \"\"\ngeoip_asn = \"\"\n";
    let cfg = SensorConfig::parse(text, "week.toml").unwrap();
    let log = dir.path().join("alerts.jsonl");
    let flow_log = dir.path().join("flows.jsonl");
    let week = Week::new(spec);
    let hosts = week.hosts().into_iter().map(|h| (h.ip, h.role)).collect();
    let pipeline = Pipeline {
        alerts: JsonlSink::open_as(log.to_str().unwrap(), "alert log").unwrap(),
        cfg,
        mode: Mode::Replay(Speed::Max),
        source: Box::new(WeekSource::new(week)),
        flows: Some(JsonlSink::open_as(flow_log.to_str().unwrap(), "flow log").unwrap()),
        stats: None,
        metrics: None,
    };
    pipeline.run(&Control::new(IntelSnapshot::empty())).unwrap();
    (read_jsonl(&log), read_jsonl(&flow_log), hosts)
}

/// Issue 12, direction of initiative: on half a day of a 24-host office
/// (seed 2), the public web server serves installers to visitors and the
/// VPN concentrator carries remote workers' file pulls down the tunnels
/// they opened; the flow log shows that each served an outside client
/// more than the pushed floor (50 MB) in one flow, which the sensor used
/// to judge as uploads, and neither raises `exfiltration`.
#[test]
fn servers_serving_outside_clients_raise_no_exfiltration() {
    let spec = WeekSpec {
        seed: 2,
        hosts: 24,
        days: 0.5,
        start_weekday: 3,
        start_hour: 0.0,
        density: 1.0,
        volume: 1.0,
    };
    let (alerts, flows, hosts) = week_run(&spec);
    for role in [Role::WebServer, Role::VpnConcentrator] {
        let ip = hosts
            .iter()
            .find(|(_, r)| *r == role)
            .unwrap()
            .0
            .to_string();
        // Bytes it sent on flows an outside client opened.
        let served: Vec<u64> = flows
            .iter()
            .filter(|f| f["dest_ip"] == ip.as_str())
            .filter(|f| !f["src_ip"].as_str().unwrap().starts_with("10.30."))
            .map(|f| f["flow"]["bytes_toclient"].as_u64().unwrap())
            .collect();
        let (total, largest) = (served.iter().sum::<u64>(), served.iter().max().copied());
        assert!(
            total > 200_000_000 && largest > Some(50_000_000),
            "{role:?} served {total} B, at most {largest:?} B in a flow"
        );
        let found: Vec<_> = alerts
            .iter()
            .filter(|a| a["alert"]["category"] == "exfiltration" && a["src_ip"] == ip.as_str())
            .collect();
        assert!(found.is_empty(), "{role:?}: {found:#?}");
    }
}
