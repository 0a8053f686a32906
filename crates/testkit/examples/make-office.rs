//! Writes a labelled small-office capture and prints its labels as JSON
//! Lines on stdout.
//!
//! `cargo run --release -p tapsentry-testkit --example make-office -- OUT.pcap [benign|attacks|intrusion] [SEED] [HOURS] [RATE]`
//!
//! `benign` (the default) writes the office alone; `attacks` adds one attack
//! of every kind (`Attack::examples`); `intrusion` adds one intrusion told in
//! four steps on one workstation (`Attack::intrusion_chain`: outside login,
//! inside scan, staging, upload), which the sensor reports as one incident.
//! The Tor exits used by the attacks are
//! 203.0.113.50 and 203.0.113.51: list them in the sensor's Tor exit list.
#![allow(
    clippy::disallowed_methods,
    reason = "reports how long writing the capture took"
)]
#![allow(
    clippy::print_stdout,
    reason = "the labels on stdout are this example's output"
)]

use std::path::PathBuf;
use std::time::Instant;

use tapsentry_testkit::office::{generate, Attack, Office, OfficeSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(out) = args.first().map(PathBuf::from) else {
        eprintln!("usage: make-office OUT.pcap [benign|attacks|intrusion] [SEED] [HOURS] [RATE]");
        std::process::exit(2);
    };
    let mut spec = OfficeSpec::default();
    match args.get(1).map(String::as_str) {
        None | Some("benign") => {}
        Some("attacks") => spec.attacks = Attack::examples(&Office::standard()),
        Some("intrusion") => spec.attacks = Attack::intrusion_chain(&Office::standard()).0,
        Some(other) => {
            return Err(format!("unknown scenario {other:?} (benign, attacks or intrusion)").into())
        }
    }
    if let Some(s) = args.get(2) {
        spec.seed = s.parse()?;
    }
    if let Some(h) = args.get(3) {
        spec.hours = h.parse()?;
    }
    if let Some(r) = args.get(4) {
        spec.rate = r.parse()?;
    }
    let started = Instant::now();
    let labels = generate(&spec, &out)?;
    let secs = started.elapsed().as_secs_f64();
    let size = std::fs::metadata(&out)?.len();
    for l in &labels {
        let dest = l
            .dest_ip
            .map(|d| format!("\"{d}\""))
            .unwrap_or_else(|| "null".into());
        println!(
            "{{\"category\":\"{}\",\"src_ip\":\"{}\",\"dest_ip\":{dest},\"start_secs\":{:.3},\"end_secs\":{:.3},\"note\":\"{}\"}}",
            l.category, l.src_ip, l.start_secs, l.end_secs, l.note
        );
    }
    eprintln!(
        "wrote {} ({size} bytes, {} labels) in {secs:.2} s",
        out.display(),
        labels.len()
    );
    Ok(())
}
