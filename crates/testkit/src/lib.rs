//! Test-only helpers for tapsentry: Ethernet frame builders and a pcap
//! writer, so tests can make exactly the traffic they need, and the one
//! builder of each test fixture: [`FlowRecordBuilder`] for flow records,
//! [`AlertBuilder`] for alerts,
//! [`PacketMetaBuilder`] for decoded packets, [`DnsEventBuilder`] for DNS
//! summaries, [`DnsMessage`] for DNS messages, [`checksum`] for the internet checksum
//! [`raw_pcap`] for pcap files libpcap's dumper does not write and
//! [`fs::Tmpfs`] for a small filesystem to fill. Whole
//! captures: [`office`] (three labelled hours with attacks) and [`week`]
//! (a benign week of a 50-200-host office, streamed frame by frame), whose
//! sessions open with the real first messages of [`hello`].
//!
//! ```no_run
//! use tapsentry_testkit::{tcp_v4, udp_v4, write_pcap, TcpFlagsSpec};
//! use tapsentry_types::{LinkType, Timestamp};
//!
//! let syn = tcp_v4([10, 0, 0, 1], 40000, [10, 0, 0, 2], 22, TcpFlagsSpec::SYN, b"");
//! let dns = udp_v4([10, 0, 0, 1], 5353, [10, 0, 0, 53], 53, b"\x12\x34");
//! write_pcap(
//!     "/tmp/two.pcap".as_ref(),
//!     LinkType::ETHERNET,
//!     &[(Timestamp::from_micros(1_000_000), syn), (Timestamp::from_micros(1_000_500), dns)],
//! )?;
//! # Ok::<(), pcap::Error>(())
//! ```
//!
//! Builders panic on impossible input (a payload too large for the IP
//! length field): they are for tests, where a panic is the right report.
//! This crate does not read captures; tests read back with
//! `tapsentry-capture`.

mod alert;
pub mod bench;
pub mod checksum;
mod dns;
mod dns_event;
pub mod flood;
mod flow_record;
mod frames;
pub mod fs;
pub mod hello;
pub mod office;
mod packet_meta;
pub mod raw_pcap;
mod rng;
pub mod scenario;
pub mod week;
mod wire;
mod writer;

pub use alert::AlertBuilder;
pub use dns::{encode_name, DnsMessage, QUERY_FLAGS, RESPONSE_FLAGS};
pub use dns_event::DnsEventBuilder;
pub use flood::{syn_flood, SynFlood};
pub use flow_record::{Addr, FlowRecordBuilder, SESSION_FLAGS, START_SECS};
pub use frames::{
    icmp_echo_v4, icmp_echo_v6, ip_proto_v4, ip_proto_v6, mac_for, tcp_v4, tcp_v4_seq, tcp_v6,
    udp_v4, udp_v6, with_vlan, TcpFlagsSpec,
};
pub use office::{
    generate as generate_office, generate_with_truth, Attack, InventoryTruth, Label, Office,
    OfficeSpec, ScanKind, ServedTruth, Speaks,
};
pub use packet_meta::PacketMetaBuilder;
pub use scenario::Scenario;
pub use wire::remap_port;
pub use writer::{write_pcap, PcapWriter};
