//! Incidents: alerts grouped into one story of an intrusion.
//!
//! [`Incidents`] takes the alerts in the order the alert log writes them
//! and links each to the open incident that shares one of its *link
//! hosts*: the inside hosts the intruder acts from (a footing) and the
//! outside parties. Its stages are the ATT&CK tactics of its alerts
//! (`alert.mitre.tactic`) in ATT&CK's order ([`TACTICS`]), and it is
//! reported (an [`IncidentRecord`]) once it reaches enough distinct stages
//! and score; after that every alert that joins it writes a new record with
//! the same id. `docs/incidents.md` states the rule, its bounds, and what
//! it cannot link.
//!
//! ```
//! use std::net::IpAddr;
//! use tapsentry_incidents::{Incidents, IncidentsConfig};
//!
//! let inside = |ip: IpAddr| matches!(ip, IpAddr::V4(a) if a.octets()[0] == 10);
//! let mut inc = Incidents::new(IncidentsConfig::default(), "sensor-1", Box::new(inside));
//! assert_eq!(inc.stats().open, 0);
//! ```
//!
//! Time is capture time: an incident closes when no alert joined it for
//! `horizon_secs` of alert time, so a replay groups exactly as the live run
//! did, and the grouping depends only on the sequence of alerts given.
//!
//! This crate does no I/O: the sensor's writer feeds it and writes its
//! records; [`timeline`] renders a log's incidents as text.

pub mod timeline;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use tapsentry_types::{incident_id, Alert, Category, Problem, SectionProblems, Timestamp};

/// The ATT&CK enterprise tactics in the matrix's order (the order of an
/// intrusion's stages), with their names. A tactic not listed sorts after
/// these, by id.
pub const TACTICS: [(&str, &str); 14] = [
    ("TA0043", "Reconnaissance"),
    ("TA0042", "Resource Development"),
    ("TA0001", "Initial Access"),
    ("TA0002", "Execution"),
    ("TA0003", "Persistence"),
    ("TA0004", "Privilege Escalation"),
    ("TA0005", "Defense Evasion"),
    ("TA0006", "Credential Access"),
    ("TA0007", "Discovery"),
    ("TA0008", "Lateral Movement"),
    ("TA0009", "Collection"),
    ("TA0011", "Command and Control"),
    ("TA0010", "Exfiltration"),
    ("TA0040", "Impact"),
];

/// The name of an ATT&CK tactic id, when it is one of [`TACTICS`].
pub fn tactic_name(id: &str) -> Option<&'static str> {
    TACTICS.iter().find(|(t, _)| *t == id).map(|&(_, n)| n)
}

/// Sort key of a tactic: its place in [`TACTICS`], then its id.
fn tactic_rank(id: &str) -> (usize, &str) {
    (
        TACTICS
            .iter()
            .position(|(t, _)| *t == id)
            .unwrap_or(TACTICS.len()),
        id,
    )
}

/// The `[incidents]` configuration section.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentsConfig {
    /// Group alerts into incidents and write `incident` records. Default true.
    pub enabled: bool,
    /// An incident stays open this many seconds of capture time after its
    /// latest alert; a later alert opens a new one. Default 86400 (a day).
    pub horizon_secs: u64,
    /// Open incidents kept (memory bound). At the bound, opening one more
    /// closes the one whose latest alert is oldest (counted as
    /// `incidents.evicted`). Default 5000.
    pub max_open: usize,
    /// Alert ids listed per incident (memory and record-size bound). Later
    /// alerts still join (stages, score, `last`, their hosts) but are not
    /// listed; the record says how many (`alerts_not_listed`). Default 256.
    pub max_alerts: usize,
    /// Addresses kept in each of an incident's `hosts`, `outside` and
    /// `targets` (memory bound). A host beyond it is not added, so does not
    /// link (counted as `incidents.hosts_not_linked`). Default 32.
    pub max_hosts: usize,
    /// Distinct ATT&CK tactics an incident needs before it is reported.
    /// Default 3.
    pub min_stages: usize,
    /// Score an incident needs before it is reported (see
    /// `docs/incidents.md`). Default 6.
    pub min_score: u32,
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        IncidentsConfig {
            enabled: true,
            horizon_secs: 86_400,
            max_open: 5_000,
            max_alerts: 256,
            max_hosts: 32,
            min_stages: 3,
            min_score: 6,
        }
    }
}

impl IncidentsConfig {
    /// Every problem with the values, each under `section`.
    pub fn problems(&self, section: &str) -> Vec<Problem> {
        let mut p = SectionProblems::new(section);
        if self.horizon_secs == 0 {
            p.push("horizon_secs", "must be at least 1");
        }
        if self.max_open == 0 {
            p.push("max_open", "must be at least 1");
        }
        if self.max_alerts == 0 {
            p.push("max_alerts", "must be at least 1");
        }
        if self.max_hosts == 0 {
            p.push("max_hosts", "must be at least 1");
        }
        if self.min_stages < 2 {
            p.push(
                "min_stages",
                "must be at least 2 (one stage is a lone alert, not an incident)",
            );
        }
        p.into_vec()
    }
}

/// The `incident` object of an incident record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentBody {
    /// Deterministic id ([`tapsentry_types::incident_id`] of the alert that
    /// opened it); a later record with the same id supersedes this one.
    pub id: u64,
    /// Inside hosts the intrusion acted from or took over, in the order
    /// they appeared.
    pub hosts: Vec<IpAddr>,
    /// Outside parties (attackers, receivers of data), in the order they
    /// appeared.
    pub outside: Vec<IpAddr>,
    /// Inside hosts acted on (scanned, pulled data from, ...) that it did
    /// not link by.
    pub targets: Vec<IpAddr>,
    /// ATT&CK tactic ids of its alerts, in ATT&CK's order.
    pub stages: Vec<String>,
    /// The score (see `docs/incidents.md`).
    pub score: u32,
    /// `alert.alert_id` of its alerts in time order: the membership.
    pub alert_ids: Vec<u64>,
    /// Alerts that joined it, listed or not.
    pub alerts: u64,
    /// Alerts that joined after `alert_ids` was full.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub alerts_not_listed: u64,
    /// Its first alert's time.
    pub first: Timestamp,
    /// Its latest alert's time.
    pub last: Timestamp,
    /// Set on the last record of an incident that an alert linked to an
    /// older incident: its alerts are in that one now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<u64>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// One `event_type: "incident"` line of the alert log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentRecord {
    /// The capture time of the alert that changed it.
    pub timestamp: Timestamp,
    /// Always `"incident"`.
    pub event_type: String,
    /// The sensor's name (`output.host`).
    pub host: String,
    /// The incident.
    pub incident: IncidentBody,
}

/// Counters of the stage, for the stats log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IncidentStats {
    /// Incidents open now.
    pub open: u64,
    /// Incidents opened (one per alert that linked to none).
    pub opened: u64,
    /// Incidents that reached the reporting thresholds.
    pub reported: u64,
    /// Incident records produced.
    pub records: u64,
    /// Incidents merged into an older one by an alert linking both.
    pub merged: u64,
    /// Incidents closed before their horizon to stay within `max_open`.
    pub evicted: u64,
    /// Alerts that joined an incident whose `alert_ids` was full.
    pub alerts_not_listed: u64,
    /// Hosts not added to an incident whose host list was full.
    pub hosts_not_linked: u64,
}

/// How an alert's addresses take part in an intrusion.
#[derive(Debug, Default, PartialEq, Eq)]
struct Roles {
    /// Inside hosts the intruder acts from or reaches into: link hosts.
    footing: Vec<IpAddr>,
    /// Outside parties: link hosts.
    outside: Vec<IpAddr>,
    /// Inside hosts acted on: listed, not linked by.
    targets: Vec<IpAddr>,
}

/// The roles of `alert`'s addresses.
///
/// * An inside `src_ip` acts (the contract makes `src_ip` the host the
///   alert is about: the scanner, the sender, the collector, the client).
/// * An inside `dest_ip` of an alert whose `src_ip` is outside was reached
///   from outside (a login, a Tor exit, an inbound scan): the intrusion's
///   entry, a footing.
/// * An inside `dest_ip` of a `lateral_movement` alert was reached by the
///   intruder, a footing too; any other inside `dest_ip` of an inside
///   source (the scanned host, the file server pulled from) is a target.
fn roles(alert: &Alert, inside: &dyn Fn(IpAddr) -> bool) -> Roles {
    let mut r = Roles::default();
    let src_in = inside(alert.src_ip);
    if src_in {
        r.footing.push(alert.src_ip);
    } else {
        r.outside.push(alert.src_ip);
    }
    if let Some(d) = alert.dest_ip.filter(|d| *d != alert.src_ip) {
        if !inside(d) {
            r.outside.push(d);
        } else if !src_in || alert.alert.category == Category::new("lateral_movement") {
            r.footing.push(d);
        } else {
            r.targets.push(d);
        }
    }
    r
}

/// One open incident.
#[derive(Debug)]
struct Open {
    id: u64,
    first: Timestamp,
    last: Timestamp,
    hosts: Vec<IpAddr>,
    outside: Vec<IpAddr>,
    targets: Vec<IpAddr>,
    /// (time, alert_id), in time order, at most `max_alerts`.
    alert_ids: Vec<(Timestamp, u64)>,
    alerts: u64,
    not_listed: u64,
    /// Tactic -> the best (lowest) severity among its alerts.
    tactics: BTreeMap<(usize, &'static str), u8>,
    reported: bool,
}

impl Open {
    fn score(&self) -> u32 {
        self.tactics
            .values()
            .map(|&sev| 4 - u32::from(sev.clamp(1, 3)))
            .sum()
    }

    fn link_hosts(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.hosts.iter().chain(&self.outside).copied()
    }

    fn body(&self, merged_into: Option<u64>) -> IncidentBody {
        IncidentBody {
            id: self.id,
            hosts: self.hosts.clone(),
            outside: self.outside.clone(),
            targets: self.targets.clone(),
            stages: self.tactics.keys().map(|(_, t)| (*t).to_string()).collect(),
            score: self.score(),
            alert_ids: self.alert_ids.iter().map(|&(_, id)| id).collect(),
            alerts: self.alerts,
            alerts_not_listed: self.not_listed,
            first: self.first,
            last: self.last,
            merged_into,
        }
    }
}

/// Adds `ips` not yet in `list`, up to `cap` entries, and counts those
/// refused in `refused`.
fn add_capped(list: &mut Vec<IpAddr>, ips: &[IpAddr], cap: usize, refused: &mut u64) {
    for ip in ips {
        if list.contains(ip) {
            continue;
        }
        if list.len() < cap {
            list.push(*ip);
        } else {
            *refused += 1;
        }
    }
}

/// The incidents stage: see the crate docs.
pub struct Incidents {
    cfg: IncidentsConfig,
    host: String,
    inside: Box<dyn Fn(IpAddr) -> bool + Send>,
    horizon_us: i64,
    /// Open incidents by creation number (deterministic: the order alerts
    /// came in).
    open: BTreeMap<u64, Open>,
    /// Link host -> the incident it links to.
    index: HashMap<IpAddr, u64>,
    /// (latest alert time, creation number): expiry and eviction order.
    by_last: BTreeSet<(Timestamp, u64)>,
    next_seq: u64,
    /// The latest alert time seen (alerts may come slightly out of order).
    newest: Timestamp,
    stats: IncidentStats,
}

impl std::fmt::Debug for Incidents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incidents")
            .field("cfg", &self.cfg)
            .field("host", &self.host)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Incidents {
    /// A stage for the sensor named `host`, with `inside` telling inside
    /// addresses (the configured `home_net`).
    pub fn new(
        cfg: IncidentsConfig,
        host: &str,
        inside: Box<dyn Fn(IpAddr) -> bool + Send>,
    ) -> Incidents {
        let horizon_us = i64::try_from(cfg.horizon_secs.saturating_mul(1_000_000))
            .unwrap_or(i64::MAX)
            .max(1);
        Incidents {
            cfg,
            host: host.to_string(),
            inside,
            horizon_us,
            open: BTreeMap::new(),
            index: HashMap::new(),
            by_last: BTreeSet::new(),
            next_seq: 0,
            newest: Timestamp::from_micros(i64::MIN),
            stats: IncidentStats::default(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> IncidentStats {
        IncidentStats {
            open: self.open.len() as u64,
            ..self.stats
        }
    }

    /// Takes one written alert (its `alert_id` as written) and returns the
    /// records to write after it: none, the updated incident once it is
    /// reported, and a closing record for each reported incident merged
    /// into it.
    pub fn observe(&mut self, alert: &Alert, alert_id: u64) -> Vec<IncidentRecord> {
        let now = alert.timestamp;
        self.newest = self.newest.max(now);
        self.expire();
        let roles = roles(alert, &*self.inside);
        // Every open incident one of the link hosts belongs to, oldest first.
        let mut linked: Vec<u64> = roles
            .footing
            .iter()
            .chain(&roles.outside)
            .filter_map(|ip| self.index.get(ip).copied())
            .collect();
        linked.sort_unstable();
        linked.dedup();
        let mut out = Vec::new();
        let seq = match linked.split_first() {
            None => self.open_new(alert, alert_id),
            Some((&oldest, rest)) => {
                for &other in rest {
                    if let Some(rec) = self.merge(oldest, other, now) {
                        out.push(rec);
                    }
                }
                oldest
            }
        };
        self.join(seq, alert, alert_id, &roles);
        if let Some(rec) = self.report(seq, now) {
            out.push(rec);
        }
        self.stats.records += out.len() as u64;
        out
    }

    /// Closes incidents whose latest alert is more than the horizon before
    /// the newest alert.
    fn expire(&mut self) {
        while let Some(&(last, seq)) = self.by_last.first() {
            if self.newest.micros().saturating_sub(last.micros()) <= self.horizon_us {
                break;
            }
            self.close(seq);
        }
    }

    /// Forgets incident `seq` and its index entries.
    fn close(&mut self, seq: u64) -> Option<Open> {
        let inc = self.open.remove(&seq)?;
        self.by_last.remove(&(inc.last, seq));
        for ip in inc.link_hosts() {
            if self.index.get(&ip) == Some(&seq) {
                self.index.remove(&ip);
            }
        }
        Some(inc)
    }

    fn open_new(&mut self, alert: &Alert, alert_id: u64) -> u64 {
        if self.open.len() >= self.cfg.max_open.max(1) {
            if let Some(&(_, victim)) = self.by_last.first() {
                self.close(victim);
                self.stats.evicted += 1;
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.stats.opened += 1;
        self.open.insert(
            seq,
            Open {
                id: incident_id(&self.host, alert_id),
                first: alert.timestamp,
                last: alert.timestamp,
                hosts: Vec::new(),
                outside: Vec::new(),
                targets: Vec::new(),
                alert_ids: Vec::new(),
                alerts: 0,
                not_listed: 0,
                tactics: BTreeMap::new(),
                reported: false,
            },
        );
        self.by_last.insert((alert.timestamp, seq));
        seq
    }

    /// Moves incident `other` into `into`; returns the closing record of
    /// `other` when it had been reported.
    fn merge(&mut self, into: u64, other: u64, now: Timestamp) -> Option<IncidentRecord> {
        let gone = self.close(other)?;
        self.stats.merged += 1;
        let cap = self.cfg.max_alerts.max(1);
        let host_cap = self.cfg.max_hosts.max(1);
        let closing = gone.reported.then(|| IncidentRecord {
            timestamp: now,
            event_type: "incident".into(),
            host: self.host.clone(),
            incident: gone.body(self.open.get(&into).map(|i| i.id)),
        });
        let inc = self.open.get_mut(&into)?;
        self.by_last.remove(&(inc.last, into));
        inc.first = inc.first.min(gone.first);
        inc.last = inc.last.max(gone.last);
        self.by_last.insert((inc.last, into));
        let mut refused = 0;
        add_capped(&mut inc.hosts, &gone.hosts, host_cap, &mut refused);
        add_capped(&mut inc.outside, &gone.outside, host_cap, &mut refused);
        add_capped(&mut inc.targets, &gone.targets, host_cap, &mut refused);
        self.stats.hosts_not_linked += refused;
        inc.alert_ids.extend(gone.alert_ids);
        inc.alert_ids.sort_unstable();
        let over = inc.alert_ids.len().saturating_sub(cap);
        inc.alert_ids.truncate(cap);
        inc.not_listed += gone.not_listed + over as u64;
        self.stats.alerts_not_listed += over as u64;
        inc.alerts += gone.alerts;
        for (t, sev) in gone.tactics {
            let e = inc.tactics.entry(t).or_insert(sev);
            *e = (*e).min(sev);
        }
        inc.reported |= gone.reported;
        for ip in inc.hosts.iter().chain(&inc.outside) {
            self.index.insert(*ip, into);
        }
        closing
    }

    fn join(&mut self, seq: u64, alert: &Alert, alert_id: u64, roles: &Roles) {
        let cap = self.cfg.max_alerts.max(1);
        let host_cap = self.cfg.max_hosts.max(1);
        let Some(inc) = self.open.get_mut(&seq) else {
            return;
        };
        self.by_last.remove(&(inc.last, seq));
        inc.first = inc.first.min(alert.timestamp);
        inc.last = inc.last.max(alert.timestamp);
        self.by_last.insert((inc.last, seq));
        let mut refused = 0;
        add_capped(&mut inc.hosts, &roles.footing, host_cap, &mut refused);
        add_capped(&mut inc.outside, &roles.outside, host_cap, &mut refused);
        add_capped(&mut inc.targets, &roles.targets, host_cap, &mut refused);
        self.stats.hosts_not_linked += refused;
        inc.alerts += 1;
        if inc.alert_ids.len() < cap {
            // Sorted insert: an alert may be older than the latest one.
            let at = inc
                .alert_ids
                .partition_point(|&x| x <= (alert.timestamp, alert_id));
            inc.alert_ids.insert(at, (alert.timestamp, alert_id));
        } else {
            inc.not_listed += 1;
            self.stats.alerts_not_listed += 1;
        }
        let sev = alert.alert.severity;
        let e = inc
            .tactics
            .entry(tactic_rank(alert.alert.mitre.tactic))
            .or_insert(sev);
        *e = (*e).min(sev);
        // Only hosts the incident kept link to it: its lists are bounded.
        for ip in inc.hosts.iter().chain(&inc.outside) {
            if roles.footing.contains(ip) || roles.outside.contains(ip) {
                self.index.insert(*ip, seq);
            }
        }
    }

    /// The record of incident `seq` when it is (now) reported.
    fn report(&mut self, seq: u64, now: Timestamp) -> Option<IncidentRecord> {
        let min_stages = self.cfg.min_stages;
        let min_score = self.cfg.min_score;
        let inc = self.open.get_mut(&seq)?;
        if !inc.reported && (inc.tactics.len() < min_stages || inc.score() < min_score) {
            return None;
        }
        if !inc.reported {
            inc.reported = true;
            self.stats.reported += 1;
        }
        Some(IncidentRecord {
            timestamp: now,
            event_type: "incident".into(),
            host: self.host.clone(),
            incident: inc.body(None),
        })
    }
}

#[cfg(test)]
mod tests;
