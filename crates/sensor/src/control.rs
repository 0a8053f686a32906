//! Intel loading, the [`Control`] block the signal thread shares with the
//! running pipeline, and the signal thread.
//!
//! Signals become actions on one thread: SIGINT/SIGTERM set the stop flag
//! (the capture thread sees it within one read timeout); SIGHUP reloads the
//! Tor exit list and GeoIP databases (a broken new file keeps the old
//! snapshot and says why) and asks every log writer to reopen its file.

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

/// What the signal thread can ask of a running pipeline.
#[derive(Clone)]
pub struct Control {
    /// Set on SIGINT/SIGTERM: stop capture, flush everything, exit.
    pub stop: Arc<AtomicBool>,
    /// Bumped on SIGHUP: the writer and stats threads reopen their files.
    pub reopen: Arc<AtomicU64>,
    /// The intel snapshot, replaced on SIGHUP.
    pub intel: Arc<IntelHandle>,
}

impl Control {
    /// A control block around an initial intel snapshot.
    pub fn new(intel: IntelSnapshot) -> Control {
        Control {
            stop: Arc::new(AtomicBool::new(false)),
            reopen: Arc::new(AtomicU64::new(0)),
            intel: Arc::new(IntelHandle::new(intel)),
        }
    }
}

/// Loads the Tor list and GeoIP databases named in `[intel]`.
///
/// A configured file that does not exist is a warning (returned, not an
/// error): lists are often installed after the sensor. A file that exists
/// but cannot be loaded is an error naming the key and the file.
pub fn load_intel(cfg: &IntelConfig) -> Result<(IntelSnapshot, Vec<String>), String> {
    let mut warnings = Vec::new();
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
        Some(p) if present("intel.tor_exit_list", p, &mut warnings) => {
            let (list, report) =
                TorExitList::load(p).map_err(|e| format!("intel.tor_exit_list: {e}"))?;
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
        _ => TorExitList::default(),
    };
    let city =
        configured(&cfg.geoip_city).filter(|p| present("intel.geoip_city", p, &mut warnings));
    let asn = configured(&cfg.geoip_asn).filter(|p| present("intel.geoip_asn", p, &mut warnings));
    let geo = GeoIp::open(city, asn).map_err(|e| format!("intel.geoip: {e}"))?;
    Ok((IntelSnapshot { tor, geo }, warnings))
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

/// SIGHUP: reopen logs, then reload intel; a broken file keeps the old snapshot.
pub fn reload(control: &Control, cfg: &IntelConfig) {
    control.reopen.fetch_add(1, Ordering::AcqRel);
    match load_intel(cfg) {
        Ok((snap, warnings)) => {
            for w in warnings {
                eprintln!("tapsentry: warning: {w}");
            }
            eprintln!(
                "tapsentry: reloaded intel: {} Tor exit addresses",
                snap.tor.len()
            );
            control.intel.replace(snap);
        }
        Err(e) => eprintln!("tapsentry: warning: reload failed, keeping the previous intel: {e}"),
    }
}
