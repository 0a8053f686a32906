//! Writes the bundled demo capture `pcaps/demo.pcap` and its Tor exit list
//! `pcaps/demo-tor-exits.txt`: ten minutes of a small office (DNS, web,
//! mail, SSH) with two Tor findings in it. Outside addresses are from the
//! documentation ranges (RFC 5737), so nothing here points at a real host.
//!
//! `cargo run -p tapsentry-testkit --example make-demo`

use std::path::Path;

use tapsentry_testkit::scenario::{ip, Scenario};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut s = Scenario::new();
    let resolver = ip("10.10.0.53");
    let web = [ip("192.0.2.10"), ip("192.0.2.20"), ip("192.0.2.30")];
    let workstations = [
        ip("10.10.0.21"),
        ip("10.10.0.22"),
        ip("10.10.0.23"),
        ip("10.10.0.24"),
    ];
    let mut port = 49152u16;
    let mut id = 1u16;
    // Ordinary browsing: a lookup, then an HTTPS session, every ~20 s per host.
    for minute in 0..10 {
        for (i, ws) in workstations.iter().enumerate() {
            for k in 0..3 {
                let t = f64::from(minute) * 60.0 + i as f64 * 4.0 + f64::from(k) * 20.0;
                port = port.wrapping_add(1).max(49152);
                id = id.wrapping_add(1);
                s.dns_lookup(t, *ws, port, resolver, "www.example.com", id);
                port = port.wrapping_add(1).max(49152);
                let server = web[(i + k as usize) % web.len()];
                s.session(t + 0.05, *ws, port, server, 443, 600, 2_500, 1.5);
            }
        }
        // The mail server relays to its smarthost once a minute.
        port = port.wrapping_add(1).max(49152);
        s.session(
            f64::from(minute) * 60.0 + 30.0,
            ip("10.10.0.25"),
            port,
            ip("192.0.2.25"),
            25,
            6_000,
            400,
            0.5,
        );
    }
    // Admin SSH from inside to the server.
    s.session(
        100.0,
        ip("10.10.0.21"),
        50022,
        ip("10.10.0.10"),
        22,
        2_000,
        6_000,
        60.0,
    );
    // Finding 1: a workstation opens a session to a Tor exit (outbound).
    s.session(
        200.0,
        ip("10.10.0.23"),
        51515,
        ip("203.0.113.50"),
        443,
        24_000,
        30_000,
        45.0,
    );
    // Finding 2: a Tor exit reaches the SSH server from outside (inbound).
    s.session(
        320.0,
        ip("198.51.100.77"),
        40404,
        ip("10.10.0.10"),
        22,
        2_500,
        3_500,
        8.0,
    );
    // A refused attempt from the same exit a minute later: the same finding,
    // suppressed as a repeat.
    s.refused(380.0, ip("198.51.100.77"), 40405, ip("10.10.0.10"), 22);
    let frames = s.len();
    s.write(&root.join("pcaps/demo.pcap"))?;
    std::fs::write(
        root.join("pcaps/demo-tor-exits.txt"),
        "# Demo Tor exit list for pcaps/demo.pcap (documentation addresses, RFC 5737).\n\
         # A real deployment points intel.tor_exit_list at a list refreshed from\n\
         # https://check.torproject.org/exit-addresses.\n\
         203.0.113.50\n198.51.100.77\n203.0.113.99\n",
    )?;
    eprintln!("wrote pcaps/demo.pcap ({frames} frames) and pcaps/demo-tor-exits.txt");
    Ok(())
}
