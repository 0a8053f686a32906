//! One function per fuzz target: each takes the fuzzer's bytes and feeds
//! them to a public entry point of the crate under test. Any panic, hang or
//! unbounded allocation inside is a finding; errors are the expected
//! outcome for most inputs and are ignored.
//!
//! This file is compiled twice: as `tapsentry_fuzz::entries` for the
//! cargo-fuzz targets (nightly) and by `tests/fuzz_seeds.rs` in the main
//! workspace (stable), which runs the committed seeds and regression inputs
//! through it.

use std::sync::Arc;

use tapsentry_capture::{FileSource, FrameSource, Next};
use tapsentry_decode::dns;
use tapsentry_detect::{DetectConfig, HomeNet, Worker};
use tapsentry_intel::{IntelSnapshot, TorExitList};
use tapsentry_proto::{first_message_meta, ftp_data_endpoint, AppProto, Dir, ProtoState};
use tapsentry_types::{Frame, LinkType, Timestamp};

/// Every link type the decoder supports; `decode_frame`'s first byte picks
/// one (modulo the length).
pub const LINK_TYPES: [LinkType; 11] = LinkType::DECODED;

/// Frames read per `capture_file` input: a bound on the time one input
/// may take, far above what a fuzzer's few kilobytes can hold.
pub const MAX_FRAMES_PER_FILE: usize = 100_000;

/// A fuzz target's entry point.
pub type Entry = fn(&[u8]);

/// Every target, by name, for the seed test and the scripts.
pub const TARGETS: [(&str, Entry); 9] = [
    ("decode_frame", decode_frame),
    ("dns_message", dns_message),
    ("capture_file", capture_file),
    ("proto_classify", proto_classify),
    ("tor_list", tor_list),
    ("config", config),
    ("state_file", state_file),
    ("alert_log", alert_log),
    ("admin_inspect", admin_inspect),
];

/// First byte: the link type (index into [`LINK_TYPES`]); the rest: one
/// frame. Decodes it, then runs the DNS summary on what it found.
pub fn decode_frame(data: &[u8]) {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let link = LINK_TYPES[usize::from(pick) % LINK_TYPES.len()];
    let frame = Frame {
        ts: Timestamp::from_micros(1),
        wire_len: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
        link,
        data: bytes,
    };
    if let Ok(meta) = tapsentry_decode::decode(&frame) {
        let _ = dns::event(&meta);
        let _ = dns::parse_message(meta.payload);
        let _ = dns::parse_tcp_segment(meta.payload);
    }
}

/// One DNS message, as a UDP payload and as a TCP segment payload.
pub fn dns_message(data: &[u8]) {
    let _ = dns::parse_message(data);
    let _ = dns::parse_tcp_segment(data);
}

/// A whole capture file (pcap or pcapng), read from memory by the file
/// reader to its end, to an error or to [`MAX_FRAMES_PER_FILE`] frames.
pub fn capture_file(data: &[u8]) {
    let mut src = FileSource::from_bytes("fuzz.pcap", data.to_vec());
    let mut frames = 0usize;
    while frames < MAX_FRAMES_PER_FILE {
        match src.next_frame() {
            Ok(Next::Frame(f)) => {
                frames += 1;
                // The frame must be readable as the decoder will read it.
                let _ = f.data.iter().fold(0u8, |a, b| a ^ b);
            }
            Ok(Next::Idle) => {}
            Ok(Next::End) | Err(_) => break,
        }
    }
    let _ = src.warnings();
    let _ = src.file_errors().len();
}

/// Four bytes of ports, then chunks: a header byte (bit 0: direction, bit
/// 1: UDP rather than TCP, bits 2..: a protocol for `first_message_meta`),
/// a length byte, and that many payload bytes. Each chunk goes through
/// `ProtoState::observe`, and `first_message_meta` runs on it for the
/// current verdict and for the protocol its header names, and
/// `ftp_data_endpoint` as on an FTP control connection.
pub fn proto_classify(data: &[u8]) {
    let Some((ports, mut rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let ports = (
        u16::from_be_bytes([ports[0], ports[1]]),
        u16::from_be_bytes([ports[2], ports[3]]),
    );
    let mut state = ProtoState::new();
    while let Some((&[hdr, len], tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(len).min(tail.len());
        let (chunk, next) = tail.split_at(len);
        rest = next;
        let dir = if hdr & 1 == 0 {
            Dir::ToServer
        } else {
            Dir::ToClient
        };
        let transport = if hdr & 2 == 0 { 6 } else { 17 };
        let _ = state.observe(dir, transport, chunk, ports);
        let _ = first_message_meta(state.verdict(), dir, chunk);
        let named = AppProto::ALL[usize::from(hdr >> 2) % AppProto::ALL.len()];
        let _ = first_message_meta(named, dir, chunk);
        let _ = ftp_data_endpoint(dir, chunk);
        let _ = (state.seen(dir), state.is_done(), state.tls_inside());
    }
}

/// First byte: bit 0 picks an SMB flow (else DCE-RPC on plain TCP); the
/// rest: segments as in [`proto_classify`] (a header byte whose bit 0 is
/// the direction, a length byte, the bytes). Each segment goes through the
/// administration inspector and, directly, through the SMB2 and DCE-RPC
/// parsers' every accessor.
pub fn admin_inspect(data: &[u8]) {
    use tapsentry_proto::{dcerpc, smb, AdminInspector};
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let mut insp = AdminInspector::new(mode & 1 == 1);
    let mut events = 0usize;
    while let Some((&[hdr, len], tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(len).min(tail.len());
        let (chunk, next) = tail.split_at(len);
        rest = next;
        insp.on_payload(hdr & 1 == 0, chunk, &mut |_| events += 1);
        for msg in smb::netbios_messages(chunk) {
            for m in smb::smb2_messages(msg) {
                let _ = (m.command(), m.status(), m.message_id(), m.tree_id());
                let _ = (
                    m.tree_connect_path().map(smb::share_of_path),
                    m.create_name(),
                );
                let _ = (m.write_data(), m.read_data(), m.pipe_transceive_data());
            }
        }
        for p in dcerpc::pdus(chunk) {
            let _ = p.contexts().count();
            let _ = p.bind_results().count();
            let _ = (
                p.request(),
                p.fault_status(),
                p.response_code(),
                p.has_object(),
            );
        }
    }
    // Each segment yields a bounded number of events (at most 32 SMB2
    // messages of 16 PDUs each, or 16 PDUs).
    assert!(events <= data.len().max(1) * 512);
}

/// A Tor exit list in either format (lossy UTF-8, as the bytes may not be
/// text; the loader refuses those before parsing).
pub fn tor_list(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (list, _report) = TorExitList::parse(&text, "fuzz");
    let _ = list.contains(std::net::IpAddr::from([185, 220, 101, 1]));
}

/// A sensor configuration file, as `check-config` parses and validates it.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tapsentry::config::SensorConfig::parse(text, "fuzz");
    }
}

/// A baseline state file, loaded into two detector workers.
pub fn state_file(data: &[u8]) {
    let Ok(home) = HomeNet::parse(&["10.0.0.0/8".to_string()]) else {
        return;
    };
    let home = Arc::new(home);
    let intel = Arc::new(IntelSnapshot::empty());
    let mut workers: Vec<Worker> = (0..2)
        .map(|_| Worker::new(&DetectConfig::default(), home.clone(), intel.clone()))
        .collect();
    let _ = tapsentry::state::load_bytes(data, "fuzz", &mut workers);
}

/// An alert log, as `tapsentry alerts` shows it, `tapsentry blocklist`
/// reads it and `tapsentry incidents` reads it: every line through the
/// record parser, the view's filter and renderer, the block list in every
/// format, then the latest incident records and the alerts they list,
/// rendered with and without colour.
pub fn alert_log(data: &[u8]) {
    use tapsentry::view::alerts::{show, Filter};
    use tapsentry::view::blocklist::{Blocklist, Format};
    use tapsentry::view::records::{LineSplitter, LogRecord};
    let _ = show(&mut &data[..], &Filter::default(), std::io::sink());
    let Ok(home) = HomeNet::parse(&["10.0.0.0/8".to_string(), "fd00::/8".to_string()]) else {
        return;
    };
    let mut list = Blocklist::default();
    let mut split = LineSplitter::default();
    let _ = split.feed(&mut &data[..], |line| {
        if let Some(r) = LogRecord::parse(line) {
            list.add(&r, &home, 3);
        }
    });
    for f in [
        Format::Plain,
        Format::Nft,
        Format::Iptables,
        Format::Ip6tables,
        Format::Ipset,
    ] {
        let _ = list.render(f, "fuzz");
    }
    use tapsentry_incidents::timeline;
    let Ok((incidents, _)) = timeline::latest_incidents(data) else {
        return;
    };
    let ids = incidents
        .iter()
        .flat_map(|r| r.incident.alert_ids.iter().copied())
        .collect();
    let Ok((alerts, _)) = timeline::member_alerts(data, &ids) else {
        return;
    };
    let _ = timeline::render(&incidents, &alerts, false).len();
    let _ = timeline::render(&incidents, &alerts, true).len();
}
