//! Security properties of a running sensor (issue 16): privileges dropped
//! once the capture handle and the logs are open. Needs root (skips with a
//! message otherwise); captures on loopback only and sends nothing.
#![allow(
    clippy::disallowed_methods,
    reason = "deadlines for a child process are wall time"
)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{Pid, User};

use crate::common::bin;

/// The `Uid:`/`Gid:` line of `/proc/<pid>/status`: real, effective, saved
/// and filesystem ids.
fn ids(pid: u32, key: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect()
}

#[test]
fn live_capture_runs_as_the_drop_privileges_user() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: needs root to open a live capture and drop privileges");
        return;
    }
    let Some(nobody) = User::from_name("nobody").ok().flatten() else {
        eprintln!("SKIPPED: no user 'nobody'");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[capture]\ninterface = \"lo\"\ndrop_privileges_user = \"nobody\"\n[intel]\ntor_exit_list = \"\"\ngeoip_city = \"\"\ngeoip_asn = \"\"\n",
    )
    .unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let mut child = Command::new(bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--alerts")
        .arg(&alerts)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let t = Instant::now();
    let mut line = String::new();
    // "capturing on" is printed after the drop.
    while !line.contains("capturing on lo") {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "the sensor ended early"
        );
        assert!(t.elapsed() < Duration::from_secs(20));
    }
    let uid = nobody.uid.as_raw();
    let gid = nobody.gid.as_raw();
    // Every thread: the capture, detector and writer threads were started
    // before or after the drop, and none may keep root.
    let tasks: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().parse().unwrap())
        .collect();
    assert!(!tasks.is_empty());
    for tid in &tasks {
        assert_eq!(ids(*tid, "Uid:"), [uid; 4], "thread {tid}");
        assert_eq!(ids(*tid, "Gid:"), [gid; 4], "thread {tid}");
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap()
        .trim();
    assert_eq!(
        u64::from_str_radix(cap_eff, 16).unwrap(),
        0,
        "capabilities kept"
    );
    assert!(status
        .lines()
        .any(|l| l.starts_with("Groups:")
            && l.split_whitespace().skip(1).all(|g| g == gid.to_string())));
    // The log was opened (as root) before the drop, 0640.
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(&alerts).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    assert_eq!(meta.uid(), 0);
    kill(Pid::from_raw(i32::try_from(pid).unwrap()), Signal::SIGTERM).unwrap();
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(0));
}
