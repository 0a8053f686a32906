//! SIGTERM mid-replay flushes everything; SIGHUP reopens logs and reloads
//! the Tor list, keeping the old one when the new file is broken.
#![allow(
    clippy::disallowed_methods,
    reason = "deadlines for a child process are wall time"
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::common::{bin, read_jsonl};
use tapsentry_testkit::scenario::{ip, Scenario};

struct Run {
    child: Child,
    alerts: PathBuf,
    flows: PathBuf,
    stats: PathBuf,
}

fn start(dir: &Path, list: &str, pcap: &Path) -> Run {
    let list_path = dir.join("tor.txt");
    std::fs::write(&list_path, list).unwrap();
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[intel]\ntor_exit_list = {:?}\ngeoip_city = \"\"\ngeoip_asn = \"\"\n[flow.timeouts]\ntcp_closed = 1\n",
            list_path.display().to_string()
        ),
    )
    .unwrap();
    let alerts = dir.join("alerts.jsonl");
    let flows = dir.join("flows.jsonl");
    let stats = dir.join("stats.jsonl");
    let child = Command::new(bin())
        .args(["replay", "--speed", "realtime", "--config"])
        .arg(&cfg)
        .arg("--alerts")
        .arg(&alerts)
        .arg("--flows")
        .arg(&flows)
        .arg("--stats")
        .arg(&stats)
        .arg(pcap)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Run {
        child,
        alerts,
        flows,
        stats,
    }
}

fn signal(r: &Run, s: Signal) {
    kill(Pid::from_raw(r.child.id() as i32), s).unwrap();
}

fn wait_lines(path: &Path, n: usize, limit: Duration) {
    let t = Instant::now();
    while read_jsonl(path).len() < n {
        assert!(
            t.elapsed() < limit,
            "{} never reached {n} lines",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn finish(r: Run) -> (i32, String) {
    let out = r.child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Exit A closes at 0.1 s (record after the 1 s closed timeout); exit B is
/// contacted at 4 s; capture time runs to `end`.
fn two_exits(path: &Path, end: f64) {
    let mut s = Scenario::new();
    s.session(
        0.0,
        ip("10.1.0.5"),
        50000,
        ip("185.220.101.4"),
        443,
        100,
        100,
        0.1,
    );
    s.session(
        4.0,
        ip("10.1.0.6"),
        50000,
        ip("171.25.193.20"),
        443,
        100,
        100,
        0.1,
    );
    let mut t = 0.5;
    while t < end {
        s.clock(t);
        t += 0.5;
    }
    s.write(path).unwrap();
}

#[test]
fn sigterm_mid_replay_flushes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("long.pcap");
    let mut s = Scenario::new();
    // A Tor session that never ends: only the shutdown flush reports it.
    s.open_session(0.2, ip("10.1.0.5"), 50000, ip("185.220.101.4"), 443);
    for i in 0..120 {
        s.clock(0.5 * f64::from(i));
    }
    s.write(&pcap).unwrap();
    let r = start(dir.path(), "185.220.101.4\n", &pcap);
    std::thread::sleep(Duration::from_millis(1500));
    signal(&r, Signal::SIGTERM);
    let t = Instant::now();
    let (alerts, flows, stats) = (r.alerts.clone(), r.flows.clone(), r.stats.clone());
    let (code, err) = finish(r);
    assert_eq!(code, 0, "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        t.elapsed()
    );
    let alerts = read_jsonl(&alerts);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["dest_ip"], "185.220.101.4");
    let flows = read_jsonl(&flows);
    let tor = flows
        .iter()
        .find(|f| f["dest_ip"] == "185.220.101.4")
        .unwrap();
    assert_eq!(tor["flow"]["reason"], "shutdown");
    let stats = read_jsonl(&stats);
    let last = stats.last().unwrap();
    let packets = last["capture"]["packets"].as_u64().unwrap();
    assert!(
        packets < 123,
        "the replay was not stopped early ({packets} packets)"
    );
    assert_eq!(last["flows"]["active"], 0);
}

#[test]
fn sighup_after_rename_writes_to_the_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("two.pcap");
    two_exits(&pcap, 8.0);
    let r = start(dir.path(), "185.220.101.4\n171.25.193.20\n", &pcap);
    wait_lines(&r.alerts, 1, Duration::from_secs(6));
    let rotated = dir.path().join("alerts.jsonl.1");
    std::fs::rename(&r.alerts, &rotated).unwrap();
    signal(&r, Signal::SIGHUP);
    let alerts = r.alerts.clone();
    let (code, err) = finish(r);
    assert_eq!(code, 0, "{err}");
    let old = read_jsonl(&rotated);
    let new = read_jsonl(&alerts);
    assert_eq!(old.len(), 1, "{old:?}");
    assert_eq!(old[0]["dest_ip"], "185.220.101.4");
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(new[0]["dest_ip"], "171.25.193.20");
}

#[test]
fn sighup_with_a_broken_list_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("two.pcap");
    two_exits(&pcap, 8.0);
    let r = start(dir.path(), "185.220.101.4\n171.25.193.20\n", &pcap);
    wait_lines(&r.alerts, 1, Duration::from_secs(6));
    std::fs::write(dir.path().join("tor.txt"), "garbage\n\u{1}\u{2}not-an-ip\n").unwrap();
    signal(&r, Signal::SIGHUP);
    let alerts = r.alerts.clone();
    let (code, err) = finish(r);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("keeping the previous intel"), "{err}");
    assert!(err.contains("tor.txt"), "{err}");
    let all = read_jsonl(&alerts);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[1]["dest_ip"], "171.25.193.20");
}

#[test]
fn sighup_with_a_new_list_takes_effect() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("two.pcap");
    two_exits(&pcap, 8.0);
    let r = start(dir.path(), "185.220.101.4\n", &pcap);
    wait_lines(&r.alerts, 1, Duration::from_secs(6));
    std::fs::write(dir.path().join("tor.txt"), "185.220.101.4\n171.25.193.20\n").unwrap();
    signal(&r, Signal::SIGHUP);
    let alerts = r.alerts.clone();
    let (code, err) = finish(r);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("reloaded intel: 2 Tor exit addresses"),
        "{err}"
    );
    assert_eq!(read_jsonl(&alerts).len(), 2);
}
