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
