//! The asset inventory end to end, on a generated office replayed through
//! the binary and judged against the generator's own record of who sent
//! what and who answered whom (`generate_with_truth`): every inside host
//! and every service it offers is listed with its client counts, nothing
//! is invented; a restart keeps it; `new_host` and `new_exposed_service`
//! records fire exactly for what appeared after the learning period; the
//! bounds hold and are counted; the output does not depend on the worker
//! count; `tapsentry inventory` shows it.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;
use tapsentry_testkit::mac_for;
use tapsentry_testkit::office::{
    generate_with_truth, Attack, InventoryTruth, Office, OfficeSpec, ScanKind,
};

use crate::common::{replay, run, stderr};

/// The inventory's default learning period.
const LEARNING: f64 = 1800.0;

fn config(dir: &Path, extra: &str) -> String {
    let cfg = dir.join("office.toml");
    std::fs::write(
        &cfg,
        format!("[network]\nhome_net = [\"10.20.0.0/16\"]\n[intel]\ntor_exit_list = \"\"\ngeoip_city = \"\"\ngeoip_asn = \"\"\n{extra}"),
    )
    .unwrap();
    cfg.display().to_string()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A 90-minute office with, after the learning period, a new inside host
/// scanning two servers, an outside login to a server only admins used,
/// and an outside scan of the wiki.
fn office(dir: &Path) -> (std::path::PathBuf, InventoryTruth) {
    let o = Office::standard();
    let spec = OfficeSpec {
        seed: 11,
        hours: 1.5,
        attacks: vec![
            Attack::PortScan {
                at_secs: 3000.0,
                scanner: ip("10.20.99.99"),
                targets: vec![o.wiki, o.build_server],
                ports: vec![22, 80, 443, 8080, 9999],
                proto: 6,
                interval_secs: 0.5,
                kind: ScanKind::Connect,
            },
            Attack::ExternalLoginSuccess {
                at_secs: 3600.0,
                attacker: ip("203.0.113.66"),
                server: o.build_server,
                port: 22,
                speaks: None,
                secs: 0.0,
            },
            Attack::PortScan {
                at_secs: 4200.0,
                scanner: ip("198.51.100.250"),
                targets: vec![o.wiki],
                ports: vec![22, 80, 443, 3389],
                proto: 6,
                interval_secs: 0.5,
                kind: ScanKind::Syn,
            },
        ],
        ..OfficeSpec::default()
    };
    let pcap = dir.join("office.pcap");
    let (_, truth) = generate_with_truth(&spec, &pcap).unwrap();
    (pcap, truth)
}

fn read_inventory(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn hosts(inv: &Value) -> Vec<Value> {
    inv["hosts"].as_array().unwrap().clone()
}

/// (kind, host, port) of every inventory record in an alert log.
fn records(alerts: &[Value]) -> BTreeSet<(String, IpAddr, Option<u64>)> {
    alerts
        .iter()
        .filter(|a| a["event_type"] == "inventory")
        .map(|a| {
            (
                a["inventory"]["kind"].as_str().unwrap().to_string(),
                a["inventory"]["host"].as_str().unwrap().parse().unwrap(),
                a["inventory"]["service"]["port"].as_u64(),
            )
        })
        .collect()
}

#[test]
fn office_inventory_matches_the_ground_truth_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, truth) = office(dir.path());
    let cfg = config(dir.path(), "");
    let inv_path = dir.path().join("inventory.json");
    let inv_arg = inv_path.display().to_string();
    let (out, alerts, stats) = replay(
        dir.path(),
        &["--config", &cfg, "--inventory", &inv_arg, "--workers", "2"],
        &[&pcap],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mode = std::fs::metadata(&inv_path).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the inventory maps the network: owner only"
    );
    let inv = read_inventory(&inv_path);
    assert_eq!(inv["format"], "tapsentry-inventory");

    // Every inside host that sent a frame, and nothing else.
    let listed: BTreeSet<IpAddr> = hosts(&inv)
        .iter()
        .map(|h| h["ip"].as_str().unwrap().parse().unwrap())
        .collect();
    let expected: BTreeSet<IpAddr> = truth.hosts.keys().copied().collect();
    assert_eq!(listed, expected);
    assert!(listed.len() >= 30, "{} hosts", listed.len());

    // Every service with its distinct inside and outside clients, nothing
    // invented (closed ports the scans hit are not services).
    let mut services = BTreeSet::new();
    for h in hosts(&inv) {
        let host: IpAddr = h["ip"].as_str().unwrap().parse().unwrap();
        // The office's DNS answers name outside hosts only.
        assert_eq!(h["names"], Value::Array(vec![]), "{host}");
        // One flat segment: each host's frames carry its own MAC.
        let octets = match host {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        let mac = mac_for(&octets).map(|b| format!("{b:02x}")).join(":");
        assert_eq!(h["macs"], serde_json::json!([mac]), "{host}");
        assert!(
            h["bytes_out"].as_u64().unwrap() > 0,
            "{host} sent something"
        );
        for s in h["services"].as_array().unwrap() {
            let transport = s["transport"].as_str().unwrap();
            let port = s["port"].as_u64().unwrap() as u16;
            let key = (host, transport, port);
            let t = truth
                .services
                .iter()
                .find(|(k, _)| k.0 == host && k.1 == transport && k.2 == port)
                .map(|(_, v)| v)
                .unwrap_or_else(|| panic!("{key:?} invented"));
            assert_eq!(
                s["inside_clients"].as_u64().unwrap(),
                t.inside_clients.len() as u64,
                "{key:?}"
            );
            assert_eq!(
                s["outside_clients"].as_u64().unwrap(),
                t.outside_clients.len() as u64,
                "{key:?}"
            );
            services.insert((host, transport.to_string(), port));
        }
    }
    let want: BTreeSet<(IpAddr, String, u16)> = truth
        .services
        .keys()
        .map(|(h, t, p)| (*h, t.to_string(), *p))
        .collect();
    assert_eq!(services, want);
    // The roles the office gives its servers are among them.
    let o = Office::standard();
    for (host, port) in [
        (o.web_server, 443),
        (o.mail_server, 25),
        (o.file_server, 445),
    ] {
        assert!(
            services.contains(&(host, "tcp".into(), port)),
            "{host}:{port}"
        );
    }
    assert!(services.contains(&(o.resolver, "udp".into(), 53)));
    let resolver = hosts(&inv)
        .into_iter()
        .find(|h| h["ip"] == o.resolver.to_string())
        .unwrap();
    assert_eq!(
        resolver["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["transport"] == "udp")
            .unwrap()["app_proto"],
        "dns"
    );
    assert!(resolver["client_protocols"]["dns"].as_u64().unwrap() > 0);

    // Records: new hosts and first exposures after the learning period,
    // exactly, judged against the truth's times (none near the boundary,
    // where the sweep's delay would make the call ambiguous).
    for (h, t) in &truth.hosts {
        assert!(
            !(LEARNING - 300.0..LEARNING + 300.0).contains(t),
            "{h} at {t}"
        );
    }
    let mut want = BTreeSet::new();
    for (h, t) in &truth.hosts {
        if *t > LEARNING {
            want.insert(("new_host".to_string(), *h, None));
        }
    }
    for ((h, _, port), s) in &truth.services {
        if let Some(t) = s.first_outside_secs {
            assert!(
                !(LEARNING - 300.0..LEARNING + 300.0).contains(&t),
                "{h}:{port} at {t}"
            );
            if t > LEARNING {
                want.insert((
                    "new_exposed_service".to_string(),
                    *h,
                    Some(u64::from(*port)),
                ));
            }
        }
    }
    let got = records(&alerts);
    assert_eq!(got, want);
    assert!(got.contains(&("new_host".into(), ip("10.20.99.99"), None)));
    assert!(got.contains(&("new_exposed_service".into(), o.build_server, Some(22))));
    assert_eq!(
        stats["inventory"]["written"].as_u64(),
        Some(got.len() as u64)
    );
    assert_eq!(
        stats["inventory"]["hosts"].as_u64(),
        Some(listed.len() as u64)
    );
    let rec = alerts
        .iter()
        .find(|a| a["event_type"] == "inventory" && a["inventory"]["kind"] == "new_exposed_service")
        .unwrap();
    assert_eq!(rec["inventory"]["service"]["transport"], "tcp");
    assert!(rec["inventory"]["service"]["app_proto"].is_string());

    // The same capture with another worker count: the same alert log
    // (inventory records in the same places) and the same file.
    let dir4 = tempfile::tempdir().unwrap();
    let inv4 = dir4.path().join("inventory.json");
    let (out4, alerts4, _) = replay(
        dir4.path(),
        &[
            "--config",
            &cfg,
            "--inventory",
            &inv4.display().to_string(),
            "--workers",
            "4",
        ],
        &[&pcap],
    );
    assert!(out4.status.success(), "{}", stderr(&out4));
    assert_eq!(alerts4, alerts);
    assert_eq!(
        std::fs::read(&inv4).unwrap(),
        std::fs::read(&inv_path).unwrap()
    );

    // A restart on the file: every host and service is kept, learning is
    // not done again, and nothing is new.
    let (out2, alerts2, _) = replay(
        dir.path(),
        &["--config", &cfg, "--inventory", &inv_arg],
        &[&pcap],
    );
    assert!(out2.status.success(), "{}", stderr(&out2));
    assert!(
        stderr(&out2).contains("loaded inventory"),
        "{}",
        stderr(&out2)
    );
    assert_eq!(records(&alerts2), BTreeSet::new());
    let again = read_inventory(&inv_path);
    assert!(again["learned_secs"].as_u64() > inv["learned_secs"].as_u64());
    let strip = |v: &Value| -> Vec<(Value, Value)> {
        hosts(v)
            .iter()
            .map(|h| {
                let svc: Vec<Value> = h["services"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| {
                        serde_json::json!([
                            s["transport"],
                            s["port"],
                            s["inside_clients"],
                            s["outside_clients"],
                            s["first_seen"]
                        ])
                    })
                    .collect();
                (h["ip"].clone(), Value::Array(svc))
            })
            .collect()
    };
    assert_eq!(strip(&again), strip(&inv));

    // `tapsentry inventory`: a table with every host, one host, the JSON.
    let table = run(&["inventory", &inv_arg]);
    assert!(table.status.success(), "{}", stderr(&table));
    let text = String::from_utf8(table.stdout).unwrap();
    for h in &listed {
        assert!(
            text.contains(&format!("\n{h}  ")),
            "{h} missing from\n{text}"
        );
    }
    let one = run(&["inventory", &inv_arg, "--host", &o.web_server.to_string()]);
    let text = String::from_utf8(one.stdout).unwrap();
    assert!(text.starts_with(&format!("{}  ", o.web_server)), "{text}");
    assert!(text.contains("tcp/443"), "{text}");
    assert_eq!(
        text.lines().filter(|l| !l.starts_with(' ')).count(),
        1,
        "{text}"
    );
    let json = run(&["inventory", &inv_arg, "--json"]);
    assert_eq!(json.stdout, std::fs::read(&inv_path).unwrap());
    let missing = run(&["inventory", &inv_arg, "--host", "10.20.250.250"]);
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn inventory_bounds_hold_and_a_broken_file_is_one_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, truth) = office(dir.path());
    let cfg = config(
        dir.path(),
        "[inventory]\nmax_hosts = 10\nmax_services_per_host = 1\nmax_clients_per_service = 5\n",
    );
    let inv_path = dir.path().join("inventory.json");
    std::fs::write(
        &inv_path,
        b"{\"format\":\"tapsentry-inventory\",\"version\":1,\"hosts\":[{",
    )
    .unwrap();
    let (out, _, stats) = replay(
        dir.path(),
        &[
            "--config",
            &cfg,
            "--inventory",
            &inv_path.display().to_string(),
        ],
        &[&pcap],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.matches("warning: inventory file").count(), 1, "{err}");
    assert!(err.contains("starting with an empty inventory"), "{err}");
    let inv = read_inventory(&inv_path);
    let hs = hosts(&inv);
    assert_eq!(hs.len(), 10);
    for h in &hs {
        let ip: IpAddr = h["ip"].as_str().unwrap().parse().unwrap();
        assert!(truth.hosts.contains_key(&ip), "{ip} invented");
        let svc = h["services"].as_array().unwrap();
        assert!(svc.len() <= 1);
        for s in svc {
            let n = s["inside_clients"].as_u64().unwrap() + s["outside_clients"].as_u64().unwrap();
            assert!(n <= 5, "{s}");
        }
    }
    let st = &stats["inventory"];
    assert!(st["hosts_refused"].as_u64().unwrap() > 0, "{st}");
    assert!(st["services_refused"].as_u64().unwrap() > 0, "{st}");
    assert!(st["clients_not_counted"].as_u64().unwrap() > 0, "{st}");
    // A full inventory reports no host it could not keep.
    assert_eq!(st["records"].as_u64(), Some(0), "{st}");

    // The record rate: at most one per capture-time clock hour, the rest
    // counted (the office's four or more changes fall within two hours).
    let cfg = config(dir.path(), "[inventory]\nmax_records_per_hour = 1\n");
    std::fs::remove_file(&inv_path).unwrap();
    let (out, alerts, stats) = replay(
        dir.path(),
        &[
            "--config",
            &cfg,
            "--inventory",
            &inv_path.display().to_string(),
        ],
        &[&pcap],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let st = &stats["inventory"];
    let written = alerts
        .iter()
        .filter(|a| a["event_type"] == "inventory")
        .count() as u64;
    assert!((1..=2).contains(&written), "{written}");
    assert_eq!(st["written"].as_u64(), Some(written));
    assert!(st["records_suppressed"].as_u64().unwrap() >= 2, "{st}");
}

#[test]
fn inventory_command_needs_a_file_and_rejects_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    // The embedded default has no inventory file: a configuration error.
    let none = run(&["inventory"]);
    assert_eq!(none.status.code(), Some(2), "{}", stderr(&none));
    assert!(stderr(&none).contains("output.inventory"));
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, b"not json").unwrap();
    let out = run(&["inventory", &bad.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a tapsentry inventory file"),
        "{}",
        stderr(&out)
    );
    let cfg = config(dir.path(), "");
    let absent = run(&[
        "inventory",
        "--config",
        &cfg,
        &dir.path().join("absent.json").display().to_string(),
    ]);
    assert_eq!(absent.status.code(), Some(1));
}
