//! The end-of-replay summary for a terminal: alerts by category, the hosts
//! most alerts were about, and the flows. A non-terminal gets the one-line
//! summary instead (scripts and tests read that line).

use std::fmt::Write as _;

use crate::pipeline::RunReport;

/// The summary table of a run, as text for stderr.
pub fn table(r: &RunReport) -> String {
    let s = &r.stats;
    let mut t = String::new();
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let packets = s.capture.packets;
    let _ = writeln!(
        t,
        "replayed {packets} packets ({:.1} MB) in {:.2} s ({:.0} packets/s)",
        s.capture.wire_bytes as f64 / 1e6,
        secs,
        packets as f64 / secs
    );
    let _ = writeln!(t, "\n{:<22} {:>8}", "alerts by category", "alerts");
    let mut cats: Vec<(&str, u64)> = s
        .alerts
        .by_category
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(c, n)| (*c, *n))
        .collect();
    cats.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for (c, n) in &cats {
        let _ = writeln!(t, "  {c:<20} {n:>8}");
    }
    let _ = writeln!(
        t,
        "  {:<20} {:>8}{}",
        "total",
        s.alerts.written,
        if s.alerts.suppressed > 0 {
            format!("  ({} repeats suppressed)", s.alerts.suppressed)
        } else {
            String::new()
        }
    );
    if !r.top_alerted.is_empty() {
        let _ = writeln!(
            t,
            "\n{:<40} {:>8}",
            "top hosts (alerts about them)", "alerts"
        );
        for (ip, n) in &r.top_alerted {
            let _ = writeln!(t, "  {:<38} {n:>8}", ip.to_string());
        }
    }
    let f = &s.flows;
    let _ = writeln!(
        t,
        "\nflows: {} created, {} expired, {} evicted, {} refused at the table's cap",
        f.created, f.expired, f.evicted, f.refused
    );
    let decode = s.capture.decode_errors_total;
    if decode > 0 {
        let _ = writeln!(t, "packets not decoded: {decode}");
    }
    t
}
