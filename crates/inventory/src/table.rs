//! The inventory as text for a terminal (`tapsentry inventory`): one block
//! per host.
//!
//! ```text
//! 10.20.1.10  www.example.org
//!   seen 2023-11-14 22:13:20 .. 2023-11-15 01:13:19   in 12.1 MB  out 310.4 MB   vlan 0   macs -
//!   serves  tcp/80 http (0 inside, 61 outside)  tcp/443 tls (1 inside, 200 outside)
//!   uses    dns 3  tls 1
//!   talks to countries US, DE; ASNs 15169
//! ```

use std::fmt::Write;

use tapsentry_types::Timestamp;

use crate::{Host, InventoryFile};

/// `2023-11-14 22:13:20` (seconds are enough on a terminal).
fn short_time(t: Timestamp) -> String {
    let s = t.to_rfc3339();
    s.get(..19).unwrap_or(&s).replacen('T', " ", 1)
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS.get(u).copied().unwrap_or("B"))
    }
}

/// Printable text of a string from the file: control characters (a name
/// from a DNS answer is outside input) are shown as `?`.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// One host's block.
pub fn host_block(h: &Host) -> String {
    let mut s = String::new();
    let names = if h.names.is_empty() {
        "-".to_string()
    } else {
        h.names
            .iter()
            .map(|n| clean(n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let macs = if h.macs.is_empty() {
        "-".to_string()
    } else {
        h.macs
            .iter()
            .map(|m| clean(m))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(s, "{}  {}", h.ip, names);
    let _ = writeln!(
        s,
        "  seen {} .. {}   in {}  out {}   vlan {}   macs {}",
        short_time(h.first_seen),
        short_time(h.last_seen),
        bytes(h.bytes_in),
        bytes(h.bytes_out),
        h.vlan,
        macs
    );
    if !h.services.is_empty() {
        let list: Vec<String> = h
            .services
            .iter()
            .map(|v| {
                format!(
                    "{}/{} {} ({} inside, {}{} outside)",
                    v.transport.as_str(),
                    v.port,
                    v.app_proto,
                    v.inside_clients,
                    v.outside_clients,
                    if v.clients_capped { "+" } else { "" }
                )
            })
            .collect();
        let _ = writeln!(s, "  serves  {}", list.join("  "));
    }
    if !h.client_protocols.is_empty() {
        let list: Vec<String> = h
            .client_protocols
            .iter()
            .map(|(p, n)| format!("{} {n}", clean(p)))
            .collect();
        let _ = writeln!(s, "  uses    {}", list.join("  "));
    }
    if !h.countries.is_empty() || !h.asns.is_empty() {
        let c: Vec<String> = h.countries.iter().map(|c| clean(c)).collect();
        let a: Vec<String> = h.asns.iter().map(u32::to_string).collect();
        let _ = writeln!(
            s,
            "  talks to countries {}; ASNs {}",
            if c.is_empty() {
                "-".into()
            } else {
                c.join(", ")
            },
            if a.is_empty() {
                "-".into()
            } else {
                a.join(", ")
            }
        );
    }
    s
}

/// The whole file: a header line, then one block per host.
pub fn render(f: &InventoryFile) -> String {
    let mut s = format!(
        "inventory generated {} (capture time): {} hosts\n",
        short_time(f.generated),
        f.hosts.len()
    );
    for h in &f.hosts {
        s.push('\n');
        s.push_str(&host_block(h));
    }
    s
}
