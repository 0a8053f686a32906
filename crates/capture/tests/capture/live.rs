//! Live capture on a veth pair whose far end sits in a private network
//! namespace, and privilege dropping in a child process. Both need root;
//! without it they print why they are skipped and pass.
#![allow(
    clippy::disallowed_methods,
    reason = "deadlines for packets on a live interface are wall time"
)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tapsentry_capture::{
    drop_privileges, CaptureError, FrameSource, LinkType, LiveSource, LiveSpec, Next,
};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A namespace and veth pair that are removed again whatever happens.
struct Netns {
    ns: String,
    host_if: String,
}

impl Netns {
    /// 10.213.0.1/30 on the host side, 10.213.0.2/30 inside the namespace.
    fn create() -> Result<Netns, String> {
        let id = std::process::id() % 100_000;
        let guard = Netns {
            ns: format!("tapsentry-test-{id}"),
            host_if: format!("tsh{id}"),
        };
        let peer = format!("tsp{id}");
        let (ns, host) = (guard.ns.as_str(), guard.host_if.as_str());
        run(&["ip", "netns", "add", ns])?;
        run(&[
            "ip", "link", "add", host, "type", "veth", "peer", "name", &peer,
        ])?;
        run(&["ip", "link", "set", &peer, "netns", ns])?;
        run(&["ip", "addr", "add", "10.213.0.1/30", "dev", host])?;
        run(&["ip", "link", "set", host, "up"])?;
        run(&[
            "ip",
            "netns",
            "exec",
            ns,
            "ip",
            "addr",
            "add",
            "10.213.0.2/30",
            "dev",
            &peer,
        ])?;
        run(&["ip", "netns", "exec", ns, "ip", "link", "set", &peer, "up"])?;
        run(&["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"])?;
        Ok(guard)
    }

    /// Sends `n` UDP datagrams from inside the namespace to the host side.
    fn send_udp(&self, n: usize, port: u16) -> Result<(), String> {
        let py = format!(
            "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             for i in range({n}):\n    s.sendto(b'tapsentry-live-%d' % i, ('10.213.0.1', {port}))\n"
        );
        if run(&["ip", "netns", "exec", &self.ns, "python3", "-c", &py]).is_ok() {
            return Ok(());
        }
        // No python3: bash's /dev/udp does the same.
        let sh = format!(
            "for i in $(seq 0 {}); do printf 'tapsentry-live-%d' $i > /dev/udp/10.213.0.1/{port}; done",
            n - 1
        );
        run(&["ip", "netns", "exec", &self.ns, "bash", "-c", &sh])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting one end removes the pair; the namespace goes last.
        let _ = run(&["ip", "link", "del", &self.host_if]);
        let _ = run(&["ip", "netns", "del", &self.ns]);
    }
}

fn can_run_live() -> bool {
    if !is_root() {
        eprintln!("SKIP live capture test: needs root (ip netns, raw capture)");
        return false;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        eprintln!("SKIP live capture test: the `ip` command (iproute2) is missing");
        return false;
    }
    true
}

#[test]
fn live_capture_on_a_veth_pair() {
    if !can_run_live() {
        return;
    }
    let net = match Netns::create() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("SKIP live capture test: cannot create namespace/veth ({e})");
            return;
        }
    };
    let port = 40404;
    let mut spec = LiveSpec::new(net.host_if.clone());
    spec.read_timeout_ms = 50;
    spec.immediate = true;
    spec.buffer_size_bytes = 1 << 20;
    spec.bpf_filter = Some(format!("udp and dst port {port}"));
    let mut src = LiveSource::open(&spec).expect("open live capture");
    assert_eq!(src.link_type(), LinkType::ETHERNET);
    assert!(src.warnings().is_empty());

    // Nothing matches the filter yet: the read times out.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match src.next_frame().expect("read") {
            Next::Idle => break,
            Next::Frame(_) => {}
            Next::End => panic!("live source ended"),
        }
        assert!(Instant::now() < deadline, "no Idle while nothing is sent");
    }

    let sent = 5;
    net.send_udp(sent, port).expect("send from the namespace");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < sent && Instant::now() < deadline {
        if let Next::Frame(f) = src.next_frame().expect("read") {
            assert_eq!(f.link, LinkType::ETHERNET);
            assert!(f.wire_len as usize >= f.data.len());
            got.push(f.data.to_vec());
        }
    }
    assert!(got.len() >= sent, "captured {} of {sent}", got.len());
    for (i, frame) in got.iter().take(sent).enumerate() {
        let payload = format!("tapsentry-live-{i}");
        assert!(
            frame.ends_with(payload.as_bytes()),
            "frame {i}: {frame:02x?}"
        );
        // Ethernet + IPv4 + UDP headers before the payload.
        assert_eq!(frame.len(), 14 + 20 + 8 + payload.len());
    }
    let stats = src.kernel_stats().expect("kernel stats");
    assert!(stats.received >= sent as u64, "{stats:?}");

    // And quiet again afterwards.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !matches!(src.next_frame().expect("read"), Next::Idle) {
        assert!(Instant::now() < deadline, "no Idle after the burst");
    }
    drop(src);
    drop(net);
}

#[test]
fn bad_filter_names_interface_and_filter() {
    if !is_root() {
        eprintln!("SKIP bad filter test: needs root");
        return;
    }
    let mut spec = LiveSpec::new("lo");
    spec.bpf_filter = Some("udp and and".into());
    let err = LiveSource::open(&spec).err().expect("a bad filter");
    assert!(matches!(err, CaptureError::BadFilter { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("lo: invalid BPF filter"), "{msg}");
}

#[test]
fn nonexistent_interface_is_named() {
    let err = LiveSource::open(&LiveSpec::new("tsnoexist0"))
        .err()
        .expect("no such interface");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(msg.contains("tsnoexist0"), "{msg}");
    if is_root() {
        assert!(
            matches!(err, CaptureError::NoSuchInterface { .. }),
            "{err:?}"
        );
    } else {
        assert!(
            matches!(
                err,
                CaptureError::NoSuchInterface { .. } | CaptureError::Permission { .. }
            ),
            "{err:?}"
        );
    }
}

#[test]
fn unknown_user_is_refused() {
    let r = drop_privileges("tapsentry-no-such-user");
    if is_root() {
        let msg = r.expect_err("unknown user").to_string();
        assert!(msg.contains("tapsentry-no-such-user"), "{msg}");
        assert!(is_root(), "a failed lookup must not change the process");
    } else {
        assert!(r.is_ok(), "not root: nothing to drop");
    }
}

const CHILD_ENV: &str = "TAPSENTRY_DROP_PRIVILEGES_CHILD";

/// Runs in a child process only (dropping root in the test process would
/// affect every other test running in it).
#[test]
#[ignore = "helper run in a child process by drop_privileges_to_nobody"]
fn drop_privileges_child() {
    if std::env::var(CHILD_ENV).is_err() {
        return;
    }
    drop_privileges("nobody").expect("drop to nobody");
    assert!(!nix::unistd::geteuid().is_root());
    assert!(!nix::unistd::getuid().is_root());
    assert!(nix::unistd::setuid(nix::unistd::Uid::from_raw(0)).is_err());
    assert_eq!(nix::unistd::getgroups().expect("groups").len(), 1);
}

#[test]
fn drop_privileges_to_nobody() {
    if !is_root() {
        eprintln!("SKIP privilege drop test: needs root");
        assert!(drop_privileges("nobody").is_ok());
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "live::drop_privileges_child",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
}
