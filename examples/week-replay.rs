//! Replays a generated benign week (the test kit's `week` module) through
//! the sensor in-process, without writing a capture: the precision
//! figures in `docs/detections.md` without the disk space of a week of
//! pcap. Prints each inside host with its role as JSON Lines on stdout (as
//! `make-week` does); alerts go to the configured alert log.
//!
//! `cargo run --release --example week-replay -- CONFIG.toml ALERTS.jsonl [--hosts N] [--days D] [--seed S] [--start-weekday thu]`
//!
//! The same alerts as writing the week with `make-week` and replaying the
//! file with `tapsentry replay` (checked: the same lines per seed).
#![allow(
    clippy::print_stdout,
    reason = "the host labels on stdout are this example's output"
)]

use tapsentry::config::SensorConfig;
use tapsentry::control::{load_intel, Control};
use tapsentry::pipeline::{Mode, Pipeline, Speed};
use tapsentry_output::JsonlSink;
use tapsentry_testkit::week::{parse_weekday, Week, WeekSpec};

#[path = "../tests/integration/week_source.rs"]
mod week_source;
use week_source::WeekSource;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: week-replay CONFIG.toml ALERTS.jsonl [--hosts N] [--days D] [--seed S] [--start-weekday thu]";
    let (Some(config), Some(alerts)) = (args.next(), args.next()) else {
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
            _ => return Err(format!("unknown option {flag}; {usage}").into()),
        }
    }
    let mut cfg = SensorConfig::load(std::path::Path::new(&config)).map_err(|e| e.to_string())?;
    cfg.output.alert_log = alerts;
    let (intel, _) = load_intel(&cfg.intel)?;
    let week = Week::new(&spec);
    for h in week.hosts() {
        println!("{}", h.json());
    }
    let pipeline = Pipeline {
        alerts: JsonlSink::open_as(&cfg.output.alert_log, "alert log")?,
        cfg,
        mode: Mode::Replay(Speed::Max),
        source: Box::new(WeekSource::new(week)),
        flows: None,
        stats: None,
        metrics: None,
    };
    let report = pipeline.run(&Control::new(intel))?;
    eprintln!(
        "week-replay: seed {}: {} packets, {} alerts written",
        spec.seed, report.stats.capture.packets, report.stats.alerts.written
    );
    Ok(())
}
