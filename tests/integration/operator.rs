//! The operator's commands on real alert logs: `alerts` (view and follow
//! across rotation) and `blocklist` (loaded by the real nft, ipset and
//! iptables-restore).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::{bin, replay, shared, stderr};

/// A configuration for the 240.0.0.0/4 SSH captures: the server's network
/// is inside, no intel files.
fn ssh_config(dir: &Path) -> PathBuf {
    let cfg = dir.join("ssh.toml");
    std::fs::write(
        &cfg,
        "[network]\nhome_net = [\"240.125.0.0/16\", \"10.0.0.0/8\", \"172.16.0.0/12\"]\n[intel]\ntor_exit_list = \"\"\ngeoip_city = \"\"\ngeoip_asn = \"\"\n",
    )
    .unwrap();
    cfg
}

/// An alert log with an outside brute forcer (240.0.1.2, hydra), an inside
/// host scanning out (172.16.0.8 -> 64.13.134.52, nmap) and an outside
/// IPv6 scanner (a hand-written record: no corpus capture has one).
fn attack_log(dir: &Path) -> (PathBuf, PathBuf) {
    let cfg = ssh_config(dir);
    let (out, _, _) = replay(
        dir,
        &["--config", cfg.to_str().unwrap()],
        &[
            &shared("attacks/ssh-bruteforce-hydra-1task.pcap"),
            &shared("attacks/nmap-syn-scan-1000-ports.pcap"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let log = dir.join("alerts.jsonl");
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(
        f,
        r#"{{"timestamp":"2024-01-01T00:00:00.000000Z","event_type":"alert","src_ip":"2001:db8::66","dest_ip":"fd00::5","alert":{{"category":"port_scan","signature":"port_scan.vertical","severity":2}}}}"#
    )
    .unwrap();
    (log, cfg)
}

fn tapsentry(args: &[&str]) -> std::process::Output {
    Command::new(bin()).args(args).output().unwrap()
}

#[test]
fn alerts_shows_one_line_per_alert_and_passes_json_through() {
    let dir = tempfile::tempdir().unwrap();
    let (log, cfg) = attack_log(dir.path());
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(b"{\"event_type\":\"alert\",\"src_ip\":\"garbage\"}\nnot json at all\n")
        .unwrap();
    let log_s = log.to_str().unwrap();
    let out = tapsentry(&["alerts", "--config", cfg.to_str().unwrap(), log_s]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    // Not a terminal: no colour.
    assert!(!text.contains('\x1b'), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), read_jsonl_prefix(&log).len(), "{text}");
    let bf = lines
        .iter()
        .find(|l| l.contains("external_login.brute_force"))
        .unwrap();
    assert!(
        bf.contains("240.0.1.2:") && bf.contains("-> 240.125.0.2:22/TCP"),
        "{bf}"
    );
    assert!(
        stderr(&out).contains("2 lines were not records"),
        "{}",
        stderr(&out)
    );

    let out = tapsentry(&["alerts", "--json", "--category", "port_scan", log_s]);
    let json = String::from_utf8(out.stdout).unwrap();
    let original = std::fs::read_to_string(&log).unwrap();
    // The scan's alert, its alert_update and the IPv6 scan.
    assert_eq!(json.lines().count(), 3, "{json}");
    for l in json.lines() {
        assert!(original.lines().any(|o| o == l), "changed: {l}");
        assert!(l.contains("\"port_scan\""));
    }
    let out = tapsentry(&["alerts", "--since", "2020-01-01", log_s]);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 1);
    let out = tapsentry(&["alerts", "--since", "last tuesday", log_s]);
    assert_eq!(out.status.code(), Some(2));
    let out = tapsentry(&["alerts", "/nonexistent/alerts.jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/nonexistent/alerts.jsonl"));
}

/// The records of a log the view should show (every parseable line).
fn read_jsonl_prefix(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["src_ip"]
                .as_str()
                .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok())
        })
        .collect()
}

#[test]
fn alerts_follow_survives_rename_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let (src, _) = attack_log(dir.path());
    let records: Vec<String> = std::fs::read_to_string(&src)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(records.len() >= 3);
    let log = dir.path().join("live.jsonl");
    std::fs::write(&log, format!("{}\n", records[0])).unwrap();
    let mut child = Command::new(bin())
        .args(["alerts", "--follow", "--json"])
        .arg(&log)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            if tx.send(l.unwrap()).is_err() {
                break;
            }
        }
    });
    let next = || {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("a followed line")
    };
    assert_eq!(next(), records[0]);
    // Appended in two writes: the half line is not shown until complete.
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let (a, b) = records[1].split_at(10);
    f.write_all(a.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    f.write_all(format!("{b}\n").as_bytes()).unwrap();
    assert_eq!(next(), records[1]);
    // logrotate's rename: the old file is moved away, a new one created.
    std::fs::rename(&log, dir.path().join("live.jsonl.1")).unwrap();
    std::fs::write(&log, format!("{}\n", records[2])).unwrap();
    assert_eq!(next(), records[2]);
    // copytruncate: the same file emptied, then written again.
    std::thread::sleep(Duration::from_millis(600));
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    std::fs::write(&log, format!("{}\n", records[0])).unwrap();
    assert_eq!(next(), records[0]);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A network namespace the test owns, deleted at drop; `None` when this
/// process cannot make one (not root).
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Option<Netns> {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: not root, cannot create a network namespace");
            return None;
        }
        let name = format!("tsbl-{tag}-{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: ip netns add failed");
            return None;
        }
        Some(Netns(name))
    }

    /// Runs `prog args` inside, with `stdin` as its standard input.
    fn run(&self, prog: &str, args: &[&str], stdin: Option<&Path>) -> std::process::Output {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, prog]).args(args);
        if let Some(p) = stdin {
            c.stdin(std::fs::File::open(p).unwrap());
        }
        c.output().unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn have(prog: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: {prog} not installed (scripts/test.sh installs it)");
    }
    found
}

fn blocklist(dir: &Path, log: &Path, cfg: &Path, format: &str) -> PathBuf {
    let out = tapsentry(&[
        "blocklist",
        "--config",
        cfg.to_str().unwrap(),
        "--format",
        format,
        log.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let path = dir.join(format!("block.{format}"));
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

#[test]
fn blocklist_lists_outside_attackers_only() {
    let dir = tempfile::tempdir().unwrap();
    let (log, cfg) = attack_log(dir.path());
    let text = std::fs::read_to_string(blocklist(dir.path(), &log, &cfg, "plain")).unwrap();
    let addrs: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    // The brute forcer and the IPv6 scanner; neither the inside scanner
    // (172.16.0.8) nor its victim (64.13.134.52) nor the SSH server.
    assert_eq!(addrs, ["240.0.1.2", "2001:db8::66"], "{text}");
    assert!(text.contains("external_login.brute_force"));
    // Severity 1 only: the brute force (2) and the scan (2) drop out.
    let out = tapsentry(&[
        "blocklist",
        "--config",
        cfg.to_str().unwrap(),
        "--min-severity",
        "1",
        log.to_str().unwrap(),
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.lines().filter(|l| !l.starts_with('#')).count(),
        0,
        "{text}"
    );
}

#[test]
fn blocklist_nft_loads_in_a_namespace() {
    if !have("nft") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (log, cfg) = attack_log(dir.path());
    let file = blocklist(dir.path(), &log, &cfg, "nft");
    let Some(ns) = Netns::new("nft") else { return };
    let f = file.to_str().unwrap();
    let out = ns.run("nft", &["-c", "-f", f], None);
    assert!(out.status.success(), "nft -c: {}", stderr(&out));
    // Loaded for real, twice (a reload replaces the table).
    for _ in 0..2 {
        let out = ns.run("nft", &["-f", f], None);
        assert!(out.status.success(), "nft -f: {}", stderr(&out));
    }
    let v4 = ns.run(
        "nft",
        &["list", "set", "inet", "tapsentry", "attackers_v4"],
        None,
    );
    let v4 = String::from_utf8_lossy(&v4.stdout);
    assert!(
        v4.contains("240.0.1.2") && !v4.contains("172.16.0.8"),
        "{v4}"
    );
    let v6 = ns.run(
        "nft",
        &["list", "set", "inet", "tapsentry", "attackers_v6"],
        None,
    );
    assert!(String::from_utf8_lossy(&v6.stdout).contains("2001:db8::66"));
}

#[test]
fn blocklist_ipset_restores_in_a_namespace() {
    if !have("ipset") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (log, cfg) = attack_log(dir.path());
    let file = blocklist(dir.path(), &log, &cfg, "ipset");
    let Some(ns) = Netns::new("ipset") else {
        return;
    };
    let out = ns.run("ipset", &["restore", "-exist"], Some(&file));
    if !out.status.success() && stderr(&out).contains("Kernel error") {
        eprintln!(
            "skipped: the kernel has no ip_set support: {}",
            stderr(&out)
        );
        return;
    }
    assert!(out.status.success(), "ipset restore: {}", stderr(&out));
    let list = ns.run("ipset", &["list", "tapsentry-v4"], None);
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.contains("240.0.1.2 comment"), "{list}");
    let list = ns.run("ipset", &["list", "tapsentry-v6"], None);
    assert!(String::from_utf8_lossy(&list.stdout).contains("2001:db8::66"));
}

#[test]
fn blocklist_iptables_passes_restore_test() {
    if !have("iptables-restore") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (log, cfg) = attack_log(dir.path());
    let Some(ns) = Netns::new("ipt") else { return };
    for (format, prog) in [
        ("iptables", "iptables-restore"),
        ("ip6tables", "ip6tables-restore"),
    ] {
        let file = blocklist(dir.path(), &log, &cfg, format);
        let out = ns.run(prog, &["--test", "--noflush", file.to_str().unwrap()], None);
        assert!(out.status.success(), "{prog}: {}", stderr(&out));
    }
}

#[test]
fn blocklist_reads_the_configured_log_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = attack_log(dir.path());
    let cfg = dir.path().join("default-log.toml");
    std::fs::write(
        &cfg,
        format!(
            "[network]\nhome_net = [\"240.125.0.0/16\", \"172.16.0.0/12\"]\n[output]\nalert_log = {:?}\n",
            log.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = tapsentry(&["blocklist", "--config", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("240.0.1.2 #"));
}

/// Alerts of a replay with `args`, stdin from `stdin` when given.
fn replay_alerts(args: &[&str], stdin: Option<&Path>) -> (std::process::Output, Vec<String>) {
    let mut c = Command::new(bin());
    c.args(["replay", "--alerts", "-"]).args(args);
    c.stdin(match stdin {
        Some(p) => Stdio::from(std::fs::File::open(p).unwrap()),
        None => Stdio::null(),
    });
    let out = c.output().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    (out, lines)
}

#[test]
fn replay_reads_pcap_and_pcapng_from_stdin() {
    for rel in [
        "attacks/nmap-syn-scan-1000-ports.pcap",
        "attacks/nmap-syn-ping-sweep-256-hosts.pcapng",
    ] {
        let file = shared(rel);
        let (from_file, want) = replay_alerts(&[file.to_str().unwrap()], None);
        assert!(from_file.status.success(), "{rel}: {}", stderr(&from_file));
        assert!(!want.is_empty(), "{rel}: no alert to compare");
        let (piped, got) = replay_alerts(&["-"], Some(&file));
        assert!(piped.status.success(), "{rel} on stdin: {}", stderr(&piped));
        assert_eq!(got, want, "{rel}");
        // The same packet count in the summary.
        let count = |o: &std::process::Output| {
            let e = stderr(o);
            e.lines()
                .find(|l| l.contains(" packets ("))
                .map(|l| l.split(" packets (").next().unwrap().to_string())
        };
        assert_eq!(count(&piped), count(&from_file), "{rel}");
    }
    // Not a capture on stdin: exit 1, naming "-".
    let junk = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(junk.path(), b"hello, not a capture").unwrap();
    let (out, _) = replay_alerts(&["-"], Some(junk.path()));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("-: "), "{}", stderr(&out));
}

#[test]
fn replay_of_a_directory_goes_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let caps = dir.path().join("caps");
    std::fs::create_dir(&caps).unwrap();
    // Named against time order: the 2010 scan is "a", the 1970 brute force "b".
    let scan = shared("attacks/nmap-syn-scan-1000-ports.pcap");
    let brute = shared("attacks/ssh-bruteforce-hydra-1task.pcap");
    std::fs::copy(&scan, caps.join("a.pcap")).unwrap();
    std::fs::copy(&brute, caps.join("b.pcap")).unwrap();
    std::fs::write(caps.join("README.txt"), "not a capture").unwrap();
    std::fs::write(caps.join(".hidden.pcap"), "skipped unread").unwrap();
    let cfg = ssh_config(dir.path());
    let cfg = cfg.to_str().unwrap();
    let (out, from_dir) = replay_alerts(&["--config", cfg, caps.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("README.txt") && err.contains("not replayed"),
        "{err}"
    );
    assert!(!err.contains(".hidden"), "{err}");
    let (_, in_time_order) = replay_alerts(
        &[
            "--config",
            cfg,
            brute.to_str().unwrap(),
            scan.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(from_dir, in_time_order);
    let times: Vec<String> = from_dir
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["timestamp"].to_string())
        .collect();
    assert!(
        times.len() >= 2 && times.windows(2).all(|w| w[0] <= w[1]),
        "{times:?}"
    );
    // A directory with no capture is an error naming it.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (out, _) = replay_alerts(&[empty.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no pcap or pcapng file"),
        "{}",
        stderr(&out)
    );
}

/// Micros since the epoch of an RFC 3339 `timestamp` field.
fn micros(v: &serde_json::Value) -> i64 {
    use time::format_description::well_known::Rfc3339;
    let t = time::OffsetDateTime::parse(v.as_str().unwrap(), &Rfc3339).unwrap();
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap()
}

/// Three vertical scans, written as a capture: 81.2.69.142 (GB in the
/// MaxMind test database) probes 300 closed ports of 10.0.0.5 at 10 a
/// second and stops; 198.51.100.7 (unknown to the database) probes 40 of
/// 10.0.0.7; after 700 s of quiet the inside host 10.0.0.66 scans 200
/// ports of 89.160.20.112 (SE) until the capture ends.
fn scans_capture(path: &Path) {
    use tapsentry_testkit::scenario::{ip, Scenario};
    let mut s = Scenario::new();
    for i in 0..300u16 {
        let t = f64::from(i) * 0.1;
        s.refused(t, ip("81.2.69.142"), 40_000 + i, ip("10.0.0.5"), 1 + i);
    }
    for i in 0..40u16 {
        let t = 0.05 + f64::from(i) * 0.5;
        s.refused(t, ip("198.51.100.7"), 50_000 + i, ip("10.0.0.7"), 2000 + i);
    }
    s.clock(700.0);
    for i in 0..200u16 {
        let t = 701.0 + f64::from(i) * 0.05;
        s.refused(
            t,
            ip("10.0.0.66"),
            30_000 + i,
            ip("89.160.20.112"),
            1000 + i,
        );
    }
    s.write(path).unwrap();
}

#[test]
fn scans_are_told_to_the_end_with_geo_and_response() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("scans.pcap");
    scans_capture(&pcap);
    let db = |n: &str| crate::common::repo("crates/intel/tests/data").join(n);
    let cfg = dir.path().join("geo.toml");
    std::fs::write(
        &cfg,
        format!(
            "[network]\nhome_net = [\"10.0.0.0/8\"]\n[intel]\ntor_exit_list = \"\"\ngeoip_city = {:?}\ngeoip_asn = {:?}\n",
            db("GeoIP2-City-Test.mmdb").to_str().unwrap(),
            db("GeoLite2-ASN-Test.mmdb").to_str().unwrap()
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let pcap_s = pcap.to_str().unwrap();
    let (out, w1) = replay_alerts(&["--config", cfg, "--workers", "1", pcap_s], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, w4) = replay_alerts(&["--config", cfg, "--workers", "4", pcap_s], None);
    assert_eq!(w1, w4, "the log depends on the worker count");
    let recs: Vec<serde_json::Value> = w1
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |kind: &str, src: &str| -> Vec<&serde_json::Value> {
        recs.iter()
            .filter(|r| r["event_type"] == kind && r["src_ip"] == src)
            .collect()
    };
    let expect = [
        ("81.2.69.142", "10.0.0.5", 300u64, 29.9, 10.03),
        ("198.51.100.7", "10.0.0.7", 40, 19.5, 2.05),
        ("10.0.0.66", "89.160.20.112", 200, 9.95, 20.1),
    ];
    for (src, dest, ports, secs, rate) in expect {
        let alerts = of("alert", src);
        let updates = of("alert_update", src);
        assert_eq!((alerts.len(), updates.len()), (1, 1), "{src}: {recs:#?}");
        let (a, u) = (alerts[0], updates[0]);
        assert_eq!(a["alert"]["signature"], "port_scan.vertical");
        assert_eq!(
            (u["dest_ip"].as_str(), a["dest_ip"].as_str()),
            (Some(dest), Some(dest))
        );
        // The update names the alert written, as the contract computes ids.
        let first = tapsentry_types::Timestamp::from_micros(micros(&a["timestamp"]));
        let id = tapsentry_types::alert_id(
            a["host"].as_str().unwrap(),
            "port_scan.vertical",
            src.parse().unwrap(),
            Some(dest.parse().unwrap()),
            first,
        );
        assert_eq!(u["alert"]["alert_id"].as_u64(), Some(id), "{src}");
        assert_eq!(u["alert"]["alert_id"], a["alert"]["alert_id"], "{src}");
        assert_eq!(u["alert"]["category"], "port_scan");
        // The alert counted the first ports; the update the final ones.
        let e = &u["evidence"];
        assert!(
            a["evidence"]["distinct_ports"].as_u64().unwrap() < ports,
            "{src}"
        );
        assert_eq!(e["distinct_ports"].as_u64(), Some(ports), "{src}: {e}");
        assert_eq!(e["distinct_targets"].as_u64(), Some(1));
        assert_eq!(e["failures"].as_u64(), Some(ports));
        assert_eq!(e["probes"].as_u64(), Some(ports));
        let d = e["duration_secs"].as_f64().unwrap();
        assert!((d - secs).abs() < 0.05, "{src}: duration {d}");
        let r = e["rate_per_sec"].as_f64().unwrap();
        assert!((r - rate).abs() < 0.1, "{src}: rate {r}");
        assert_eq!(
            e["at_alert"]["distinct_ports"],
            a["evidence"]["distinct_ports"]
        );
        // Told when the scan stopped: stamped with its last probe.
        assert_eq!(micros(&u["timestamp"]), micros(&e["last_seen"]));
    }
    // The first scan was told when it stopped (the tick after 600 s of
    // quiet), before the last one began; the last one at the capture's end.
    let pos = |kind: &str, src: &str| {
        recs.iter()
            .position(|r| r["event_type"] == kind && r["src_ip"] == src)
            .unwrap()
    };
    assert!(pos("alert_update", "81.2.69.142") < pos("alert", "10.0.0.66"));
    assert_eq!(pos("alert_update", "10.0.0.66"), recs.len() - 1);
    // Geo of the outside party; none when the database knows nothing.
    let inbound = of("alert", "81.2.69.142")[0];
    assert_eq!(inbound["geo"]["country"], "GB");
    assert_eq!(inbound["response"]["action"], "block");
    assert_eq!(inbound["response"]["ip"], "81.2.69.142");
    let unknown = of("alert", "198.51.100.7")[0];
    assert!(unknown.get("geo").is_none(), "{unknown}");
    let outbound = of("alert", "10.0.0.66")[0];
    assert_eq!(outbound["geo"]["country"], "SE", "{outbound}");
    assert_eq!(outbound["geo"]["ip"], "89.160.20.112");
    // Isolate the inside scanner; no rule against its victim.
    assert_eq!(outbound["response"]["action"], "isolate");
    assert_eq!(outbound["response"]["ip"], "10.0.0.66");
    assert!(!outbound["response"].to_string().contains("89.160.20.112"));
    // The view shows the updates; the block list has the outside scanners
    // only (not the outbound scan's victim).
    let log = dir.path().join("scans.jsonl");
    std::fs::write(&log, w1.join("\n") + "\n").unwrap();
    let view = tapsentry(&["alerts", log.to_str().unwrap()]);
    let view = String::from_utf8(view.stdout).unwrap();
    assert_eq!(
        view.lines().filter(|l| l.contains(" update ")).count(),
        3,
        "{view}"
    );
    let bl = tapsentry(&["blocklist", "--config", cfg, log.to_str().unwrap()]);
    let bl = String::from_utf8(bl.stdout).unwrap();
    let listed: Vec<&str> = bl
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(listed, ["81.2.69.142", "198.51.100.7"], "{bl}");
}

#[test]
fn brute_force_is_told_to_the_end() {
    use tapsentry_testkit::scenario::{ip, Scenario};
    let dir = tempfile::tempdir().unwrap();
    // 30 short SSH sessions from outside, one every 2 s, then nothing.
    let mut s = Scenario::new();
    for i in 0..30u16 {
        let t = f64::from(i) * 2.0;
        s.session(
            t,
            ip("198.51.100.9"),
            41_000 + i,
            ip("10.0.0.5"),
            22,
            600,
            900,
            0.5,
        );
    }
    let pcap = dir.path().join("brute.pcap");
    s.write(&pcap).unwrap();
    let cfg = ssh_config(dir.path());
    let args = ["--config", cfg.to_str().unwrap(), pcap.to_str().unwrap()];
    let (out, lines) = replay_alerts(&args, None);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, w4) = replay_alerts(
        &[&args[..2], &["--workers", "4"], &args[2..]].concat(),
        None,
    );
    assert_eq!(lines, w4, "the log depends on the worker count");
    let recs: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let bf = |kind: &str| -> Vec<&serde_json::Value> {
        recs.iter()
            .filter(|r| {
                r["event_type"] == kind && r["alert"]["signature"] == "external_login.brute_force"
            })
            .collect()
    };
    let (alerts, updates) = (bf("alert"), bf("alert_update"));
    assert_eq!((alerts.len(), updates.len()), (1, 1), "{recs:#?}");
    let (a, u) = (alerts[0], updates[0]);
    // The alert at the threshold (10 sessions), the update at the end.
    assert_eq!(a["evidence"]["sessions"], 10);
    let e = &u["evidence"];
    assert_eq!(e["sessions"], 30, "{e}");
    assert_eq!(e["at_alert"]["sessions"], 10);
    let d = e["duration_secs"].as_f64().unwrap();
    // First SYN at 0 s, last session closed about 58.5 s later.
    assert!((58.0..59.5).contains(&d), "{d}");
    let r = e["rate_per_min"].as_f64().unwrap();
    assert!((30.0..31.5).contains(&r), "{r}");
    let first = tapsentry_types::Timestamp::from_micros(micros(&a["timestamp"]));
    let id = tapsentry_types::alert_id(
        a["host"].as_str().unwrap(),
        "external_login.brute_force",
        "198.51.100.9".parse().unwrap(),
        Some("10.0.0.5".parse().unwrap()),
        first,
    );
    assert_eq!(u["alert"]["alert_id"].as_u64(), Some(id));
    assert_eq!(u["alert"]["alert_id"], a["alert"]["alert_id"]);
    assert_eq!(
        (u["src_ip"].as_str(), u["dest_ip"].as_str()),
        (Some("198.51.100.9"), Some("10.0.0.5"))
    );
}

#[test]
fn replay_on_a_terminal_shows_progress_and_a_summary_table() {
    if !have("script") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = ssh_config(dir.path());
    let alerts = dir.path().join("a.jsonl");
    let cmd = format!(
        "{} replay --config {} --alerts {} {} {}",
        bin().display(),
        cfg.display(),
        alerts.display(),
        shared("attacks/ssh-bruteforce-hydra-4tasks.pcap").display(),
        shared("attacks/nmap-syn-scan-1000-ports.pcap").display()
    );
    // util-linux `script` gives the command a pseudo-terminal.
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let tty = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    // The bar was drawn (then cleared): its counts line.
    assert!(
        tty.contains(" packets/s, ") && tty.contains(" alerts"),
        "{tty}"
    );
    assert!(tty.contains("alerts by category"), "{tty}");
    let row = |name: &str| {
        tty.lines()
            .find(|l| l.trim_start().starts_with(name))
            .map(|l| l.split_whitespace().last().unwrap().to_string())
    };
    assert_eq!(row("external_login").as_deref(), Some("1"), "{tty}");
    assert_eq!(row("port_scan").as_deref(), Some("1"), "{tty}");
    assert_eq!(row("total").as_deref(), Some("2"), "{tty}");
    assert!(
        tty.contains("top hosts") && tty.contains("240.0.1.3"),
        "{tty}"
    );
    assert!(tty.contains("flows: 2237 created"), "{tty}");
    // Not the line for logs and scripts.
    assert!(!tty.contains("alerts written"), "{tty}");
    // Without a terminal: that line, and no table.
    let plain = tapsentry(&[
        "replay",
        "--config",
        cfg.to_str().unwrap(),
        "--alerts",
        alerts.to_str().unwrap(),
        shared("attacks/ssh-bruteforce-hydra-4tasks.pcap")
            .to_str()
            .unwrap(),
    ]);
    let err = stderr(&plain);
    assert!(
        err.contains("alerts written") && !err.contains("alerts by category"),
        "{err}"
    );
    assert!(!err.contains('\x1b'), "{err}");
}
