//! Operating the sensor: the metrics endpoint (checked with Debian's real
//! `promtool`), the pid file, `intel update` against a local HTTP server,
//! a sensor without a Tor list, and `check-config`'s host checks.
#![allow(
    clippy::disallowed_methods,
    reason = "deadlines for child processes and servers are wall time"
)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{
    bin, free_port, have_tool, read_jsonl, run, stderr, tor_trickle, trickle_exit,
};

/// A config for the trickle captures: `extra` TOML lines are appended
/// (each section at most once: they go after `[output]`).
fn write_config(dir: &Path, tor_list: &Path, output_extra: &str, extra: &str) -> PathBuf {
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[intel]\ntor_exit_list = {:?}\ngeoip_city = \"\"\ngeoip_asn = \"\"\n\
             [flow.timeouts]\ntcp_closed = 1\n[output]\n{output_extra}\n{extra}\n",
            tor_list.display().to_string()
        ),
    )
    .unwrap();
    cfg
}

fn spawn_replay(cfg: &Path, alerts: &Path, speed: &str, pcap: &Path) -> Child {
    Command::new(bin())
        .args(["replay", "--speed", speed, "--config"])
        .arg(cfg)
        .arg("--alerts")
        .arg(alerts)
        .arg(pcap)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `GET path` on the loopback port; (status line, body).
fn http_get(port: u16, path: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), body.to_string()))
}

fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
}

/// A replay paced in real time serves /metrics while it runs: two scrapes
/// a second apart show the packet and alert counters moving, the text
/// passes `promtool check metrics` (format and naming lint), and the pid
/// file holds the sensor's pid while it runs and is gone after.
#[test]
fn metrics_move_between_scrapes_and_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("trickle.pcap");
    tor_trickle(&pcap, 12, 0.5, 7.0);
    let list = dir.path().join("tor.txt");
    let exits: String = (0..12).map(|i| trickle_exit(i) + "\n").collect();
    std::fs::write(&list, exits).unwrap();
    let port = free_port();
    let pid_file = dir.path().join("run/tapsentry.pid");
    std::fs::create_dir(dir.path().join("run")).unwrap();
    let cfg = write_config(
        dir.path(),
        &list,
        &format!("pid_file = {:?}", pid_file.display().to_string()),
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\""),
    );
    let alerts = dir.path().join("alerts.jsonl");
    let child = spawn_replay(&cfg, &alerts, "realtime", &pcap);
    wait_for("the pid file", Duration::from_secs(5), || pid_file.exists());
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        format!("{}\n", child.id())
    );
    wait_for("the metrics endpoint", Duration::from_secs(5), || {
        http_get(port, "/metrics").is_some()
    });
    std::thread::sleep(Duration::from_millis(1500));
    let (status, first) = http_get(port, "/metrics").unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    std::thread::sleep(Duration::from_millis(2000));
    let (_, second) = http_get(port, "/metrics").unwrap();
    let (code, err) = finish(child);
    assert_eq!(code, 0, "{err}");
    assert!(!pid_file.exists(), "pid file left after exit");

    for name in [
        "tapsentry_capture_packets_total",
        "tapsentry_capture_wire_bytes_total",
        "tapsentry_flows_created_total",
        "tapsentry_alerts_written_total",
    ] {
        let (a, b) = (sample(&first, name), sample(&second, name));
        assert!(b > a, "{name} did not move: {a} then {b}");
    }
    assert_eq!(sample(&second, "tapsentry_intel_tor_exit_addresses"), 12.0);
    assert!(second.contains("tapsentry_alerts_by_category_total{category=\"tor\"}"));
    assert!(second.contains("# TYPE tapsentry_latency_packet_processing_seconds summary"));
    if !have_tool("promtool", "prometheus") {
        return;
    }
    for text in [&first, &second] {
        let mut p = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        p.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let out = p.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A metrics address already in use is a runtime error naming the key,
/// before any packet is read.
#[test]
fn a_taken_metrics_address_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let cfg = write_config(
        dir.path(),
        Path::new(""),
        "",
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\""),
    );
    let out = run(&[
        "replay",
        "--config",
        cfg.to_str().unwrap(),
        "--alerts",
        dir.path().join("a.jsonl").to_str().unwrap(),
        crate::common::repo("pcaps/demo.pcap").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "metrics.listen: cannot listen on 127.0.0.1:{port}"
        )),
        "{err}"
    );
}

/// What the test HTTP server answers on a path.
enum Reply {
    /// 200 with this body.
    Ok(Vec<u8>),
    /// 404 with an HTML page.
    NotFound,
    /// 200, a Content-Length of twice the body, then the connection closes.
    Truncated(Vec<u8>),
}

/// Serves `routes` on a loopback port for `requests` requests, then stops.
fn http_server(routes: Vec<(&'static str, Reply)>, requests: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for _ in 0..requests {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let req = String::from_utf8_lossy(&buf);
            let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
            let reply = routes.iter().find(|(p, _)| *p == path).map(|(_, r)| r);
            let (head, body): (String, &[u8]) = match reply {
                Some(Reply::Ok(b)) => (format!("200 OK\r\nContent-Length: {}", b.len()), b),
                Some(Reply::Truncated(b)) => {
                    (format!("200 OK\r\nContent-Length: {}", 2 * b.len()), b)
                }
                Some(Reply::NotFound) | None => (
                    "404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 48".into(),
                    b"<html><body><h1>404 Not Found</h1></body></html>",
                ),
            };
            let _ = write!(s, "HTTP/1.1 {head}\r\nConnection: close\r\n\r\n");
            let _ = s.write_all(body);
        }
    });
    port
}

fn exit_list(n: usize) -> Vec<u8> {
    let mut text = String::from("# test exit list\n");
    for i in 0..n {
        text.push_str(&trickle_exit(i));
        text.push('\n');
    }
    text.into_bytes()
}

fn intel_config(dir: &Path, list: &Path, url: &str, pid_file: &Path) -> PathBuf {
    write_config(
        dir,
        list,
        &format!("pid_file = {:?}", pid_file.display().to_string()),
        "",
    );
    // The [intel] section is the first one: add the update keys to it.
    let cfg = dir.join("c.toml");
    let text = std::fs::read_to_string(&cfg).unwrap().replacen(
        "[intel]\n",
        &format!("[intel]\ntor_exit_list_url = {url:?}\nupdate_min_entries = 100\nupdate_max_bytes = 65536\n"),
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// A good download replaces the list while a sensor runs: `intel update`
/// signals it through the pid file, it reloads, and an exit that only the
/// new list names raises its alert after the reload.
#[test]
fn intel_update_replaces_the_list_and_the_running_sensor_reloads_it() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("trickle.pcap");
    // 150 exits (the update needs 100), one contacted every 0.04 s of
    // capture time from 0.5 s to 6.46 s.
    tor_trickle(&pcap, 150, 0.04, 9.0);
    let list = dir.path().join("tor.txt");
    // The old list: only the first exit.
    std::fs::write(&list, format!("{}\n", trickle_exit(0))).unwrap();
    let new = exit_list(150);
    let port = http_server(vec![("/exits", Reply::Ok(new.clone()))], 1);
    let pid_file = dir.path().join("tapsentry.pid");
    let cfg = intel_config(
        dir.path(),
        &list,
        &format!("http://127.0.0.1:{port}/exits"),
        &pid_file,
    );
    let alerts = dir.path().join("alerts.jsonl");
    // Capture time 0..9 s in real time: the update runs about 1.5 s in,
    // while exits are still being contacted.
    let child = spawn_replay(&cfg, &alerts, "1", &pcap);
    wait_for("the pid file", Duration::from_secs(5), || pid_file.exists());
    std::thread::sleep(Duration::from_millis(1500));
    let out = run(&["intel", "update", "--config", cfg.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("150 Tor exit addresses"), "{err}");
    assert!(
        err.contains(&format!("sent SIGHUP to the sensor (pid {})", child.id())),
        "{err}"
    );
    assert_eq!(std::fs::read(&list).unwrap(), new);
    let (code, sensor_err) = finish(child);
    assert_eq!(code, 0, "{sensor_err}");
    assert!(
        sensor_err.contains("reloaded intel: 150 Tor exit addresses"),
        "{sensor_err}"
    );
    let got: Vec<String> = read_jsonl(&alerts)
        .iter()
        .map(|a| a["dest_ip"].as_str().unwrap().to_string())
        .collect();
    // Exit 149 is contacted at 6.46 s of capture time, after the reload,
    // and only the new list has it.
    assert!(got.contains(&trickle_exit(0)), "{got:?}");
    assert!(got.contains(&trickle_exit(149)), "{got:?}");
}

/// Each broken download exits 1 with a line saying what is wrong and that
/// the old list is kept, and leaves the old file byte for byte.
#[test]
fn broken_downloads_keep_the_old_list() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("tor.txt");
    let old = exit_list(120);
    std::fs::write(&list, &old).unwrap();
    let html = b"<!DOCTYPE html>\n<html>\n<head><title>Service Unavailable</title></head>\n<body>try later</body>\n</html>\n".to_vec();
    let mut glued = exit_list(150);
    glued.extend_from_slice(&html);
    let huge = exit_list(6000); // ~80 KB, over update_max_bytes (64 KiB)
    let cases: Vec<(&str, Reply, &str)> = vec![
        (
            "/truncated",
            Reply::Truncated(exit_list(200)),
            "download failed",
        ),
        (
            "/html",
            Reply::Ok(html),
            "0 addresses, fewer than intel.update_min_entries (100)",
        ),
        ("/glued", Reply::Ok(glued), "lines are not addresses"),
        (
            "/short",
            Reply::Ok(exit_list(50)),
            "50 addresses, fewer than",
        ),
        ("/missing", Reply::NotFound, "HTTP status 404"),
        (
            "/huge",
            Reply::Ok(huge),
            "larger than intel.update_max_bytes (65536 bytes)",
        ),
        (
            "/binary",
            Reply::Ok(vec![0x1f, 0x8b, 0x08, 0x00, 0xff, 0xfe]),
            "not a text file",
        ),
    ];
    let expect: Vec<(&str, &str)> = cases.iter().map(|(p, _, e)| (*p, *e)).collect();
    let port = http_server(
        cases.into_iter().map(|(p, r, _)| (p, r)).collect(),
        expect.len(),
    );
    for (path, why) in expect {
        let cfg = intel_config(
            dir.path(),
            &list,
            &format!("http://127.0.0.1:{port}{path}"),
            &dir.path().join("none.pid"),
        );
        let out = run(&["intel", "update", "--config", cfg.to_str().unwrap()]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{path}: {err}");
        assert!(err.contains(why), "{path}: wanted {why:?} in {err}");
        assert!(err.contains("the old list is kept"), "{path}: {err}");
        assert_eq!(err.lines().count(), 1, "{path}: {err}");
        assert_eq!(
            std::fs::read(&list).unwrap(),
            old,
            "{path} changed the list"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(
            names.len(),
            2,
            "{path}: a temporary file was left: {names:?}"
        );
    }
    // Nothing listens here any more: a connection failure is the same.
    let cfg = intel_config(
        dir.path(),
        &list,
        &format!("http://127.0.0.1:{}/x", free_port()),
        Path::new(""),
    );
    let out = run(&["intel", "update", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(std::fs::read(&list).unwrap(), old);
}

/// No list at the configured path: one loud line at start, the count 0 in
/// the stats, a warning from check-config; the replay still runs.
#[test]
fn a_sensor_without_a_tor_list_says_so_once_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("absent/tor.txt");
    let cfg = write_config(dir.path(), &list, "", "");
    let stats = dir.path().join("stats.jsonl");
    let out = run(&[
        "replay",
        "--config",
        cfg.to_str().unwrap(),
        "--alerts",
        dir.path().join("a.jsonl").to_str().unwrap(),
        "--stats",
        stats.to_str().unwrap(),
        crate::common::repo("pcaps/demo.pcap").to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(err.matches("Tor detection is OFF").count(), 1, "{err}");
    assert!(err.contains("tapsentry intel update"), "{err}");
    let last = read_jsonl(&stats).pop().unwrap();
    assert_eq!(last["intel"]["tor_exit_addresses"], 0);
    let out = run(&["check-config", cfg.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning: intel.tor_exit_list:") && err.contains("tor.txt"),
        "{err}"
    );
    assert!(err.contains("Tor detection matches nothing"), "{err}");
}

/// A BPF filter that libpcap does not compile is a configuration error
/// (exit 2) naming the key, whatever the host.
#[test]
fn check_config_rejects_a_filter_that_does_not_compile() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[capture]\ninterface = \"lo\"\nbpf_filter = \"tcp prot 22\"\n",
    )
    .unwrap();
    let out = run(&["check-config", cfg.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("key 'capture.bpf_filter'") && err.contains("tcp prot 22"),
        "{err}"
    );
    std::fs::write(
        &cfg,
        "[capture]\ninterface = \"lo\"\nbpf_filter = \"tcp port 22\"\n",
    )
    .unwrap();
    let out = run(&["check-config", cfg.to_str().unwrap()]);
    assert!(!stderr(&out).contains("bpf_filter"), "{}", stderr(&out));
}

/// Every problem of this host in one run, as warnings (exit 0); with
/// --strict the same lines are errors and the exit is 2.
#[test]
fn check_config_reports_every_host_problem_and_strict_fails_on_them() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    // Writable by whoever runs the test, not by `nobody`.
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o755)).unwrap();
    let tor = dir.path().join("tor.txt");
    std::fs::write(&tor, "not an address\nneither this\n").unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = port.local_addr().unwrap().port();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[capture]\ninterface = \"tapsentry-none0\"\n\
             [output]\nalert_log = {:?}\nstats_log = {:?}\n\
             [detect]\nstate_file = \"/nonexistent-tapsentry/state.json\"\n\
             [intel]\ntor_exit_list = {:?}\ngeoip_city = \"\"\ngeoip_asn = \"\"\n\
             [metrics]\nlisten = \"127.0.0.1:{taken}\"\n",
            logs.join("alerts.jsonl").display().to_string(),
            logs.join("stats.jsonl").display().to_string(),
            tor.display().to_string(),
        ),
    )
    .unwrap();
    let out = run(&["check-config", cfg.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    for needle in [
        "warning: capture.interface: no interface 'tapsentry-none0'",
        "warning: detect.state_file: directory /nonexistent-tapsentry",
        "warning: intel.tor_exit_list:",
        &format!("warning: metrics.listen: cannot listen on 127.0.0.1:{taken}"),
    ] {
        assert!(err.contains(needle), "missing {needle}: {err}");
    }
    assert!(err.contains("warnings for this host"), "{err}");

    // An unknown drop-privileges user, then one that cannot write the logs.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let with_user = |u: &str| {
        text.replacen(
            "[capture]\n",
            &format!("[capture]\ndrop_privileges_user = {u:?}\n"),
            1,
        )
    };
    std::fs::write(&cfg, with_user("tapsentry-no-such-user")).unwrap();
    let err = stderr(&run(&["check-config", cfg.to_str().unwrap()]));
    assert!(
        err.contains("warning: capture.drop_privileges_user: no user 'tapsentry-no-such-user'"),
        "{err}"
    );
    std::fs::write(&cfg, with_user("nobody")).unwrap();
    let out = run(&["check-config", cfg.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    for key in ["output.alert_log", "output.stats_log"] {
        assert!(
            err.contains(&format!("warning: {key}: directory {}", logs.display()))
                && err.contains("not writable by capture.drop_privileges_user 'nobody'"),
            "{key}: {err}"
        );
    }
    let warnings = err.matches(": warning: ").count();

    let out = run(&["check-config", "--strict", cfg.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.matches(": error: ").count(), warnings, "{err}");
    assert!(!err.contains("warning"), "{err}");
    drop(port);
}

/// Tor's exit-addresses document is accepted as it is served, with no
/// pid file configured (said, not an error), and the sensor's own loader
/// reads the installed file.
#[test]
fn intel_update_takes_the_exit_addresses_format() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("tor.txt");
    let doc: String = (0..120)
        .map(|i| {
            format!(
                "ExitNode {i:040X}\nPublished 2026-12-01 10:00:00\nLastStatus 2026-12-01 11:00:00\nExitAddress {} 2026-12-01 10:30:00\n",
                trickle_exit(i)
            )
        })
        .collect();
    let port = http_server(
        vec![("/exit-addresses", Reply::Ok(doc.clone().into_bytes()))],
        1,
    );
    let cfg = intel_config(
        dir.path(),
        &list,
        &format!("http://127.0.0.1:{port}/exit-addresses"),
        Path::new(""),
    );
    let out = run(&["intel", "update", "--config", cfg.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("120 Tor exit addresses (ExitAddresses format"),
        "{err}"
    );
    assert!(err.contains("output.pid_file is not set"), "{err}");
    assert_eq!(std::fs::read_to_string(&list).unwrap(), doc);
    let out = run(&["check-config", cfg.to_str().unwrap()]);
    assert!(
        !stderr(&out).contains("intel.tor_exit_list"),
        "{}",
        stderr(&out)
    );
}
