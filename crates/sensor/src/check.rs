//! What `tapsentry check-config` checks beyond parsing: everything `run`
//! would otherwise find one failure at a time.
//!
//! Two kinds of finding, as the contract sorts them:
//! * [`config_errors`]: the file is wrong wherever it is used (a BPF
//!   filter that does not compile). Exit 2.
//! * [`host_warnings`]: the file may be right for another machine, or for
//!   this one once it is set up (the interface, writable directories, the
//!   drop-privileges user, intel files, the metrics port). Warnings, and
//!   errors with `--strict`.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::unistd::{access, AccessFlags, User};

use crate::config::{configured, SensorConfig};
use crate::control::load_intel;

/// Problems of the configuration itself that parsing cannot see, each
/// naming its key.
pub fn config_errors(cfg: &SensorConfig) -> Vec<String> {
    let mut errors = Vec::new();
    let c = &cfg.capture;
    if !c.bpf_filter.is_empty() {
        if let Err(e) = tapsentry_capture::check_filter(&c.interface, &c.bpf_filter) {
            errors.push(format!("key 'capture.bpf_filter': {e}"));
        }
    }
    errors
}

/// Problems of this host for `tapsentry run` with `cfg`, each naming its
/// key.
pub fn host_warnings(cfg: &SensorConfig) -> Vec<String> {
    let mut w = Vec::new();
    let c = &cfg.capture;
    match tapsentry_capture::interface_names() {
        Ok(names) if names.contains(&c.interface) => {}
        Ok(names) => w.push(format!(
            "capture.interface: no interface '{}' on this host (there are: {})",
            c.interface,
            names.join(", ")
        )),
        Err(e) => w.push(format!("capture.interface: cannot list interfaces: {e}")),
    }
    // The user the sensor runs as after the capture handle is open: it
    // writes the state, inventory and pid files, and reopens logs on SIGHUP.
    let drop_user = if c.drop_privileges_user.is_empty() {
        None
    } else {
        match User::from_name(&c.drop_privileges_user) {
            Ok(Some(u)) => Some(u),
            Ok(None) => {
                w.push(format!(
                    "capture.drop_privileges_user: no user '{}' on this host",
                    c.drop_privileges_user
                ));
                None
            }
            Err(e) => {
                w.push(format!(
                    "capture.drop_privileges_user: cannot look up '{}': {e}",
                    c.drop_privileges_user
                ));
                None
            }
        }
    };
    let o = &cfg.output;
    let files = [
        ("output.alert_log", Path::new(&o.alert_log)),
        ("output.flow_log", Path::new(&o.flow_log)),
        ("output.stats_log", Path::new(&o.stats_log)),
        ("output.inventory", o.inventory.as_path()),
        ("output.pid_file", o.pid_file.as_path()),
        ("detect.state_file", cfg.detect.state_file.as_path()),
    ];
    for (key, path) in files {
        if path.as_os_str().is_empty() || path == Path::new("-") {
            continue;
        }
        w.extend(writable(key, path, drop_user.as_ref()));
    }
    match load_intel(&cfg.intel) {
        Ok((snap, warnings)) => {
            w.extend(warnings);
            if configured(&cfg.intel.tor_exit_list).is_some() && snap.tor.is_empty() {
                w.push(
                    "intel.tor_exit_list: no usable list, so Tor detection matches nothing; \
                     `tapsentry intel update` downloads one"
                        .into(),
                );
            }
        }
        Err(e) => w.push(e),
    }
    if let Some(addr) = cfg.metrics.address() {
        if let Err(e) = std::net::TcpListener::bind(addr) {
            w.push(format!("metrics.listen: cannot listen on {addr}: {e}"));
        }
    }
    w
}

/// Whether the sensor can create or append to `path`: as the user running
/// the check (the sensor opens logs before dropping privileges), and as
/// `later`, the drop-privileges user, who must create the file anew after
/// a rotation or a save.
fn writable(key: &str, path: &Path, later: Option<&User>) -> Vec<String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let meta = match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => return vec![format!("{key}: {} is not a directory", dir.display())],
        Err(e) => return vec![format!("{key}: directory {}: {e}", dir.display())],
    };
    let mut w = Vec::new();
    if path.exists() && access(path, AccessFlags::W_OK).is_err() {
        w.push(format!(
            "{key}: {} is not writable by this user",
            path.display()
        ));
    } else if !path.exists() && access(dir, AccessFlags::W_OK | AccessFlags::X_OK).is_err() {
        w.push(format!(
            "{key}: directory {} is not writable by this user",
            dir.display()
        ));
    }
    if let Some(u) = later {
        if !dir_writable_by(&meta, u) {
            w.push(format!(
                "{key}: directory {} is not writable by capture.drop_privileges_user '{}' \
                 (owner uid {}, group gid {}, mode {:o}); the sensor writes there after dropping privileges",
                dir.display(),
                u.name,
                meta.uid(),
                meta.gid(),
                meta.mode() & 0o7777
            ));
        }
    }
    w
}

/// The classic permission bits of a directory, for a user other than the
/// one running the check (access(2) only answers for the caller). ACLs are
/// not read: a directory opened to the user by an ACL alone is reported.
fn dir_writable_by(meta: &std::fs::Metadata, u: &User) -> bool {
    let mode = meta.mode();
    if u.uid.is_root() {
        return true;
    }
    if meta.uid() == u.uid.as_raw() {
        return mode & 0o300 == 0o300;
    }
    let in_group = meta.gid() == u.gid.as_raw()
        || std::ffi::CString::new(u.name.as_str())
            .ok()
            .and_then(|n| nix::unistd::getgrouplist(&n, u.gid).ok())
            .is_some_and(|gs| gs.iter().any(|g| g.as_raw() == meta.gid()));
    if in_group {
        return mode & 0o030 == 0o030;
    }
    mode & 0o003 == 0o003
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_judged_for_the_drop_user_by_its_bits() {
        use std::os::unix::fs::PermissionsExt;
        let Ok(Some(nobody)) = User::from_name("nobody") else {
            panic!("no user nobody on this host")
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let meta = std::fs::metadata(dir.path()).unwrap();
        assert!(!dir_writable_by(&meta, &nobody));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let meta = std::fs::metadata(dir.path()).unwrap();
        assert!(dir_writable_by(&meta, &nobody));
        let w = writable("k", &dir.path().join("no/such/x.log"), None);
        assert!(
            w[0].starts_with("k: directory ") && w[0].contains("no/such"),
            "{w:?}"
        );
    }
}
