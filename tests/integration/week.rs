//! The generated benign week (tapsentry-testkit's `week`): a short window
//! of a small office goes through the real binary, and the first messages
//! the generator writes decode as what they claim to be.

use tapsentry_testkit::week::{Week, WeekSpec};

use crate::common::{replay, stderr};

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
