//! The example configuration, the embedded default and check-config.

use crate::common::{repo, run, stderr};

#[test]
fn example_config_checks_ok() {
    let out = run(&[
        "check-config",
        repo("sensor.toml.example").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("OK"));
}

#[test]
fn embedded_default_is_the_example() {
    let example = std::fs::read_to_string(repo("sensor.toml.example")).unwrap();
    assert_eq!(example, tapsentry::config::DEFAULT_CONFIG_TOML);
}

#[test]
fn check_config_lists_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[network]\nhome_net = [\"10.0.0.0/99\"]\n[flow]\nmax_flows = 0\nbogus = 1\n[pipeline]\nworkers = \"two\"\n[nope]\n",
    )
    .unwrap();
    let out = run(&["check-config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for needle in [
        "flow.bogus",
        "'nope'",
        "pipeline.workers",
        "flow.max_flows",
        "10.0.0.0/99",
    ] {
        assert!(err.contains(needle), "missing {needle}: {err}");
    }
    assert!(
        err.lines().all(|l| l.starts_with(cfg.to_str().unwrap())),
        "{err}"
    );
}

#[test]
fn volume_detector_values_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[detect.exfiltration]\nz_threshold = -1.0\nmax_sd = 0.1\nallow = [\"nope\"]\n\
         max_destinations = 0\n[detect.data_collection]\nalpha = 2.0\nwindow_secs = 0\n",
    )
    .unwrap();
    let out = run(&["check-config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for needle in [
        "detect.exfiltration.z_threshold",
        "detect.exfiltration.max_sd",
        "'nope'",
        "detect.exfiltration.max_destinations",
        "detect.data_collection.alpha",
        "detect.data_collection.window_secs",
    ] {
        assert!(err.contains(needle), "missing {needle}: {err}");
    }
}

/// The detectors that checked nothing before the registry: a zero-length
/// window (dns_tunnel, external_login) or a zero cap (unusual_protocol,
/// which has no window) is reported, every one in one run. `tor` has no
/// value to bound (only `enabled`); a wrong type there is still named.
#[test]
fn formerly_unchecked_detectors_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[detect.dns_tunnel]\nwindow_secs = 0\n[detect.external_login]\nwindow_secs = 0\n\
         [detect.unusual_protocol]\nmax_pairs = 0\n[detect.tor]\nenabled = \"yes\"\n",
    )
    .unwrap();
    let out = run(&["check-config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for needle in [
        "key 'detect.dns_tunnel.window_secs': must be at least 1",
        "key 'detect.external_login.window_secs': must be at least 1",
        "key 'detect.unusual_protocol.max_pairs': must be at least 1",
        "key 'detect.tor.enabled'",
    ] {
        assert!(err.contains(needle), "missing {needle}: {err}");
    }
    assert_eq!(err.lines().count(), 4, "{err}");
}

/// A list that does not parse is a problem of this host (the file, not
/// the configuration): a warning naming it, and an error with --strict.
#[test]
fn broken_tor_list_is_a_host_warning_and_strict_error() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("tor.txt");
    std::fs::write(&list, "not an address\nneither this\n").unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("[intel]\ntor_exit_list = {:?}\n", list.to_str().unwrap()),
    )
    .unwrap();
    let out = run(&["check-config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("warning: intel.tor_exit_list: "));
    assert!(stderr(&out).contains("tor.txt"));
    let out = run(&["check-config", "--strict", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("error: intel.tor_exit_list: "));
}

#[test]
fn help_lists_the_contract_commands() {
    let out = run(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for c in ["replay", "run", "check-config", "intel"] {
        assert!(text.contains(c));
    }
    let out = run(&["replay", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for f in ["--config", "--alerts", "--speed", "--workers"] {
        assert!(text.contains(f), "{f}");
    }
}
