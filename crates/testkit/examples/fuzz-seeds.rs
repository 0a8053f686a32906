//! Writes fuzz seeds from capture files: for each capture, whole small files
//! (`capture_file`), frames prefixed with their link type's index in the
//! fuzz crate's list (`decode_frame`), DNS payloads (`dns_message`) and the
//! first payloads of each flow in the `proto_classify` chunk layout. Seeds
//! are named after their content's hash, so reruns add nothing twice.
//!
//! `cargo run -p tapsentry-testkit --example fuzz-seeds -- OUT_DIR MAX_PER_FILE PCAP...`
//! (`fuzz/seed.sh` runs it over the shared and bundled captures.)

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use tapsentry_capture::{FileSource, FrameSource, Next};
use tapsentry_types::LinkType;

/// Whole capture files up to this size become `capture_file` seeds.
const MAX_FILE_SEED: u64 = 64 * 1024;
/// Payload chunks kept per flow for `proto_classify`.
const CHUNKS_PER_FLOW: usize = 4;

type FlowId = (IpAddr, IpAddr, u16, u16, u8);

fn write_seed(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(format!("{:016x}", h.finish())), bytes)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let usage = "usage: fuzz-seeds OUT_DIR MAX_PER_FILE PCAP...";
    let out = PathBuf::from(args.next().ok_or(usage)?);
    let max: usize = args.next().ok_or(usage)?.to_string_lossy().parse()?;
    for pcap in args.map(PathBuf::from) {
        if std::fs::metadata(&pcap)?.len() <= MAX_FILE_SEED {
            write_seed(&out.join("capture_file"), &std::fs::read(&pcap)?)?;
        }
        let Ok(mut src) = FileSource::open(std::slice::from_ref(&pcap)) else {
            continue;
        };
        let (mut frames, mut dns) = (0usize, 0usize);
        let mut flows: HashMap<FlowId, (IpAddr, Vec<u8>, usize)> = HashMap::new();
        while let Ok(Next::Frame(f)) = src.next_frame() {
            let Some(idx) = LinkType::DECODED.iter().position(|&l| l == f.link) else {
                continue;
            };
            if frames < max {
                let mut seed = vec![idx as u8];
                seed.extend_from_slice(f.data);
                write_seed(&out.join("decode_frame"), &seed)?;
                frames += 1;
            }
            let Ok(m) = tapsentry_decode::decode(&f) else {
                continue;
            };
            if m.payload.is_empty() || !(m.proto == 6 || m.proto == 17) {
                continue;
            }
            if m.is_dns_port() && dns < max {
                write_seed(&out.join("dns_message"), m.payload)?;
                dns += 1;
            }
            let id = if (m.src, m.src_port) <= (m.dst, m.dst_port) {
                (m.src, m.dst, m.src_port, m.dst_port, m.proto)
            } else {
                (m.dst, m.src, m.dst_port, m.src_port, m.proto)
            };
            if flows.len() >= max && !flows.contains_key(&id) {
                continue;
            }
            let (client, seed, chunks) = flows.entry(id).or_insert_with(|| {
                let mut s = m.src_port.to_be_bytes().to_vec();
                s.extend_from_slice(&m.dst_port.to_be_bytes());
                (m.src, s, 0)
            });
            if *chunks < CHUNKS_PER_FLOW {
                let dir = u8::from(m.src != *client);
                let udp = if m.proto == 17 { 2 } else { 0 };
                let len = m.payload.len().min(255);
                seed.extend_from_slice(&[dir | udp, len as u8]);
                seed.extend_from_slice(&m.payload[..len]);
                *chunks += 1;
            }
        }
        for (_, seed, _) in flows.values() {
            write_seed(&out.join("proto_classify"), seed)?;
        }
    }
    Ok(())
}
