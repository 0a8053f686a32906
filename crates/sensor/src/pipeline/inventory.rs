//! The asset inventory in the pipeline: fed by the sweep stage (thread
//! `flow-sweep`) with every epoch's DNS events and flow records, before the
//! epoch goes to the workers, and saved by its own thread
//! (`inventory-out`).
//!
//! Why the sweeper: it is the one thread that sees every record and DNS
//! event of the capture once, in capture-time order, in the same epochs at
//! any worker count, and never the per-packet path. The records the
//! inventory raises (`event_type: "inventory"`) go to the writer tagged
//! with their epoch *before* the epoch's batches go to the workers, so the
//! writer holds them when the epoch completes and writes them right after
//! its alerts (see [`super::epoch`]): the same place in the log at any
//! speed and worker count.
//!
//! Saves fall on multiples of `inventory.save_interval_secs` of capture
//! time and at exit, like the baseline state's. The sweeper encodes the
//! bytes (a clone-free walk of the inventory); `inventory-out` writes them
//! atomically (temporary file, 0600, rename), so a slow disk never holds
//! up the sweep.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use tapsentry_detect::HomeNet;
use tapsentry_intel::IntelSnapshot;
use tapsentry_inventory::{file, Inventory, InventoryConfig, InventoryRecord, Sides};
use tapsentry_types::{DnsEvent, FlowRecord, MacSighting, Timestamp};

use super::stats::{lock, SharedStats};
use crate::control::IntelHandle;
use crate::state::write_atomic;

/// Loads the inventory file at `path` for a run: an empty inventory when
/// there is none, and when it is broken (one warning line, then an empty
/// start; the next save replaces the broken file).
pub(crate) fn load(cfg: &InventoryConfig, path: &Path) -> Inventory {
    let name = path.display();
    match file::load(path) {
        Ok(Some(f)) => {
            let n = f.hosts.len();
            let inv = Inventory::from_file(cfg.clone(), f);
            eprintln!(
                "tapsentry: loaded inventory from {name}: {n} hosts, {} s learned",
                inv.learned_secs()
            );
            inv
        }
        Ok(None) => Inventory::new(cfg.clone()),
        Err(e) => {
            eprintln!(
                "tapsentry: warning: inventory file {name}: {e}; starting with an empty inventory"
            );
            Inventory::new(cfg.clone())
        }
    }
}

/// The inventory as the sweeper holds it: what it needs to judge sides and
/// look up countries, and when it saves.
pub(crate) struct InventoryFeed {
    pub inv: Inventory,
    pub home: Arc<HomeNet>,
    pub intel: Arc<IntelHandle>,
    snap: Arc<IntelSnapshot>,
    generation: u64,
    every_secs: u64,
    next_save: Option<Timestamp>,
    /// `inventory-out`.
    saves: Sender<Vec<u8>>,
    live: bool,
    shared: Arc<SharedStats>,
}

impl InventoryFeed {
    pub fn new(
        inv: Inventory,
        every_secs: u64,
        home: Arc<HomeNet>,
        intel: Arc<IntelHandle>,
        saves: Sender<Vec<u8>>,
        live: bool,
        shared: Arc<SharedStats>,
    ) -> InventoryFeed {
        InventoryFeed {
            inv,
            home,
            snap: intel.current(),
            generation: intel.generation(),
            intel,
            every_secs: every_secs.max(1),
            next_save: None,
            saves,
            live,
            shared,
        }
    }

    /// Takes one epoch's DNS events and records (DNS first: an answer
    /// usually comes before the flows to the address it names); returns
    /// the inventory records they raised.
    pub fn observe(
        &mut self,
        now: Timestamp,
        dns: &[DnsEvent],
        recs: &[FlowRecord],
    ) -> Vec<InventoryRecord> {
        // A SIGHUP reload of the GeoIP databases is picked up here.
        let g = self.intel.generation();
        if g != self.generation {
            self.generation = g;
            self.snap = self.intel.current();
        }
        self.inv.set_clock(now);
        let home = &*self.home;
        let inside = |ip| home.contains(ip);
        for ev in dns {
            self.inv.observe_dns(ev, &inside);
        }
        let geo = &self.snap.geo;
        let lookup = |ip| {
            if geo.is_configured() {
                geo.lookup(ip)
            } else {
                None
            }
        };
        let mut out = Vec::new();
        for rec in recs {
            let sides = Sides {
                client: home.contains(rec.client),
                server: home.contains(rec.server),
            };
            if sides.client || sides.server {
                self.inv.observe_flow(rec, sides, &lookup, &mut out);
            }
        }
        *lock(&self.shared.inventory) = self.inv.counters();
        out
    }

    /// Takes the MAC sightings of a tick (inside hosts only: the ingest
    /// thread filtered them), before its records: a flow's sighting comes
    /// at its start, its record at its end.
    pub fn observe_macs(&mut self, macs: &[MacSighting]) {
        for m in macs {
            self.inv.observe_mac(m.ip, &m.mac_string());
        }
    }

    /// Saves if a capture-time boundary has passed (or at the end, `last`).
    /// Live, a save that finds the writer still busy with the previous one
    /// is skipped (the next boundary brings another); the exit save waits.
    pub fn maybe_save(&mut self, now: Timestamp, last: bool) {
        let due = last || self.next_save.is_some_and(|t| now >= t);
        if due || self.next_save.is_none() {
            let step = i64::try_from(self.every_secs)
                .unwrap_or(i64::MAX / 1_000_000)
                .saturating_mul(1_000_000);
            self.next_save = Some(Timestamp::from_micros(
                (now.micros().div_euclid(step) + 1).saturating_mul(step),
            ));
        }
        if !due {
            return;
        }
        self.inv.expire(now);
        *lock(&self.shared.inventory) = self.inv.counters();
        let bytes = self.inv.encode(now);
        if self.live && !last {
            // Full: the previous save is still being written; this one is
            // skipped, the next boundary brings a newer one.
            let _ = self.saves.try_send(bytes);
        } else {
            let _ = self.saves.send(bytes);
        }
    }
}

/// The `inventory-out` thread: writes each save it gets to `path`; a
/// failure is one warning until a save works again.
pub(crate) fn save_loop(rx: &Receiver<Vec<u8>>, path: PathBuf) {
    let mut failing = false;
    for bytes in rx {
        match write_atomic(&path, &bytes) {
            Ok(()) => failing = false,
            Err(e) => {
                if !failing {
                    eprintln!(
                        "tapsentry: warning: cannot save the inventory to {}: {e}; running on without saving",
                        path.display()
                    );
                }
                failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;
    use tapsentry_intel::GeoIp;
    use tapsentry_testkit::FlowRecordBuilder;

    fn intel_db(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("crates/intel/tests/data")
            .join(name)
    }

    /// Flows to outside addresses the MaxMind test databases know: the
    /// host's countries and ASNs come from them; a save at the end goes to
    /// the save queue and parses back.
    #[test]
    fn the_feed_looks_up_outside_peers_and_saves_at_the_end() {
        let geo = GeoIp::open(
            Some(&intel_db("GeoIP2-City-Test.mmdb")),
            Some(&intel_db("GeoLite2-ASN-Test.mmdb")),
        )
        .unwrap();
        let intel = Arc::new(IntelHandle::new(IntelSnapshot {
            geo,
            ..IntelSnapshot::empty()
        }));
        let home = Arc::new(HomeNet::parse(&["10.0.0.0/8".to_string()]).unwrap());
        let (tx, rx) = bounded::<Vec<u8>>(4);
        let mut feed = InventoryFeed::new(
            Inventory::new(InventoryConfig::default()),
            300,
            home,
            intel,
            tx,
            false,
            Arc::new(SharedStats::new()),
        );
        let recs = [
            FlowRecordBuilder::tcp("10.0.0.5", 40_000, "81.2.69.142", 443).build(),
            FlowRecordBuilder::tcp("10.0.0.5", 40_001, "1.128.0.1", 443).build(),
            // Neither end inside: not the inventory's business.
            FlowRecordBuilder::tcp("192.0.2.1", 40_000, "198.51.100.1", 80).build(),
        ];
        let now = recs[0].last_seen;
        assert!(feed.observe(now, &[], &recs).is_empty());
        feed.maybe_save(now, true);
        let saved = rx.try_recv().unwrap();
        let f = file::parse(&saved).unwrap();
        assert_eq!(f.hosts.len(), 1);
        let h = &f.hosts[0];
        assert_eq!(h.countries.iter().collect::<Vec<_>>(), ["GB"]);
        assert!(h.asns.contains(&1221), "{:?}", h.asns);
        assert_eq!(lock(&feed.shared.inventory).hosts, 1);
    }
}
