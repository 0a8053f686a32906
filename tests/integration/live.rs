//! Live capture on a veth pair into a network namespace this test creates.
//! Needs root (CAP_NET_ADMIN to create the pair, CAP_NET_RAW to capture);
//! skips with a message otherwise. Traffic only flows between the two ends
//! of the pair, on addresses this test assigns.
#![allow(
    clippy::disallowed_methods,
    reason = "deadlines for packets on a live interface are wall time"
)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::common::{bin, read_jsonl};

struct Netns {
    ns: String,
    host_if: String,
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn setup() -> Option<Netns> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP live capture test: needs root to create a veth pair and capture");
        return None;
    }
    if !sh(&["ip", "-V"]) {
        eprintln!("SKIP live capture test: the `ip` command (iproute2) is missing");
        return None;
    }
    let id = std::process::id() % 10_000;
    let ns = format!("tsns{id}");
    let host_if = format!("tsa{id}");
    let peer_if = format!("tsb{id}");
    let guard = Netns {
        ns: ns.clone(),
        host_if: host_if.clone(),
    };
    let ok = sh(&["ip", "netns", "add", &ns])
        && sh(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &peer_if,
        ])
        && sh(&["ip", "link", "set", &peer_if, "netns", &ns])
        && sh(&["ip", "addr", "add", "10.213.0.1/30", "dev", &host_if])
        && sh(&["ip", "link", "set", &host_if, "up"])
        && sh(&[
            "ip",
            "netns",
            "exec",
            &ns,
            "ip",
            "addr",
            "add",
            "10.213.0.2/30",
            "dev",
            &peer_if,
        ])
        && sh(&[
            "ip", "netns", "exec", &ns, "ip", "link", "set", &peer_if, "up",
        ])
        && sh(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
    if !ok {
        eprintln!("SKIP live capture test: could not create the namespace and veth pair");
        return None;
    }
    Some(guard)
}

#[test]
fn live_capture_on_veth_counts_known_traffic() {
    let Some(net) = setup() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("live.toml");
    std::fs::write(
        &cfg,
        "[capture]\nread_timeout_ms = 50\n[output]\nstats_interval_secs = 1\n[intel]\ntor_exit_list = \"\"\ngeoip_city = \"\"\ngeoip_asn = \"\"\n",
    )
    .unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let flows = dir.path().join("flows.jsonl");
    let stats = dir.path().join("stats.jsonl");
    let mut child = Command::new(bin())
        .args([
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--interface",
            &net.host_if,
        ])
        .arg("--alerts")
        .arg(&alerts)
        .arg("--flows")
        .arg(&flows)
        .arg("--stats")
        .arg(&stats)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the capture is open.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let started = Instant::now();
    while !line.contains("capturing on") {
        line.clear();
        if err.read_line(&mut line).unwrap() == 0 || started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("sensor did not start: {line}");
        }
    }
    let rest = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    std::thread::sleep(Duration::from_millis(300));
    // 20 UDP datagrams of 100 bytes from inside the namespace to the host
    // end, on one socket (fd 3) so they share a source port: one flow. The
    // host answers the closed port with ICMP unreachable, and a connected
    // UDP socket then fails the next send (ECONNREFUSED), so the script
    // counts the datagrams that really left.
    let sent = Command::new("ip")
        .args(["netns", "exec", &net.ns, "bash", "-c"])
        .arg("exec 3>/dev/udp/10.213.0.1/9999; n=0; for i in $(seq 20); do printf '%0100d' 0 >&3 2>/dev/null && n=$((n+1)); sleep 0.01; done; echo $n")
        .output()
        .unwrap();
    assert!(sent.status.success());
    let sent: u64 = String::from_utf8_lossy(&sent.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(sent >= 5, "only {sent} datagrams left the namespace");
    std::thread::sleep(Duration::from_millis(1500));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    let stderr = rest.join().unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");

    let flows = read_jsonl(&flows);
    let udp = flows
        .iter()
        .find(|f| f["proto"] == "UDP" && f["dest_port"] == 9999)
        .unwrap_or_else(|| panic!("no UDP flow to 9999 in {flows:?}"));
    assert_eq!(udp["src_ip"], "10.213.0.2");
    assert_eq!(udp["dest_ip"], "10.213.0.1");
    assert_eq!(udp["flow"]["pkts_toserver"], sent);
    // IP header 20 + UDP header 8 + 100 bytes of payload, counted from the IP header.
    assert_eq!(udp["flow"]["bytes_toserver"], sent * 128);
    // The host answers a closed port with ICMP port unreachable.
    assert_eq!(udp["flow"]["state"], "rejected");
    assert_eq!(udp["flow"]["reason"], "shutdown");

    let stats = read_jsonl(&stats);
    let last = stats.last().unwrap();
    assert!(stats.len() >= 2, "periodic and final stats expected");
    assert!(last["capture"]["packets"].as_u64().unwrap() >= sent);
    assert!(last["capture"]["kernel"]["received"].as_u64().unwrap() >= sent);
    assert_eq!(last["drops"]["kernel"], 0);
    assert!(read_jsonl(&alerts).is_empty());
}

#[test]
fn missing_interface_exits_1_naming_it() {
    let out = Command::new(bin())
        .args(["run", "--interface", "no-such-if0", "--alerts", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-if0"));
}
