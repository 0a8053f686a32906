use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The built binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tapsentry"))
}

/// A file of the shared capture corpus (`../shared/pcaps` beside the checkout).
pub fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/pcaps")
        .join(rel)
}

/// A capture by its corpus path: the copy bundled in `pcaps/` when there is
/// one (small, permissively licensed files), else the shared corpus.
pub fn fixture(rel: &str) -> PathBuf {
    let bundled = repo("pcaps").join(rel);
    if bundled.exists() {
        bundled
    } else {
        shared(rel)
    }
}

/// A file in this repository.
pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Runs the binary with `args` and returns its output.
pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run tapsentry")
}

/// Replays `pcaps` with extra `args`, writing alerts and stats into `dir`;
/// returns (output, alerts, final stats record).
pub fn replay(dir: &Path, args: &[&str], pcaps: &[&Path]) -> (Output, Vec<Value>, Value) {
    let alerts = dir.join("alerts.jsonl");
    let stats = dir.join("stats.jsonl");
    let _ = std::fs::remove_file(&alerts);
    let _ = std::fs::remove_file(&stats);
    let mut cmd = Command::new(bin());
    cmd.arg("replay")
        .arg("--alerts")
        .arg(&alerts)
        .arg("--stats")
        .arg(&stats)
        .args(args);
    for p in pcaps {
        cmd.arg(p);
    }
    let out = cmd.output().expect("run tapsentry");
    let alerts = read_jsonl(&alerts);
    let stats = read_jsonl(&stats).pop().unwrap_or(Value::Null);
    (out, alerts, stats)
}

/// Every line of a JSON-lines file, parsed (each must be a complete object).
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// `(packets, bytes)` as capinfos reports them (bytes = sum of original
/// frame lengths, capinfos' "data size").
pub fn capinfos(path: &Path) -> Option<(u64, u64)> {
    let out = Command::new("capinfos")
        .args(["-T", "-m", "-r", "-c", "-d"])
        .arg(path)
        .output();
    let out = match out {
        Ok(o) => o,
        Err(_) => {
            assert!(
                std::env::var_os("TAPSENTRY_SKIP_TSHARK").is_some(),
                "capinfos not found: install tshark (apt-get install tshark), or set TAPSENTRY_SKIP_TSHARK=1"
            );
            return None;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?;
    let cols: Vec<&str> = line.split(',').collect();
    let packets = cols.get(1)?.trim().parse().ok()?;
    let bytes = cols.get(2)?.split_whitespace().next()?.parse().ok()?;
    Some((packets, bytes))
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A copy of the real capture `src` in `dir` with TCP and UDP port `from`
/// moved to `to` (checksums kept right): the same packets, the service on
/// another port. Ethernet captures only (pcap or pcapng in, pcap out).
pub fn remapped(src: &Path, dir: &Path, from: u16, to: u16) -> PathBuf {
    use tapsentry_capture::{FileSource, FrameSource, LinkType, Next};
    let name = src.file_name().unwrap().to_string_lossy();
    let out = dir.join(format!("{to}-{name}.pcap"));
    let mut source = FileSource::open(&[src.to_path_buf()]).unwrap();
    let mut w = tapsentry_testkit::PcapWriter::create(&out, LinkType::ETHERNET).unwrap();
    let mut moved = 0;
    while let Next::Frame(f) = source.next_frame().unwrap() {
        assert_eq!(f.link, LinkType::ETHERNET, "{name}: Ethernet only");
        let mut data = f.data.to_vec();
        moved += usize::from(tapsentry_testkit::remap_port(&mut data, from, to));
        w.write_with_wire_len(f.ts, &data, f.wire_len);
    }
    w.finish().unwrap();
    assert!(moved > 0, "{name}: nothing on port {from}");
    out
}

/// Whether the program `cmd` (from Debian's `package`) is on this machine.
/// `scripts/test.sh` installs every one the tests use; elsewhere a missing
/// program fails the test, unless `TAPSENTRY_SKIP_MISSING_TOOLS` is set, in
/// which case the test says it is skipped and why (never a silent pass).
pub fn have_tool(cmd: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return true;
    }
    assert!(
        std::env::var_os("TAPSENTRY_SKIP_MISSING_TOOLS").is_some(),
        "{cmd} not found: install {package} (scripts/test.sh does), or set TAPSENTRY_SKIP_MISSING_TOOLS=1 to skip the tests that need it"
    );
    eprintln!(
        "SKIPPED: {cmd} not found (Debian package {package}); TAPSENTRY_SKIP_MISSING_TOOLS is set"
    );
    false
}

/// A free TCP port on the loopback address (bound, read and released; a
/// test that needs a port for a child process takes it from here).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The `i`-th address of [`tor_trickle`]'s exits (198.18.0.0/15, the
/// benchmarking range: outside any home_net).
pub fn trickle_exit(i: usize) -> String {
    format!("198.18.{}.{}", i / 200, i % 200 + 1)
}

/// A capture in which inside host 10.1.0.5 opens one short session to each
/// of `n` exits ([`trickle_exit`]), one every `every` seconds from 0.5 s,
/// with packets every half second until `end`: with the exits on the Tor
/// list, one alert every `every` seconds of capture time (the flows end at
/// `flow.timeouts.tcp_closed`).
pub fn tor_trickle(path: &Path, n: usize, every: f64, end: f64) {
    use tapsentry_testkit::scenario::{ip, Scenario};
    let mut s = Scenario::new();
    for i in 0..n {
        let port = 40_000 + u16::try_from(i).unwrap();
        s.session(
            0.5 + every * i as f64,
            ip("10.1.0.5"),
            port,
            ip(&trickle_exit(i)),
            443,
            100,
            100,
            0.1,
        );
    }
    let mut t = 0.25;
    while t < end {
        s.clock(t);
        t += 0.5;
    }
    s.write(path).unwrap();
}
