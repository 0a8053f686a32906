//! The asset inventory: what each inside host is, as the traffic shows it.
//!
//! Per inside host: the VLAN, first and last seen, the names DNS answers
//! gave it, the services it offers (transport, port, application protocol,
//! inside and outside client counts), the protocols it uses as a client,
//! bytes in and out, and the outside countries and ASNs it talks to.
//!
//! The inventory is fed flow records (interim and ended) and DNS events in
//! capture-time order by one thread of the sensor (the sweep stage), and
//! answers with [`InventoryRecord`]s when something an analyst cares about
//! changes: a new inside host after the learning period, or a host that
//! starts offering a service to outside clients it never offered before.
//! Capture time is its only clock, so a replay gives the same inventory and
//! the same records at any speed and worker count.
//!
//! ```
//! use tapsentry_inventory::{Inventory, InventoryConfig, Sides};
//! use tapsentry_testkit::FlowRecordBuilder;
//!
//! let mut inv = Inventory::new(InventoryConfig::default());
//! let rec = FlowRecordBuilder::tcp([198, 51, 100, 7], 50_000, [10, 0, 0, 5], 443).build();
//! inv.set_clock(rec.first_seen);
//! let mut out = Vec::new();
//! inv.observe_flow(&rec, Sides { client: false, server: true }, &|_| None, &mut out);
//! let file = inv.snapshot(rec.last_seen);
//! assert_eq!(file.hosts.len(), 1);
//! assert_eq!(file.hosts[0].services[0].port, 443);
//! assert_eq!(file.hosts[0].services[0].outside_clients, 1);
//! // Still learning: the first sight of the host raised no record.
//! assert!(out.is_empty());
//! ```
//!
//! This crate does no I/O of its own besides [`file::load`]: the sensor
//! writes the bytes of [`Inventory::encode`] atomically. It does not see
//! packets, so it knows no MAC addresses (see `docs/inventory.md`), and it
//! never creates a host from a DNS answer alone: a host is in the inventory
//! only once it sent a packet.

pub mod file;
pub mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use tapsentry_types::{
    AppProto, DnsEvent, FlowRecord, FlowState, GeoInfo, Problem, SectionProblems, TcpFlags,
    Timestamp,
};

pub use file::{InventoryFile, InventoryFileError};

/// `[inventory]`: the bounds and clocks of the asset inventory (built when
/// `output.inventory` is set).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct InventoryConfig {
    /// Inside hosts kept. At the bound a new host is refused (counted as
    /// `hosts_refused`); known hosts keep updating. Default 10000.
    pub max_hosts: usize,
    /// Services kept per host; a new service past it is refused (counted
    /// as `services_refused`). Default 64.
    pub max_services_per_host: usize,
    /// Names kept per host; a new name past it is refused (counted as
    /// `names_refused`). Default 8.
    pub max_names_per_host: usize,
    /// MAC addresses kept per host; a new one past it is refused (counted
    /// as `macs_refused`). Default 4 (a laptop's wired and wireless
    /// interfaces, a replaced card, a virtual machine's bridge).
    pub max_macs_per_host: usize,
    /// Distinct clients remembered per service (so the counts are of
    /// distinct clients); past it the counts stop growing, the service is
    /// marked `clients_capped` and the client is counted as
    /// `clients_not_counted`. Default 256.
    pub max_clients_per_service: usize,
    /// Outside countries kept per host (counted as `countries_refused`
    /// past it). Default 32.
    pub max_countries_per_host: usize,
    /// Outside ASNs kept per host (counted as `asns_refused` past it).
    /// Default 64.
    pub max_asns_per_host: usize,
    /// Capture-time seconds of learning before new hosts and newly exposed
    /// services raise records; carried across restarts in the file.
    /// Default 1800.
    pub learning_secs: u64,
    /// Capture-time seconds between saves of the inventory file (also at
    /// exit). Default 300.
    pub save_interval_secs: u64,
    /// Inventory records written per capture-time hour (clock hours, UTC);
    /// the rest are counted as `records_suppressed`. Default 100.
    pub max_records_per_hour: u64,
    /// A host unseen for this many capture-time seconds is dropped from the
    /// inventory at the next save (counted as `hosts_expired`); 0 keeps
    /// hosts forever. Default 2592000 (30 days).
    pub host_expiry_secs: u64,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        InventoryConfig {
            max_hosts: 10_000,
            max_services_per_host: 64,
            max_names_per_host: 8,
            max_macs_per_host: 4,
            max_clients_per_service: 256,
            max_countries_per_host: 32,
            max_asns_per_host: 64,
            learning_secs: 1800,
            save_interval_secs: 300,
            max_records_per_hour: 100,
            host_expiry_secs: 2_592_000,
        }
    }
}

impl InventoryConfig {
    /// Every problem with the values, each under `section`.
    pub fn problems(&self, section: &str) -> Vec<Problem> {
        let mut p = SectionProblems::new(section);
        p.at_least("max_hosts", self.max_hosts, 1);
        p.at_least("max_services_per_host", self.max_services_per_host, 1);
        p.at_least("max_clients_per_service", self.max_clients_per_service, 1);
        p.at_least("save_interval_secs", self.save_interval_secs, 1);
        p.into_vec()
    }
}

/// Which endpoints of a flow are inside (`network.home_net`): the caller
/// knows the home net, the inventory does not need to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sides {
    /// The client (initiator) is inside.
    pub client: bool,
    /// The server (responder) is inside.
    pub server: bool,
}

/// A service's transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Transport {
    /// From an IP protocol number (TCP and UDP only).
    pub fn from_proto(proto: u8) -> Option<Transport> {
        match proto {
            6 => Some(Transport::Tcp),
            17 => Some(Transport::Udp),
            _ => None,
        }
    }

    /// `"tcp"` or `"udp"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// One service an inside host offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// `tcp` or `udp`.
    pub transport: Transport,
    /// The server port.
    pub port: u16,
    /// The application protocol of its flows: the first one identified
    /// (`unknown` until one is).
    pub app_proto: AppProto,
    /// First packet of the first flow to it.
    pub first_seen: Timestamp,
    /// Last packet of the latest flow to it.
    pub last_seen: Timestamp,
    /// Distinct inside clients (up to `max_clients_per_service` in all).
    pub inside_clients: u64,
    /// Distinct outside clients (likewise).
    pub outside_clients: u64,
    /// True once the client set was full: the counts are lower bounds.
    #[serde(default, skip_serializing_if = "is_false")]
    pub clients_capped: bool,
    /// The clients counted (so a restart does not count them twice).
    #[serde(default)]
    pub clients: BTreeSet<IpAddr>,
}

/// One inside host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// Its address.
    pub ip: IpAddr,
    /// MAC addresses its flows showed (`aa:bb:cc:dd:ee:ff`), in the order
    /// first seen; a host behind a router shows the router's. At most
    /// `max_macs_per_host`.
    #[serde(default)]
    pub macs: Vec<String>,
    /// The outer 802.1Q VLAN of its latest flow (0 untagged).
    #[serde(default)]
    pub vlan: u16,
    /// Names DNS answers gave its address, in the order first seen.
    #[serde(default)]
    pub names: Vec<String>,
    /// First packet it sent or answered.
    pub first_seen: Timestamp,
    /// Last packet of its latest flow.
    pub last_seen: Timestamp,
    /// Bytes it received (IP lengths), over all its flows.
    pub bytes_in: u64,
    /// Bytes it sent.
    pub bytes_out: u64,
    /// Services it offers, by (transport, port).
    #[serde(default)]
    pub services: Vec<Service>,
    /// Flows it opened as a client, by application protocol.
    #[serde(default)]
    pub client_protocols: BTreeMap<String, u64>,
    /// ISO country codes of the outside addresses it talked to.
    #[serde(default)]
    pub countries: BTreeSet<String>,
    /// ASNs of the outside addresses it talked to.
    #[serde(default)]
    pub asns: BTreeSet<u32>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What an inventory record reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InventoryKind {
    /// An inside host seen for the first time after the learning period.
    NewHost,
    /// An inside host offering a service to outside clients for the first
    /// time (after the learning period).
    NewExposedService,
}

/// The service an exposure record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ServiceRef {
    /// `tcp` or `udp`.
    pub transport: Transport,
    /// The server port.
    pub port: u16,
    /// The application protocol identified on the flow that exposed it.
    pub app_proto: AppProto,
}

/// The `inventory` object of an inventory record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InventoryBody {
    /// `new_host` or `new_exposed_service`.
    pub kind: InventoryKind,
    /// The inside host.
    pub host: IpAddr,
    /// The service newly exposed (`new_exposed_service`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceRef>,
    /// The first outside client of that service (`new_exposed_service`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<IpAddr>,
}

/// One line of the alert log with `event_type: "inventory"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InventoryRecord {
    /// Capture time: the first packet of the flow that showed the change.
    pub timestamp: Timestamp,
    /// Always `"inventory"`.
    pub event_type: &'static str,
    /// The inside host.
    pub src_ip: IpAddr,
    /// The outside client, for an exposure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_ip: Option<IpAddr>,
    /// What changed.
    pub inventory: InventoryBody,
}

/// What the inventory refused or dropped at its bounds, and the records it
/// raised: the stats log's `inventory` object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct InventoryCounters {
    /// Hosts in the inventory now.
    pub hosts: u64,
    /// New hosts refused at `max_hosts`.
    pub hosts_refused: u64,
    /// Hosts dropped after `host_expiry_secs` unseen.
    pub hosts_expired: u64,
    /// New services refused at `max_services_per_host`.
    pub services_refused: u64,
    /// New names refused at `max_names_per_host`.
    pub names_refused: u64,
    /// New MACs refused at `max_macs_per_host`.
    pub macs_refused: u64,
    /// MACs of inside addresses not (yet) in the inventory that could not
    /// be held until the host shows up.
    pub macs_unattached_dropped: u64,
    /// DNS answers for inside addresses not (yet) in the inventory that
    /// could not be held until the host shows up.
    pub names_unattached_dropped: u64,
    /// Clients not counted because their service's client set was full.
    pub clients_not_counted: u64,
    /// Countries refused at `max_countries_per_host`.
    pub countries_refused: u64,
    /// ASNs refused at `max_asns_per_host`.
    pub asns_refused: u64,
    /// Inventory records raised.
    pub records: u64,
    /// Inventory records over `max_records_per_hour`, not written.
    pub records_suppressed: u64,
}

/// The inventory and its clocks.
#[derive(Debug)]
pub struct Inventory {
    cfg: InventoryConfig,
    hosts: BTreeMap<IpAddr, Host>,
    /// Names answered for inside addresses not yet in the inventory; a
    /// host's names are attached when it shows up. Bounded by `max_hosts`.
    unattached: BTreeMap<IpAddr, Vec<String>>,
    /// MACs seen for inside addresses not yet in the inventory (a flow's
    /// MAC comes at its start, its record at its end). Bounded by
    /// `max_hosts`.
    unattached_macs: BTreeMap<IpAddr, Vec<String>>,
    /// Learning done by earlier runs (from the file).
    prior_learning: u64,
    /// Capture time this run's inventory started.
    start: Option<Timestamp>,
    now: Timestamp,
    /// The capture-time hour being rate-limited, and records raised in it.
    hour: i64,
    hour_records: u64,
    counters: InventoryCounters,
}

impl Inventory {
    /// An empty inventory, learning from scratch.
    pub fn new(cfg: InventoryConfig) -> Inventory {
        Inventory {
            cfg,
            hosts: BTreeMap::new(),
            unattached: BTreeMap::new(),
            unattached_macs: BTreeMap::new(),
            prior_learning: 0,
            start: None,
            now: Timestamp::ZERO,
            hour: i64::MIN,
            hour_records: 0,
            counters: InventoryCounters::default(),
        }
    }

    /// An inventory resumed from a file written by an earlier run: its
    /// hosts (cut to this configuration's bounds, the cuts counted) and the
    /// learning it had done.
    pub fn from_file(cfg: InventoryConfig, f: InventoryFile) -> Inventory {
        let mut inv = Inventory::new(cfg);
        inv.prior_learning = f.learned_secs;
        for mut h in f.hosts {
            if inv.hosts.len() >= inv.cfg.max_hosts {
                inv.counters.hosts_refused += 1;
                continue;
            }
            h.services.sort_by_key(|s| (s.transport, s.port));
            h.services.dedup_by_key(|s| (s.transport, s.port));
            let cut = h
                .services
                .len()
                .saturating_sub(inv.cfg.max_services_per_host);
            inv.counters.services_refused += cut as u64;
            h.services.truncate(inv.cfg.max_services_per_host);
            let cut = h.names.len().saturating_sub(inv.cfg.max_names_per_host);
            inv.counters.names_refused += cut as u64;
            h.names.truncate(inv.cfg.max_names_per_host);
            let cut = h.macs.len().saturating_sub(inv.cfg.max_macs_per_host);
            inv.counters.macs_refused += cut as u64;
            h.macs.truncate(inv.cfg.max_macs_per_host);
            for s in &mut h.services {
                while s.clients.len() > inv.cfg.max_clients_per_service {
                    s.clients.pop_last();
                    s.clients_capped = true;
                }
            }
            while h.countries.len() > inv.cfg.max_countries_per_host {
                h.countries.pop_last();
                inv.counters.countries_refused += 1;
            }
            while h.asns.len() > inv.cfg.max_asns_per_host {
                h.asns.pop_last();
                inv.counters.asns_refused += 1;
            }
            inv.hosts.insert(h.ip, h);
        }
        inv.counters.hosts = inv.hosts.len() as u64;
        inv
    }

    /// Advances the capture clock (the sweep's time); the first call starts
    /// this run's learning clock.
    pub fn set_clock(&mut self, now: Timestamp) {
        self.start.get_or_insert(now);
        self.now = self.now.max(now);
    }

    /// Seconds of learning done: earlier runs' and this one's.
    pub fn learned_secs(&self) -> u64 {
        self.learned_at(self.now)
    }

    /// Seconds of learning done as of capture time `now` (never less than
    /// the clock has already seen).
    fn learned_at(&self, now: Timestamp) -> u64 {
        let now = now.max(self.now);
        let this_run = self.start.map_or(0, |s| now.micros_since(s) / 1_000_000);
        self.prior_learning.saturating_add(this_run)
    }

    fn learning(&self) -> bool {
        self.learned_secs() < self.cfg.learning_secs
    }

    /// The counters, for the stats log.
    pub fn counters(&self) -> InventoryCounters {
        InventoryCounters {
            hosts: self.hosts.len() as u64,
            ..self.counters
        }
    }

    /// A host, if the inventory has it.
    pub fn host(&self, ip: IpAddr) -> Option<&Host> {
        self.hosts.get(&ip)
    }

    /// Takes one flow record into the inventory. `sides` says which ends
    /// are inside; `geo` looks up an outside address (called once per flow,
    /// on its first record). Records raised go to `out`.
    pub fn observe_flow(
        &mut self,
        rec: &FlowRecord,
        sides: Sides,
        geo: &dyn Fn(IpAddr) -> Option<GeoInfo>,
        out: &mut Vec<InventoryRecord>,
    ) {
        let first = rec.is_first_report();
        // Outside peers are looked up once per flow, whichever side is in.
        let peer_geo = |peer: IpAddr, inside_peer: bool| {
            if first && !inside_peer {
                geo(peer)
            } else {
                None
            }
        };
        // The client sent the flow's first packet: it exists.
        if sides.client && rec.to_server.packets > 0 {
            let g = peer_geo(rec.server, sides.server);
            if self.touch(rec.client, rec, out) {
                let (cfg, counters) = (&self.cfg, &mut self.counters);
                if let Some(h) = self.hosts.get_mut(&rec.client) {
                    h.bytes_out = h.bytes_out.saturating_add(rec.new_bytes_to_server());
                    h.bytes_in = h.bytes_in.saturating_add(rec.new_bytes_to_client());
                    if first {
                        let n = h
                            .client_protocols
                            .entry(rec.app_proto.as_str().to_string())
                            .or_default();
                        *n = n.saturating_add(1);
                    }
                    add_geo(h, g, cfg, counters);
                }
            }
        }
        // The server exists only if it sent something itself (an ICMP
        // error from a router marks a flow answered but counts no packet
        // from the server).
        if sides.server && rec.to_client.packets > 0 {
            let g = peer_geo(rec.client, sides.client);
            let offered = offers_service(rec);
            let learning = self.learning();
            if !self.touch(rec.server, rec, out) {
                return;
            }
            let (cfg, counters) = (&self.cfg, &mut self.counters);
            if let Some(h) = self.hosts.get_mut(&rec.server) {
                h.bytes_out = h.bytes_out.saturating_add(rec.new_bytes_to_client());
                h.bytes_in = h.bytes_in.saturating_add(rec.new_bytes_to_server());
                add_geo(h, g, cfg, counters);
            }
            let Some(transport) = offered else {
                return;
            };
            let exposed = self.service(rec, transport, sides.client);
            if exposed && !learning {
                let r = InventoryRecord {
                    timestamp: rec.first_seen,
                    event_type: "inventory",
                    src_ip: rec.server,
                    dest_ip: Some(rec.client),
                    inventory: InventoryBody {
                        kind: InventoryKind::NewExposedService,
                        host: rec.server,
                        service: Some(ServiceRef {
                            transport,
                            port: rec.server_port,
                            app_proto: rec.app_proto,
                        }),
                        client: Some(rec.client),
                    },
                };
                self.raise(r, out);
            }
        }
    }

    /// Updates the server's service for `rec`; true when this flow is the
    /// first outside client the service ever had (an exposure).
    fn service(&mut self, rec: &FlowRecord, transport: Transport, inside_client: bool) -> bool {
        let (cfg, counters) = (&self.cfg, &mut self.counters);
        let Some(h) = self.hosts.get_mut(&rec.server) else {
            return false;
        };
        let key = (transport, rec.server_port);
        let i = match h
            .services
            .binary_search_by_key(&key, |s| (s.transport, s.port))
        {
            Ok(i) => i,
            Err(i) => {
                if h.services.len() >= cfg.max_services_per_host {
                    counters.services_refused += 1;
                    return false;
                }
                h.services.insert(
                    i,
                    Service {
                        transport,
                        port: rec.server_port,
                        app_proto: AppProto::Unknown,
                        first_seen: rec.first_seen,
                        last_seen: rec.last_seen,
                        inside_clients: 0,
                        outside_clients: 0,
                        clients_capped: false,
                        clients: BTreeSet::new(),
                    },
                );
                i
            }
        };
        let Some(s) = h.services.get_mut(i) else {
            return false;
        };
        s.first_seen = s.first_seen.min(rec.first_seen);
        s.last_seen = s.last_seen.max(rec.last_seen);
        if s.app_proto.is_unknown() {
            s.app_proto = rec.app_proto;
        }
        if s.clients.contains(&rec.client) {
            return false;
        }
        if s.clients.len() >= cfg.max_clients_per_service {
            s.clients_capped = true;
            counters.clients_not_counted += 1;
            return false;
        }
        s.clients.insert(rec.client);
        if inside_client {
            s.inside_clients += 1;
            false
        } else {
            s.outside_clients += 1;
            s.outside_clients == 1
        }
    }

    /// The host at `ip`, made if it is new (raising `new_host` after the
    /// learning period), with its times and VLAN updated for `rec`; false
    /// when it is new and the inventory is full.
    fn touch(&mut self, ip: IpAddr, rec: &FlowRecord, out: &mut Vec<InventoryRecord>) -> bool {
        if !self.hosts.contains_key(&ip) {
            if self.hosts.len() >= self.cfg.max_hosts {
                self.counters.hosts_refused += 1;
                return false;
            }
            let names = self.unattached.remove(&ip).unwrap_or_default();
            let macs = self.unattached_macs.remove(&ip).unwrap_or_default();
            self.hosts.insert(
                ip,
                Host {
                    ip,
                    macs,
                    vlan: rec.vlan,
                    names,
                    first_seen: rec.first_seen,
                    last_seen: rec.last_seen,
                    bytes_in: 0,
                    bytes_out: 0,
                    services: Vec::new(),
                    client_protocols: BTreeMap::new(),
                    countries: BTreeSet::new(),
                    asns: BTreeSet::new(),
                },
            );
            if !self.learning() {
                let r = InventoryRecord {
                    timestamp: rec.first_seen,
                    event_type: "inventory",
                    src_ip: ip,
                    dest_ip: None,
                    inventory: InventoryBody {
                        kind: InventoryKind::NewHost,
                        host: ip,
                        service: None,
                        client: None,
                    },
                };
                self.raise(r, out);
            }
        }
        let Some(h) = self.hosts.get_mut(&ip) else {
            return false;
        };
        h.first_seen = h.first_seen.min(rec.first_seen);
        if rec.last_seen >= h.last_seen {
            h.last_seen = rec.last_seen;
            h.vlan = rec.vlan;
        }
        true
    }

    /// Rate limit: at most `max_records_per_hour` per capture-time clock
    /// hour, counted past it. The hour is the inventory's clock (the sweep
    /// time), which only moves forward; a record's own timestamp (its
    /// flow's first packet) does not, and would reset the count.
    fn raise(&mut self, r: InventoryRecord, out: &mut Vec<InventoryRecord>) {
        let hour = self.now.secs().div_euclid(3600);
        if hour != self.hour {
            self.hour = hour;
            self.hour_records = 0;
        }
        if self.hour_records >= self.cfg.max_records_per_hour {
            self.counters.records_suppressed += 1;
            return;
        }
        self.hour_records += 1;
        self.counters.records += 1;
        out.push(r);
    }

    /// Takes the names of a DNS response: each A/AAAA answer address that
    /// `is_inside` gets the question name. A host not yet in the inventory
    /// gets it when it shows up (a DNS answer alone never makes a host).
    pub fn observe_dns(&mut self, ev: &DnsEvent, is_inside: &dyn Fn(IpAddr) -> bool) {
        if !ev.is_response || ev.rcode != 0 || ev.qname.is_empty() {
            return;
        }
        for addr in ev.answer_addrs.iter().flatten() {
            if !is_inside(*addr) {
                continue;
            }
            let name = ev.qname.to_lossy_string();
            let max = self.cfg.max_names_per_host;
            let names = match self.hosts.get_mut(addr) {
                Some(h) => &mut h.names,
                None => {
                    if !self.unattached.contains_key(addr)
                        && self.unattached.len() >= self.cfg.max_hosts
                    {
                        self.counters.names_unattached_dropped += 1;
                        continue;
                    }
                    self.unattached.entry(*addr).or_default()
                }
            };
            if names.contains(&name) {
                continue;
            }
            if names.len() >= max {
                self.counters.names_refused += 1;
                continue;
            }
            names.push(name);
        }
    }

    /// Takes a MAC address an inside host's flow showed. A host not yet
    /// in the inventory gets it when it shows up (a MAC alone never makes
    /// a host).
    pub fn observe_mac(&mut self, ip: IpAddr, mac: &str) {
        let max = self.cfg.max_macs_per_host;
        let macs = match self.hosts.get_mut(&ip) {
            Some(h) => &mut h.macs,
            None => {
                if !self.unattached_macs.contains_key(&ip)
                    && self.unattached_macs.len() >= self.cfg.max_hosts
                {
                    self.counters.macs_unattached_dropped += 1;
                    return;
                }
                self.unattached_macs.entry(ip).or_default()
            }
        };
        if macs.iter().any(|m| m == mac) {
            return;
        }
        if macs.len() >= max {
            self.counters.macs_refused += 1;
            return;
        }
        macs.push(mac.to_owned());
    }

    /// Drops hosts unseen for `host_expiry_secs` at capture time `now`.
    pub fn expire(&mut self, now: Timestamp) {
        if self.cfg.host_expiry_secs == 0 {
            return;
        }
        let before = self.hosts.len();
        self.hosts
            .retain(|_, h| now.micros_since(h.last_seen) / 1_000_000 < self.cfg.host_expiry_secs);
        self.counters.hosts_expired += (before - self.hosts.len()) as u64;
    }

    /// The inventory as its file holds it, generated at `now`.
    pub fn snapshot(&self, now: Timestamp) -> InventoryFile {
        InventoryFile {
            format: file::FORMAT.to_string(),
            version: file::VERSION,
            generated: now,
            learned_secs: self.learned_at(now),
            hosts: self.hosts.values().cloned().collect(),
        }
    }

    /// The file's bytes at `now`: one host a line (the file greps and
    /// diffs well), hosts in address order, so the same inventory always
    /// writes the same bytes.
    pub fn encode(&self, now: Timestamp) -> Vec<u8> {
        file::encode(
            now,
            self.learned_at(now),
            self.hosts.values(),
            self.hosts.len(),
        )
    }
}

/// The transport of the service a flow shows its server offering, if it
/// shows one: a TCP server that answered a SYN with SYN-ACK, or a UDP
/// server that sent datagrams back and no ICMP error refused the flow. A
/// port scan's probes of closed ports (RST) make no service; an open port
/// answered to a scanner does, as it is offered.
fn offers_service(rec: &FlowRecord) -> Option<Transport> {
    let t = Transport::from_proto(rec.proto)?;
    let ok = match t {
        Transport::Tcp => {
            rec.server_flags.has(TcpFlags::SYN | TcpFlags::ACK)
                && !matches!(rec.state, FlowState::Attempt | FlowState::Rejected)
        }
        Transport::Udp => rec.to_client.packets > 0 && rec.state != FlowState::Rejected,
    };
    ok.then_some(t)
}

fn add_geo(
    h: &mut Host,
    g: Option<GeoInfo>,
    cfg: &InventoryConfig,
    counters: &mut InventoryCounters,
) {
    let Some(g) = g else {
        return;
    };
    if let Some(c) = g.country {
        if !h.countries.contains(&c) {
            if h.countries.len() >= cfg.max_countries_per_host {
                counters.countries_refused += 1;
            } else {
                h.countries.insert(c);
            }
        }
    }
    if let Some(a) = g.asn {
        if !h.asns.contains(&a) {
            if h.asns.len() >= cfg.max_asns_per_host {
                counters.asns_refused += 1;
            } else {
                h.asns.insert(a);
            }
        }
    }
}

#[cfg(test)]
mod tests;
