//! Faults the sensor must ride out (issue 16): an alert log that cannot be
//! written, broken intel, state and inventory files at start and on
//! SIGHUP, SIGTERM and kill -9 in the middle of a run.
#![allow(
    clippy::disallowed_methods,
    reason = "deadlines for a child process are wall time"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tapsentry_testkit::fs::Tmpfs;
use tapsentry_testkit::scenario::{ip, Scenario};

use crate::common::{bin, read_jsonl, stderr};

/// The listed exits [`tor_sessions`] talks to.
const EXITS: &str = "185.220.101.4\n171.25.193.20\n";

/// `n` inside hosts (10.7.0.1, ...), one a second from 0 s, each with a
/// short session to a listed exit; with `tcp_closed = 1` each raises one
/// `tor` alert about a second of capture time later. Capture time runs to
/// `n + 3` seconds.
fn tor_sessions(path: &Path, n: u8) {
    let mut s = Scenario::new();
    for i in 0..n {
        let exit = if i % 2 == 0 {
            "185.220.101.4"
        } else {
            "171.25.193.20"
        };
        s.session(
            f64::from(i),
            ip(&format!("10.7.0.{}", i + 1)),
            50_000,
            ip(exit),
            443,
            300,
            300,
            0.1,
        );
    }
    let mut t = 0.25;
    while t < f64::from(n) + 3.0 {
        s.clock(t);
        t += 0.25;
    }
    s.write(path).unwrap();
}

/// A config naming the Tor list (written beside it), with stats every
/// wall-clock second, `output` lines in `[output]` and `extra` tables.
fn config(dir: &Path, output: &str, extra: &str) -> PathBuf {
    let list = dir.join("tor.txt");
    std::fs::write(&list, EXITS).unwrap();
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[intel]\ntor_exit_list = {:?}\ngeoip_city = \"\"\ngeoip_asn = \"\"\n[output]\nstats_interval_secs = 1\n{output}[flow.timeouts]\ntcp_closed = 1\n{extra}",
            list.display().to_string()
        ),
    )
    .unwrap();
    cfg
}

fn replay_cmd(cfg: &Path, alerts: &Path, stats: &Path, pcap: &Path, speed: &str) -> Command {
    let mut c = Command::new(bin());
    c.args(["replay", "--speed", speed, "--config"])
        .arg(cfg)
        .arg("--alerts")
        .arg(alerts)
        .arg("--stats")
        .arg(stats)
        .arg(pcap);
    c
}

fn last_stats(path: &Path) -> Value {
    read_jsonl(path).pop().unwrap_or(Value::Null)
}

/// The alerts of an uninterrupted run at full speed: what every faulty run
/// must end up with.
fn reference_alerts(dir: &Path, cfg: &Path, pcap: &Path) -> (Vec<Value>, Value) {
    let alerts = dir.join("reference.jsonl");
    let stats = dir.join("reference-stats.jsonl");
    let out = replay_cmd(cfg, &alerts, &stats, pcap, "max")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    (read_jsonl(&alerts), last_stats(&stats))
}

/// `/dev/full` takes the open and refuses every write: the replay reads
/// every packet, says so once on stderr (not once a line), keeps the
/// alerts in memory, and at exit states how many were lost and exits 1.
#[test]
fn an_alert_log_on_a_full_disk_does_not_stop_capture() {
    if !Path::new("/dev/full").exists() {
        eprintln!("SKIPPED: no /dev/full");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("tor.pcap");
    tor_sessions(&pcap, 5);
    let cfg = config(dir.path(), "", "");
    let (reference, ref_stats) = reference_alerts(dir.path(), &cfg, &pcap);
    assert_eq!(reference.len(), 5);

    let stats = dir.path().join("stats.jsonl");
    let out = replay_cmd(&cfg, Path::new("/dev/full"), &stats, &pcap, "max")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("capture goes on").count(), 1, "{err}");
    assert!(
        err.contains("cannot write alert log /dev/full: No space left on device"),
        "{err}"
    );
    assert!(err.contains("5 lines lost in 1 outages"), "{err}");
    let s = last_stats(&stats);
    assert_eq!(s["capture"]["packets"], ref_stats["capture"]["packets"]);
    assert_eq!(s["alerts"]["written"], 5, "kept in memory until exit");
    assert_eq!(s["alert_log"]["outages"], 1);
    assert_eq!(s["alert_log"]["lost"], 5);
    assert_eq!(s["alert_log"]["backlog"], 0);
    assert!(s["alert_log"]["failed_writes"].as_u64().unwrap() >= 1);
}

/// With no backlog (`alert_backlog_mb = 0`) each alert is lost at once,
/// and counted as such.
#[test]
fn without_a_backlog_alerts_are_lost_at_once_and_counted() {
    if !Path::new("/dev/full").exists() {
        eprintln!("SKIPPED: no /dev/full");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("tor.pcap");
    tor_sessions(&pcap, 3);
    let cfg = config(dir.path(), "alert_backlog_mb = 0\n", "");
    let stats = dir.path().join("stats.jsonl");
    let out = replay_cmd(&cfg, Path::new("/dev/full"), &stats, &pcap, "max")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let s = last_stats(&stats);
    assert_eq!(s["alerts"]["written"], 0);
    assert_eq!(s["alerts"]["lost"], 3);
    assert_eq!(s["alert_log"]["lost"], 3);
}

/// A real full disk (a tmpfs the test mounts and fills, as root) that
/// gets room again mid-run: the alerts raised meanwhile wait in memory and
/// go in, in order, on the next retry; the log ends equal to an
/// uninterrupted run's, nothing lost, exit 0.
#[test]
fn alerts_wait_for_room_and_go_in_when_the_disk_has_some() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let Some(fs) = Tmpfs::mount(&mnt, 64 << 10) else {
        return;
    };
    let pcap = dir.path().join("tor.pcap");
    tor_sessions(&pcap, 6);
    let cfg = config(dir.path(), "", "");
    let (reference, _) = reference_alerts(dir.path(), &cfg, &pcap);
    assert_eq!(reference.len(), 6);

    let alerts = mnt.join("alerts.jsonl");
    std::fs::write(&alerts, "").unwrap();
    assert!(fs.fill("filler", 1 << 20) > 0);
    let stats = dir.path().join("stats.jsonl");
    let child = replay_cmd(&cfg, &alerts, &stats, &pcap, "realtime")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the sensor has met the full disk, then make room.
    let t = Instant::now();
    while last_stats(&stats)["alert_log"]["outages"]
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        assert!(t.elapsed() < Duration::from_secs(8), "no outage seen");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(read_jsonl(&alerts).is_empty());
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(err.matches("capture goes on").count(), 1, "{err}");
    assert!(
        err.contains("writable again:") && err.contains(", 0 lost"),
        "{err}"
    );
    assert_eq!(read_jsonl(&alerts), reference);
    let s = last_stats(&stats);
    assert_eq!(
        (
            s["alert_log"]["outages"].as_u64(),
            s["alert_log"]["lost"].as_u64()
        ),
        (Some(1), Some(0))
    );
}

/// Every file the sensor reads at start broken at once: a Tor list that is
/// not text, a City "database" that is not one, a state file cut off mid
/// JSON, an inventory that is not JSON. The replay runs (exit 0), without
/// them, saying so once each and counting them; at exit it writes a good
/// state file and inventory in their place, owner-only (0600), and the
/// alert log it created is 0640.
#[test]
fn broken_files_at_start_are_said_once_counted_and_replaced() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("tor.pcap");
    tor_sessions(&pcap, 2);
    let state = dir.path().join("state.json");
    let inventory = dir.path().join("inventory.json");
    let city = dir.path().join("city.mmdb");
    std::fs::write(
        &state,
        r#"{"format":"tapsentry-state","version":1,"detectors":{"spam"#,
    )
    .unwrap();
    std::fs::write(&inventory, "\u{0}\u{1} not json").unwrap();
    std::fs::write(&city, "not a MaxMind database").unwrap();
    let cfg = config(dir.path(), "", "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "geoip_city = \"\"",
        &format!("geoip_city = {:?}", city.display().to_string()),
    );
    std::fs::write(&cfg, text).unwrap();
    std::fs::write(dir.path().join("tor.txt"), b"\xff\xfe\x00garbage").unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let stats = dir.path().join("stats.jsonl");
    let out = replay_cmd(&cfg, &alerts, &stats, &pcap, "max")
        .arg("--state-file")
        .arg(&state)
        .arg("--inventory")
        .arg(&inventory)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    for what in ["tor.txt", "city.mmdb", "state.json", "inventory.json"] {
        assert_eq!(
            err.lines()
                .filter(|l| l.contains("warning") && l.contains(what))
                .count(),
            1,
            "{what}: {err}"
        );
    }
    assert_eq!(err.matches("running without it").count(), 2, "{err}");
    let s = last_stats(&stats);
    assert_eq!(s["files"]["intel_load_failures"], 2, "{s}");
    assert_eq!(s["files"]["state_load_failures"], 1, "{s}");
    assert_eq!(s["files"]["inventory_load_failures"], 1, "{s}");
    // Without the list, no Tor alert; the inventory's records still come.
    assert!(read_jsonl(&alerts)
        .iter()
        .all(|a| a["event_type"] != "alert"));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&alerts), 0o640);
    assert_eq!(mode(&stats), 0o640);
    assert_eq!(mode(&state), 0o600);
    assert_eq!(mode(&inventory), 0o600);
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["format"], "tapsentry-state");
    let inv: Value = serde_json::from_slice(&std::fs::read(&inventory).unwrap()).unwrap();
    assert!(
        inv["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["ip"] == "10.7.0.1"),
        "{inv}"
    );
}

/// The labelled office (three hours, every example attack) and a config
/// for it, with the Tor list its attacks use.
fn office(dir: &Path) -> (PathBuf, PathBuf) {
    use tapsentry_testkit::office::{generate, Attack, Office, OfficeSpec};
    let mut attacks = Attack::examples(&Office::standard());
    attacks.sort_by(|a, b| a.at_secs().total_cmp(&b.at_secs()));
    let exits: Vec<String> = attacks
        .iter()
        .filter_map(|a| match a {
            Attack::TorOutbound { exit, .. } | Attack::TorInbound { exit, .. } => {
                Some(exit.to_string())
            }
            _ => None,
        })
        .collect();
    let pcap = dir.join("office.pcap");
    generate(
        &OfficeSpec {
            seed: 3,
            attacks,
            ..OfficeSpec::default()
        },
        &pcap,
    )
    .unwrap();
    let list = dir.join("office-tor.txt");
    std::fs::write(&list, exits.join("\n")).unwrap();
    let cfg = dir.join("office.toml");
    std::fs::write(
        &cfg,
        format!(
            "[network]\nhome_net = [\"10.20.0.0/16\"]\n[intel]\ntor_exit_list = {:?}\ngeoip_city = \"\"\ngeoip_asn = \"\"\n[output]\nstats_interval_secs = 1\n[detect]\nstate_interval_secs = 600\n[pipeline]\nworkers = 2\n",
            list.display().to_string()
        ),
    )
    .unwrap();
    (pcap, cfg)
}

fn office_cmd(cfg: &Path, dir: &Path, tag: &str, pcap: &Path, speed: &str) -> Command {
    let mut c = replay_cmd(
        cfg,
        &dir.join(format!("{tag}-alerts.jsonl")),
        &dir.join(format!("{tag}-stats.jsonl")),
        pcap,
        speed,
    );
    c.arg("--state-file")
        .arg(dir.join(format!("{tag}-state.json")))
        .arg("--inventory")
        .arg(dir.join(format!("{tag}-inventory.json")));
    c
}

/// SIGTERM in the middle of a busy replay (the labelled office, about
/// 150 000 packets, at 2 000 times real time on two workers). For a replay
/// the claim is: the run stops after some packet N, and what it wrote,
/// alerts and inventory records, state file and inventory file, is exactly
/// what an uninterrupted run over the first N packets writes: nothing read
/// is left out of the detectors, nothing is cut short, no file is partial.
#[test]
fn sigterm_mid_replay_writes_what_a_run_over_the_packets_read_writes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pcap, cfg) = office(d);
    let mut child = office_cmd(&cfg, d, "term", &pcap, "2000")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Stop once there is traffic behind it: some alert written already.
    let t = Instant::now();
    while read_jsonl(&d.join("term-alerts.jsonl")).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no alert before the deadline"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the replay ended too soon"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1000));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("stopping"), "{}", stderr(&out));
    let n = last_stats(&d.join("term-stats.jsonl"))["capture"]["packets"]
        .as_u64()
        .unwrap();
    let first = crate::common::prefix(&pcap, d, n);
    let full = office_cmd(&cfg, d, "prefix", &first, "max")
        .output()
        .unwrap();
    assert!(full.status.success(), "{}", stderr(&full));
    assert_eq!(
        last_stats(&d.join("prefix-stats.jsonl"))["capture"]["packets"].as_u64(),
        Some(n)
    );
    let alerts = read_jsonl(&d.join("term-alerts.jsonl"));
    assert!(!alerts.is_empty());
    assert_eq!(
        alerts,
        read_jsonl(&d.join("prefix-alerts.jsonl")),
        "after {n} packets"
    );
    for f in ["state.json", "inventory.json"] {
        let a = std::fs::read(d.join(format!("term-{f}"))).unwrap();
        let b = std::fs::read(d.join(format!("prefix-{f}"))).unwrap();
        assert!(a == b, "{f} differs after {n} packets");
    }
}

/// Seconds since the start of the month of an RFC 3339 UTC time
/// (`2023-11-14T22:13:20.000000Z`): enough to compare times within one
/// capture.
fn secs_of(t: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| t.get(r).unwrap().parse::<i64>().unwrap();
    n(8..10) * 86_400 + n(11..13) * 3_600 + n(14..16) * 60 + n(17..19)
}

/// kill -9 at arbitrary moments of a busy replay that saves its state and
/// inventory every 600 s of capture time (about every 0.3 s of wall time at
/// this speed): after each kill, the files are either absent (killed
/// before the first save) or whole, and the next start loads them without
/// a warning. The moments come from a fixed seed, so a failure reproduces.
#[test]
fn kill_9_at_any_moment_never_leaves_a_torn_state_or_inventory_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pcap, cfg) = office(d);
    let state = d.join("kill-state.json");
    let inventory = d.join("kill-inventory.json");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut whole = 0;
    let mut timed = 0;
    for round in 0..8 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let wait = Duration::from_millis(200 + (seed >> 33) % 2500);
        let stats = d.join("kill-stats.jsonl");
        for f in [&state, &inventory, &stats] {
            let _ = std::fs::remove_file(f);
        }
        let mut child = office_cmd(&cfg, d, "kill", &pcap, "2000")
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(wait);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for f in [&state, &inventory] {
            if let Ok(bytes) = std::fs::read(f) {
                serde_json::from_slice::<Value>(&bytes).unwrap_or_else(|e| {
                    panic!("round {round} ({wait:?}): {} is torn: {e}", f.display())
                });
                whole += 1;
            }
        }
        // At most one state interval lost: the file is no older than the
        // capture time of the last stats record (written before the kill)
        // less one interval (600 s), plus one for a save the state thread
        // may have been writing at the kill.
        if let (Ok(bytes), Some(t)) = (
            std::fs::read(&state),
            last_stats(&stats)["capture_time"]["last"].as_str(),
        ) {
            let saved: Value = serde_json::from_slice(&bytes).unwrap();
            let saved = saved["saved_at"].as_str().unwrap();
            assert!(
                secs_of(saved) + 2 * 600 >= secs_of(t),
                "round {round}: state saved at {saved}, capture at {t}"
            );
            timed += 1;
        }
        // The next start loads both without a word of warning.
        let next = office_cmd(&cfg, d, "kill", &crate::common::prefix(&pcap, d, 10), "max")
            .output()
            .unwrap();
        let err = stderr(&next);
        assert!(next.status.success(), "round {round}: {err}");
        assert!(
            !err.lines()
                .any(|l| l.contains("warning") && (l.contains("state") || l.contains("inventory"))),
            "round {round} ({wait:?}): {err}"
        );
    }
    assert!(whole > 0, "no kill came after a save");
    assert!(timed > 0, "no kill came after a save and a stats record");
}
