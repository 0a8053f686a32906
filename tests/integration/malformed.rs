//! Every hostile file in the corpus: no panic, no hang, an exit status from
//! the contract (0, or 1 with one line naming the file).
#![allow(
    clippy::disallowed_methods,
    reason = "a hang is caught by a wall-time deadline"
)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{bin, shared};

#[test]
fn every_malformed_file_is_survived() {
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("a.jsonl");
    let mut files: Vec<_> = std::fs::read_dir(shared("malformed"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() > 100, "corpus not found");
    let mut failures = Vec::new();
    for f in &files {
        let mut child = Command::new(bin())
            .arg("replay")
            .arg("--alerts")
            .arg(&alerts)
            .arg(f)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        match status.and_then(|s| s.code()) {
            None => failures.push(format!("{name}: hung or killed by a signal")),
            Some(0) => {}
            Some(1) => {
                let last = err.lines().last().unwrap_or("");
                if !last.starts_with("tapsentry: error: ") || !last.contains(&name) {
                    failures.push(format!(
                        "{name}: exit 1 without a line naming the file: {last:?}"
                    ));
                }
            }
            Some(c) => failures.push(format!("{name}: exit {c}: {err}")),
        }
        if err.contains("panicked") {
            failures.push(format!("{name}: panicked: {err}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} files:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
