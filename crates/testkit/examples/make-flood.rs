//! Writes a SYN flood of unique 5-tuples: the capture behind issue 4's
//! "flat RSS under a flood of 10M unique 5-tuples" measurement.
//!
//! `cargo run --release -p tapsentry-testkit --example make-flood -- OUT.pcap [FLOWS] [PPS]`
//!
//! FLOWS (default 10,000,000) SYNs, each from a different (address, port)
//! of 198.18.0.0/15 (the benchmarking range) to 10.0.0.1:80, PPS (default
//! 1,000,000) per second of capture time. 70 bytes of file per packet.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use tapsentry_testkit::checksum::internet_checksum;
use tapsentry_testkit::raw_pcap::PcapFormat;
use tapsentry_types::LinkType;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(out) = args.first().map(PathBuf::from) else {
        eprintln!("usage: make-flood OUT.pcap [FLOWS] [PPS]");
        std::process::exit(2);
    };
    let flows: u32 = args
        .get(1)
        .map_or(Ok(10_000_000), |s| s.replace('_', "").parse())?;
    let pps: u64 = args
        .get(2)
        .map_or(Ok(1_000_000), |s| s.replace('_', "").parse())?;
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&out)?);
    let format = PcapFormat::micros(LinkType::ETHERNET);
    w.write_all(&format.file_header())?;
    let t0: u64 = 1_700_000_000_000_000;
    let mut frame = [0u8; 54];
    // Ethernet: fixed MACs, IPv4.
    frame[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    frame[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    for i in 0..flows {
        let src = 0xc612_0000u32 | (i & 0x1_ffff);
        let sport = 1024 + (i >> 17) as u16;
        let ip = &mut frame[14..34];
        ip.copy_from_slice(&[
            0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 0, 0, 0, 0, 10, 0, 0, 1,
        ]);
        ip[4..6].copy_from_slice(&(i as u16).to_be_bytes());
        ip[12..16].copy_from_slice(&src.to_be_bytes());
        let c = internet_checksum(ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let tcp = &mut frame[34..54];
        tcp.fill(0);
        tcp[0..2].copy_from_slice(&sport.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&i.to_be_bytes());
        tcp[12] = 0x50;
        tcp[13] = 0x02;
        tcp[14..16].copy_from_slice(&1024u16.to_be_bytes());
        let ts = t0 + u64::from(i) * 1_000_000 / pps.max(1);
        w.write_all(&format.record_header_at(ts as i64, frame.len()))?;
        w.write_all(&frame)?;
    }
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    eprintln!("wrote {} ({flows} SYNs at {pps} per second)", out.display());
    Ok(())
}
