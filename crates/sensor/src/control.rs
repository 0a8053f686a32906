//! Intel loading, the [`Control`] block the signal thread shares with the
//! running pipeline, and the signal thread.
//!
//! Signals become actions on one thread: SIGINT/SIGTERM set the stop flag
//! (the capture thread sees it within one read timeout); SIGHUP reloads the
//! Tor exit list and GeoIP databases and asks every log writer to reopen
//! its file.
//!
//! Intel files are loaded one by one ([`load_intel_over`]): a file that
//! cannot be loaded, at start or on SIGHUP, keeps what the sensor had of
//! that kind (nothing, at start), is said once on stderr and counted
//! ([`FileFaults`], the stats record's `files`); the other files still
//! load. Only `check-config` treats a broken intel file as an error.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};
use tapsentry_intel::{GeoIp, IntelSnapshot, TorExitList};

use crate::config::{configured, IntelConfig};

/// The intel snapshot every worker reads, swapped whole on SIGHUP.
pub struct IntelHandle {
    current: RwLock<Arc<IntelSnapshot>>,
    generation: AtomicU64,
}

impl IntelHandle {
    /// A handle holding `snap`.
    pub fn new(snap: IntelSnapshot) -> IntelHandle {
        IntelHandle {
            current: RwLock::new(Arc::new(snap)),
            generation: AtomicU64::new(0),
        }
    }

    /// The current snapshot.
    pub fn current(&self) -> Arc<IntelSnapshot> {
        self.current
            .read()
            .map(|g| Arc::clone(&g))
            .unwrap_or_else(|p| Arc::clone(&p.into_inner()))
    }

    /// Replaces the snapshot; workers pick it up before their next batch.
    pub fn replace(&self, snap: IntelSnapshot) {
        let mut g = self.current.write().unwrap_or_else(|p| p.into_inner());
        *g = Arc::new(snap);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Bumped on every [`replace`](Self::replace): a worker compares it
    /// with the one it last saw before each batch.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// Files that could not be read or written, counted for the stats record
/// (`files`). Each is also one line on stderr when it happens.
#[derive(Debug, Default)]
pub struct FileFaults {
    /// Intel files (Tor list, GeoIP databases) that failed to load, at
    /// start or on SIGHUP.
    pub intel_load_failures: AtomicU64,
    /// SIGHUP reloads done.
    pub intel_reloads: AtomicU64,
    /// A state file that existed but could not be used (or a detector's
    /// section of it).
    pub state_load_failures: AtomicU64,
    /// State saves that failed.
    pub state_save_failures: AtomicU64,
    /// An inventory file that existed but could not be used.
    pub inventory_load_failures: AtomicU64,
    /// Inventory saves that failed.
    pub inventory_save_failures: AtomicU64,
}

/// [`FileFaults`] as numbers, for the stats record.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct FileFaultsRecord {
    /// See [`FileFaults::intel_load_failures`].
    pub intel_load_failures: u64,
    /// See [`FileFaults::intel_reloads`].
    pub intel_reloads: u64,
    /// See [`FileFaults::state_load_failures`].
    pub state_load_failures: u64,
    /// See [`FileFaults::state_save_failures`].
    pub state_save_failures: u64,
    /// See [`FileFaults::inventory_load_failures`].
    pub inventory_load_failures: u64,
    /// See [`FileFaults::inventory_save_failures`].
    pub inventory_save_failures: u64,
}

impl FileFaults {
    /// Adds one to `counter`.
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn record(&self) -> FileFaultsRecord {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FileFaultsRecord {
            intel_load_failures: g(&self.intel_load_failures),
            intel_reloads: g(&self.intel_reloads),
            state_load_failures: g(&self.state_load_failures),
            state_save_failures: g(&self.state_save_failures),
            inventory_load_failures: g(&self.inventory_load_failures),
            inventory_save_failures: g(&self.inventory_save_failures),
        }
    }
}

/// What the signal thread can ask of a running pipeline.
#[derive(Clone)]
pub struct Control {
    /// Set on SIGINT/SIGTERM: stop capture, flush everything, exit.
    pub stop: Arc<AtomicBool>,
    /// Bumped on SIGHUP: the writer and stats threads reopen their files.
    pub reopen: Arc<AtomicU64>,
    /// The intel snapshot, replaced on SIGHUP.
    pub intel: Arc<IntelHandle>,
    /// Files that failed, for the stats record.
    pub files: Arc<FileFaults>,
}

impl Control {
    /// A control block around an initial intel snapshot.
    pub fn new(intel: IntelSnapshot) -> Control {
        Control {
            stop: Arc::new(AtomicBool::new(false)),
            reopen: Arc::new(AtomicU64::new(0)),
            intel: Arc::new(IntelHandle::new(intel)),
            files: Arc::new(FileFaults::default()),
        }
    }
}

/// What loading the `[intel]` files gave.
#[derive(Debug)]
pub struct IntelLoad {
    /// The new snapshot: each file that loaded, and for each that failed
    /// what the previous snapshot had.
    pub snapshot: IntelSnapshot,
    /// Lines to print: a configured file that does not exist (lists are
    /// often installed after the sensor), lines of a list skipped.
    pub warnings: Vec<String>,
    /// Files that exist but could not be loaded, one line each naming the
    /// key and the file.
    pub failures: Vec<String>,
}

/// Loads the Tor list and GeoIP databases named in `[intel]`, each on its
/// own: a file that fails keeps `previous`'s data of that kind (pass
/// [`IntelSnapshot::empty`] at start).
pub fn load_intel_over(cfg: &IntelConfig, previous: &IntelSnapshot) -> IntelLoad {
    let mut warnings = Vec::new();
    let mut failures = Vec::new();
    let present = |key: &str, p: &Path, warnings: &mut Vec<String>| -> bool {
        if p.exists() {
            true
        } else {
            warnings.push(format!(
                "{key}: {} does not exist; continuing without it",
                p.display()
            ));
            false
        }
    };
    let tor = match configured(&cfg.tor_exit_list) {
        Some(p) if present("intel.tor_exit_list", p, &mut warnings) => match TorExitList::load(p) {
            Ok((list, report)) => {
                if report.bad_total > 0 {
                    warnings.push(format!(
                        "intel.tor_exit_list: {}: {} lines skipped (first: {})",
                        p.display(),
                        report.bad_total,
                        report
                            .bad_lines
                            .first()
                            .map(|(n, why)| format!("line {n}: {why}"))
                            .unwrap_or_default()
                    ));
                }
                list
            }
            Err(e) => {
                failures.push(format!("intel.tor_exit_list: {e}"));
                previous.tor.clone()
            }
        },
        _ => TorExitList::default(),
    };
    let city =
        configured(&cfg.geoip_city).filter(|p| present("intel.geoip_city", p, &mut warnings));
    let asn = configured(&cfg.geoip_asn).filter(|p| present("intel.geoip_asn", p, &mut warnings));
    let (geo, errors) = GeoIp::reopen(&previous.geo, city, asn);
    failures.extend(errors.into_iter().map(|e| format!("intel.geoip: {e}")));
    IntelLoad {
        snapshot: IntelSnapshot { tor, geo },
        warnings,
        failures,
    }
}

/// Loads the `[intel]` files for `check-config`: a file that exists but
/// cannot be loaded is an error naming the key and the file; a missing one
/// is a warning (returned).
pub fn load_intel(cfg: &IntelConfig) -> Result<(IntelSnapshot, Vec<String>), String> {
    let l = load_intel_over(cfg, &IntelSnapshot::empty());
    if l.failures.is_empty() {
        Ok((l.snapshot, l.warnings))
    } else {
        Err(l.failures.join("; "))
    }
}

/// Loads the `[intel]` files for a run: a broken one is said once (what
/// the sensor keeps instead: `kept`) and counted; the run goes on.
pub fn load_intel_for_run(
    cfg: &IntelConfig,
    previous: &IntelSnapshot,
    files: &FileFaults,
    kept: &str,
) -> IntelSnapshot {
    let l = load_intel_over(cfg, previous);
    for w in &l.warnings {
        eprintln!("tapsentry: warning: {w}");
    }
    for f in &l.failures {
        FileFaults::count(&files.intel_load_failures);
        eprintln!("tapsentry: warning: {f}; {kept}");
    }
    l.snapshot
}

/// The signal thread and the handle that ends it.
pub struct SignalThread {
    handle: Handle,
    thread: JoinHandle<()>,
}

impl SignalThread {
    /// Starts the `signals` thread.
    pub fn start(control: Control, intel_cfg: IntelConfig) -> Result<SignalThread> {
        let mut signals =
            Signals::new([SIGINT, SIGTERM, SIGHUP]).context("cannot install signal handlers")?;
        let handle = signals.handle();
        let thread = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    match sig {
                        SIGINT | SIGTERM => {
                            eprintln!(
                                "tapsentry: stopping: flushing live flows through the detectors"
                            );
                            control.stop.store(true, Ordering::Relaxed);
                        }
                        SIGHUP => reload(&control, &intel_cfg),
                        _ => {}
                    }
                }
            })
            .context("cannot start thread signals")?;
        Ok(SignalThread { handle, thread })
    }

    /// Stops the thread and waits for it.
    pub fn stop(self) {
        self.handle.close();
        let _ = self.thread.join();
    }
}

/// SIGHUP: reopen logs, then reload intel; a file that fails keeps the
/// data the sensor had from it.
pub fn reload(control: &Control, cfg: &IntelConfig) {
    control.reopen.fetch_add(1, Ordering::AcqRel);
    FileFaults::count(&control.files.intel_reloads);
    let previous = control.intel.current();
    let snap = load_intel_for_run(
        cfg,
        &previous,
        &control.files,
        "keeping the previous intel from it",
    );
    eprintln!(
        "tapsentry: reloaded intel: {} Tor exit addresses",
        snap.tor.len()
    );
    control.intel.replace(snap);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn data(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("crates/intel/tests/data")
            .join(name)
    }

    fn intel(tor: &Path, city: &Path, asn: &Path) -> IntelConfig {
        IntelConfig {
            tor_exit_list: tor.to_path_buf(),
            geoip_city: city.to_path_buf(),
            geoip_asn: asn.to_path_buf(),
            ..IntelConfig::default()
        }
    }

    /// A reload where the new Tor list is good and the City database is
    /// broken: the new list is taken, the old City database kept (its
    /// answers unchanged), the ASN database reloaded; one failure, named.
    /// At start (an empty previous snapshot) the broken one is just absent.
    #[test]
    fn a_broken_file_keeps_its_previous_data_and_the_others_load() {
        let dir = tempfile::tempdir().unwrap();
        let tor = dir.path().join("tor.txt");
        std::fs::write(&tor, "192.0.2.1\n").unwrap();
        let good = intel(
            &tor,
            &data("GeoIP2-City-Test.mmdb"),
            &data("GeoLite2-ASN-Test.mmdb"),
        );
        let first = load_intel_over(&good, &IntelSnapshot::empty());
        assert!(first.failures.is_empty(), "{:?}", first.failures);
        let probe: std::net::IpAddr = "81.2.69.142".parse().unwrap();
        let before = first.snapshot.geo.lookup(probe).unwrap();
        assert!(before.country.is_some());

        std::fs::write(&tor, "198.51.100.7\n").unwrap();
        let broken_city = dir.path().join("city.mmdb");
        std::fs::write(&broken_city, b"not a MaxMind database").unwrap();
        let cfg = intel(&tor, &broken_city, &data("GeoLite2-ASN-Test.mmdb"));
        let files = FileFaults::default();
        let second = load_intel_for_run(&cfg, &first.snapshot, &files, "keeping");
        assert!(second.tor.contains("198.51.100.7".parse().unwrap()));
        assert!(!second.tor.contains("192.0.2.1".parse().unwrap()));
        assert_eq!(second.geo.lookup(probe), Some(before));
        assert_eq!(files.record().intel_load_failures, 1);
        let l = load_intel_over(&cfg, &first.snapshot);
        assert_eq!(l.failures.len(), 1);
        assert!(
            l.failures[0].starts_with("intel.geoip: "),
            "{:?}",
            l.failures
        );
        assert!(l.failures[0].contains("city.mmdb"), "{:?}", l.failures);

        // A broken list on reload keeps the old list.
        std::fs::write(&tor, b"\xff\xfe garbage").unwrap();
        let third = load_intel_over(&cfg, &second);
        assert!(third.snapshot.tor.contains("198.51.100.7".parse().unwrap()));
        assert_eq!(third.failures.len(), 2);

        // At start there is nothing to keep.
        let start = load_intel_over(&cfg, &IntelSnapshot::empty());
        assert!(start.snapshot.tor.is_empty());
        assert!(start
            .snapshot
            .geo
            .lookup(probe)
            .is_none_or(|g| g.country.is_none()));
        assert!(load_intel(&cfg).is_err(), "check-config calls it an error");
    }
}
