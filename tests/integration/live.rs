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
    peer_if: String,
    /// The pair's id: its /30 is 10.(200 + id / 256).(id % 256).0/30, one
    /// per test and process, as tests run side by side (in one binary and
    /// in other checkouts) and two pairs with one subnet would route each
    /// other's answers.
    id: u32,
}

impl Netns {
    fn subnet(&self) -> String {
        format!("10.{}.{}", 200 + self.id / 256, self.id % 256)
    }
    /// The host end's address.
    fn host_ip(&self) -> String {
        format!("{}.1", self.subnet())
    }
    /// The namespace end's address.
    fn peer_ip(&self) -> String {
        format!("{}.2", self.subnet())
    }
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

/// The veth pair of `net`: `host_if` (its `host_ip`/30, here) and
/// `peer_if` (its `peer_ip`/30, in namespace `ns`), both up.
fn create_pair(net: &Netns) -> bool {
    let (ns, host_if, peer_if) = (net.ns.as_str(), net.host_if.as_str(), net.peer_if.as_str());
    let host = format!("{}/30", net.host_ip());
    let peer = format!("{}/30", net.peer_ip());
    sh(&[
        "ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if,
    ]) && sh(&["ip", "link", "set", peer_if, "netns", ns])
        && sh(&["ip", "addr", "add", &host, "dev", host_if])
        && sh(&["ip", "link", "set", host_if, "up"])
        && sh(&[
            "ip", "netns", "exec", ns, "ip", "addr", "add", &peer, "dev", peer_if,
        ])
        && sh(&[
            "ip", "netns", "exec", ns, "ip", "link", "set", peer_if, "up",
        ])
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
    // Unique per test too: the tests of one binary run side by side.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 10;
    let id = (std::process::id() % 1_000) * 10 + n;
    let ns = format!("tsns{id}");
    let host_if = format!("tsa{id}");
    let peer_if = format!("tsb{id}");
    let guard = Netns {
        ns: ns.clone(),
        host_if: host_if.clone(),
        peer_if: peer_if.clone(),
        id,
    };
    let ok = sh(&["ip", "netns", "add", &ns])
        && create_pair(&guard)
        && sh(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
    if !ok {
        eprintln!("SKIP live capture test: could not create the namespace and veth pair");
        return None;
    }
    Some(guard)
}

/// `count` UDP datagrams of 100 bytes from inside the namespace to the host
/// end's `port`, on one socket (fd 3) so they share a source port: one
/// flow. The host answers the closed port with ICMP unreachable, and a
/// connected UDP socket then fails the next send (ECONNREFUSED), so the
/// script counts the datagrams that really left; returns that count.
fn send_udp(net: &Netns, port: u16, count: u32) -> u64 {
    let sent = Command::new("ip")
        .args(["netns", "exec", &net.ns, "bash", "-c"])
        .arg(format!("exec 3>/dev/udp/{}/{port}; n=0; for i in $(seq {count}); do printf '%0100d' 0 >&3 2>/dev/null && n=$((n+1)); sleep 0.01; done; echo $n", net.host_ip()))
        .output()
        .unwrap();
    assert!(sent.status.success());
    String::from_utf8_lossy(&sent.stdout)
        .trim()
        .parse()
        .unwrap()
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
    let sent = send_udp(&net, 9999, 20);
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
    assert_eq!(udp["src_ip"], net.peer_ip().as_str());
    assert_eq!(udp["dest_ip"], net.host_ip().as_str());
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

/// The sensor's stats record when `pred` holds for it, polling for up to
/// ten seconds.
fn wait_stats(path: &std::path::Path, what: &str, pred: impl Fn(&serde_json::Value) -> bool) {
    let t = Instant::now();
    loop {
        if read_jsonl(path).last().is_some_and(&pred) {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "never saw {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The interface disappears under the running sensor (the veth pair is
/// deleted) and comes back (recreated with the same names): the sensor
/// keeps running, counts the loss and its reopen attempts, and captures
/// the traffic sent after the return.
#[test]
fn live_capture_resumes_when_the_interface_is_deleted_and_recreated() {
    let Some(net) = setup() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("live.toml");
    std::fs::write(
        &cfg,
        "[capture]\nread_timeout_ms = 50\n[output]\nstats_interval_secs = 1\n[intel]\ntor_exit_list = \"\"\ngeoip_city = \"\"\ngeoip_asn = \"\"\n",
    )
    .unwrap();
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
        .arg(dir.path().join("alerts.jsonl"))
        .arg("--flows")
        .arg(&flows)
        .arg("--stats")
        .arg(&stats)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("capturing on") {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "the sensor did not start"
        );
    }
    let rest = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    std::thread::sleep(Duration::from_millis(300));
    let before = send_udp(&net, 9997, 5);
    // Frames still in the kernel's buffer when the interface vanishes go
    // with it: let the sensor read them first.
    std::thread::sleep(Duration::from_millis(1000));
    assert!(sh(&["ip", "link", "del", &net.host_if]));
    wait_stats(&stats, "the loss", |s| {
        s["capture"]["interface"]["down"] == true
            && s["capture"]["interface"]["reopen_attempts"].as_u64() >= Some(1)
    });
    assert!(create_pair(&net));
    wait_stats(&stats, "the return", |s| {
        s["capture"]["interface"]["down"] == false
    });
    std::thread::sleep(Duration::from_millis(300));
    let after = send_udp(&net, 9998, 20);
    assert!(after >= 5, "only {after} datagrams left the namespace");
    // Down and up again (not deleted): capture goes on after it.
    assert!(sh(&["ip", "link", "set", &net.host_if, "down"]));
    std::thread::sleep(Duration::from_millis(700));
    assert!(sh(&["ip", "link", "set", &net.host_if, "up"]));
    wait_stats(&stats, "the interface up", |s| {
        s["capture"]["interface"]["down"] == false
    });
    std::thread::sleep(Duration::from_millis(1500));
    let again = send_udp(&net, 9996, 20);
    assert!(again >= 5, "only {again} datagrams left the namespace");
    std::thread::sleep(Duration::from_millis(1500));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    let stderr = rest.join().unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(" lost: "), "{stderr}");
    assert!(stderr.contains("resumed"), "{stderr}");
    let flows = read_jsonl(&flows);
    let to = |port: u16| {
        flows
            .iter()
            .find(|f| f["proto"] == "UDP" && f["dest_port"] == port)
            .map(|f| f["flow"]["pkts_toserver"].as_u64().unwrap())
    };
    assert_eq!(to(9997), Some(before), "{flows:?}");
    assert_eq!(to(9998), Some(after), "{flows:?}");
    assert_eq!(to(9996), Some(again), "{flows:?}\n{stderr}");
    let last = read_jsonl(&stats).pop().unwrap();
    let i = &last["capture"]["interface"];
    assert!(i["outages"].as_u64().unwrap() >= 1, "{last}");
    eprintln!("interface counters: {i}\n{stderr}");
    assert!(i["reopened"].as_u64().unwrap() >= 1, "{last}");
    assert_eq!(i["down"], false);
}
