//! Generated office captures (tapsentry-testkit's `office`): the benign
//! office with its traps raises nothing, and every injected attack of a
//! category the sensor covers is found with the contract's src/dest.

use serde_json::Value;
use std::net::IpAddr;

use tapsentry_testkit::office::{generate, Attack, Label, Office, OfficeSpec, Speaks};
use tapsentry_testkit::scenario::EPOCH_SECS;
use tapsentry_types::Timestamp;

use crate::common::{replay, stderr};

fn config(dir: &std::path::Path) -> String {
    let cfg = dir.join("office.toml");
    std::fs::write(
        &cfg,
        "[network]\nhome_net = [\"10.20.0.0/16\"]\n[intel]\ntor_exit_list = \"\"\ngeoip_city = \"\"\ngeoip_asn = \"\"\n",
    )
    .unwrap();
    cfg.display().to_string()
}

#[test]
fn benign_office_raises_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    for seed in [1u64, 7] {
        let pcap = dir.path().join(format!("benign-{seed}.pcap"));
        generate(
            &OfficeSpec {
                seed,
                ..OfficeSpec::default()
            },
            &pcap,
        )
        .unwrap();
        let (out, alerts, stats) = replay(dir.path(), &["--config", &cfg], &[&pcap]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stats["capture"]["packets"].as_u64().unwrap() > 100_000);
        assert!(alerts.is_empty(), "seed {seed}: {alerts:#?}");
        std::fs::remove_file(&pcap).unwrap();
    }
}

/// Replays an office with `attacks` and checks that every label is found
/// by exactly one alert with the contract's src/dest, raised between the
/// attack's first packet and an hour after its last, and that nothing else
/// is raised.
fn attacks_are_found(seed: u64, rate: f64, mut attacks: Vec<Attack>) {
    let dir = tempfile::tempdir().unwrap();
    // Tor exits come from the list the sensor is given.
    let mut exits = Vec::new();
    for a in &attacks {
        match a {
            Attack::TorOutbound { exit, .. } | Attack::TorInbound { exit, .. } => {
                exits.push(exit.to_string())
            }
            _ => {}
        }
    }
    attacks.sort_by(|a, b| a.at_secs().total_cmp(&b.at_secs()));
    let pcap = dir.path().join("attacks.pcap");
    let labels = generate(
        &OfficeSpec {
            seed,
            rate,
            attacks,
            ..OfficeSpec::default()
        },
        &pcap,
    )
    .unwrap();
    let list = dir.path().join("tor.txt");
    std::fs::write(&list, exits.join("\n")).unwrap();
    let cfg = config(dir.path());
    // Every worker count gives the same log: an outside scanner's probes of
    // hosts owned by different workers meet in the scanner's shard.
    let run = |workers: &str| {
        let (out, alerts, _) = replay(
            dir.path(),
            &[
                "--config",
                &cfg,
                "--tor-exit-list",
                list.to_str().unwrap(),
                "--workers",
                workers,
            ],
            &[&pcap],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        alerts
    };
    let alerts = run("1");
    assert_eq!(alerts, run("3"), "seed {seed}: 1 and 3 workers differ");
    // Findings that went on are told again in alert_update records: each
    // names one of the alert lines, which alone are compared with labels.
    let (updates, alerts): (Vec<Value>, Vec<Value>) = alerts
        .into_iter()
        .partition(|a| a["event_type"] == "alert_update");
    for u in &updates {
        assert!(
            alerts
                .iter()
                .any(|a| a["alert"]["signature"] == u["alert"]["signature"]
                    && a["src_ip"] == u["src_ip"]
                    && a["dest_ip"] == u["dest_ip"]),
            "seed {seed}: update of no alert: {u:#}"
        );
    }
    let at = |secs: f64| {
        Timestamp::from_micros(EPOCH_SECS * 1_000_000 + (secs * 1e6) as i64).to_rfc3339()
    };
    // Alert lines, not the alert_update records of findings that went on.
    let matches = |l: &Label, a: &Value| {
        a["event_type"] == "alert"
            && a["alert"]["category"] == l.category
            && a["src_ip"] == l.src_ip.to_string()
            && match l.dest_ip {
                Some(d) => a["dest_ip"] == d.to_string(),
                None => a.get("dest_ip").is_none(),
            }
    };
    for l in &labels {
        let found: Vec<&Value> = alerts.iter().filter(|a| matches(l, a)).collect();
        assert_eq!(
            found.len(),
            1,
            "seed {seed}: {l:?} matched {} alerts\nalerts: {alerts:#?}",
            found.len()
        );
        // RFC 3339 with fixed digits sorts as text.
        let ts = found[0]["timestamp"].as_str().unwrap();
        assert!(
            at(l.start_secs).as_str() <= ts && ts <= at(l.end_secs + 3600.0).as_str(),
            "seed {seed}: {l:?} alerted at {ts}"
        );
    }
    for a in &alerts {
        assert!(
            labels.iter().any(|l| matches(l, a)),
            "seed {seed}: unexplained alert: {a:#}"
        );
    }
    assert_eq!(alerts.len(), labels.len(), "seed {seed}: {alerts:#?}");
}

#[test]
fn office_attacks_are_found_with_the_right_hosts() {
    attacks_are_found(3, 1.0, Attack::examples(&Office::standard()));
}

/// The same kinds of attack at other sizes, rates and times, on a busier
/// office: detection must not hinge on the numbers of the examples.
#[test]
fn varied_attacks_are_found_on_a_busier_office() {
    let o = Office::standard();
    let v4 = |a: [u8; 4]| IpAddr::from(a);
    let attacks = vec![
        // A smaller, slower upload: 80 MB over 8 minutes.
        Attack::ExfilHttps {
            at_secs: 2500.0,
            host: o.workstations[2],
            dest: v4([198, 51, 100, 66]),
            bytes: 80_000_000,
            dur_secs: 480.0,
        },
        // Staging from one server only: that server is named.
        Attack::InternalStaging {
            at_secs: 3900.0,
            collector: o.workstations[3],
            sources: vec![o.file_server],
            bytes_each: 120_000_000,
        },
        // A slower trickle over two hours: 15 MB an hour.
        Attack::SlowExfil {
            at_secs: 2000.0,
            host: o.workstations[6],
            dest: v4([203, 0, 113, 201]),
            bytes_per_hour: 15_000_000,
            hours: 2.5,
        },
        // A big upload by the host whose backups are its normal, to a new
        // destination.
        Attack::ExfilHttps {
            at_secs: 6500.0,
            host: o.backup_host,
            dest: v4([192, 0, 2, 250]),
            bytes: 900_000_000,
            dur_secs: 300.0,
        },
    ];
    attacks_are_found(8, 1.5, attacks);
}

/// Remote access and mail moved to other ports, speaking their real first
/// messages: each login and the spambot are found by protocol. The logins
/// last seconds (judged by what they exchanged, not by the 60 s the port
/// rule asks for); the brute force's failed sessions are not logins.
#[test]
fn services_on_other_ports_are_found_by_protocol() {
    let o = Office::standard();
    let v4 = |a: [u8; 4]| IpAddr::from(a);
    let login = |at_secs, attacker, server, port, speaks, secs| Attack::ExternalLoginSuccess {
        at_secs,
        attacker: v4(attacker),
        server,
        port,
        speaks: Some(speaks),
        secs,
    };
    let attacks = vec![
        login(
            2400.0,
            [203, 0, 113, 81],
            o.rdp_server,
            13389,
            Speaks::Rdp,
            12.0,
        ),
        login(3000.0, [203, 0, 113, 82], o.wiki, 6900, Speaks::Vnc, 8.0),
        login(
            3600.0,
            [203, 0, 113, 83],
            o.build_server,
            2323,
            Speaks::Telnet,
            20.0,
        ),
        login(
            4200.0,
            [203, 0, 113, 84],
            o.file_server,
            8085,
            Speaks::Winrm,
            6.0,
        ),
        Attack::ExternalBruteForce {
            at_secs: 4800.0,
            attacker: v4([203, 0, 113, 85]),
            server: o.domain_controller,
            port: 13389,
            attempts: 30,
            interval_secs: 4.0,
            speaks: Some(Speaks::Rdp),
        },
        Attack::Spambot {
            at_secs: 5400.0,
            host: o.workstations[10],
            mail_servers: (200..206).map(|i| v4([203, 0, 113, i])).collect(),
            mails: 30,
            port: Some(2525),
        },
    ];
    attacks_are_found(5, 1.0, attacks);
}
