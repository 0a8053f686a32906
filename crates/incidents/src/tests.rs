//! The grouping and scoring rule on alert sequences built with the shared
//! [`AlertBuilder`].

use std::net::IpAddr;

use tapsentry_testkit::scenario::ip;
use tapsentry_testkit::AlertBuilder;
use tapsentry_types::Alert;

use super::*;

const HOST: &str = "sensor-test";

fn stage(cfg: IncidentsConfig) -> Incidents {
    let inside = |a: IpAddr| matches!(a, IpAddr::V4(v) if v.octets()[0] == 10);
    Incidents::new(cfg, HOST, Box::new(inside))
}

/// Feeds `alerts` in order; returns every record produced.
fn feed(inc: &mut Incidents, alerts: &[Alert]) -> Vec<IncidentRecord> {
    alerts
        .iter()
        .flat_map(|a| inc.observe(a, a.alert_id(HOST)))
        .collect()
}

/// Outside X logs into A; A scans the inside, pulls data from file server
/// F and uploads it to Y. Times in seconds.
fn chain() -> Vec<Alert> {
    let (x, a, f, y) = (
        ip("203.0.113.77"),
        ip("10.20.1.40"),
        ip("10.20.1.10"),
        ip("198.51.100.9"),
    );
    vec![
        AlertBuilder::new(0.0, "external_login.unusual_source", "TA0001", x)
            .dest(a)
            .severity(1)
            .build(),
        AlertBuilder::new(900.0, "port_scan.horizontal", "TA0007", a).build(),
        AlertBuilder::new(1800.0, "data_collection.internal_transfer", "TA0009", a)
            .dest(f)
            .build(),
        AlertBuilder::new(2700.0, "exfiltration.volume", "TA0010", a)
            .dest(y)
            .severity(1)
            .build(),
    ]
}

#[test]
fn an_intrusion_chain_is_one_incident_naming_every_stage() {
    let mut inc = stage(IncidentsConfig::default());
    let alerts = chain();
    let mut noise = AlertBuilder::new(1000.0, "exfiltration.volume", "TA0010", ip("10.20.10.11"))
        .dest(ip("192.0.2.1"))
        .build();
    noise.alert.severity = 1;
    let mut all = alerts.clone();
    all.insert(2, noise);
    let recs = feed(&mut inc, &all);
    // Reported once it reached three stages (scores 3+2+2 = 7), updated
    // when the exfiltration joined.
    assert_eq!(recs.len(), 2, "{recs:#?}");
    assert_eq!(recs[0].incident.id, recs[1].incident.id);
    assert_eq!(recs[0].incident.stages, ["TA0001", "TA0007", "TA0009"]);
    let last = &recs[1].incident;
    assert_eq!(last.stages, ["TA0001", "TA0007", "TA0009", "TA0010"]);
    assert_eq!(last.hosts, [ip("10.20.1.40")]);
    assert_eq!(last.outside, [ip("203.0.113.77"), ip("198.51.100.9")]);
    assert_eq!(last.targets, [ip("10.20.1.10")]);
    assert_eq!(last.score, 3 + 2 + 2 + 3);
    let ids: Vec<u64> = alerts.iter().map(|a| a.alert_id(HOST)).collect();
    assert_eq!(last.alert_ids, ids);
    assert_eq!(last.alerts, 4);
    assert_eq!(
        (last.first, last.last),
        (alerts[0].timestamp, alerts[3].timestamp)
    );
    assert_eq!(last.id, tapsentry_types::incident_id(HOST, ids[0]));
    assert_eq!(recs[1].timestamp, alerts[3].timestamp);
    assert_eq!(recs[1].event_type, "incident");
    assert_eq!(recs[1].host, HOST);
    let st = inc.stats();
    assert_eq!((st.opened, st.reported, st.records, st.open), (2, 1, 2, 2));
}

#[test]
fn stages_follow_attack_order_whatever_order_alerts_come_in() {
    let mut inc = stage(IncidentsConfig::default());
    let mut alerts = chain();
    alerts.reverse();
    let recs = feed(&mut inc, &alerts);
    let last = &recs.last().unwrap().incident;
    assert_eq!(last.stages, ["TA0001", "TA0007", "TA0009", "TA0010"]);
    // alert_ids are in time order, not arrival order.
    let mut ids: Vec<u64> = alerts.iter().map(|a| a.alert_id(HOST)).collect();
    ids.reverse();
    assert_eq!(last.alert_ids, ids);
}

#[test]
fn a_lone_alert_is_never_an_incident() {
    for a in chain() {
        let mut inc = stage(IncidentsConfig::default());
        assert!(feed(&mut inc, &[a]).is_empty());
        assert_eq!(inc.stats().open, 1);
    }
}

/// The false alerts an office does raise (docs/detections.md's week
/// tables): a backup host's burst over baseline, a new protocol to a
/// build server, a scan from a monitoring host, repeats of one finding.
/// They are one or two stages per host, or low severity: no incident.
#[test]
fn ordinary_false_alerts_make_no_incident() {
    let mut inc = stage(IncidentsConfig::default());
    let (backup, build, monitor, ws) = (
        ip("10.20.1.80"),
        ip("10.20.1.70"),
        ip("10.20.1.90"),
        ip("10.20.10.12"),
    );
    let cloud = ip("192.0.2.10");
    let mut alerts = Vec::new();
    for day in 0..3 {
        let t = f64::from(day) * 3600.0;
        alerts.push(
            AlertBuilder::new(t, "exfiltration.volume", "TA0010", backup)
                .dest(cloud)
                .severity(2)
                .build(),
        );
        alerts.push(
            AlertBuilder::new(t + 60.0, "unusual_protocol.internal", "TA0011", ws)
                .dest(build)
                .severity(3)
                .build(),
        );
        alerts
            .push(AlertBuilder::new(t + 120.0, "port_scan.horizontal", "TA0007", monitor).build());
    }
    // One host with two stages (a burst and a new protocol outbound).
    alerts.push(
        AlertBuilder::new(9000.0, "unusual_protocol.outbound", "TA0011", backup)
            .dest(ip("192.0.2.99"))
            .severity(3)
            .build(),
    );
    // Three stages but all low severity: score 3 < 6.
    let quiet = ip("10.20.10.20");
    for (i, (sig, tactic)) in [
        ("unusual_protocol.outbound", "TA0011"),
        ("port_scan.vertical", "TA0007"),
        ("data_collection.internal_transfer", "TA0009"),
    ]
    .into_iter()
    .enumerate()
    {
        alerts.push(
            AlertBuilder::new(10_000.0 + i as f64, sig, tactic, quiet)
                .severity(3)
                .build(),
        );
    }
    let recs = feed(&mut inc, &alerts);
    assert!(recs.is_empty(), "{recs:#?}");
    assert_eq!(inc.stats().reported, 0);
}

#[test]
fn an_inside_target_does_not_link_two_hosts() {
    // Two workstations each pull from the same file server and do
    // something else: the file server is a target, not a link.
    let mut inc = stage(IncidentsConfig::default());
    let fs = ip("10.20.1.10");
    let mut alerts = Vec::new();
    for (i, h) in ["10.20.10.11", "10.20.10.12"].into_iter().enumerate() {
        let t = i as f64 * 10.0;
        alerts.push(
            AlertBuilder::new(t, "data_collection.internal_transfer", "TA0009", ip(h))
                .dest(fs)
                .severity(1)
                .build(),
        );
    }
    alerts.push(
        AlertBuilder::new(30.0, "port_scan.vertical", "TA0007", ip("10.20.10.11"))
            .severity(1)
            .build(),
    );
    alerts.push(
        AlertBuilder::new(40.0, "tor.exit_outbound", "TA0011", ip("10.20.10.12"))
            .dest(ip("192.0.2.5"))
            .severity(1)
            .build(),
    );
    assert!(feed(&mut inc, &alerts).is_empty());
    assert_eq!(inc.stats().opened, 2);
}

#[test]
fn lateral_movement_links_the_host_reached() {
    let mut inc = stage(IncidentsConfig::default());
    let (x, a, b, y) = (
        ip("203.0.113.77"),
        ip("10.20.1.40"),
        ip("10.20.1.50"),
        ip("198.51.100.9"),
    );
    let alerts = vec![
        AlertBuilder::new(0.0, "external_login.unusual_source", "TA0001", x)
            .dest(a)
            .severity(1)
            .build(),
        AlertBuilder::new(60.0, "lateral_movement.remote_service", "TA0008", a)
            .dest(b)
            .severity(1)
            .build(),
        AlertBuilder::new(120.0, "exfiltration.volume", "TA0010", b)
            .dest(y)
            .severity(1)
            .build(),
    ];
    let recs = feed(&mut inc, &alerts);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0].incident.hosts, [a, b]);
    assert_eq!(recs[0].incident.stages, ["TA0001", "TA0008", "TA0010"]);
}

#[test]
fn alerts_beyond_the_horizon_open_a_new_incident() {
    let cfg = IncidentsConfig {
        horizon_secs: 600,
        ..IncidentsConfig::default()
    };
    let mut inc = stage(cfg);
    let mut alerts = chain();
    // 900 s between alerts: each one is past the previous one's horizon.
    assert!(feed(&mut inc, &alerts).is_empty());
    assert_eq!(inc.stats().opened, 4);
    assert_eq!(inc.stats().open, 1, "the older ones closed");
    // Within the horizon they group.
    for (i, a) in alerts.iter_mut().enumerate() {
        a.timestamp = tapsentry_testkit::scenario::at(100_000.0 + i as f64 * 100.0);
    }
    assert_eq!(feed(&mut inc, &alerts).len(), 2);
}

#[test]
fn an_alert_linking_two_incidents_merges_them() {
    let cfg = IncidentsConfig {
        min_stages: 2,
        min_score: 2,
        ..IncidentsConfig::default()
    };
    let mut inc = stage(cfg);
    let (a, b, x) = (ip("10.20.1.40"), ip("10.20.1.50"), ip("203.0.113.5"));
    let first = vec![
        AlertBuilder::new(0.0, "port_scan.vertical", "TA0007", a).build(),
        AlertBuilder::new(10.0, "exfiltration.volume", "TA0010", a).build(),
        AlertBuilder::new(20.0, "port_scan.vertical", "TA0007", b).build(),
        AlertBuilder::new(30.0, "data_collection.internal_transfer", "TA0009", b).build(),
    ];
    let recs = feed(&mut inc, &first);
    assert_eq!(recs.len(), 2);
    let (ia, ib) = (recs[0].incident.id, recs[1].incident.id);
    assert_ne!(ia, ib);
    // Outside X logs into both: ... into A, then into B links B's incident
    // into A's (the older).
    let link = vec![
        AlertBuilder::new(40.0, "external_login.brute_force", "TA0006", x)
            .dest(a)
            .build(),
        AlertBuilder::new(50.0, "external_login.brute_force", "TA0006", x)
            .dest(b)
            .build(),
    ];
    let recs = feed(&mut inc, &link);
    let merged: Vec<&IncidentRecord> = recs
        .iter()
        .filter(|r| r.incident.merged_into.is_some())
        .collect();
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0].incident.id, ib);
    assert_eq!(merged[0].incident.merged_into, Some(ia));
    let last = &recs.last().unwrap().incident;
    assert_eq!(last.id, ia);
    assert_eq!(last.hosts, [a, b]);
    assert_eq!(last.alerts, 6);
    assert_eq!(last.alert_ids.len(), 6);
    assert_eq!(last.stages, ["TA0006", "TA0007", "TA0009", "TA0010"]);
    assert_eq!(inc.stats().merged, 1);
}

#[test]
fn memory_stays_within_the_configured_bounds() {
    let cfg = IncidentsConfig {
        max_open: 8,
        max_alerts: 4,
        max_hosts: 4,
        min_stages: 2,
        min_score: 1,
        ..IncidentsConfig::default()
    };
    let mut inc = stage(cfg);
    // 100 unrelated hosts: at most 8 open, the rest evicted and counted.
    for i in 0..100u8 {
        let a = AlertBuilder::new(
            f64::from(i),
            "port_scan.vertical",
            "TA0007",
            ip(&format!("10.0.1.{i}")),
        )
        .build();
        inc.observe(&a, a.alert_id(HOST));
        assert!(inc.stats().open <= 8);
    }
    assert_eq!(inc.stats().evicted, 92);
    // One host, many alerts: 4 listed, the rest counted.
    let h = ip("10.0.2.1");
    let mut last = None;
    for i in 0..50u16 {
        let (sig, tactic) = if i % 2 == 0 {
            ("port_scan.vertical", "TA0007")
        } else {
            ("exfiltration.volume", "TA0010")
        };
        let a = AlertBuilder::new(200.0 + f64::from(i), sig, tactic, h)
            .dest(ip(&format!("192.0.2.{}", i + 1)))
            .build();
        last = inc.observe(&a, a.alert_id(HOST)).pop().or(last);
    }
    let last = last.unwrap().incident;
    assert_eq!(last.alert_ids.len(), 4);
    assert_eq!((last.alerts, last.alerts_not_listed), (50, 46));
    // Outside parties are capped at max_hosts.
    assert_eq!(last.outside.len(), 4);
    assert_eq!(inc.stats().alerts_not_listed, 46);
    assert_eq!(inc.stats().hosts_not_linked, 46);
}

#[test]
fn the_same_alerts_give_the_same_records() {
    let run = || {
        let mut inc = stage(IncidentsConfig::default());
        serde_json::to_string(&feed(&mut inc, &chain())).unwrap()
    };
    assert_eq!(run(), run());
}

#[test]
fn config_problems_name_the_key() {
    let bad = IncidentsConfig {
        horizon_secs: 0,
        max_open: 0,
        max_alerts: 0,
        max_hosts: 0,
        min_stages: 1,
        ..IncidentsConfig::default()
    };
    let p: Vec<String> = bad
        .problems("incidents")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(p.len(), 5, "{p:?}");
    assert!(p[0].starts_with("key 'incidents.horizon_secs'"), "{p:?}");
    assert!(IncidentsConfig::default().problems("incidents").is_empty());
}
