//! Bad input gets the contract's exit status and one clear line.

use std::io::Write;

use crate::common::{replay, run, shared, stderr};

#[test]
fn missing_file_exits_1_naming_it() {
    let out = run(&["replay", "--alerts", "-", "/nonexistent/x.pcap"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("/nonexistent/x.pcap"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.contains("error")).count(),
        1,
        "{err}"
    );
}

#[test]
fn non_pcap_file_exits_1_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.txt");
    std::fs::write(&p, "this is not a capture file at all\n").unwrap();
    let out = run(&["replay", "--alerts", "-", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.lines().last().unwrap().contains("notes.txt"), "{err}");
    assert!(!err.contains("panicked"));
}

#[test]
fn file_cut_mid_packet_keeps_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::read(shared("linktypes/ethernet-http-get.pcap")).unwrap();
    let cut = dir.path().join("cut.pcap");
    // Cut 10 bytes into the last record's data.
    std::fs::File::create(&cut)
        .unwrap()
        .write_all(&full[..full.len() - 300])
        .unwrap();
    let (out, _, stats) = replay(dir.path(), &[], &[&cut]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.lines().last().unwrap().contains("cut.pcap"), "{err}");
    // Every complete record before the cut was processed: walk the record
    // headers (24-byte file header, 16-byte record headers, little-endian).
    let cut_len = full.len() - 300;
    let (mut off, mut complete) = (24usize, 0u64);
    while off + 16 <= cut_len {
        let incl = u32::from_le_bytes(full[off + 8..off + 12].try_into().unwrap()) as usize;
        if off + 16 + incl > cut_len {
            break;
        }
        off += 16 + incl;
        complete += 1;
    }
    assert!(complete < 14);
    assert_eq!(stats["capture"]["packets"], complete);
    assert!(stats["flows"]["created"].as_u64().unwrap() >= 1);
}

#[test]
fn corrupt_file_among_good_ones_does_not_lose_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, [0u8; 100]).unwrap();
    let a = shared("linktypes/ethernet-http-get.pcap");
    let b = shared("linktypes/linux-sll2-http.pcap");
    let (out, _, stats) = replay(dir.path(), &[], &[&a, &junk, &b]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stats["capture"]["packets"], 14 + 5);
    assert!(stderr(&out).lines().last().unwrap().contains("junk.pcap"));
}

#[test]
fn unknown_config_key_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("s.toml");
    std::fs::write(&cfg, "[flow]\nmax_flowz = 10\n").unwrap();
    let out = run(&[
        "replay",
        "--config",
        cfg.to_str().unwrap(),
        "--alerts",
        "-",
        shared("linktypes/ethernet-http-get.pcap").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("flow.max_flowz"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn unwritable_alert_log_exits_1_naming_it() {
    let out = run(&[
        "replay",
        "--alerts",
        "/nonexistent-dir/alerts.jsonl",
        shared("linktypes/ethernet-http-get.pcap").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/nonexistent-dir/alerts.jsonl"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&["replay"]).status.code(), Some(2));
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        run(&["replay", "--speed", "warp", "x.pcap"]).status.code(),
        Some(2)
    );
}
