use serde::Deserialize;
use tapsentry_types::{Problem, SectionProblems};

/// Idle timeouts in seconds of capture time, by protocol and state. Defaults
/// follow Suricata's flow timeouts.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// TCP flow not (yet) established: SYN seen, no answer, or refused. Default 60.
    pub tcp_new: u32,
    /// Established TCP flow. Default 600.
    pub tcp_established: u32,
    /// TCP flow closed by FIN or RST (lingers for late packets). Default 60.
    pub tcp_closed: u32,
    /// UDP flow with no answer yet. Default 30.
    pub udp_new: u32,
    /// UDP flow the responder answered. Default 300.
    pub udp_established: u32,
    /// Other IP protocols (ICMP, GRE, ESP, ...) with no answer yet. Default 30.
    pub other_new: u32,
    /// Other IP protocols, answered. Default 300.
    pub other_established: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_new: 60,
            tcp_established: 600,
            tcp_closed: 60,
            udp_new: 30,
            udp_established: 300,
            other_new: 30,
            other_established: 300,
        }
    }
}

/// The `[flow]` configuration section.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FlowConfig {
    /// Cap on live flows (the table's memory bound, about
    /// [`ENTRY_BYTES`](crate::ENTRY_BYTES) each). Default 1 000 000.
    pub max_flows: usize,
    /// At the cap, only flows idle at least this long (seconds) may be
    /// evicted to make room; otherwise the new flow is refused. Default 5.
    pub evict_min_idle_secs: u32,
    /// Emit an interim record for a live flow with new traffic every this
    /// many seconds of capture time, so a long upload is seen while it
    /// happens. 0 turns interim records off. Default 60.
    pub interim_interval_secs: u32,
    /// Cap on remembered first fragments used to attribute later fragments
    /// to their ports. Default 65 536.
    pub max_fragments: usize,
    /// Idle timeouts by protocol and state.
    pub timeouts: Timeouts,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            max_flows: 1_000_000,
            evict_min_idle_secs: 5,
            interim_interval_secs: 60,
            max_fragments: 65_536,
            timeouts: Timeouts::default(),
        }
    }
}

impl FlowConfig {
    /// Every problem with the values, each under `section` (where the
    /// sensor's file puts this table: `flow`).
    pub fn problems(&self, section: &str) -> Vec<Problem> {
        let mut p = SectionProblems::new(section);
        if self.max_flows == 0 {
            p.push("max_flows", "must be at least 1");
        }
        if self.max_flows > 100_000_000 {
            p.push(
                "max_flows",
                format!("{} is above the supported 100000000", self.max_flows),
            );
        }
        if self.max_fragments == 0 {
            p.push("max_fragments", "must be at least 1");
        }
        let t = &self.timeouts;
        for (k, v) in [
            ("timeouts.tcp_new", t.tcp_new),
            ("timeouts.tcp_established", t.tcp_established),
            ("timeouts.tcp_closed", t.tcp_closed),
            ("timeouts.udp_new", t.udp_new),
            ("timeouts.udp_established", t.udp_established),
            ("timeouts.other_new", t.other_new),
            ("timeouts.other_established", t.other_established),
        ] {
            if v == 0 {
                p.push(k, "must be at least 1 second");
            }
        }
        p.into_vec()
    }
}
