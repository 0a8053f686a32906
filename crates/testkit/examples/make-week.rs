//! Writes a benign week of a generated office (the test kit's `week`
//! module) and prints each inside host with its role as JSON Lines on
//! stdout, then a summary line on stderr (frames, bytes, speed).
//!
//! `cargo run --release -p tapsentry-testkit --example make-week -- OUT.pcap [--hosts N] [--days D] [--seed S] [--start-weekday thu] [--start-hour H] [--density X]`
//!
//! With OUT.pcap `-`, nothing is written: the frames are generated and
//! counted only (to measure the generator alone).
#![allow(
    clippy::disallowed_methods,
    reason = "reports how long generating the capture took"
)]
#![allow(
    clippy::print_stdout,
    reason = "the host labels on stdout are this example's output"
)]

use std::path::PathBuf;
use std::time::Instant;

use tapsentry_testkit::week::{parse_weekday, Week, WeekSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: make-week OUT.pcap [--hosts N] [--days D] [--seed S] [--start-weekday thu] [--start-hour H] [--density X]";
    let Some(out) = args.next() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let mut spec = WeekSpec::default();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--hosts" => spec.hosts = value.parse()?,
            "--days" => spec.days = value.parse()?,
            "--seed" => spec.seed = value.parse()?,
            "--start-weekday" => {
                spec.start_weekday =
                    parse_weekday(&value).ok_or_else(|| format!("not a weekday: {value}"))?
            }
            "--start-hour" => spec.start_hour = value.parse()?,
            "--density" => spec.density = value.parse()?,
            _ => return Err(format!("unknown option {flag}; {usage}").into()),
        }
    }
    let started = Instant::now();
    let mut week = Week::new(&spec);
    for h in week.hosts() {
        println!("{}", h.json());
    }
    let (frames, bytes) = if out == "-" {
        let mut buf = Vec::with_capacity(2048);
        while week.next_into(&mut buf).is_some() {}
        week.generated()
    } else {
        week.write_pcap(&PathBuf::from(&out))?
    };
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{out}: {} hosts, {} days, seed {}: {frames} frames, {:.2} GB on the wire in {secs:.1} s ({:.2} M frames/s, {:.1} GB/s of wire bytes); peak {} open sessions, peak queue {}, {} sessions skipped",
        spec.hosts,
        spec.days,
        spec.seed,
        bytes as f64 / 1e9,
        frames as f64 / secs / 1e6,
        bytes as f64 / secs / 1e9,
        week.peak_sessions(),
        week.peak_queue_len(),
        week.skipped_sessions()
    );
    Ok(())
}
