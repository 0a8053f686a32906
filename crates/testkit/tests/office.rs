//! The office generator: reproducible, labelled, time-ordered, and small.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test panics to report its failure, its helpers included"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "prints how long generation took, for the log"
)]

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;

use etherparse::Ipv4HeaderSlice;
use tapsentry_capture::{FileSource, FrameSource, Next};
use tapsentry_testkit::office::{generate, Attack, Office, OfficeSpec, ScanKind};

struct Summary {
    frames: usize,
    monotonic: bool,
    hosts: HashSet<IpAddr>,
    protos: HashSet<u8>,
    wire_bytes: u64,
    ip_len_ok: bool,
}

fn read(path: &Path) -> Summary {
    let mut src = FileSource::open(&[path.to_path_buf()]).unwrap();
    let mut s = Summary {
        frames: 0,
        monotonic: true,
        hosts: HashSet::new(),
        protos: HashSet::new(),
        wire_bytes: 0,
        ip_len_ok: true,
    };
    let mut last = i64::MIN;
    loop {
        match src.next_frame().unwrap() {
            Next::Frame(f) => {
                s.frames += 1;
                let us = f.ts.micros();
                s.monotonic &= us >= last;
                last = us;
                s.wire_bytes += u64::from(f.wire_len);
                assert_eq!(&f.data[12..14], &[8, 0], "not IPv4 at frame {}", s.frames);
                {
                    let h = Ipv4HeaderSlice::from_slice(&f.data[14..]).unwrap();
                    s.hosts.insert(IpAddr::V4(h.source_addr()));
                    s.hosts.insert(IpAddr::V4(h.destination_addr()));
                    s.protos.insert(h.protocol().0);
                    // The IP header states the wire size, captured or cut.
                    s.ip_len_ok &= u32::from(h.total_len()) + 14 == f.wire_len;
                    s.ip_len_ok &= f.wire_len <= 1514;
                }
            }
            Next::Idle => unreachable!(),
            Next::End => break,
        }
    }
    assert!(src.file_errors().is_empty(), "{:?}", src.file_errors());
    s
}

fn spec(seed: u64, hours: f64, attacks: Vec<Attack>) -> OfficeSpec {
    OfficeSpec {
        seed,
        hours,
        rate: 1.0,
        attacks,
    }
}

#[test]
fn same_seed_same_bytes_other_seed_differs() {
    let dir = tempfile::tempdir().unwrap();
    let o = Office::standard();
    let (a, b, c) = (
        dir.path().join("a.pcap"),
        dir.path().join("b.pcap"),
        dir.path().join("c.pcap"),
    );
    let la = generate(&spec(7, 1.0, Attack::examples(&o)), &a).unwrap();
    let lb = generate(&spec(7, 1.0, Attack::examples(&o)), &b).unwrap();
    generate(&spec(8, 1.0, Attack::examples(&o)), &c).unwrap();
    assert_eq!(la, lb);
    let (ba, bb, bc) = (
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        std::fs::read(&c).unwrap(),
    );
    assert!(ba == bb, "same seed wrote different bytes");
    assert!(ba != bc, "different seeds wrote the same bytes");
}

#[test]
fn every_attack_is_labelled_with_contract_src_and_dest() {
    let o = Office::standard();
    let attacks = Attack::examples(&o);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("office.pcap");
    let labels = generate(&spec(3, 3.0, attacks.clone()), &path).unwrap();
    assert_eq!(labels.len(), attacks.len());
    for (a, l) in attacks.iter().zip(&labels) {
        assert!(
            l.start_secs >= a.at_secs() && l.end_secs >= l.start_secs,
            "{l:?}"
        );
        let want: (&str, IpAddr, Option<IpAddr>) = match a {
            Attack::ExfilHttps { host, dest, .. } | Attack::SlowExfil { host, dest, .. } => {
                ("exfiltration", *host, Some(*dest))
            }
            Attack::DnsTunnel { host, resolver, .. } => ("exfiltration", *host, Some(*resolver)),
            Attack::InternalStaging {
                collector, sources, ..
            } => (
                "data_collection",
                *collector,
                (sources.len() == 1).then(|| sources[0]),
            ),
            Attack::TorOutbound { host, exit, .. } => ("tor", *host, Some(*exit)),
            Attack::TorInbound { exit, server, .. } => ("tor", *exit, Some(*server)),
            Attack::PortScan {
                scanner, targets, ..
            }
            | Attack::PingSweep {
                scanner, targets, ..
            } => (
                "port_scan",
                *scanner,
                (targets.len() == 1).then(|| targets[0]),
            ),
            Attack::Spambot {
                host, mail_servers, ..
            } => (
                "spambot",
                *host,
                (mail_servers.len() == 1).then(|| mail_servers[0]),
            ),
            Attack::UnusualProtocol { client, server, .. } => {
                ("unusual_protocol", *client, Some(*server))
            }
            Attack::ExternalBruteForce {
                attacker, server, ..
            }
            | Attack::ExternalLoginSuccess {
                attacker, server, ..
            } => ("external_login", *attacker, Some(*server)),
        };
        assert_eq!((l.category, l.src_ip, l.dest_ip), want, "{a:?}");
    }
    // Every category of the contract is exercised, and all attacks come
    // after the learning period.
    let cats: HashSet<&str> = labels.iter().map(|l| l.category).collect();
    assert_eq!(cats.len(), 7, "{cats:?}");
    assert!(labels.iter().all(|l| l.start_secs >= 1800.0));
}

#[test]
fn default_office_is_ordered_varied_and_small() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("office.pcap");
    let started = std::time::Instant::now();
    let labels = generate(&OfficeSpec::default(), &path).unwrap();
    let took = started.elapsed();
    assert!(labels.is_empty());
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 60_000_000, "default office is {size} bytes");
    // Generous: release builds take well under a second.
    assert!(took.as_secs() < 60, "took {took:?}");
    let s = read(&path);
    assert!(s.monotonic, "frames out of time order");
    assert!(
        s.ip_len_ok,
        "IP total length does not match the wire length"
    );
    assert!(s.frames > 200_000, "{} frames", s.frames);
    // The snap-length trick: far more bytes on the wire than in the file.
    assert!(s.wire_bytes > 5 * size, "{} wire bytes", s.wire_bytes);
    // ~30 inside hosts, ~200 web clients, ~40 sites, mail peers, DNS servers.
    assert!(s.hosts.len() > 300, "{} hosts", s.hosts.len());
    let o = Office::standard();
    for h in o.inside_hosts() {
        assert!(s.hosts.contains(&h), "{h} never seen");
    }
    for p in [1, 6, 17, 47, 50] {
        assert!(s.protos.contains(&p), "protocol {p} missing");
    }
}

#[test]
fn scans_get_the_answers_of_the_targets() {
    let o = Office::standard();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scan.pcap");
    let scanner: IpAddr = "10.20.10.20".parse().unwrap();
    let outside: IpAddr = "192.0.2.99".parse().unwrap();
    let attacks = vec![
        Attack::PortScan {
            at_secs: 10.0,
            scanner,
            targets: vec![o.web_server, outside],
            ports: vec![22, 23, 80, 443, 8443],
            proto: 6,
            interval_secs: 0.1,
            kind: ScanKind::Syn,
        },
        Attack::PortScan {
            at_secs: 20.0,
            scanner,
            targets: vec![o.resolver],
            ports: vec![53, 54],
            proto: 17,
            interval_secs: 0.1,
            kind: ScanKind::Udp,
        },
    ];
    generate(&spec(1, 0.0, attacks), &path).unwrap();
    let mut src = FileSource::open(std::slice::from_ref(&path)).unwrap();
    let (mut synack, mut rst, mut unreach, mut from_outside) = (0, 0, 0, 0);
    while let Next::Frame(f) = src.next_frame().unwrap() {
        let h = Ipv4HeaderSlice::from_slice(&f.data[14..]).unwrap();
        let src_ip = IpAddr::V4(h.source_addr());
        if src_ip == outside {
            from_outside += 1;
        }
        if src_ip == o.web_server && h.protocol().0 == 6 {
            let flags = f.data[14 + 20 + 13];
            match flags {
                0x12 => synack += 1,
                0x14 => rst += 1,
                _ => {}
            }
        }
        if src_ip == o.resolver && h.protocol().0 == 1 {
            unreach += 1;
        }
    }
    assert_eq!((synack, rst, unreach, from_outside), (3, 2, 1, 0));
}

#[test]
fn ipv6_attacks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = Attack::TorOutbound {
        at_secs: 1.0,
        host: "fd00::1".parse().unwrap(),
        exit: "2001:db8::1".parse().unwrap(),
    };
    assert!(generate(&spec(1, 0.0, vec![a]), &dir.path().join("x.pcap")).is_err());
}
