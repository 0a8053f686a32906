//! The files of `deploy/`, checked with the real programs that read them:
//! `systemd-analyze verify` on the units, `check-config` on the deploy
//! configuration, and the whole shipping path: the sensor writes alerts,
//! rsyslog (`imfile` + `omhiredis`, with `deploy/rsyslog/tapsentry-redis.conf`)
//! ships them into a real `redis-server`, the real `logrotate` (with
//! `deploy/logrotate.d/tapsentry`) rotates the log mid-run and signals the
//! sensor through its pid file, and every alert arrives exactly once.
#![allow(
    clippy::disallowed_methods,
    reason = "deadlines for child processes are wall time"
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::common::{
    bin, free_port, have_tool, read_jsonl, repo, run, stderr, tor_trickle, trickle_exit,
};

/// Children stopped (SIGTERM, then waited for) when the test ends, however
/// it ends.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
            let _ = c.wait();
        }
    }
}

fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The three units pass `systemd-analyze verify` with no complaint at all
/// (the ExecStart paths pointed at the built binary, which verify requires
/// to exist).
#[test]
fn units_pass_systemd_analyze_verify() {
    if !have_tool("systemd-analyze", "systemd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Can verify run here at all? A trivial unit says.
    let probe = dir.path().join("tapsentry-probe.service");
    std::fs::write(&probe, "[Service]\nType=oneshot\nExecStart=/bin/true\n").unwrap();
    let o = output(Command::new("systemd-analyze").arg("verify").arg(&probe));
    if !o.status.success() {
        eprintln!(
            "SKIPPED: systemd-analyze verify cannot run in this container: {}",
            text(&o)
        );
        return;
    }
    std::fs::remove_file(&probe).unwrap();
    let mut units = Vec::new();
    for name in [
        "tapsentry.service",
        "tapsentry-intel-update.service",
        "tapsentry-intel-update.timer",
    ] {
        let unit = std::fs::read_to_string(repo("deploy/systemd").join(name)).unwrap();
        assert!(
            !name.ends_with(".service") || unit.contains("/usr/local/bin/tapsentry "),
            "{name}"
        );
        let unit = unit.replace("/usr/local/bin/tapsentry", bin().to_str().unwrap());
        let path = dir.path().join(name);
        std::fs::write(&path, unit).unwrap();
        units.push(path);
    }
    let o = output(Command::new("systemd-analyze").arg("verify").args(&units));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(text(&o).trim(), "", "systemd-analyze verify complained");
}

/// The configuration the units use is valid (host warnings aside: this
/// machine has no eth1 and no /var/log/tapsentry), and names the pid file
/// the logrotate file and intel update signal through.
#[test]
fn the_deploy_config_checks_and_matches_the_other_files() {
    let cfg = repo("deploy/sensor.toml");
    let out = run(&["check-config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let parsed = tapsentry::config::SensorConfig::load(&cfg).unwrap();
    let pid = parsed.output.pid_file.display().to_string();
    let logrotate = std::fs::read_to_string(repo("deploy/logrotate.d/tapsentry")).unwrap();
    assert!(logrotate.contains(&format!("cat {pid}")), "{logrotate}");
    let alert_log = Path::new(&parsed.output.alert_log);
    assert!(logrotate.contains(&format!(
        "{}/*.jsonl",
        alert_log.parent().unwrap().display()
    )));
    let rsyslog = std::fs::read_to_string(repo("deploy/rsyslog/tapsentry-redis.conf")).unwrap();
    assert!(rsyslog.contains(&format!("File=\"{}\"", alert_log.display())));
    let unit = std::fs::read_to_string(repo("deploy/systemd/tapsentry.service")).unwrap();
    assert!(unit.contains("RuntimeDirectory=tapsentry") && pid.starts_with("/run/tapsentry/"));
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn redis_lines(port: u16) -> Vec<String> {
    let o = output(Command::new("redis-cli").args([
        "-p",
        &port.to_string(),
        "--raw",
        "LRANGE",
        "tapsentry:alerts",
        "0",
        "-1",
    ]));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The shipping path end to end, with the deploy files as shipped (paths
/// and port moved into the test's directory; logrotate's `su` line set to
/// the user running the test).
#[test]
fn shipping_every_alert_reaches_redis_exactly_once_across_rotation() {
    for (cmd, package) in [
        ("redis-server", "redis-server"),
        ("redis-cli", "redis-tools"),
        ("rsyslogd", "rsyslog"),
        ("logrotate", "logrotate"),
    ] {
        if !have_tool(cmd, package) {
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (logs, work, run_dir) = (d.join("logs"), d.join("work"), d.join("run"));
    for p in [&logs, &work, &run_dir] {
        std::fs::create_dir(p).unwrap();
    }
    let mut children = Children(Vec::new());

    // Redis, in the test's directory, on its own port, saving nothing.
    let redis_port = free_port();
    children.0.push(
        Command::new("redis-server")
            .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(d)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("redis-server", Duration::from_secs(10), || {
        output(Command::new("redis-cli").args(["-p", &redis_port.to_string(), "PING"]))
            .stdout
            .starts_with(b"PONG")
    });

    // rsyslog with the shipped drop-in, its state in the test's directory.
    let ship = std::fs::read_to_string(repo("deploy/rsyslog/tapsentry-redis.conf"))
        .unwrap()
        .replace("/var/log/tapsentry", logs.to_str().unwrap())
        .replace(
            "serverport=\"6379\"",
            &format!("serverport=\"{redis_port}\""),
        );
    std::fs::write(d.join("ship.conf"), ship).unwrap();
    let main_conf = d.join("rsyslog.conf");
    std::fs::write(
        &main_conf,
        format!(
            "global(workDirectory=\"{}\")\ninclude(file=\"{}\")\n",
            work.display(),
            d.join("ship.conf").display()
        ),
    )
    .unwrap();
    let check = output(
        Command::new("rsyslogd")
            .arg("-N1")
            .arg("-f")
            .arg(&main_conf),
    );
    if !check.status.success() && text(&check).contains("omhiredis") {
        assert!(
            std::env::var_os("TAPSENTRY_SKIP_MISSING_TOOLS").is_some(),
            "rsyslog has no omhiredis: install rsyslog-hiredis (scripts/test.sh does): {}",
            text(&check)
        );
        eprintln!("SKIPPED: rsyslog-hiredis is not installed");
        return;
    }
    assert!(check.status.success(), "rsyslogd -N1: {}", text(&check));
    children.0.push(
        Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&main_conf)
            .arg("-i")
            .arg(d.join("rsyslog.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // The sensor: 40 Tor exits contacted 0.2 s apart (capture time 0.5 s to
    // 8.3 s), replayed at twice real time: an alert every 0.1 s for 4 s.
    let n = 40;
    let pcap = d.join("trickle.pcap");
    tor_trickle(&pcap, n, 0.2, 10.0);
    let list = d.join("tor.txt");
    let exits: String = (0..n).map(|i| trickle_exit(i) + "\n").collect();
    std::fs::write(&list, exits).unwrap();
    let pid_file = run_dir.join("tapsentry.pid");
    let alert_log = logs.join("alerts.jsonl");
    let cfg = d.join("sensor.toml");
    std::fs::write(
        &cfg,
        format!(
            "[intel]\ntor_exit_list = {:?}\ngeoip_city = \"\"\ngeoip_asn = \"\"\n\
             [flow.timeouts]\ntcp_closed = 1\n\
             [output]\nalert_log = {:?}\npid_file = {:?}\n",
            list.display().to_string(),
            alert_log.display().to_string(),
            pid_file.display().to_string(),
        ),
    )
    .unwrap();
    let sensor = Command::new(bin())
        .args(["replay", "--speed", "2", "--config"])
        .arg(&cfg)
        .arg(&pcap)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // logrotate with the shipped file, its own state file, forced once the
    // log holds a few alerts (its postrotate signals through the pid file).
    let me = if nix::unistd::geteuid().is_root() {
        "su root root".to_string()
    } else {
        let u = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .unwrap()
            .unwrap();
        let g = nix::unistd::Group::from_gid(nix::unistd::getegid())
            .unwrap()
            .unwrap();
        format!("su {} {}", u.name, g.name)
    };
    let rotate = std::fs::read_to_string(repo("deploy/logrotate.d/tapsentry"))
        .unwrap()
        .replace("/var/log/tapsentry", logs.to_str().unwrap())
        .replace("/run/tapsentry/tapsentry.pid", pid_file.to_str().unwrap())
        .replace("su tapsentry tapsentry", &me);
    let rotate_conf = d.join("logrotate.conf");
    std::fs::write(&rotate_conf, rotate).unwrap();
    wait_for("the first alerts", Duration::from_secs(10), || {
        lines(&alert_log).len() >= 8
    });
    let o = output(
        Command::new("logrotate")
            .arg("-f")
            .arg("-s")
            .arg(d.join("logrotate.state"))
            .arg(&rotate_conf),
    );
    assert!(o.status.success(), "logrotate: {}", text(&o));
    let out = sensor.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!pid_file.exists());

    // Both files hold alerts: the rotation was mid-run, and the sensor
    // reopened its log on the signal.
    let rotated = lines(&logs.join("alerts.jsonl.1"));
    let current = lines(&alert_log);
    assert!(
        !rotated.is_empty() && !current.is_empty(),
        "rotated {} current {}",
        rotated.len(),
        current.len()
    );
    let mut written: Vec<String> = rotated.into_iter().chain(current).collect();
    assert_eq!(written.len(), n, "{written:?}");
    let mut exits: Vec<String> = read_jsonl(&logs.join("alerts.jsonl.1"))
        .into_iter()
        .chain(read_jsonl(&alert_log))
        .map(|a| a["dest_ip"].as_str().unwrap().to_string())
        .collect();
    exits.sort();
    let mut want: Vec<String> = (0..n).map(trickle_exit).collect();
    want.sort();
    assert_eq!(exits, want);

    // Every line in Redis, once: wait for them all, then a little longer
    // for a duplicate to show.
    wait_for("every alert in redis", Duration::from_secs(20), || {
        redis_lines(redis_port).len() >= n
    });
    std::thread::sleep(Duration::from_millis(1500));
    let mut shipped = redis_lines(redis_port);
    shipped.sort();
    written.sort();
    assert_eq!(shipped, written);
    drop(children);
}

/// `PathBuf` of a deploy file, for the README check below.
fn deploy_files() -> Vec<PathBuf> {
    [
        "deploy/systemd/tapsentry.service",
        "deploy/systemd/tapsentry-intel-update.service",
        "deploy/systemd/tapsentry-intel-update.timer",
        "deploy/sysusers.d/tapsentry.conf",
        "deploy/logrotate.d/tapsentry",
        "deploy/rsyslog/tapsentry-redis.conf",
        "deploy/sensor.toml",
    ]
    .iter()
    .map(|p| repo(p))
    .collect()
}

/// The README's deployment section names every file of deploy/.
#[test]
fn the_readme_installs_every_deploy_file() {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    for f in deploy_files() {
        assert!(f.exists(), "{}", f.display());
        let rel = f.strip_prefix(repo("")).unwrap().display().to_string();
        assert!(readme.contains(&rel), "README.md does not mention {rel}");
    }
}
