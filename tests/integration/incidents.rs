//! Incidents and the record identity fields, end to end: a generated
//! intrusion is one incident naming its stages and hosts, at any worker
//! count; a benign office has none; `tapsentry incidents` tells it; every
//! record carries `host`, alerts their ids, and an alert about a flow the
//! flow record's `flow_id`.

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;
use tapsentry_testkit::office::{generate, Attack, Office, OfficeSpec};
use tapsentry_types::{alert_id, Timestamp};

use crate::common::{read_jsonl, repo, run, stderr};

const HOST: &str = "test-sensor";

fn config(dir: &Path) -> String {
    let cfg = dir.join("office.toml");
    std::fs::write(
        &cfg,
        format!(
            "[network]\nhome_net = [\"10.20.0.0/16\"]\n[intel]\ntor_exit_list = \"\"\ngeoip_city = \"\"\ngeoip_asn = \"\"\n[output]\nhost = \"{HOST}\"\n"
        ),
    )
    .unwrap();
    cfg.display().to_string()
}

/// Replays `pcap` into `dir/alerts-<workers>.jsonl`; returns the log's bytes.
fn replay(dir: &Path, cfg: &str, workers: &str, pcap: &Path) -> Vec<u8> {
    let log = dir.join(format!("alerts-{workers}.jsonl"));
    let out = run(&[
        "replay",
        "--config",
        cfg,
        "--workers",
        workers,
        "--alerts",
        log.to_str().unwrap(),
        pcap.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::read(&log).unwrap()
}

fn ts(v: &Value) -> Timestamp {
    Timestamp::parse_rfc3339(v.as_str().unwrap()).unwrap()
}

#[test]
fn a_generated_intrusion_is_one_incident_at_any_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (attacks, [host, attacker, receiver]) = Attack::intrusion_chain(&Office::standard());
    let pcap = dir.path().join("intrusion.pcap");
    generate(
        &OfficeSpec {
            seed: 3,
            attacks,
            ..OfficeSpec::default()
        },
        &pcap,
    )
    .unwrap();
    let one = replay(dir.path(), &cfg, "1", &pcap);
    let four = replay(dir.path(), &cfg, "4", &pcap);
    std::fs::remove_file(&pcap).unwrap();
    assert!(one == four, "1 and 4 workers give different logs");
    let log = dir.path().join("alerts-1.jsonl");
    let records = read_jsonl(&log);
    assert!(
        records.iter().all(|r| r["host"] == HOST),
        "host on every record"
    );

    let alerts: Vec<&Value> = records
        .iter()
        .filter(|r| r["event_type"] == "alert")
        .collect();
    let categories: HashSet<&str> = alerts
        .iter()
        .map(|a| a["alert"]["category"].as_str().unwrap())
        .collect();
    assert_eq!(
        categories,
        HashSet::from([
            "external_login",
            "port_scan",
            "data_collection",
            "exfiltration"
        ]),
        "{alerts:#?}"
    );
    // Every alert's id is the contract's function of its fields.
    for a in &alerts {
        let want = alert_id(
            HOST,
            a["alert"]["signature"].as_str().unwrap(),
            a["src_ip"].as_str().unwrap().parse().unwrap(),
            a["dest_ip"].as_str().map(|d| d.parse().unwrap()),
            ts(&a["timestamp"]),
        );
        assert_eq!(a["alert"]["alert_id"], want, "{a:#}");
        assert_eq!(a["alert"]["action"], "allowed");
        assert!(a["alert"]["signature_id"].as_u64().unwrap() > 0, "{a:#}");
    }

    let incidents: Vec<&Value> = records
        .iter()
        .filter(|r| r["event_type"] == "incident")
        .collect();
    let ids: HashSet<u64> = incidents
        .iter()
        .map(|r| r["incident"]["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "exactly one incident: {incidents:#?}");
    let last = &incidents.last().unwrap()["incident"];
    assert_eq!(
        last["stages"],
        serde_json::json!(["TA0001", "TA0007", "TA0009", "TA0010"])
    );
    assert_eq!(last["hosts"], serde_json::json!([host.to_string()]));
    let outside: HashSet<&str> = last["outside"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        outside,
        HashSet::from([attacker.to_string().as_str(), receiver.to_string().as_str()])
    );
    // Its membership: every alert of the log (all are the intrusion's), in
    // time order.
    let mut members: Vec<(Timestamp, u64)> = alerts
        .iter()
        .map(|a| {
            (
                ts(&a["timestamp"]),
                a["alert"]["alert_id"].as_u64().unwrap(),
            )
        })
        .collect();
    members.sort_unstable();
    let want: Vec<u64> = members.iter().map(|m| m.1).collect();
    assert_eq!(last["alert_ids"], serde_json::json!(want));
    assert_eq!(ts(&last["first"]), members[0].0);
    assert_eq!(ts(&last["last"]), members.last().unwrap().0);
    assert!(last["score"].as_u64().unwrap() >= 6);

    // The timeline: not a terminal, so no colour.
    let out = run(&["incidents", log.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\x1b'), "{text}");
    assert_eq!(text.matches("incident ").count(), 1, "{text}");
    for needle in [
        format!("incident {}", last["id"]),
        format!("hosts    {host}"),
        "Initial Access (TA0001) -> Discovery (TA0007) -> Collection (TA0009) -> Exfiltration (TA0010)".into(),
        "external_login.unusual_source".into(),
        "exfiltration.volume".into(),
        "data_collection.internal_transfer".into(),
        format!("{attacker} -> {host}"),
    ] {
        assert!(text.contains(&needle), "missing {needle:?} in\n{text}");
    }
    // One line per member alert, in time order.
    let alert_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("  20")).collect();
    assert_eq!(alert_lines.len(), want.len(), "{text}");
    let mut sorted = alert_lines.clone();
    sorted.sort_unstable();
    assert_eq!(alert_lines, sorted);
}

#[test]
fn a_benign_office_has_no_incident() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let pcap = dir.path().join("benign.pcap");
    generate(
        &OfficeSpec {
            seed: 11,
            ..OfficeSpec::default()
        },
        &pcap,
    )
    .unwrap();
    let log = replay(dir.path(), &cfg, "2", &pcap);
    std::fs::remove_file(&pcap).unwrap();
    let text = String::from_utf8(log).unwrap();
    assert!(!text.contains("\"incident\""), "{text}");
    let out = run(&[
        "incidents",
        dir.path().join("alerts-2.jsonl").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no incidents\n");
}

#[test]
fn an_alert_about_a_flow_carries_the_flow_records_flow_id() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[output]\nhost = \"sensor-7\"\n").unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let flows = dir.path().join("flows.jsonl");
    let stats = dir.path().join("stats.jsonl");
    let out = run(&[
        "replay",
        "--config",
        cfg.to_str().unwrap(),
        "--alerts",
        alerts.to_str().unwrap(),
        "--flows",
        flows.to_str().unwrap(),
        "--stats",
        stats.to_str().unwrap(),
        "--tor-exit-list",
        repo("pcaps/demo-tor-exits.txt").to_str().unwrap(),
        repo("pcaps/demo.pcap").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let alerts = read_jsonl(&alerts);
    let flows = read_jsonl(&flows);
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    for a in &alerts {
        assert_eq!(a["host"], "sensor-7");
        let fid = a["flow_id"]
            .as_u64()
            .expect("a Tor alert is about one flow");
        let same: Vec<&Value> = flows
            .iter()
            .filter(|f| f["community_id"] == a["community_id"])
            .collect();
        assert!(!same.is_empty());
        assert!(same.iter().any(|f| f["flow_id"] == fid), "{a:#}\n{same:#?}");
    }
    assert!(flows
        .iter()
        .all(|f| f["host"] == "sensor-7" && f["flow_id"].is_u64()));
    // flow_ids differ between flows (distinct key or start).
    let ids: HashSet<u64> = flows
        .iter()
        .map(|f| f["flow_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), flows.len());
    let stats = read_jsonl(&stats);
    assert_eq!(stats.last().unwrap()["host"], "sensor-7");
}

/// `alert.signature_id`: the table in code, the table in docs/records.md,
/// and the signatures the detectors raise agree, so no number changes or
/// goes missing silently.
#[test]
fn signature_ids_are_documented_and_cover_every_signature() {
    let doc = std::fs::read_to_string(repo("docs/records.md")).unwrap();
    let mut documented = Vec::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if let [_, id, sig, ..] = cells[..] {
            if let (Ok(id), Some(sig)) = (
                id.parse::<u32>(),
                sig.strip_prefix('`').and_then(|s| s.strip_suffix('`')),
            ) {
                documented.push((sig.to_string(), id));
            }
        }
    }
    let table: Vec<(String, u32)> = tapsentry_types::SIGNATURE_IDS
        .iter()
        .map(|(s, id)| (s.to_string(), *id))
        .collect();
    assert_eq!(
        documented, table,
        "docs/records.md and SIGNATURE_IDS differ"
    );
    // Every `"category.name"` literal in the detectors is a signature with a
    // number.
    let categories: HashSet<&str> = tapsentry_detect::DETECTORS
        .iter()
        .map(|d| d.category.as_str())
        .collect();
    let mut raised = HashSet::new();
    for entry in std::fs::read_dir(repo("crates/detect/src")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for lit in text.split('"').skip(1).step_by(2) {
            if let Some((cat, name)) = lit.split_once('.') {
                if categories.contains(cat)
                    && !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                {
                    raised.insert(lit.to_string());
                }
            }
        }
    }
    assert!(raised.len() >= 15, "{raised:?}");
    for sig in &raised {
        assert_ne!(
            tapsentry_types::signature_id(sig),
            0,
            "{sig} has no signature_id"
        );
    }
}

#[test]
fn check_config_names_bad_incident_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[incidents]\nmin_stages = 1\nmax_open = 0\nbogus = 2\n[output]\nhost = \"a\\nb\"\n",
    )
    .unwrap();
    let out = run(&["check-config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for key in [
        "incidents.min_stages",
        "incidents.max_open",
        "incidents.bogus",
        "output.host",
    ] {
        assert!(err.contains(key), "missing {key}: {err}");
    }
    // A missing log is one line naming it, exit 1.
    let out = run(&["incidents", dir.path().join("none.jsonl").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("none.jsonl"), "{}", stderr(&out));
}
