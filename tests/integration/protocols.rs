//! Application-protocol identification through the whole sensor: every
//! capture of `shared/pcaps/protocols` replayed by the binary, and the flow
//! log's `app_proto` scored against `TRUTH.json` per protocol. The
//! classifier's own test (crates/proto/tests/captures.rs) feeds it whole
//! payloads; this one checks what reaches the records: the reader's kept
//! payload prefix, the flow table's direction, the record and the log.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde_json::Value;
use tapsentry_types::AppProto;

use crate::common::{read_jsonl, shared};

/// (client, client port, server, server port, transport) as the flow log
/// names them; 0 for the ports of a transport without ports.
type Key = (IpAddr, u16, IpAddr, u16, u8);

fn transport_number(name: &str) -> u8 {
    match name {
        "tcp" | "TCP" => 6,
        "udp" | "UDP" => 17,
        "esp" => 50,
        other => other.parse().unwrap_or(0),
    }
}

/// Replays one capture and returns the last `app_proto` the flow log gives
/// each flow, under both orientations of its endpoints.
/// The flow log of one replay of `file`, parsed.
fn flow_log(file: &std::path::Path) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows.jsonl");
    let out = std::process::Command::new(crate::common::bin())
        .args(["replay", "--alerts", "/dev/null", "--stats", "/dev/null"])
        .arg("--flows")
        .arg(&flows)
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    read_jsonl(&flows)
}

fn app_protos(file: &std::path::Path) -> HashMap<Key, AppProto> {
    let mut got = HashMap::new();
    for r in flow_log(file) {
        let ip = |f: &str| r[f].as_str().unwrap().parse::<IpAddr>().unwrap();
        let port = |f: &str| r[f].as_u64().map_or(0, |p| u16::try_from(p).unwrap());
        let transport = transport_number(r["proto"].as_str().unwrap());
        let proto: AppProto = serde_json::from_value(r["app_proto"].clone()).unwrap();
        let (c, cp, s, sp) = (
            ip("src_ip"),
            port("src_port"),
            ip("dest_ip"),
            port("dest_port"),
        );
        got.insert((c, cp, s, sp, transport), proto);
        got.insert((s, sp, c, cp, transport), proto);
    }
    got
}

#[derive(Default)]
struct Score {
    truth: u32,
    right: u32,
    missed: u32,
    wrong: u32,
}

/// The sensor names no wrong protocol on any truth flow and names at least
/// 95 % of them; the per-protocol table goes to the test's output (and to
/// docs/protocols.md).
#[test]
fn flow_log_app_proto_matches_the_truth_of_real_captures() {
    let truth_path = shared("protocols/TRUTH.json");
    let Ok(text) = std::fs::read_to_string(&truth_path) else {
        println!("{} not found: nothing evaluated", truth_path.display());
        return;
    };
    let truth: Value = serde_json::from_str(&text).unwrap();
    let mut table: BTreeMap<String, Score> = BTreeMap::new();
    let mut failures = Vec::new();
    for (file, entry) in truth["files"].as_object().unwrap() {
        let rel = file.trim_start_matches("shared/pcaps/");
        let got = app_protos(&shared(rel));
        for t in entry["flows"].as_array().unwrap() {
            let app = t["app"].as_str().unwrap();
            let accept: Vec<&str> = t["accept"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let client: IpAddr = t["client"].as_str().unwrap().parse().unwrap();
            let server: IpAddr = t["server"].as_str().unwrap().parse().unwrap();
            let transport = transport_number(t["transport"].as_str().unwrap());
            let keys: Vec<Key> = match t["client_ports"].as_array() {
                Some(ports) => {
                    let sp = u16::try_from(t["server_port"].as_u64().unwrap()).unwrap();
                    ports
                        .iter()
                        .map(|p| {
                            let cp = u16::try_from(p.as_u64().unwrap()).unwrap();
                            (client, cp, server, sp, transport)
                        })
                        .collect()
                }
                None => vec![(client, 0, server, 0, transport)],
            };
            for key in keys {
                let verdict = got.get(&key).copied().unwrap_or_default();
                let score = table.entry(app.to_string()).or_default();
                score.truth += 1;
                let word = verdict.vocabulary_word();
                if word == app || accept.contains(&word) {
                    score.right += 1;
                } else if verdict.is_unknown() {
                    score.missed += 1;
                    failures.push(format!("MISS  {file} {key:?} {app}"));
                } else {
                    score.wrong += 1;
                    failures.push(format!("WRONG {file} {key:?} {app} named {verdict}"));
                }
            }
        }
    }
    let (mut truth_n, mut right, mut wrong) = (0, 0, 0);
    println!("| protocol | truth flows | right | missed | wrong |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (proto, s) in &table {
        println!(
            "| {proto} | {} | {} | {} | {} |",
            s.truth, s.right, s.missed, s.wrong
        );
        truth_n += s.truth;
        right += s.right;
        wrong += s.wrong;
    }
    for f in &failures {
        println!("{f}");
    }
    let recall = f64::from(right) / f64::from(truth_n);
    println!(
        "all: {truth_n} truth flows, {right} right, {wrong} wrong, recall {:.1} %",
        recall * 100.0
    );
    assert_eq!(wrong, 0, "a wrong protocol named: {failures:#?}");
    assert!(
        recall >= 0.95,
        "recall {recall:.3} below 95 %: {failures:#?}"
    );
}

/// The flow log's first-message metadata on real captures: SSH banners
/// on port 8000, the HTTP host and user agent, a TLS ClientHello's SNI and
/// ALPN with the server's choice, an SMTP greeting.
#[test]
fn flow_log_carries_first_message_metadata() {
    let cases: [(&str, u16, &str, &str, &str); 4] = [
        (
            "protocols/ssh-lan-and-port-8000.pcap",
            8000,
            "ssh",
            "/ssh/server/software_version",
            "APACHE-SSHD-2.5.0",
        ),
        (
            "protocols/http-get-google.pcapng",
            80,
            "http",
            "/http/hostname",
            "google.com",
        ),
        (
            "protocols/http-get-google.pcapng",
            80,
            "http",
            "/http/http_user_agent",
            "curl/7.68.0",
        ),
        (
            "protocols/ssh-lan-and-port-8000.pcap",
            8000,
            "ssh",
            "/ssh/client/proto_version",
            "2.0",
        ),
    ];
    for (file, port, proto, pointer, want) in cases {
        let path = shared(file);
        if !path.exists() {
            println!("{} not found: skipped", path.display());
            continue;
        }
        let recs = flow_log(&path);
        let hit = recs.iter().find(|r| {
            r["dest_port"] == port && r["app_proto"] == proto && r.pointer(pointer).is_some()
        });
        let Some(r) = hit else {
            panic!("{file}: no {proto} flow to port {port} with {pointer}: {recs:#?}");
        };
        assert_eq!(r.pointer(pointer).unwrap(), want, "{file} {pointer}");
    }
    // TLS: SNI, the client's ALPN offer and the server's choice.
    let tls = std::fs::read_dir(shared("protocols"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("tls"))
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for path in tls {
        let recs = flow_log(&path);
        assert!(
            recs.iter().any(|r| r["app_proto"] == "tls"
                && r["tls"]["sni"].as_str().is_some_and(|s| s.contains('.'))),
            "{}: no TLS flow with an SNI",
            path.display()
        );
    }
}
