//! Every prefix of a valid file, and randomly damaged copies: the reader
//! never panics, always ends, yields only whole records and reports a cut.

use std::collections::BTreeSet;

use crate::common::*;
use crate::synthetic::write_temp;

/// Record boundaries of a classic little-endian pcap: (end offset, is a packet).
fn pcap_boundaries(b: &[u8]) -> Vec<(usize, bool)> {
    let mut out = vec![(24, false)];
    let mut at = 24;
    while at + 16 <= b.len() {
        let caplen = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + caplen;
        out.push((at, true));
    }
    assert_eq!(at, b.len());
    out
}

/// Block boundaries of a little-endian pcapng: (end offset, is a packet).
fn pcapng_boundaries(b: &[u8]) -> Vec<(usize, bool)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= b.len() {
        let ty = u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        let len = u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap()) as usize;
        at += len;
        out.push((at, matches!(ty, 2 | 3 | 6)));
    }
    assert_eq!(at, b.len());
    out
}

fn truncation_loop(name: &str, boundaries: fn(&[u8]) -> Vec<(usize, bool)>) {
    let path = pcaps().join("linktypes").join(name);
    let bytes = std::fs::read(&path).unwrap();
    let full = read_paths(&[path]);
    assert!(full.errors.is_empty());
    let bounds = boundaries(&bytes);
    assert_eq!(bounds.iter().filter(|(_, p)| *p).count(), full.frames.len());
    let ends: BTreeSet<usize> = bounds.iter().map(|(e, _)| *e).collect();
    for cut in 0..=bytes.len() {
        let f = write_temp(&bytes[..cut]);
        let r = read_paths(&[f.path().to_path_buf()]);
        let whole = bounds.iter().filter(|(e, p)| *p && *e <= cut).count();
        assert_eq!(r.frames.len(), whole, "{name} cut at {cut}");
        assert_eq!(r.frames[..], full.frames[..whole], "{name} cut at {cut}");
        if ends.contains(&cut) {
            assert!(r.errors.is_empty(), "{name} cut at {cut}: {:?}", r.errors);
        } else {
            assert_eq!(r.errors.len(), 1, "{name} cut at {cut}: no error");
            let msg = &r.errors[0];
            let file = f.path().file_name().unwrap().to_string_lossy();
            assert!(msg.contains(&*file), "{msg}");
            let past_header = cut > bounds[0].0;
            if past_header {
                assert!(
                    msg.contains(&format!("truncated: cut mid-record after {whole} packets")),
                    "{name} cut at {cut}: {msg}"
                );
            }
        }
    }
}

#[test]
fn every_prefix_of_a_pcap() {
    truncation_loop("ethernet-http-get.pcap", pcap_boundaries);
}

#[test]
fn every_prefix_of_a_pcapng() {
    truncation_loop("pcapng-two-interfaces.pcapng", pcapng_boundaries);
}

/// xorshift64*: deterministic, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_damage_never_panics_or_hangs() {
    let mut rng = Rng(0x5eed_7a95_e417);
    for name in [
        "linktypes/ethernet-http-get.pcap",
        "linktypes/pcapng-two-interfaces.pcapng",
        "linktypes/mixed-linktypes-merged.pcapng",
        "linktypes/pcap-bigendian-pptp-gre.pcap",
    ] {
        let bytes = std::fs::read(pcaps().join(name)).unwrap();
        for round in 0..300 {
            let mut b = bytes.clone();
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(b.len());
                // Mostly small changes, sometimes a whole length field.
                if rng.below(4) == 0 && at + 4 <= b.len() {
                    let v = rng.next() as u32;
                    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
                } else {
                    b[at] ^= 1 << rng.below(8);
                }
            }
            if rng.below(3) == 0 {
                b.truncate(rng.below(b.len() + 1));
            }
            let f = write_temp(&b);
            // read_paths enforces the iteration cap.
            let r = read_paths(&[f.path().to_path_buf()]);
            assert!(r.errors.len() <= 1, "{name} round {round}: {:?}", r.errors);
            assert!(
                r.frames
                    .iter()
                    .all(|fr| fr.data.len() <= tapsentry_capture::MAX_RECORD_LEN as usize),
                "{name} round {round}"
            );
        }
    }
}
