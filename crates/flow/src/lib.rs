//! The flow table: packets and bytes per bidirectional 5-tuple, bounded.
//!
//! [`FlowTable`] is a concurrent map from a canonical
//! [`FlowKey`](tapsentry_types::FlowKey) to a small per-flow entry: packets
//! and bytes per direction, first/last capture time, TCP flags per side, a
//! connection state and the initiator. The ingest thread counts every
//! packet through an [`IngestSession`], which holds the shards it touches
//! across a batch and looks up groups of [`PROBE_GROUP`] packets at once so
//! that their cache misses overlap ([`FlowTable::ingest`] is the one-packet
//! form); a separate sweeper calls
//! [`FlowTable::sweep`] on capture-time ticks to expire idle flows and to emit
//! interim records of long-lived ones, and [`FlowTable::drain`] at shutdown.
//!
//! The map is a power of two of shards, each a `hashbrown::HashTable`
//! behind a `Mutex`, and one 64-bit hash of the key (foldhash, seeded per
//! table) picks the shard and the slot for every lookup, insert and removal.
//!
//! Memory is bounded by [`FlowConfig::max_flows`]. At the cap, a new flow
//! first evicts the oldest flows that have been idle at least
//! [`FlowConfig::evict_min_idle_secs`] (a batch of them, oldest first); when
//! none is that idle the new flow is refused. Both outcomes are counted, and
//! evicted flows still reach the detectors as records ending with
//! [`EndReason::Evicted`](tapsentry_types::EndReason::Evicted).
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use tapsentry_flow::{FlowConfig, FlowTable};
//! use tapsentry_types::{Fragment, PacketMeta, TcpFlags, Timestamp};
//!
//! let table = FlowTable::new(FlowConfig::default());
//! let syn = PacketMeta {
//!     ts: Timestamp::from_micros(1_000_000), vlan: 0,
//!     src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
//!     proto: 6, src_port: 40000, dst_port: 22, ip_len: 60,
//!     tcp_flags: TcpFlags(TcpFlags::SYN), fragment: Fragment::None, icmp_error: None, payload: &[],
//! };
//! table.ingest(&syn);
//! assert_eq!(table.live_flows(), 1);
//! let mut out = Vec::new();
//! table.drain(&mut out);
//! assert_eq!(out[0].client_port, 40000);
//! ```
//!
//! This crate does not decode packets, reassemble fragments or streams, or
//! send records anywhere: callers own the threads and channels.

mod config;
mod expect;
mod fragments;
mod table;

pub use config::{FlowConfig, Timeouts};
pub use expect::{EXPECT_MAX, EXPECT_TTL_SECS};
pub use fragments::FragmentTracker;
pub use table::{
    FirstMessage, FlowCounters, FlowProbe, FlowTable, IngestOutcome, IngestSession, ENTRY_BYTES,
    FIRST_MESSAGES_MAX, PROBE_GROUP,
};
