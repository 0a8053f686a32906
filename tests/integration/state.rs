//! The baseline state file: a capture replayed in two runs with the state
//! file between them alerts as one continuous run; a damaged or unwritable
//! state file is one warning and changes nothing else; saved files are
//! sorted and independent of the worker count.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tapsentry_testkit::office::{generate, OfficeSpec};
use tapsentry_testkit::scenario::{ip, Scenario};

use crate::common::{bin, read_jsonl, replay, stderr};

/// Home net 10.0.0.0/8, no intel files (so the only warnings are ours).
fn config(dir: &Path) -> String {
    let cfg = dir.join("state.toml");
    std::fs::write(
        &cfg,
        "[network]\nhome_net = [\"10.0.0.0/8\"]\n[intel]\ntor_exit_list = \"\"\ngeoip_city = \"\"\ngeoip_asn = \"\"\n",
    )
    .unwrap();
    cfg.display().to_string()
}

/// The first hour: habits learned during the 30-minute learning period.
/// A mail server sends mail, a GRE tunnel is up, admins log in to a server
/// from inside. Capture time then runs past the learning period.
fn first_half(path: &Path) {
    let mut s = Scenario::new();
    for (i, mx) in ["192.0.2.1", "192.0.2.2", "192.0.2.3"].iter().enumerate() {
        s.session(
            10.0 + i as f64,
            ip("10.0.0.25"),
            40000 + i as u16,
            ip(mx),
            25,
            3000,
            300,
            1.0,
        );
    }
    for i in 0..3 {
        s.ip_proto(20.0 + f64::from(i), ip("10.0.0.1"), ip("10.0.0.2"), 47, 100);
    }
    s.session(
        30.0,
        ip("10.0.5.5"),
        50000,
        ip("10.0.0.22"),
        22,
        5000,
        20000,
        120.0,
    );
    s.clock(2000.0);
    s.write(path).unwrap();
}

/// Later, after the learning period: the same habits again (quiet in a
/// continuous run), plus a new spambot, a new tunnel and a login to the
/// inside-only server from outside (alerts in a continuous run).
fn second_half(path: &Path) {
    let mut s = Scenario::new();
    for i in 0..5u16 {
        let mx = ip(&format!("198.51.100.{}", i + 1));
        s.session(
            3000.0 + f64::from(i),
            ip("10.0.0.25"),
            41000 + i,
            mx,
            25,
            3000,
            300,
            1.0,
        );
    }
    for i in 0..3 {
        s.ip_proto(
            3010.0 + f64::from(i),
            ip("10.0.0.1"),
            ip("10.0.0.2"),
            47,
            100,
        );
    }
    for i in 0..3u16 {
        let mx = ip(&format!("203.0.113.{}", i + 1));
        s.session(
            3020.0 + f64::from(i),
            ip("10.0.0.66"),
            42000 + i,
            mx,
            25,
            3000,
            300,
            1.0,
        );
    }
    for i in 0..3 {
        s.ip_proto(
            3030.0 + f64::from(i),
            ip("10.0.0.7"),
            ip("10.0.0.9"),
            47,
            100,
        );
    }
    s.session(
        3040.0,
        ip("203.0.113.50"),
        51000,
        ip("10.0.0.22"),
        22,
        5000,
        20000,
        120.0,
    );
    s.clock(3400.0);
    s.write(path).unwrap();
}

struct Halves {
    dir: tempfile::TempDir,
    cfg: String,
    a: PathBuf,
    b: PathBuf,
}

fn halves() -> Halves {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let a = dir.path().join("a.pcap");
    let b = dir.path().join("b.pcap");
    first_half(&a);
    second_half(&b);
    Halves { dir, cfg, a, b }
}

/// Replays with `--state-file state` (when given); returns (stderr, alerts).
fn run(h: &Halves, state: Option<&Path>, pcaps: &[&Path]) -> (String, Vec<Value>) {
    let mut args = vec!["--config", &h.cfg];
    let s;
    if let Some(p) = state {
        s = p.display().to_string();
        args.extend(["--state-file", &s]);
    }
    let (out, alerts, _) = replay(h.dir.path(), &args, pcaps);
    assert!(out.status.success(), "{}", stderr(&out));
    (stderr(&out), alerts)
}

fn signatures(alerts: &[Value]) -> Vec<(String, String)> {
    alerts
        .iter()
        .map(|a| {
            (
                a["alert"]["signature"].as_str().unwrap().to_string(),
                a["src_ip"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn warnings(err: &str) -> Vec<&str> {
    err.lines().filter(|l| l.contains("warning")).collect()
}

#[test]
fn two_runs_with_a_state_file_alert_as_one_continuous_run() {
    let h = halves();
    let (_, continuous) = run(&h, None, &[&h.a, &h.b]);
    let mut found = signatures(&continuous);
    found.sort();
    assert_eq!(
        found,
        [
            (
                "external_login.unusual_source".into(),
                "203.0.113.50".into()
            ),
            ("spambot.outbound_smtp".into(), "10.0.0.66".into()),
            ("unusual_protocol.internal".into(), "10.0.0.7".into()),
        ],
        "{continuous:#?}"
    );

    let state = h.dir.path().join("state.json");
    let (err, first) = run(&h, Some(&state), &[&h.a]);
    assert!(first.is_empty(), "{first:#?}");
    assert!(warnings(&err).is_empty(), "{err}");
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert!(
        saved["detectors"]["spambot"]["learned_secs"]
            .as_u64()
            .unwrap()
            >= 1800
    );

    // The restarted sensor neither forgets (the mail server, the tunnel and
    // the inside-only server stay known) nor learns again (the new spambot
    // is caught at once): the alerts are the continuous run's, byte for byte.
    let (err, second) = run(&h, Some(&state), &[&h.b]);
    assert!(warnings(&err).is_empty(), "{err}");
    assert!(err.contains("loaded baseline state from"), "{err}");
    assert_eq!(second, continuous);

    // Without the state the second half is a fresh start: all learning.
    let (_, fresh) = run(&h, None, &[&h.b]);
    assert!(fresh.is_empty(), "{fresh:#?}");

    // The habit is in the entries: a state whose learning is done but
    // whose mail hosts are gone makes the mail server a spambot.
    let mut forgetful = saved.clone();
    forgetful["detectors"]["spambot"]["entries"] = Value::Array(Vec::new());
    let state2 = h.dir.path().join("forgetful.json");
    std::fs::write(&state2, serde_json::to_vec(&forgetful).unwrap()).unwrap();
    let (_, alerts) = run(&h, Some(&state2), &[&h.b]);
    assert!(
        signatures(&alerts).contains(&("spambot.outbound_smtp".into(), "10.0.0.25".into())),
        "{alerts:#?}"
    );
}

#[test]
fn damaged_state_files_are_one_warning_and_change_nothing() {
    let h = halves();
    let (_, clean) = run(&h, None, &[&h.a, &h.b]);
    assert!(!clean.is_empty());
    let good = h.dir.path().join("good.json");
    run(&h, Some(&good), &[&h.a]);
    let good_bytes = std::fs::read(&good).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good_bytes[..good_bytes.len() / 2].to_vec()),
        ("not-json", b"this is not JSON\n".to_vec()),
        ("binary", vec![0xff, 0x00, 0xfe, 0x01]),
        ("empty", Vec::new()),
        (
            "wrong-version",
            String::from_utf8(good_bytes.clone())
                .unwrap()
                .replacen("\"version\":1", "\"version\":99", 1)
                .into_bytes(),
        ),
        (
            "wrong-format",
            br#"{"format":"something-else","version":1,"detectors":{}}"#.to_vec(),
        ),
    ];
    for (name, bytes) in cases {
        let state = h.dir.path().join(format!("{name}.json"));
        std::fs::write(&state, &bytes).unwrap();
        let (err, alerts) = run(&h, Some(&state), &[&h.a, &h.b]);
        let w = warnings(&err);
        assert_eq!(w.len(), 1, "{name}: {err}");
        assert!(w[0].contains(&state.display().to_string()), "{name}: {err}");
        assert_eq!(alerts, clean, "{name}");
        // The run replaced the damaged file with its own state.
        let v: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
        assert_eq!(v["format"], "tapsentry-state", "{name}");
    }
}

#[test]
fn an_unwritable_state_path_is_one_warning_and_the_run_succeeds() {
    let h = halves();
    let (_, clean) = run(&h, None, &[&h.a, &h.b]);
    let file = h.dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    for state in [
        h.dir.path().join("no/such/dir/state.json"),
        // Under a regular file: unwritable even for root.
        file.join("state.json"),
    ] {
        let (err, alerts) = run(&h, Some(&state), &[&h.a, &h.b]);
        let w = warnings(&err);
        assert_eq!(w.len(), 1, "{err}");
        assert!(w[0].contains(&state.display().to_string()), "{err}");
        assert_eq!(alerts, clean);
    }
}

#[test]
fn saved_state_is_sorted_json_and_the_same_for_any_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("office.pcap");
    generate(
        &OfficeSpec {
            seed: 5,
            hours: 0.75,
            ..OfficeSpec::default()
        },
        &pcap,
    )
    .unwrap();
    let cfg = dir.path().join("office.toml");
    std::fs::write(
        &cfg,
        "[network]\nhome_net = [\"10.20.0.0/16\"]\n[intel]\ntor_exit_list = \"\"\ngeoip_city = \"\"\ngeoip_asn = \"\"\n[detect]\nstate_interval_secs = 600\n",
    )
    .unwrap();
    let mut files = Vec::new();
    for workers in ["1", "3"] {
        let state = dir.path().join(format!("state-{workers}.json"));
        let (out, _, _) = replay(
            dir.path(),
            &[
                "--config",
                cfg.to_str().unwrap(),
                "--workers",
                workers,
                "--state-file",
                state.to_str().unwrap(),
            ],
            &[&pcap],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(warnings(&stderr(&out)).is_empty(), "{}", stderr(&out));
        files.push(std::fs::read(&state).unwrap());
    }
    assert!(
        files[0] == files[1],
        "state differs between 1 and 3 workers"
    );
    let v: Value = serde_json::from_slice(&files[0]).unwrap();
    assert_eq!(v["format"], "tapsentry-state");
    assert_eq!(v["version"], 1);
    let dets = v["detectors"].as_object().unwrap();
    for d in ["external_login", "spambot", "unusual_protocol"] {
        assert!(dets.contains_key(d), "{v:#}");
    }
    let mut total = 0;
    for (name, sec) in dets {
        assert!(sec["learned_secs"].as_u64().unwrap() >= 1800, "{name}");
        let hosts: Vec<std::net::IpAddr> = sec["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e[0].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(hosts.windows(2).all(|w| w[0] < w[1]), "{name}: {hosts:?}");
        total += hosts.len();
    }
    // The office's mail server, its tunnels and its servers' login habits.
    assert!(total >= 3, "{v:#}");
    assert!(!dets["spambot"]["entries"].as_array().unwrap().is_empty());
}

#[test]
fn sigterm_saves_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let pcap = dir.path().join("slow.pcap");
    let mut s = Scenario::new();
    s.session(
        0.0,
        ip("10.0.0.25"),
        40000,
        ip("192.0.2.1"),
        25,
        3000,
        300,
        0.5,
    );
    s.clock(600.0);
    s.write(&pcap).unwrap();
    let state = dir.path().join("state.json");
    let alerts = dir.path().join("alerts.jsonl");
    let child = Command::new(bin())
        .args(["replay", "--speed", "realtime", "--config", &cfg])
        .arg("--alerts")
        .arg(&alerts)
        .arg("--state-file")
        .arg(&state)
        .arg(&pcap)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!state.exists(), "saved before the first interval");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(v["detectors"]["spambot"]["entries"][0][0], "10.0.0.25");
    assert!(v["detectors"]["spambot"]["learned_secs"].as_u64().unwrap() < 60);
    assert!(read_jsonl(&alerts).is_empty());
}
