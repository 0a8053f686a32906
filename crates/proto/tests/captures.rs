//! The classifier on real captures: the labelled corpus in
//! `shared/pcaps/protocols` against its `TRUTH.json` (precision and recall
//! per protocol), and the benign and malformed corpora as noise (no panic;
//! verdicts counted).
//!
//! The corpus lives next to the repository (`../shared/pcaps` from the
//! workspace root); `TAPSENTRY_PCAPS` names another `pcaps` directory. When
//! neither exists the tests say so and pass: the corpus is not part of the
//! repository.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tapsentry_capture::{FileSource, FrameSource, Next};
use tapsentry_proto::{first_message_meta, Dir, ProtoState};
use tapsentry_types::{AppProto, Fragment};

/// The shared `pcaps` directory: `TAPSENTRY_PCAPS`, else the first
/// `shared/pcaps` found walking up from this crate.
fn pcaps_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TAPSENTRY_PCAPS") {
        return Some(PathBuf::from(dir));
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("shared/pcaps"))
        .find(|p| p.join("protocols/TRUTH.json").is_file())
}

/// One direction-independent flow: (lower endpoint, higher endpoint, transport).
type Key = (IpAddr, u16, IpAddr, u16, u8);

#[derive(Default)]
struct Flow {
    /// The side that opened it: the SYN sender, else the first sender.
    client: Option<(IpAddr, u16)>,
    state: ProtoState,
    metas: Vec<String>,
}

/// Replays one capture and classifies every TCP, UDP, ESP and AH flow.
fn classify_file(path: &Path) -> HashMap<Key, Flow> {
    let mut flows: HashMap<Key, Flow> = HashMap::new();
    let Ok(mut src) = FileSource::open(&[path.to_path_buf()]) else {
        return flows;
    };
    while let Ok(Next::Frame(frame)) = src.next_frame() {
        let Ok(pkt) = tapsentry_decode::decode(&frame) else {
            continue;
        };
        if !matches!(pkt.proto, 6 | 17 | 50 | 51)
            || matches!(pkt.fragment, Fragment::NonFirst { .. })
        {
            continue;
        }
        let a = (pkt.src, pkt.src_port);
        let b = (pkt.dst, pkt.dst_port);
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let flow = flows
            .entry((lo.0, lo.1, hi.0, hi.1, pkt.proto))
            .or_default();
        let syn_only = pkt.proto == 6 && pkt.tcp_flags.0 & 0x12 == 0x02;
        if flow.client.is_none() || syn_only {
            flow.client = Some(if syn_only || flow.client.is_none() {
                a
            } else {
                b
            });
        }
        let dir = if flow.client == Some(a) {
            Dir::ToServer
        } else {
            Dir::ToClient
        };
        let before = flow.state.seen(dir);
        flow.state
            .observe(dir, pkt.proto, pkt.payload, (pkt.src_port, pkt.dst_port));
        let verdict = flow.state.verdict();
        if before == 0 && flow.state.seen(dir) == 1 {
            if let Some(m) = first_message_meta(verdict, dir, pkt.payload) {
                flow.metas.push(format!("{m:?}"));
            }
        }
    }
    flows
}

#[derive(Default, Clone, Copy)]
struct Score {
    truth: u32,
    right: u32,
    missed: u32,
    wrong: u32,
}

#[test]
fn truth_flows_precision_and_recall() {
    let Some(pcaps) = pcaps_dir() else {
        println!("shared/pcaps not found (set TAPSENTRY_PCAPS): nothing evaluated");
        return;
    };
    let root = pcaps.parent().and_then(Path::parent).unwrap().to_path_buf();
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(pcaps.join("protocols/TRUTH.json")).unwrap())
            .unwrap();
    let mut table: BTreeMap<String, Score> = BTreeMap::new();
    let mut failures = Vec::new();
    for (file, entry) in truth["files"].as_object().unwrap() {
        let flows = classify_file(&root.join(file));
        assert!(!flows.is_empty(), "{file}: nothing decoded");
        for t in entry["flows"].as_array().unwrap() {
            let app = t["app"].as_str().unwrap();
            let accept: Vec<&str> = t["accept"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let client: IpAddr = t["client"].as_str().unwrap().parse().unwrap();
            let server: IpAddr = t["server"].as_str().unwrap().parse().unwrap();
            let transport: u8 = match t["transport"].as_str().unwrap() {
                "tcp" => 6,
                "udp" => 17,
                _ => 50,
            };
            let endpoints: Vec<((IpAddr, u16), (IpAddr, u16))> = match t["client_ports"].as_array()
            {
                Some(ports) => {
                    let sp = u16::try_from(t["server_port"].as_u64().unwrap()).unwrap();
                    ports
                        .iter()
                        .map(|p| {
                            (
                                (client, u16::try_from(p.as_u64().unwrap()).unwrap()),
                                (server, sp),
                            )
                        })
                        .collect()
                }
                None => vec![((client, 0), (server, 0))],
            };
            for (c, s) in endpoints {
                let (lo, hi) = if c <= s { (c, s) } else { (s, c) };
                let flow = flows.get(&(lo.0, lo.1, hi.0, hi.1, transport));
                let verdict = flow.map_or(AppProto::Unknown, |f| f.state.verdict());
                let score = table.entry(app.to_string()).or_default();
                score.truth += 1;
                let word = verdict.vocabulary_word();
                if word == app || accept.contains(&word) {
                    score.right += 1;
                    if word != app {
                        println!("ACCEPTED {file} {c:?}->{s:?} {app} named {verdict}");
                    }
                } else if verdict.is_unknown() {
                    score.missed += 1;
                    failures.push(format!(
                        "MISS  {file} {c:?}->{s:?} {app} (flow seen: {})",
                        flow.is_some()
                    ));
                } else {
                    score.wrong += 1;
                    failures.push(format!("WRONG {file} {c:?}->{s:?} {app} named {verdict}"));
                }
                if let Some(f) = flow {
                    for m in &f.metas {
                        println!("meta {file} {c:?}->{s:?} {verdict}: {m}");
                    }
                }
            }
        }
    }
    let mut total = Score::default();
    println!("| protocol | truth flows | right | missed | wrong |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (proto, s) in &table {
        println!(
            "| {proto} | {} | {} | {} | {} |",
            s.truth, s.right, s.missed, s.wrong
        );
        total.truth += s.truth;
        total.right += s.right;
        total.missed += s.missed;
        total.wrong += s.wrong;
    }
    println!(
        "| **all** | {} | {} | {} | {} |",
        total.truth, total.right, total.missed, total.wrong
    );
    for f in &failures {
        println!("{f}");
    }
    let recall = f64::from(total.right) / f64::from(total.truth);
    println!("recall {:.1} %", recall * 100.0);
    assert_eq!(total.wrong, 0, "a wrong protocol named: {failures:#?}");
    assert!(
        recall >= 0.95,
        "recall {recall:.3} below 95 %: {failures:#?}"
    );
}

/// Every capture of a folder, recursively.
fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(captures(&p));
        } else if p
            .extension()
            .is_some_and(|x| x != "json" && x != "md" && x != "txt")
        {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn benign_and_malformed_captures_are_noise_not_panics() {
    let Some(pcaps) = pcaps_dir() else {
        println!("shared/pcaps not found (set TAPSENTRY_PCAPS): nothing replayed");
        return;
    };
    for folder in ["benign", "malformed"] {
        let mut counts: BTreeMap<&'static str, u32> = BTreeMap::new();
        let mut flows = 0u32;
        for path in captures(&pcaps.join(folder)) {
            for (key, flow) in classify_file(&path) {
                flows += 1;
                let v = flow.state.verdict();
                *counts.entry(v.as_str()).or_default() += 1;
                if std::env::var_os("PROTO_VERBOSE").is_some() && !v.is_unknown() {
                    println!("{folder} {} {key:?} {v}", path.display());
                }
            }
        }
        println!("{folder}: {flows} flows: {counts:?}");
    }
}

/// The administration inspector on one capture: each SMB or DCE-RPC flow
/// (by the classifier's verdict) read as the sensor reads it, the first
/// 512 bytes of each payload; every action it reports, with the flow's
/// client and server.
fn admin_actions(path: &Path) -> Vec<(IpAddr, IpAddr, tapsentry_types::AdminAction)> {
    use tapsentry_proto::AdminInspector;
    let mut flows: HashMap<Key, (Flow, Option<AdminInspector>)> = HashMap::new();
    let mut out = Vec::new();
    let Ok(mut src) = FileSource::open(&[path.to_path_buf()]) else {
        return out;
    };
    while let Ok(Next::Frame(frame)) = src.next_frame() {
        let Ok(pkt) = tapsentry_decode::decode(&frame) else {
            continue;
        };
        if pkt.proto != 6 {
            continue;
        }
        let a = (pkt.src, pkt.src_port);
        let b = (pkt.dst, pkt.dst_port);
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let (flow, insp) = flows.entry((lo.0, lo.1, hi.0, hi.1, 6)).or_default();
        if flow.client.is_none() {
            let syn_ack = pkt.tcp_flags.0 & 0x12 == 0x12;
            flow.client = Some(if syn_ack { b } else { a });
        }
        let dir = if flow.client == Some(a) {
            Dir::ToServer
        } else {
            Dir::ToClient
        };
        let payload = &pkt.payload[..pkt.payload.len().min(512)];
        flow.state
            .observe(dir, 6, payload, (pkt.src_port, pkt.dst_port));
        let v = flow.state.verdict();
        if payload.is_empty() || !matches!(v, AppProto::Smb | AppProto::Dcerpc) {
            continue;
        }
        let insp = insp.get_or_insert_with(|| AdminInspector::new(v == AppProto::Smb));
        let (client, server) = match (flow.client, dir) {
            (Some(c), Dir::ToServer) => (c.0, b.0),
            (Some(c), Dir::ToClient) => (c.0, a.0),
            (None, _) => continue,
        };
        insp.on_payload(dir == Dir::ToServer, payload, &mut |act| {
            out.push((client, server, act))
        });
    }
    out
}

/// The inspector reads what TRUTH.json's `lateral_movement` evidence
/// names in each lm-* capture, and sees nothing of the sort in ordinary
/// SMB and DCE-RPC use.
#[test]
fn admin_inspector_reads_the_lateral_movement_captures() {
    use tapsentry_types::{AdminAction as A, RpcInterface as I, ShareKind};
    let Some(pcaps) = pcaps_dir() else {
        println!("shared/pcaps not found (set TAPSENTRY_PCAPS): nothing replayed");
        return;
    };
    let dir = pcaps.join("protocols");
    let calls = |acts: &[(IpAddr, IpAddr, A)], want: I| -> Vec<u16> {
        acts.iter()
            .filter_map(|(_, _, a)| match a {
                A::RpcCall { iface, opnum, .. } if *iface == want => Some(*opnum),
                _ => None,
            })
            .collect()
    };

    let psexec = admin_actions(&dir.join("lm-psexec-svcctl-over-tcp.pcap"));
    let ops = calls(&psexec, I::Svcctl);
    assert!(
        ops.contains(&15) && ops.contains(&45) && ops.contains(&19),
        "{ops:?}"
    );
    assert_eq!(psexec[0].0, "192.168.10.31".parse::<IpAddr>().unwrap());

    let at = admin_actions(&dir.join("lm-atsvc-at-job-over-smb.pcap"));
    assert_eq!(calls(&at, I::Atsvc), [0], "{at:?}");
    assert!(at.iter().any(|(_, _, a)| matches!(
        a,
        A::TreeConnect {
            kind: ShareKind::Ipc,
            status: 0,
            ..
        }
    )));

    let copy = admin_actions(&dir.join("lm-copy-tool-from-c-share.pcap"));
    let got: Vec<String> = copy
        .iter()
        .filter_map(|(_, _, a)| match a {
            A::FileTransfer {
                share,
                kind: ShareKind::Drive,
                file,
                write: false,
            } => Some(format!("{}:{}", share.as_str(), file.as_str())),
            _ => None,
        })
        .collect();
    // Two reads start at offset 0 (the header first, then the whole file).
    assert!(
        !got.is_empty() && got.iter().all(|g| g == "c$:temp\\mimikatz.exe"),
        "{copy:?}"
    );

    let zl = admin_actions(&dir.join("lm-zerologon-netlogon-samr.pcap"));
    let ops = calls(&zl, I::Netlogon);
    assert!(ops.iter().filter(|o| **o == 26).count() >= 19, "{ops:?}");
    assert!(ops.contains(&30), "{ops:?}");
    let denied = zl
        .iter()
        .filter(|(_, _, a)| {
            matches!(
                a,
                A::RpcResult {
                    iface: I::Netlogon,
                    opnum: 26,
                    outcome: tapsentry_types::RpcOutcome::Denied,
                    ..
                }
            )
        })
        .count();
    assert!(denied >= 15, "{denied}");

    let wmi = admin_actions(&dir.join("lm-wmi-win32-process-create.pcapng"));
    assert!(calls(&wmi, I::SystemActivator).contains(&4), "{wmi:?}");
    assert!(calls(&wmi, I::WbemServices).contains(&24), "{wmi:?}");

    let samr = admin_actions(&dir.join("lm-samr-net-user-over-smb.pcap"));
    assert!(!calls(&samr, I::Samr).is_empty(), "{samr:?}");

    for quiet in [
        "smb2-delete-file.pcap",
        "smb311-negotiate-session.pcap",
        "smb1-anonymous-ipc-trans2.pcap",
        "dcerpc-drsuapi-port-1024.pcap",
        "ldap-kerberos-smb-ad-user.pcap",
        "lm-samr-net-user-over-smb.pcap",
    ] {
        for (_, _, a) in admin_actions(&dir.join(quiet)) {
            let exec = match a {
                A::FileTransfer { .. } => true,
                A::RpcCall { iface, .. } => matches!(
                    iface,
                    I::Svcctl | I::Atsvc | I::TaskScheduler | I::WbemServices | I::SystemActivator
                ),
                _ => false,
            };
            assert!(!exec, "{quiet}: {a:?}");
        }
    }
}
