//! `lateral_movement` on the real captures of `shared/pcaps/protocols`:
//! every capture with a `lateral_movement` entry in `TRUTH.json` replayed
//! by the binary, alerting (with the truth's src and dest, tactic TA0008)
//! exactly when `expect_alert` says so, and the ordinary SMB and DCE-RPC
//! captures raising none.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::common::{replay, shared};

/// The `lateral_movement` alerts of one replay of `file`.
fn lateral_alerts(file: &Path) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let (out, alerts, _) = replay(dir.path(), &[], &[file]);
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    alerts
        .into_iter()
        .filter(|a| a["alert"]["category"] == "lateral_movement")
        .collect()
}

/// The signature each alerting capture must raise: the technique its
/// truth names, not only some lateral_movement alert.
const SIGNATURES: [(&str, &str, &str); 5] = [
    (
        "lm-psexec-svcctl-over-tcp.pcap",
        "lateral_movement.remote_service",
        "T1569.002",
    ),
    (
        "lm-atsvc-at-job-over-smb.pcap",
        "lateral_movement.scheduled_task",
        "T1053.002",
    ),
    (
        "lm-copy-tool-from-c-share.pcap",
        "lateral_movement.tool_transfer",
        "T1570",
    ),
    (
        "lm-zerologon-netlogon-samr.pcap",
        "lateral_movement.netlogon_exploit",
        "T1210",
    ),
    (
        "lm-wmi-win32-process-create.pcapng",
        "lateral_movement.wmi_exec",
        "T1047",
    ),
];

#[test]
fn lateral_movement_captures_alert_as_their_truth_says() {
    let truth_path = shared("protocols/TRUTH.json");
    let Ok(text) = std::fs::read_to_string(&truth_path) else {
        println!("{} not found: nothing evaluated", truth_path.display());
        return;
    };
    let truth: Value = serde_json::from_str(&text).unwrap();
    let mut judged = BTreeMap::new();
    for (path, entry) in truth["files"].as_object().unwrap() {
        let lm = &entry["lateral_movement"];
        if lm.is_null() {
            continue;
        }
        let name = path.rsplit('/').next().unwrap();
        let alerts = lateral_alerts(&shared(&format!("protocols/{name}")));
        let expect = lm["expect_alert"].as_bool().unwrap();
        if !expect {
            assert!(alerts.is_empty(), "{name}: {alerts:#?}");
            judged.insert(name.to_string(), 0);
            continue;
        }
        let (src, dest) = (lm["src"].as_str().unwrap(), lm["dest"].as_str().unwrap());
        assert!(!alerts.is_empty(), "{name}: no lateral_movement alert");
        for a in &alerts {
            assert_eq!(a["src_ip"], src, "{name}: {a:#}");
            assert_eq!(a["dest_ip"], dest, "{name}: {a:#}");
            assert_eq!(a["alert"]["mitre"]["tactic"], "TA0008", "{name}");
        }
        let (_, sig, technique) = SIGNATURES
            .iter()
            .find(|(f, _, _)| *f == name)
            .unwrap_or_else(|| panic!("{name}: an alerting capture without an expected signature"));
        let hit = alerts
            .iter()
            .find(|a| a["alert"]["signature"] == *sig)
            .unwrap_or_else(|| panic!("{name}: no {sig}: {alerts:#?}"));
        assert_eq!(hit["alert"]["mitre"]["technique"], *technique, "{name}");
        assert_eq!(hit["alert"]["severity"], 1, "{name}: {hit:#}");
        judged.insert(name.to_string(), alerts.len());
    }
    println!("lateral_movement alerts per capture: {judged:?}");
    assert_eq!(judged.len(), 8, "the eight lm-* captures: {judged:?}");
}

/// Ordinary SMB and DCE-RPC use: a directory listing and a delete of an
/// .exe on a user share, an SMB 3.1.1 session (encrypted), SMB1 on IPC$,
/// a domain join's DRSUAPI, an AD user's logon. No lateral_movement.
#[test]
fn ordinary_smb_and_dcerpc_raise_no_lateral_movement() {
    for name in [
        "smb2-delete-file.pcap",
        "smb311-negotiate-session.pcap",
        "smb1-anonymous-ipc-trans2.pcap",
        "dcerpc-drsuapi-port-1024.pcap",
        "ldap-kerberos-smb-ad-user.pcap",
    ] {
        let file = shared(&format!("protocols/{name}"));
        if !file.exists() {
            println!("{} not found: skipped", file.display());
            continue;
        }
        let alerts = lateral_alerts(&file);
        assert!(alerts.is_empty(), "{name}: {alerts:#?}");
    }
}
