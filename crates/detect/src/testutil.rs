//! Test helpers: flow records and a context at a chosen capture time.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use tapsentry_intel::IntelSnapshot;
use tapsentry_types::{
    Alert, DirCounts, EndReason, FlowKey, FlowRecord, FlowState, RecordKind, TcpFlags, Timestamp,
};

use crate::{DetectCx, Detector, HomeNet};

/// Capture start of every test: 2023-11-14T22:13:20Z.
pub const START: i64 = 1_700_000_000;

/// An established flow from `c:cp` to `s:sp` seen at `at` seconds after
/// [`START`], a few packets each way.
pub fn flow(c: &str, cp: u16, s: &str, sp: u16, proto: u8, at: i64) -> FlowRecord {
    let (client, server): (IpAddr, IpAddr) = (c.parse().unwrap(), s.parse().unwrap());
    let (key, _) = FlowKey::canonical(client, cp, server, sp, proto, 0);
    let ts = Timestamp::from_micros((START + at) * 1_000_000);
    FlowRecord {
        key,
        client,
        client_port: cp,
        server,
        server_port: sp,
        proto,
        vlan: 0,
        first_seen: ts,
        last_seen: ts.plus_secs(1),
        to_server: DirCounts {
            packets: 10,
            bytes: 1_500,
        },
        to_client: DirCounts {
            packets: 8,
            bytes: 4_000,
        },
        reported_to_server: DirCounts::default(),
        reported_to_client: DirCounts::default(),
        client_flags: TcpFlags(if proto == 6 { 0x1b } else { 0 }),
        server_flags: TcpFlags(if proto == 6 { 0x1b } else { 0 }),
        state: FlowState::ClosedFin,
        responder_answered: true,
        kind: RecordKind::End(EndReason::Timeout),
    }
}

/// Everything `d` exports, in export order.
pub fn export(d: &dyn Detector) -> Vec<(IpAddr, serde_json::Value)> {
    let mut v = Vec::new();
    d.export_state(&mut |h, e| v.push((h, e)));
    v
}

/// Exports `from` into `to` (a restart with a state file), entry by entry.
pub fn transfer(from: &dyn Detector, to: &mut dyn Detector) {
    for (h, e) in export(from) {
        to.import_state(h, e).unwrap();
    }
}

/// Runs one record through `d` from `host`'s point of view at capture time
/// `at` seconds after [`START`], home net 10.0.0.0/8.
pub fn run_at(d: &mut dyn Detector, host: &str, rec: &FlowRecord, at: i64) -> Vec<Alert> {
    let home = HomeNet::parse(&["10.0.0.0/8".to_string()]).unwrap();
    let intel = IntelSnapshot::empty();
    let mut out = Vec::new();
    let start = Timestamp::from_micros(START * 1_000_000);
    let now = Timestamp::from_micros((START + at) * 1_000_000);
    let mut cx = DetectCx::new(&home, &intel, &mut out).at(now, start);
    d.on_flow(host.parse().unwrap(), rec, &mut cx);
    out
}
