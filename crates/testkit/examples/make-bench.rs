//! Writes the synthetic benchmark capture of issue 4: whole Ethernet/IPv4
//! frames, many flows, a realistic size mix (see `tapsentry_testkit::bench`).
//!
//! `cargo run --release -p tapsentry-testkit --example make-bench -- [--packets N] [--flows N] [--seed N] [--rate PPS] [--writer direct|libpcap] OUT.pcap`
//!
//! Defaults: 5,000,000 packets (about 3.7 GB), 200,000 flows, seed 1,
//! 100,000 packets per second of capture time, the direct buffered writer.
//! `--writer libpcap` writes the same frames through the testkit's
//! `PcapWriter` (libpcap's dumper), to compare writer speeds; both files
//! are byte-identical. Prints a one-line summary on stderr.
#![allow(
    clippy::disallowed_methods,
    reason = "reports how long writing the capture took"
)]

use std::path::PathBuf;
use std::time::Instant;

use tapsentry_testkit::bench::{generate, write_bench, BenchSpec};
use tapsentry_testkit::PcapWriter;
use tapsentry_types::{LinkType, Timestamp};

const USAGE: &str = "usage: make-bench [--packets N] [--flows N] [--seed N] [--rate PPS] [--writer direct|libpcap] OUT.pcap";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut spec = BenchSpec::default();
    let mut out: Option<PathBuf> = None;
    let mut libpcap = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--packets" => spec.packets = value()?.replace('_', "").parse()?,
            "--flows" => spec.flows = value()?.replace('_', "").parse()?,
            "--seed" => spec.seed = value()?.parse()?,
            "--rate" => spec.rate_pps = value()?.replace('_', "").parse()?,
            "--writer" => match value()?.as_str() {
                "direct" => libpcap = false,
                "libpcap" => libpcap = true,
                other => return Err(format!("unknown writer {other:?}\n{USAGE}").into()),
            },
            "-h" | "--help" => {
                eprintln!("{USAGE}");
                return Ok(());
            }
            _ if a.starts_with('-') => return Err(format!("unknown flag {a}\n{USAGE}").into()),
            _ if out.is_none() => out = Some(PathBuf::from(a)),
            _ => return Err(format!("one output file only\n{USAGE}").into()),
        }
    }
    let Some(out) = out else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let started = Instant::now();
    let s = if libpcap {
        let mut w = PcapWriter::create(&out, LinkType::ETHERNET)?;
        let s = generate(&spec, |ts, frame| {
            w.write(Timestamp::from_micros(ts), frame);
            Ok(())
        })?;
        w.finish()?;
        s
    } else {
        write_bench(&spec, &out)?
    };
    let secs = started.elapsed().as_secs_f64();
    let size = std::fs::metadata(&out)?.len();
    eprintln!(
        "wrote {} in {secs:.2} s: {} packets, {size} bytes ({:.2} GB), {} flows ({} TCP, {} UDP, {} DNS), \
         mean frame {:.0} B, {:.1} % full-size 1514 B, {:.1} % ≤ 66 B, {:.1} s of capture time",
        out.display(),
        s.packets,
        size as f64 / 1e9,
        s.flows,
        s.tcp_flows,
        s.udp_flows,
        s.dns_flows,
        s.frame_bytes as f64 / s.packets.max(1) as f64,
        100.0 * s.full_size as f64 / s.packets.max(1) as f64,
        100.0 * s.small as f64 / s.packets.max(1) as f64,
        (s.last_micros - s.first_micros) as f64 / 1e6,
    );
    Ok(())
}
