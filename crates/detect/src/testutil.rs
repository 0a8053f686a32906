//! Test helpers: a detector run at a chosen capture time, state export
//! and import, and the short form of the testkit's flow record builder.

use std::net::IpAddr;

use tapsentry_intel::IntelSnapshot;
use tapsentry_testkit::FlowRecordBuilder;
use tapsentry_types::{Alert, FlowRecord, Timestamp};

use crate::{DetectCx, Detector, HomeNet};

/// Capture start of every test: 2023-11-14T22:13:20Z, the testkit
/// builder's start.
pub const START: i64 = tapsentry_testkit::START_SECS;

/// The testkit's default record (an established exchange, a few packets
/// each way) from `c:cp` to `s:sp`, seen at `at` seconds after [`START`]:
/// the short form for tests that need nothing else.
pub fn flow(c: &str, cp: u16, s: &str, sp: u16, proto: u8, at: i64) -> FlowRecord {
    FlowRecordBuilder::new(c, cp, s, sp, proto).at(at).build()
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
