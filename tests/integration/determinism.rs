//! One capture gives byte-identical alert and flow logs at any speed and
//! any worker count.

use std::path::Path;
use std::process::Command;

use crate::common::{bin, shared};

fn run(dir: &Path, tag: &str, cfg: &Path, extra: &[&str], pcaps: &[&Path]) -> (Vec<u8>, Vec<u8>) {
    let alerts = dir.join(format!("alerts-{tag}.jsonl"));
    let flows = dir.join(format!("flows-{tag}.jsonl"));
    let out = Command::new(bin())
        .arg("replay")
        .arg("--config")
        .arg(cfg)
        .arg("--alerts")
        .arg(&alerts)
        .arg("--flows")
        .arg(&flows)
        .args(extra)
        .args(pcaps)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        std::fs::read(alerts).unwrap(),
        std::fs::read(flows).unwrap(),
    )
}

#[test]
fn same_logs_at_any_speed_and_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    // Servers the two browsing captures talk to, listed as Tor exits so the
    // real traffic raises alerts.
    let list = dir.path().join("tor.txt");
    std::fs::write(
        &list,
        "138.201.208.22\n142.250.185.162\n93.191.156.41\n204.79.197.200\n172.217.23.174\n54.192.44.177\n93.184.220.29\n",
    )
    .unwrap();
    // A small table and short timeouts so eviction, expiry and interim
    // records all happen during the replay, not only at the end.
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[intel]\ntor_exit_list = {:?}\ngeoip_city = \"\"\ngeoip_asn = \"\"\n[flow]\nmax_flows = 40\nevict_min_idle_secs = 2\ninterim_interval_secs = 5\n[flow.timeouts]\ntcp_established = 20\nudp_established = 10\n[output]\nsuppression_window_secs = 30\n",
            list.display().to_string()
        ),
    )
    .unwrap();
    let a = shared("benign/tls-browsing-31-hosts.pcap");
    let b = shared("benign/firefox-windows-browsing.pcap");
    let pcaps = [a.as_path(), b.as_path()];
    let base = run(dir.path(), "w1", &cfg, &["--workers", "1"], &pcaps);
    let lines = base.0.iter().filter(|&&c| c == b'\n').count();
    assert!(lines >= 5, "too few alerts to compare: {lines}");
    assert!(base.1.len() > 10_000, "flow log too small");
    for (tag, extra) in [
        ("w1-again", &["--workers", "1"][..]),
        ("w4", &["--workers", "4"][..]),
        ("w3-paced", &["--workers", "3", "--speed", "400"][..]),
    ] {
        let other = run(dir.path(), tag, &cfg, extra, &pcaps);
        assert!(base.0 == other.0, "{tag}: alert log differs");
        assert!(base.1 == other.1, "{tag}: flow log differs");
    }
}

#[test]
fn replay_loses_nothing_under_backpressure() {
    let dir = tempfile::tempdir().unwrap();
    let demo = crate::common::repo("pcaps/demo.pcap");
    let list = crate::common::repo("pcaps/demo-tor-exits.txt");
    let base_cfg = dir.path().join("base.toml");
    std::fs::write(
        &base_cfg,
        format!(
            "[intel]\ntor_exit_list = {:?}\ngeoip_city = \"\"\ngeoip_asn = \"\"\n",
            list.display().to_string()
        ),
    )
    .unwrap();
    // Queues of one, a DNS buffer of one event, a table of 16 flows: every
    // stage waits on the next, and nothing may be dropped.
    let tight_cfg = dir.path().join("tight.toml");
    std::fs::write(
        &tight_cfg,
        format!(
            "[intel]\ntor_exit_list = {:?}\ngeoip_city = \"\"\ngeoip_asn = \"\"\n[pipeline]\nworker_queue = 1\nwriter_queue = 1\nmax_pending_dns = 1\n[flow]\nmax_flows = 16\nevict_min_idle_secs = 1\n",
            list.display().to_string()
        ),
    )
    .unwrap();
    let (base_alerts, _) = run(dir.path(), "base", &base_cfg, &[], &[&demo]);
    let stats = dir.path().join("stats-tight.jsonl");
    let (tight_alerts, tight_flows) = run(
        dir.path(),
        "tight",
        &tight_cfg,
        &["--workers", "3", "--stats", stats.to_str().unwrap()],
        &[&demo],
    );
    assert_eq!(base_alerts, tight_alerts);
    assert!(!tight_flows.is_empty());
    let s = crate::common::read_jsonl(&stats).pop().unwrap();
    for reason in [
        "alert_queue_full",
        "detector_queue_full",
        "dns_buffer_full",
        "flow_log_queue_full",
        "flow_meta_buffer_full",
        "flow_meta_table_full",
        "admin_event_buffer_full",
        "admin_table_full",
    ] {
        assert_eq!(s["drops"]["queues"][reason], 0, "{reason}");
    }
    assert_eq!(s["drops"]["flow_records"], 0);
    assert!(
        s["flows"]["evicted"].as_u64().unwrap() > 0,
        "the small table never filled"
    );
    // 10 minutes x 4 workstations x 3 lookups, each a query and a response.
    assert_eq!(s["capture"]["dns_messages"], 240);
}
