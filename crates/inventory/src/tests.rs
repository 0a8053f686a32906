#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test panics to report its failure"
)]

use super::*;
use tapsentry_testkit::{DnsEventBuilder, DnsMessage, FlowRecordBuilder, START_SECS};
use tapsentry_types::{DirCounts, EndReason, RecordKind};

fn t(secs: i64) -> Timestamp {
    Timestamp::from_micros((START_SECS + secs) * 1_000_000)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn inside(a: IpAddr) -> bool {
    matches!(a, IpAddr::V4(v) if v.octets()[0] == 10)
}

fn sides(r: &FlowRecord) -> Sides {
    Sides {
        client: inside(r.client),
        server: inside(r.server),
    }
}

fn no_geo(_: IpAddr) -> Option<GeoInfo> {
    None
}

/// Feeds `r` at its own last packet's time; returns the records raised.
fn feed(inv: &mut Inventory, r: &FlowRecord) -> Vec<InventoryRecord> {
    inv.set_clock(r.last_seen);
    let mut out = Vec::new();
    inv.observe_flow(r, sides(r), &no_geo, &mut out);
    out
}

fn tcp(c: &str, s: &str, port: u16, at: i64) -> FlowRecord {
    FlowRecordBuilder::tcp(c, 40_000, s, port).at(at).build()
}

fn learned(cfg: InventoryConfig) -> Inventory {
    let mut inv = Inventory::new(InventoryConfig {
        learning_secs: 100,
        ..cfg
    });
    // Learning runs on capture time: 100 s pass with nothing seen.
    inv.set_clock(t(0));
    inv.set_clock(t(100));
    inv
}

#[test]
fn a_served_flow_makes_a_host_and_a_service_with_its_clients() {
    let mut inv = Inventory::new(InventoryConfig::default());
    let a = FlowRecordBuilder::tcp("198.51.100.7", 50_000, "10.0.0.5", 443)
        .app_proto(AppProto::Tls)
        .bytes(1_000, 9_000)
        .build();
    feed(&mut inv, &a);
    feed(&mut inv, &tcp("10.0.0.9", "10.0.0.5", 443, 5));
    feed(&mut inv, &tcp("10.0.0.9", "10.0.0.5", 443, 9)); // same client again
    let h = inv.host(ip("10.0.0.5")).unwrap();
    assert_eq!(h.services.len(), 1);
    let s = &h.services[0];
    assert_eq!(
        (s.transport, s.port, s.app_proto),
        (Transport::Tcp, 443, AppProto::Tls)
    );
    assert_eq!((s.inside_clients, s.outside_clients), (1, 1));
    assert_eq!(
        (h.bytes_in, h.bytes_out),
        (1_000 + 2 * 1_500, 9_000 + 2 * 4_000)
    );
    assert_eq!(h.first_seen, a.first_seen);
    // The inside client is a host too, with what it speaks as a client.
    let c = inv.host(ip("10.0.0.9")).unwrap();
    assert!(c.services.is_empty());
    assert_eq!(c.client_protocols.get("unknown"), Some(&2));
    // Outside addresses are never hosts.
    assert!(inv.host(ip("198.51.100.7")).is_none());
}

#[test]
fn refused_probes_and_silent_servers_invent_nothing() {
    let mut inv = Inventory::new(InventoryConfig::default());
    // A SYN answered by RST: the server exists, but offers no service.
    let rst = FlowRecordBuilder::tcp("198.51.100.7", 50_000, "10.0.0.5", 23)
        .flags(0x02, 0x14)
        .state(FlowState::Rejected)
        .packets(1, 1)
        .build();
    feed(&mut inv, &rst);
    assert!(inv.host(ip("10.0.0.5")).unwrap().services.is_empty());
    // A probe nobody answered (or a router answered with an ICMP error):
    // no host at all.
    let silent = FlowRecordBuilder::udp("198.51.100.7", 50_000, "10.0.0.6", 161)
        .packets(1, 0)
        .bytes(60, 0)
        .state(FlowState::Rejected)
        .build();
    feed(&mut inv, &silent);
    assert!(inv.host(ip("10.0.0.6")).is_none());
    // A UDP answer is a service.
    let dns = FlowRecordBuilder::udp("10.0.0.9", 53_000, "10.0.0.53", 53)
        .app_proto(AppProto::Dns)
        .state(FlowState::Established)
        .build();
    feed(&mut inv, &dns);
    let s = &inv.host(ip("10.0.0.53")).unwrap().services[0];
    assert_eq!(
        (s.transport, s.port, s.app_proto),
        (Transport::Udp, 53, AppProto::Dns)
    );
}

#[test]
fn interim_records_count_bytes_once() {
    let mut inv = Inventory::new(InventoryConfig::default());
    let interim = FlowRecordBuilder::tcp("10.0.0.9", 40_000, "192.0.2.1", 443)
        .bytes(1_000, 2_000)
        .kind(RecordKind::Interim)
        .build();
    let end = FlowRecordBuilder::tcp("10.0.0.9", 40_000, "192.0.2.1", 443)
        .bytes(5_000, 7_000)
        .reported(
            DirCounts {
                packets: 10,
                bytes: 1_000,
            },
            DirCounts {
                packets: 8,
                bytes: 2_000,
            },
        )
        .kind(RecordKind::End(EndReason::Timeout))
        .build();
    feed(&mut inv, &interim);
    feed(&mut inv, &end);
    let h = inv.host(ip("10.0.0.9")).unwrap();
    assert_eq!((h.bytes_out, h.bytes_in), (5_000, 7_000));
    assert_eq!(h.client_protocols.values().sum::<u64>(), 1, "one flow");
}

#[test]
fn new_hosts_and_exposures_are_reported_after_learning_only_once() {
    let mut inv = Inventory::new(InventoryConfig {
        learning_secs: 100,
        ..InventoryConfig::default()
    });
    // While learning: a host, and a service exposed to the outside.
    assert!(feed(&mut inv, &tcp("198.51.100.7", "10.0.0.5", 443, 0)).is_empty());
    // After learning: the known host's known exposure is nothing new; an
    // inside-only service is nothing to report; a new host is.
    assert!(feed(&mut inv, &tcp("198.51.100.8", "10.0.0.5", 443, 200)).is_empty());
    let r = feed(&mut inv, &tcp("10.0.0.9", "10.0.0.5", 8080, 210));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].inventory.kind, InventoryKind::NewHost);
    assert_eq!(r[0].src_ip, ip("10.0.0.9"));
    // The inside service gets its first outside client: an exposure.
    let r = feed(&mut inv, &tcp("203.0.113.4", "10.0.0.5", 8080, 220));
    assert_eq!(r.len(), 1);
    let b = &r[0].inventory;
    assert_eq!(b.kind, InventoryKind::NewExposedService);
    assert_eq!(
        (b.host, b.client),
        (ip("10.0.0.5"), Some(ip("203.0.113.4")))
    );
    assert_eq!(b.service.map(|s| s.port), Some(8080));
    let json = serde_json::to_value(&r[0]).unwrap();
    assert_eq!(json["event_type"], "inventory");
    assert_eq!(json["inventory"]["kind"], "new_exposed_service");
    assert_eq!(json["inventory"]["service"]["transport"], "tcp");
    assert_eq!(json["inventory"]["service"]["app_proto"], "unknown");
    // A second outside client is not news.
    assert!(feed(&mut inv, &tcp("203.0.113.5", "10.0.0.5", 8080, 230)).is_empty());
    // A new host offering a service to the outside: both records.
    let r = feed(&mut inv, &tcp("203.0.113.5", "10.0.0.77", 22, 240));
    let kinds: Vec<InventoryKind> = r.iter().map(|r| r.inventory.kind).collect();
    assert_eq!(
        kinds,
        [InventoryKind::NewHost, InventoryKind::NewExposedService]
    );
    assert_eq!(inv.counters().records, 4);
}

#[test]
fn records_are_rate_limited_per_capture_hour() {
    let mut inv = learned(InventoryConfig {
        max_records_per_hour: 3,
        ..InventoryConfig::default()
    });
    let mut n = 0;
    for i in 1..=10u8 {
        n += feed(
            &mut inv,
            &tcp(&format!("10.0.1.{i}"), "192.0.2.1", 443, 100 + i64::from(i)),
        )
        .len();
    }
    assert_eq!(n, 3);
    assert_eq!(inv.counters().records_suppressed, 7);
    // The next clock hour has a fresh allowance.
    let later = 3 * 3600;
    assert_eq!(
        feed(&mut inv, &tcp("10.0.2.1", "192.0.2.1", 443, later)).len(),
        1
    );
}

#[test]
fn bounds_hold_and_are_counted() {
    let mut inv = learned(InventoryConfig {
        max_hosts: 3,
        max_services_per_host: 2,
        max_clients_per_service: 2,
        max_names_per_host: 1,
        ..InventoryConfig::default()
    });
    for i in 1..=5u8 {
        feed(
            &mut inv,
            &tcp(&format!("10.0.0.{i}"), "192.0.2.1", 443, 200),
        );
    }
    assert_eq!(inv.counters().hosts, 3);
    assert_eq!(inv.counters().hosts_refused, 2);
    for port in [22, 80, 443] {
        feed(&mut inv, &tcp("10.0.0.2", "10.0.0.1", port, 300));
    }
    assert_eq!(inv.host(ip("10.0.0.1")).unwrap().services.len(), 2);
    assert_eq!(inv.counters().services_refused, 1);
    for c in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        feed(&mut inv, &tcp(c, "10.0.0.1", 22, 400));
    }
    let s = &inv.host(ip("10.0.0.1")).unwrap().services[0];
    assert_eq!(
        (s.inside_clients, s.outside_clients, s.clients_capped),
        (1, 1, true)
    );
    assert_eq!(inv.counters().clients_not_counted, 2);
    for name in ["a.corp", "b.corp"] {
        inv.observe_dns(&answer(name, "10.0.0.1"), &inside);
    }
    assert_eq!(inv.host(ip("10.0.0.1")).unwrap().names, ["a.corp"]);
    assert_eq!(inv.counters().names_refused, 1);
}

#[test]
fn macs_wait_for_their_host_and_stay_within_the_bound() {
    let mut inv = learned(InventoryConfig {
        max_hosts: 2,
        max_macs_per_host: 2,
        ..InventoryConfig::default()
    });
    // A flow's MAC comes at its start, its record at its end.
    inv.observe_mac(ip("10.0.0.1"), "02:00:0a:00:00:01");
    inv.observe_mac(ip("10.0.0.2"), "02:00:0a:00:00:02");
    inv.observe_mac(ip("10.0.0.3"), "02:00:0a:00:00:03");
    assert_eq!(inv.counters().macs_unattached_dropped, 1);
    assert!(inv.host(ip("10.0.0.1")).is_none(), "a MAC is no host");
    feed(&mut inv, &tcp("10.0.0.1", "192.0.2.1", 443, 200));
    assert_eq!(
        inv.host(ip("10.0.0.1")).unwrap().macs,
        ["02:00:0a:00:00:01"]
    );
    for mac in [
        "02:00:0a:00:00:01",
        "02:00:0a:00:00:11",
        "02:00:0a:00:00:21",
    ] {
        inv.observe_mac(ip("10.0.0.1"), mac);
    }
    assert_eq!(
        inv.host(ip("10.0.0.1")).unwrap().macs,
        ["02:00:0a:00:00:01", "02:00:0a:00:00:11"]
    );
    assert_eq!(inv.counters().macs_refused, 1);
}

fn answer(name: &str, addr: &str) -> DnsEvent {
    DnsEventBuilder::query("10.0.0.9", "10.0.0.53", name)
        .answered(&[ip(addr)])
        .at_micros(t(1).micros())
        .msg_len(60)
        .build()
}

#[test]
fn dns_answers_name_inside_hosts_and_never_make_one() {
    // The encoder the decoder is tested with makes the same shape.
    assert!(!DnsMessage::query(1, "x", 1).response(0).encode().is_empty());
    let mut inv = Inventory::new(InventoryConfig::default());
    inv.observe_dns(&answer("wiki.corp.example", "10.0.0.50"), &inside);
    inv.observe_dns(&answer("www.example.org", "192.0.2.1"), &inside);
    assert!(inv.host(ip("10.0.0.50")).is_none(), "a name is no host");
    feed(&mut inv, &tcp("10.0.0.9", "10.0.0.50", 443, 10));
    inv.observe_dns(&answer("wiki.corp.example", "10.0.0.50"), &inside);
    inv.observe_dns(&answer("docs.corp.example", "10.0.0.50"), &inside);
    assert_eq!(
        inv.host(ip("10.0.0.50")).unwrap().names,
        ["wiki.corp.example", "docs.corp.example"]
    );
    assert!(inv.host(ip("10.0.0.9")).unwrap().names.is_empty());
}

#[test]
fn geo_of_outside_peers_once_per_flow() {
    let mut inv = Inventory::new(InventoryConfig::default());
    let calls = std::cell::Cell::new(0);
    let geo = |a: IpAddr| {
        calls.set(calls.get() + 1);
        Some(GeoInfo {
            ip: Some(a),
            country: Some("DE".into()),
            asn: Some(64_500),
            ..GeoInfo::default()
        })
    };
    let r = tcp("10.0.0.9", "192.0.2.1", 443, 0);
    let mut out = Vec::new();
    inv.observe_flow(&r, sides(&r), &geo, &mut out);
    let interim = FlowRecordBuilder::tcp("10.0.0.9", 40_000, "192.0.2.1", 443)
        .reported(
            DirCounts {
                packets: 1,
                bytes: 1,
            },
            DirCounts::default(),
        )
        .build();
    inv.observe_flow(&interim, sides(&interim), &geo, &mut out);
    // An inside peer is never looked up.
    let r2 = tcp("10.0.0.9", "10.0.0.10", 445, 0);
    inv.observe_flow(&r2, sides(&r2), &geo, &mut out);
    assert_eq!(calls.get(), 1);
    let h = inv.host(ip("10.0.0.9")).unwrap();
    assert_eq!(h.countries.iter().collect::<Vec<_>>(), ["DE"]);
    assert_eq!(h.asns.iter().collect::<Vec<_>>(), [&64_500]);
}

#[test]
fn the_file_round_trips_and_a_restart_remembers_learning_and_exposure() {
    let mut inv = learned(InventoryConfig::default());
    feed(&mut inv, &tcp("198.51.100.7", "10.0.0.5", 443, 10));
    inv.observe_dns(&answer("www.corp.example", "10.0.0.5"), &inside);
    let bytes = inv.encode(t(300));
    let f = file::parse(&bytes).unwrap();
    assert_eq!(f.learned_secs, 300);
    assert_eq!(f, inv.snapshot(t(300)));
    assert_eq!(f.hosts[0].names, ["www.corp.example"]);
    // The same inventory writes the same bytes.
    assert_eq!(
        bytes,
        Inventory::from_file(InventoryConfig::default(), f.clone()).encode(t(300))
    );

    let mut again = Inventory::from_file(
        InventoryConfig {
            learning_secs: 100,
            ..InventoryConfig::default()
        },
        f,
    );
    // Learning is over from the start; the known exposure and host are
    // not news, the same client is not counted twice; a new host is news.
    assert!(feed(&mut again, &tcp("198.51.100.9", "10.0.0.5", 443, 400)).is_empty());
    assert!(feed(&mut again, &tcp("198.51.100.7", "10.0.0.5", 443, 410)).is_empty());
    assert_eq!(
        again.host(ip("10.0.0.5")).unwrap().services[0].outside_clients,
        2
    );
    assert_eq!(
        feed(&mut again, &tcp("10.0.0.6", "192.0.2.1", 443, 420)).len(),
        1
    );
}

#[test]
fn broken_files_are_one_error_each() {
    let good = Inventory::new(InventoryConfig::default()).encode(t(0));
    assert!(file::parse(&good).is_ok());
    let cases: [(&[u8], &str); 5] = [
        (b"", "not a tapsentry inventory"),
        (&good[..good.len() / 2], "not a tapsentry inventory"),
        (
            br#"{"format":"tapsentry-state","version":1}"#,
            "format is 'tapsentry-state'",
        ),
        (
            br#"{"format":"tapsentry-inventory","version":9}"#,
            "version 9",
        ),
        (
            br#"{"format":"tapsentry-inventory","version":1,"generated":"yesterday","hosts":[]}"#,
            "not a tapsentry inventory",
        ),
    ];
    for (bytes, want) in cases {
        let e = file::parse(bytes).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
    let dir = std::env::temp_dir().join(format!("inv-test-{}", std::process::id()));
    assert!(file::load(&dir.join("absent.json")).unwrap().is_none());
}

#[test]
fn hosts_unseen_past_the_expiry_are_dropped() {
    let mut inv = Inventory::new(InventoryConfig {
        host_expiry_secs: 1000,
        ..InventoryConfig::default()
    });
    feed(&mut inv, &tcp("10.0.0.1", "192.0.2.1", 443, 0));
    feed(&mut inv, &tcp("10.0.0.2", "192.0.2.1", 443, 900));
    inv.expire(t(1500));
    assert!(inv.host(ip("10.0.0.1")).is_none());
    assert!(inv.host(ip("10.0.0.2")).is_some());
    assert_eq!(inv.counters().hosts_expired, 1);
}

#[test]
fn the_table_shows_each_host_as_a_block() {
    let mut inv = Inventory::new(InventoryConfig::default());
    feed(
        &mut inv,
        &FlowRecordBuilder::tcp("198.51.100.7", 50_000, "10.0.0.5", 443)
            .app_proto(AppProto::Tls)
            .build(),
    );
    inv.observe_dns(&answer("www.corp.example", "10.0.0.5"), &inside);
    let text = table::render(&inv.snapshot(t(10)));
    assert!(text.contains("1 hosts"), "{text}");
    assert!(text.contains("10.0.0.5  www.corp.example"), "{text}");
    assert!(text.contains("tcp/443 tls (0 inside, 1 outside)"), "{text}");
}
