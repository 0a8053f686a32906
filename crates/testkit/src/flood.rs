//! A spoofed SYN flood: one SYN from each of `packets` distinct source
//! addresses (and random source ports) to one target, at a steady rate, as
//! the frames of a capture.

use std::path::Path;

use tapsentry_types::{LinkType, Timestamp};

use crate::rng::Rng;
use crate::scenario::EPOCH_SECS;
use crate::{tcp_v4, PcapWriter, TcpFlagsSpec};

/// What [`syn_flood`] writes.
#[derive(Debug, Clone)]
pub struct SynFlood {
    /// The host flooded.
    pub target: [u8; 4],
    /// Its port.
    pub port: u16,
    /// SYNs, each from its own source address: every 5-tuple is unique.
    /// At most 2^24 (the sources are a bijection of 44.0.0.0/8).
    pub packets: u32,
    /// SYNs a second of capture time.
    pub rate_per_sec: f64,
    /// Seconds after [`EPOCH_SECS`] of the first SYN.
    pub start_secs: f64,
    /// Seed of the source ports.
    pub seed: u64,
}

impl SynFlood {
    /// The source of SYN `i`: 44.0.0.0/8 (public, outside any home_net a
    /// test uses), each `i < 2^24` its own address, scattered by an odd
    /// multiplier (a bijection modulo 2^24) so neighbours are not adjacent.
    pub fn source(i: u32) -> [u8; 4] {
        let s = i.wrapping_mul(0x9E37_79B1) & 0x00FF_FFFF;
        let [_, b, c, d] = s.to_be_bytes();
        [44, b, c, d]
    }

    /// Each SYN in order: (capture time, frame).
    pub fn frames(&self) -> impl Iterator<Item = (Timestamp, Vec<u8>)> + '_ {
        let mut rng = Rng::new(self.seed);
        let step_us = 1e6 / self.rate_per_sec.max(1e-6);
        let start_us = EPOCH_SECS * 1_000_000 + (self.start_secs * 1e6) as i64;
        (0..self.packets.min(1 << 24)).map(move |i| {
            let sport = 1024 + rng.below(64_512) as u16;
            let ts = Timestamp::from_micros(start_us + (f64::from(i) * step_us) as i64);
            let frame = tcp_v4(
                Self::source(i),
                sport,
                self.target,
                self.port,
                TcpFlagsSpec::SYN,
                b"",
            );
            (ts, frame)
        })
    }
}

/// Writes the flood as an Ethernet pcap at `path`.
pub fn syn_flood(spec: &SynFlood, path: &Path) -> Result<(), pcap::Error> {
    let mut w = PcapWriter::create(path, LinkType::ETHERNET)?;
    for (ts, frame) in spec.frames() {
        w.write(ts, &frame);
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_is_its_own() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..200_000 {
            assert!(seen.insert(SynFlood::source(i)));
        }
    }
}
