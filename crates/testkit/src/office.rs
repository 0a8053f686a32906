//! A seeded, labelled small-office capture: hours of ordinary traffic from a
//! 10.20.0.0/16 office, with the habits that make naive sensors cry wolf
//! (nightly backups, a busy mail server, a public web server, a recursive
//! resolver, a monitoring host, router tunnels, admin logins), and attacks
//! injected at chosen times, each returned as a [`Label`] naming the
//! contract category and the `src_ip`/`dest_ip` a correct alert carries.
//!
//! ```no_run
//! use tapsentry_testkit::office::{generate, Attack, Office, OfficeSpec};
//!
//! let office = Office::standard();
//! let spec = OfficeSpec { attacks: Attack::examples(&office), ..OfficeSpec::default() };
//! let labels = generate(&spec, "/tmp/office.pcap".as_ref())?;
//! for l in &labels {
//!     println!("{} {} -> {:?} at {}", l.category, l.src_ip, l.dest_ip, l.start_secs);
//! }
//! # Ok::<(), pcap::Error>(())
//! ```
//!
//! The same spec always writes the same bytes: randomness comes from a
//! hand-written SplitMix64 generator seeded by [`OfficeSpec::seed`], and
//! frames are ordered by a stable sort on capture time.
//!
//! Outside addresses come only from the documentation ranges (192.0.2.0/24,
//! 198.51.100.0/24, 203.0.113.0/24) and the benchmarking range
//! 198.18.0.0/15. Bulk data segments are written snap-length cut: the frame
//! keeps its Ethernet, IPv4 and TCP headers (54 bytes captured) while the pcap
//! wire length and the IPv4 total length state the full 1514-byte frame, so
//! a 300 MB upload costs about 15 MB of file, not 300 MB. Only IPv4 is
//! generated.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use tapsentry_types::{LinkType, Timestamp};

use crate::checksum::internet_checksum;
use crate::rng::Rng;
use crate::scenario::EPOCH_SECS;
use crate::wire::{ipv4_header, push_ipv4_frame, tcp_segment, udp_datagram, TcpFields};
use crate::{encode_name, DnsMessage, PcapWriter};

/// The learning period the detectors use by default: attacks from
/// [`Attack::examples`] start after it.
pub const LEARNING_SECS: f64 = 1800.0;

/// TCP payload of a full-size segment (1514-byte Ethernet frame).
const MSS: u64 = 1460;
/// Bytes captured of a bulk data frame (the snap length): the Ethernet,
/// IPv4 and TCP headers.
const SNAP: usize = 54;
/// A data segment up to this size is captured whole.
const SMALL_PAYLOAD: usize = 200;
/// The receiver of a bulk transfer acknowledges every this many segments.
const ACK_EVERY: u64 = 32;
/// The captured payload of small segments: zeros.
const ZEROS: [u8; SMALL_PAYLOAD] = [0; SMALL_PAYLOAD];

// ---------------------------------------------------------------------------
// Public API

/// What to generate.
#[derive(Debug, Clone)]
pub struct OfficeSpec {
    /// Seed of every random choice: the same spec writes the same bytes.
    pub seed: u64,
    /// Length of the benign traffic in hours (attacks may run past it).
    pub hours: f64,
    /// Multiplier on benign activity (browsing, mail, web clients, file
    /// shares); 1.0 is the standard office. Infrastructure (backups,
    /// monitoring, tunnels) keeps its own schedule.
    pub rate: f64,
    /// Attacks to inject.
    pub attacks: Vec<Attack>,
}

impl Default for OfficeSpec {
    /// Seed 1, three hours, rate 1.0, no attacks.
    fn default() -> Self {
        OfficeSpec {
            seed: 1,
            hours: 3.0,
            rate: 1.0,
            attacks: Vec::new(),
        }
    }
}

/// The kind of a port scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanKind {
    /// Half-open: SYN, and RST after a SYN-ACK.
    Syn,
    /// Full connect: handshake completed, then RST.
    Connect,
    /// FIN only.
    Fin,
    /// No flags.
    Null,
    /// FIN, PSH and URG.
    Xmas,
    /// Empty UDP datagrams.
    Udp,
}

/// The protocol an attack's TCP sessions speak: each side's first message
/// is the real one (from [`crate::hello`]), so the sensor's classifier
/// names the session whatever its port; the rest of the session is
/// zero-filled at the protocol's usual volumes. Attacks without it send
/// zeros only, and the sensor can go by the port alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaks {
    /// SSH: both identification lines, the server's first.
    Ssh,
    /// RDP: X.224 connection request and confirm.
    Rdp,
    /// VNC: the RFB version of the server, then the client's.
    Vnc,
    /// Telnet: the server's option requests, the client's offers.
    Telnet,
    /// WinRM over HTTP: `POST /wsman`, then the server's answer.
    Winrm,
    /// SMTP: the server's 220 greeting, the client's EHLO.
    Smtp,
}

impl Speaks {
    /// (first message, from the client?) in the order they are sent.
    fn first_messages(self) -> [(Vec<u8>, bool); 2] {
        use crate::hello;
        match self {
            Speaks::Ssh => [
                (hello::ssh_banner("OpenSSH_9.6p1 Debian-4"), false),
                (hello::ssh_banner("OpenSSH_9.2p1"), true),
            ],
            Speaks::Rdp => [
                (hello::rdp_connection_request("administrator"), true),
                (hello::rdp_connection_confirm(), false),
            ],
            Speaks::Vnc => [(hello::rfb_version(), false), (hello::rfb_version(), true)],
            Speaks::Telnet => [
                (hello::telnet_negotiation(true), false),
                (hello::telnet_negotiation(false), true),
            ],
            Speaks::Winrm => [
                (hello::winrm_request("srv.corp.example:5985", 4_000), true),
                (hello::http_response(200, "OK", 5_000), false),
            ],
            Speaks::Smtp => [
                (hello::smtp_greeting("mx.example.net"), false),
                (hello::smtp_ehlo("localhost"), true),
            ],
        }
    }

    /// What a logged-in session of the protocol moves in a short time:
    /// (bytes up, bytes down) after the first messages, in 60 exchanges. Well past
    /// the sensor's login bounds (docs/detections.md), as real sessions
    /// are: a shell's output, a desktop's bitmaps, a SOAP conversation.
    fn login_volume(self) -> (u64, u64) {
        match self {
            Speaks::Ssh => (9_000, 40_000),
            Speaks::Rdp => (30_000, 400_000),
            Speaks::Vnc => (6_000, 300_000),
            Speaks::Telnet => (2_400, 8_000),
            Speaks::Winrm => (12_000, 15_000),
            Speaks::Smtp => (8_000, 1_000),
        }
    }
}

/// One injected attack. Times are seconds after capture start.
#[derive(Debug, Clone)]
pub enum Attack {
    /// A workstation uploads `bytes` over HTTPS to an outside host within
    /// `dur_secs`.
    ExfilHttps {
        /// Start.
        at_secs: f64,
        /// Inside sender.
        host: IpAddr,
        /// Outside receiver.
        dest: IpAddr,
        /// Bytes uploaded.
        bytes: u64,
        /// Duration of the upload.
        dur_secs: f64,
    },
    /// A low and slow upload: one HTTPS session every five minutes.
    SlowExfil {
        /// Start.
        at_secs: f64,
        /// Inside sender.
        host: IpAddr,
        /// Outside receiver.
        dest: IpAddr,
        /// Bytes uploaded per hour.
        bytes_per_hour: u64,
        /// How long it goes on.
        hours: f64,
    },
    /// Data tunnelled in DNS queries for unique high-entropy subdomains.
    DnsTunnel {
        /// Start.
        at_secs: f64,
        /// Inside client.
        host: IpAddr,
        /// The resolver queried (the inside resolver forwards to the
        /// tunnel's outside name server).
        resolver: IpAddr,
        /// The tunnel's domain, e.g. `t.exfil-example.net`.
        domain: String,
        /// Number of queries.
        queries: u32,
        /// Query type: 16 TXT, 10 NULL, 5 CNAME (others answered as A).
        qtype: u16,
        /// Seconds between queries.
        interval_secs: f64,
    },
    /// One inside host pulls `bytes_each` over SMB (445) from each source.
    InternalStaging {
        /// Start.
        at_secs: f64,
        /// The inside host collecting.
        collector: IpAddr,
        /// Inside hosts the data comes from.
        sources: Vec<IpAddr>,
        /// Bytes from each source.
        bytes_each: u64,
    },
    /// An inside host opens a long session to a Tor exit.
    TorOutbound {
        /// Start.
        at_secs: f64,
        /// Inside host.
        host: IpAddr,
        /// The exit (list it in the sensor's Tor exit list).
        exit: IpAddr,
    },
    /// A Tor exit connects to an inside service.
    TorInbound {
        /// Start.
        at_secs: f64,
        /// The exit.
        exit: IpAddr,
        /// Inside server.
        server: IpAddr,
        /// Server port.
        port: u16,
    },
    /// Probes of every port on every target. Known inside hosts answer
    /// (SYN-ACK on open TCP ports, RST on closed ones, ICMP port
    /// unreachable on closed UDP ports); unknown and outside targets stay
    /// silent.
    PortScan {
        /// Start.
        at_secs: f64,
        /// The scanner.
        scanner: IpAddr,
        /// Hosts probed.
        targets: Vec<IpAddr>,
        /// Ports probed on each host.
        ports: Vec<u16>,
        /// 6 or 17; [`ScanKind::Udp`] or 17 makes a UDP scan.
        proto: u8,
        /// Seconds between probes.
        interval_secs: f64,
        /// Probe style.
        kind: ScanKind,
    },
    /// ICMP echo requests to every target; known inside hosts reply.
    PingSweep {
        /// Start.
        at_secs: f64,
        /// The scanner.
        scanner: IpAddr,
        /// Hosts probed.
        targets: Vec<IpAddr>,
        /// Seconds between probes.
        interval_secs: f64,
    },
    /// An inside host without mail history sends mail to several outside
    /// servers on 25 and 587 (or on `port`); about one in five sessions is
    /// refused. Accepted sessions speak real SMTP first messages.
    Spambot {
        /// Start.
        at_secs: f64,
        /// Inside sender.
        host: IpAddr,
        /// Outside mail servers, used in turn.
        mail_servers: Vec<IpAddr>,
        /// Sessions.
        mails: u32,
        /// The servers' port; `None` for the usual mix of 25 and 587.
        port: Option<u16>,
    },
    /// Packets of an IP protocol the pair never used (e.g. 47 GRE, 253).
    UnusualProtocol {
        /// Start.
        at_secs: f64,
        /// The side that sends first.
        client: IpAddr,
        /// The other side.
        server: IpAddr,
        /// IP protocol number.
        proto: u8,
    },
    /// Many short failed login sessions from outside; the server closes.
    ExternalBruteForce {
        /// Start.
        at_secs: f64,
        /// Outside source.
        attacker: IpAddr,
        /// Inside server.
        server: IpAddr,
        /// 22, 3389, ...
        port: u16,
        /// Sessions.
        attempts: u32,
        /// Seconds between session starts.
        interval_secs: f64,
        /// The protocol the sessions speak; `None`: zeros only.
        speaks: Option<Speaks>,
    },
    /// One interactive session from outside to a server whose logins
    /// normally come from inside: 20 minutes of small exchanges, or, when it
    /// speaks a protocol, its first messages and a logged-in session's
    /// volume within `secs` (seconds are enough for the sensor to judge it
    /// by what was exchanged).
    ExternalLoginSuccess {
        /// Start.
        at_secs: f64,
        /// Outside source.
        attacker: IpAddr,
        /// Inside server.
        server: IpAddr,
        /// 22, 3389, ...
        port: u16,
        /// The protocol the session speaks; `None`: 20 minutes of zeros.
        speaks: Option<Speaks>,
        /// Length of a session that speaks a protocol.
        secs: f64,
    },
}

/// The ground truth of one injected attack.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// Contract category (`exfiltration`, `data_collection`, `tor`,
    /// `port_scan`, `spambot`, `unusual_protocol`, `external_login`).
    pub category: &'static str,
    /// The alert's expected `src_ip`.
    pub src_ip: IpAddr,
    /// The alert's expected `dest_ip` (None where the contract omits it).
    pub dest_ip: Option<IpAddr>,
    /// First packet of the attack, seconds after capture start.
    pub start_secs: f64,
    /// Last packet of the attack.
    pub end_secs: f64,
    /// What was generated.
    pub note: String,
}

/// The hosts of the standard office and the outside hosts it talks to.
#[derive(Debug, Clone)]
pub struct Office {
    /// Inside recursive resolver (10.20.0.53).
    pub resolver: IpAddr,
    /// Workstations 10.20.10.11 to 10.20.10.25.
    pub workstations: Vec<IpAddr>,
    /// Workstations whose users administer the servers (SSH and RDP).
    pub admins: Vec<IpAddr>,
    /// Host that uploads a backup every hour.
    pub backup_host: IpAddr,
    /// Outside backup receiver.
    pub backup_server: IpAddr,
    /// Inside mail server (SMTP in and out all the time).
    pub mail_server: IpAddr,
    /// Public web server (443 and 80) with ~200 outside clients.
    pub web_server: IpAddr,
    /// SMB file server.
    pub file_server: IpAddr,
    /// Windows server administered over RDP.
    pub rdp_server: IpAddr,
    /// Domain controller.
    pub domain_controller: IpAddr,
    /// Intranet wiki.
    pub wiki: IpAddr,
    /// Build server.
    pub build_server: IpAddr,
    /// Monitoring host: pings and TCP-checks every inside host each minute.
    pub monitor: IpAddr,
    /// The two routers with a GRE and an ESP tunnel between them.
    pub routers: [IpAddr; 2],
    /// Printers.
    pub printers: Vec<IpAddr>,
    /// Outside web servers browsed by the workstations.
    pub web_sites: Vec<IpAddr>,
    /// Outside CDN nodes.
    pub cdn_nodes: Vec<IpAddr>,
    /// Outside software-update server.
    pub update_server: IpAddr,
    /// Outside authoritative name servers the resolver asks.
    pub authoritative: Vec<IpAddr>,
    /// Outside mail servers the mail server delivers to.
    pub mail_exchangers: Vec<IpAddr>,
}

/// An inside host and the TCP ports it serves.
fn services(o: &Office) -> Vec<(IpAddr, &'static [u16])> {
    let mut v: Vec<(IpAddr, &'static [u16])> = vec![
        (o.resolver, &[22, 53]),
        (o.backup_host, &[22]),
        (o.mail_server, &[22, 25, 587, 993]),
        (o.web_server, &[22, 80, 443]),
        (o.file_server, &[22, 139, 445]),
        (o.rdp_server, &[445, 3389]),
        (o.domain_controller, &[53, 88, 389, 445, 3389]),
        (o.wiki, &[22, 80, 443]),
        (o.build_server, &[22, 8080]),
        (o.monitor, &[22, 443]),
        (o.routers[0], &[22]),
        (o.routers[1], &[22]),
    ];
    for p in &o.printers {
        v.push((*p, &[631, 9100]));
    }
    for w in &o.workstations {
        v.push((*w, &[135, 139, 445]));
    }
    v
}

/// UDP ports that are open (probes get no ICMP error).
fn udp_open(o: &Office, host: IpAddr, port: u16) -> bool {
    (host == o.resolver && port == 53)
        || (host == o.domain_controller && matches!(port, 53 | 88 | 123 | 389))
}

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

impl Office {
    /// The standard office used by [`generate`].
    pub fn standard() -> Office {
        Office {
            resolver: v4([10, 20, 0, 53]),
            workstations: (11..=25).map(|i| v4([10, 20, 10, i])).collect(),
            admins: vec![v4([10, 20, 10, 11]), v4([10, 20, 10, 12])],
            backup_host: v4([10, 20, 2, 20]),
            backup_server: v4([198, 51, 100, 200]),
            mail_server: v4([10, 20, 1, 25]),
            web_server: v4([10, 20, 1, 10]),
            file_server: v4([10, 20, 1, 30]),
            rdp_server: v4([10, 20, 1, 40]),
            domain_controller: v4([10, 20, 1, 60]),
            wiki: v4([10, 20, 1, 50]),
            build_server: v4([10, 20, 1, 70]),
            monitor: v4([10, 20, 0, 5]),
            routers: [v4([10, 20, 0, 1]), v4([10, 20, 0, 2])],
            printers: (10..=12).map(|i| v4([10, 20, 3, i])).collect(),
            web_sites: (10..50).map(|i| v4([192, 0, 2, i])).collect(),
            cdn_nodes: (128..160).map(|i| v4([203, 0, 113, i])).collect(),
            update_server: v4([203, 0, 113, 80]),
            authoritative: (1..=30).map(|i| v4([198, 51, 100, i])).collect(),
            mail_exchangers: (100..140).map(|i| v4([198, 51, 100, i])).collect(),
        }
    }

    /// Every inside host of the office.
    pub fn inside_hosts(&self) -> Vec<IpAddr> {
        services(self).into_iter().map(|(h, _)| h).collect()
    }

    /// TCP ports open on `host` (empty for unknown hosts).
    pub fn open_tcp_ports(&self, host: IpAddr) -> Vec<u16> {
        services(self)
            .into_iter()
            .find(|(h, _)| *h == host)
            .map(|(_, p)| p.to_vec())
            .unwrap_or_default()
    }

    /// True for an address in the office's home net 10.20.0.0/16.
    pub fn is_inside(&self, a: IpAddr) -> bool {
        matches!(a, IpAddr::V4(v) if v.octets()[0] == 10 && v.octets()[1] == 20)
    }
}

impl Attack {
    /// Start time of the attack.
    pub fn at_secs(&self) -> f64 {
        match self {
            Attack::ExfilHttps { at_secs, .. }
            | Attack::SlowExfil { at_secs, .. }
            | Attack::DnsTunnel { at_secs, .. }
            | Attack::InternalStaging { at_secs, .. }
            | Attack::TorOutbound { at_secs, .. }
            | Attack::TorInbound { at_secs, .. }
            | Attack::PortScan { at_secs, .. }
            | Attack::PingSweep { at_secs, .. }
            | Attack::Spambot { at_secs, .. }
            | Attack::UnusualProtocol { at_secs, .. }
            | Attack::ExternalBruteForce { at_secs, .. }
            | Attack::ExternalLoginSuccess { at_secs, .. } => *at_secs,
        }
    }

    /// One intrusion told in four steps on the same inside host (a
    /// workstation): an RDP login from outside, then that host scans the
    /// inside, pulls data from two servers (staging), and uploads it to
    /// another outside address. Each step is one of the attacks above, so
    /// each is found on its own; together they are one incident (ATT&CK
    /// TA0001, TA0007, TA0009, TA0010). Returns the attacks and the
    /// (inside host, login source, upload receiver).
    pub fn intrusion_chain(o: &Office) -> (Vec<Attack>, [IpAddr; 3]) {
        let host = o.workstations[3];
        let attacker = v4([203, 0, 113, 90]);
        let receiver = v4([198, 51, 100, 200]);
        let t0 = LEARNING_SECS + 600.0;
        let attacks = vec![
            Attack::ExternalLoginSuccess {
                at_secs: t0,
                attacker,
                server: host,
                port: 3389,
                speaks: Some(Speaks::Rdp),
                secs: 40.0,
            },
            Attack::PortScan {
                at_secs: t0 + 600.0,
                scanner: host,
                targets: (1..=60).map(|i| v4([10, 20, 3, i])).collect(),
                ports: vec![22, 445, 3389],
                proto: 6,
                interval_secs: 0.05,
                kind: ScanKind::Syn,
            },
            Attack::InternalStaging {
                at_secs: t0 + 1200.0,
                collector: host,
                sources: vec![o.file_server, o.wiki],
                bytes_each: 30_000_000,
            },
            Attack::ExfilHttps {
                at_secs: t0 + 2400.0,
                host,
                dest: receiver,
                bytes: 120_000_000,
                dur_secs: 240.0,
            },
        ];
        (attacks, [host, attacker, receiver])
    }

    /// One attack of every kind (two port scans), staggered from 40 minutes
    /// in (after the 30-minute learning period) to about 2 h 20 min, sized
    /// so that a 3-hour office with all of them stays near 60 MB.
    pub fn examples(o: &Office) -> Vec<Attack> {
        let ws = |i: usize| o.workstations[i % o.workstations.len()];
        let t0 = LEARNING_SECS + 600.0;
        let slot = |k: u32| t0 + f64::from(k) * 480.0;
        vec![
            Attack::ExfilHttps {
                at_secs: slot(0),
                host: ws(4),
                dest: v4([203, 0, 113, 66]),
                bytes: 120_000_000,
                dur_secs: 240.0,
            },
            Attack::DnsTunnel {
                at_secs: slot(1),
                host: ws(5),
                resolver: o.resolver,
                domain: "t.tunnel-example.net".into(),
                queries: 600,
                qtype: 16,
                interval_secs: 0.5,
            },
            Attack::InternalStaging {
                at_secs: slot(2),
                collector: ws(6),
                sources: vec![o.file_server, o.wiki, o.build_server],
                bytes_each: 30_000_000,
            },
            Attack::TorOutbound {
                at_secs: slot(3),
                host: ws(7),
                exit: v4([203, 0, 113, 50]),
            },
            Attack::TorInbound {
                at_secs: slot(4),
                exit: v4([203, 0, 113, 51]),
                server: o.web_server,
                port: 443,
            },
            Attack::PortScan {
                at_secs: slot(5),
                scanner: ws(8),
                targets: vec![o.file_server],
                ports: (1..=1024).collect(),
                proto: 6,
                interval_secs: 0.01,
                kind: ScanKind::Syn,
            },
            Attack::PortScan {
                at_secs: slot(6),
                scanner: v4([198, 51, 100, 250]),
                targets: (1..=80).map(|i| v4([10, 20, 1, i])).collect(),
                ports: vec![53, 123, 161],
                proto: 17,
                interval_secs: 0.05,
                kind: ScanKind::Udp,
            },
            Attack::PingSweep {
                at_secs: slot(7),
                scanner: ws(9),
                targets: (1..=254).map(|i| v4([10, 20, 3, i])).collect(),
                interval_secs: 0.05,
            },
            Attack::Spambot {
                at_secs: slot(8),
                host: ws(10),
                mail_servers: (200..212).map(|i| v4([203, 0, 113, i])).collect(),
                mails: 60,
                port: None,
            },
            Attack::UnusualProtocol {
                at_secs: slot(9),
                client: ws(11),
                server: o.build_server,
                proto: 47,
            },
            Attack::ExternalBruteForce {
                at_secs: slot(10),
                attacker: v4([203, 0, 113, 99]),
                server: o.web_server,
                port: 22,
                attempts: 40,
                interval_secs: 3.0,
                speaks: None,
            },
            Attack::ExternalLoginSuccess {
                at_secs: slot(11),
                attacker: v4([203, 0, 113, 77]),
                server: o.rdp_server,
                port: 3389,
                speaks: None,
                secs: 1200.0,
            },
            Attack::SlowExfil {
                at_secs: slot(12),
                host: ws(12),
                dest: v4([192, 0, 2, 222]),
                bytes_per_hour: 30_000_000,
                hours: 1.0,
            },
        ]
    }
}

/// Writes the office described by `spec` to `path` (Ethernet pcap) and
/// returns one label per attack, in the order of `spec.attacks`.
///
/// Errors: any attack address that is not IPv4, and the writer's errors.
pub fn generate(spec: &OfficeSpec, path: &Path) -> Result<Vec<Label>, pcap::Error> {
    generate_with_truth(spec, path).map(|(labels, _)| labels)
}

/// What an inside host of a generated office offers on one port: the
/// clients that got an answer, and when the first of each kind did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServedTruth {
    /// Inside clients answered.
    pub inside_clients: BTreeSet<IpAddr>,
    /// Outside clients answered.
    pub outside_clients: BTreeSet<IpAddr>,
    /// Seconds after capture start of the first answer to an outside
    /// client (`None`: never served outside).
    pub first_outside_secs: Option<f64>,
}

/// The ground truth of a generated office's asset inventory, recorded as
/// the frames were written: who sent anything, and who answered whom on
/// which port.
#[derive(Debug, Clone, Default)]
pub struct InventoryTruth {
    /// Every inside address that sent at least one frame, with the time
    /// (seconds after capture start) of its first.
    pub hosts: BTreeMap<IpAddr, f64>,
    /// Services: (inside server, `"tcp"`/`"udp"`, port). TCP: the server
    /// sent a SYN-ACK; UDP: the server sent a datagram back to the side
    /// that sent first on that address/port pair.
    pub services: BTreeMap<(IpAddr, &'static str, u16), ServedTruth>,
}

/// [`generate`], also returning the ground truth of the inventory.
pub fn generate_with_truth(
    spec: &OfficeSpec,
    path: &Path,
) -> Result<(Vec<Label>, InventoryTruth), pcap::Error> {
    for a in &spec.attacks {
        check_v4(a)?;
    }
    let mut g = Gen::new(spec.seed, Office::standard());
    let end = (spec.hours.max(0.0)) * 3600.0;
    let rate = if spec.rate.is_finite() && spec.rate > 0.0 {
        spec.rate
    } else {
        1.0
    };
    g.benign(end, rate);
    let mut labels = Vec::with_capacity(spec.attacks.len());
    for a in &spec.attacks {
        labels.push(g.attack(a));
    }
    let truth = g.cap.truth(&g.o);
    g.cap.write(path)?;
    Ok((labels, truth))
}

fn check_v4(a: &Attack) -> Result<(), pcap::Error> {
    let mut addrs: Vec<IpAddr> = Vec::new();
    match a {
        Attack::ExfilHttps { host, dest, .. } | Attack::SlowExfil { host, dest, .. } => {
            addrs.extend([*host, *dest])
        }
        Attack::DnsTunnel { host, resolver, .. } => addrs.extend([*host, *resolver]),
        Attack::InternalStaging {
            collector, sources, ..
        } => {
            addrs.push(*collector);
            addrs.extend(sources);
        }
        Attack::TorOutbound { host, exit, .. } => addrs.extend([*host, *exit]),
        Attack::TorInbound { exit, server, .. } => addrs.extend([*exit, *server]),
        Attack::PortScan {
            scanner, targets, ..
        }
        | Attack::PingSweep {
            scanner, targets, ..
        } => {
            addrs.push(*scanner);
            addrs.extend(targets);
        }
        Attack::Spambot {
            host, mail_servers, ..
        } => {
            addrs.push(*host);
            addrs.extend(mail_servers);
        }
        Attack::UnusualProtocol { client, server, .. } => addrs.extend([*client, *server]),
        Attack::ExternalBruteForce {
            attacker, server, ..
        }
        | Attack::ExternalLoginSuccess {
            attacker, server, ..
        } => addrs.extend([*attacker, *server]),
    }
    match addrs.iter().find(|a| a.is_ipv6()) {
        Some(a) => Err(pcap::Error::PcapError(format!(
            "office generator writes IPv4 only, got {a}"
        ))),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// Randomness

// ---------------------------------------------------------------------------
// Frames

struct Rec {
    us: i64,
    off: usize,
    cap: u16,
    wire: u32,
}

/// An address and port.
type Endpoint = (IpAddr, u16);

/// All frames, in one byte arena, with their times and wire lengths.
struct Capture {
    arena: Vec<u8>,
    recs: Vec<Rec>,
    ip_id: u16,
    /// For the inventory's ground truth: the first frame time of each
    /// sender, every SYN-ACK (time, server, port, client) and every UDP
    /// datagram (time, source, destination).
    senders: HashMap<IpAddr, i64>,
    syn_acks: Vec<(i64, IpAddr, u16, IpAddr)>,
    datagrams: Vec<(i64, Endpoint, Endpoint)>,
}

fn oct(a: IpAddr) -> [u8; 4] {
    match a {
        IpAddr::V4(v) => v.octets(),
        // Ruled out by check_v4 before generation.
        IpAddr::V6(_) => [0; 4],
    }
}

fn now_us(t: f64) -> i64 {
    EPOCH_SECS * 1_000_000 + (t * 1e6).round() as i64
}

impl Capture {
    fn new() -> Self {
        Capture {
            arena: Vec::with_capacity(32 << 20),
            recs: Vec::with_capacity(1 << 19),
            ip_id: 1,
            senders: HashMap::new(),
            syn_acks: Vec::new(),
            datagrams: Vec::new(),
        }
    }

    /// The inventory ground truth of the frames written so far.
    fn truth(&self, o: &Office) -> InventoryTruth {
        let secs = |us: i64| (us - EPOCH_SECS * 1_000_000) as f64 / 1e6;
        let mut t = InventoryTruth {
            hosts: self
                .senders
                .iter()
                .filter(|(a, _)| o.is_inside(**a))
                .map(|(a, us)| (*a, secs(*us)))
                .collect(),
            ..InventoryTruth::default()
        };
        let mut serve = |us: i64, server: IpAddr, transport, port, client: IpAddr| {
            let e = t.services.entry((server, transport, port)).or_default();
            if o.is_inside(client) {
                e.inside_clients.insert(client);
            } else {
                e.outside_clients.insert(client);
                let s = secs(us);
                e.first_outside_secs = Some(e.first_outside_secs.map_or(s, |f| f.min(s)));
            }
        };
        for &(us, server, port, client) in &self.syn_acks {
            if o.is_inside(server) {
                serve(us, server, "tcp", port, client);
            }
        }
        // The side that sent first on a pair of endpoints is the client;
        // a datagram back from the other side is an answer. Sorted by time
        // (stably, as the frames are written).
        let mut dgrams = self.datagrams.clone();
        dgrams.sort_by_key(|d| d.0);
        let mut first: HashMap<(Endpoint, Endpoint), Endpoint> = HashMap::new();
        for &(us, src, dst) in &dgrams {
            let pair = if src <= dst { (src, dst) } else { (dst, src) };
            let client = *first.entry(pair).or_insert(src);
            if src != client && o.is_inside(src.0) {
                serve(us, src.0, "udp", src.1, dst.0);
            }
        }
        t
    }

    /// One IPv4 frame: `l4` is the transport header plus the captured part
    /// of its payload, `l4_len` the transport length on the wire (the
    /// missing tail is zeros, already counted in any checksum).
    fn ipv4(&mut self, t: f64, src: IpAddr, dst: IpAddr, proto: u8, l4: &[u8], l4_len: usize) {
        self.ip_id = self.ip_id.wrapping_add(1);
        let us = now_us(t);
        let first = self.senders.entry(src).or_insert(us);
        *first = (*first).min(us);
        let off = self.arena.len();
        let wire = push_ipv4_frame(
            &mut self.arena,
            (oct(src), oct(dst)),
            proto,
            self.ip_id,
            l4,
            l4_len,
        );
        let cap = (self.arena.len() - off) as u16;
        self.recs.push(Rec {
            us: now_us(t),
            off,
            cap,
            wire,
        });
    }

    /// A TCP segment carrying `len` zero payload bytes; bulk payloads are
    /// captured cut at [`SNAP`].
    #[allow(
        clippy::too_many_arguments,
        reason = "a generated exchange is exactly these fields; a struct would only rename them"
    )]
    fn tcp(
        &mut self,
        t: f64,
        (src, sport): (IpAddr, u16),
        (dst, dport): (IpAddr, u16),
        seq: u32,
        ack: u32,
        flags: u8,
        len: usize,
    ) {
        let keep = if len <= SMALL_PAYLOAD { len } else { SNAP - 54 };
        let mut seg = Vec::with_capacity(20 + keep);
        let f = TcpFields {
            src: (oct(src), sport),
            dst: (oct(dst), dport),
            seq,
            ack,
            flags,
        };
        tcp_segment(&mut seg, &f, &ZEROS[..keep], len);
        if flags & 0x12 == 0x12 {
            self.syn_acks.push((now_us(t), src, sport, dst));
        }
        self.ipv4(t, src, dst, 6, &seg, 20 + len);
    }

    /// A TCP segment carrying `data`, captured whole (a first message).
    #[allow(
        clippy::too_many_arguments,
        reason = "a generated exchange is exactly these fields; a struct would only rename them"
    )]
    fn tcp_data(
        &mut self,
        t: f64,
        (src, sport): (IpAddr, u16),
        (dst, dport): (IpAddr, u16),
        seq: u32,
        ack: u32,
        flags: u8,
        data: &[u8],
    ) {
        let mut seg = Vec::with_capacity(20 + data.len());
        let f = TcpFields {
            src: (oct(src), sport),
            dst: (oct(dst), dport),
            seq,
            ack,
            flags,
        };
        tcp_segment(&mut seg, &f, data, data.len());
        self.ipv4(t, src, dst, 6, &seg, 20 + data.len());
    }

    fn udp(&mut self, t: f64, (src, sport): (IpAddr, u16), (dst, dport): (IpAddr, u16), p: &[u8]) {
        let mut seg = Vec::with_capacity(8 + p.len());
        udp_datagram(&mut seg, (oct(src), sport), (oct(dst), dport), p, p.len());
        self.datagrams.push((now_us(t), (src, sport), (dst, dport)));
        let len = seg.len();
        self.ipv4(t, src, dst, 17, &seg, len);
    }

    /// An ICMP message: type, code, the four "rest of header" bytes, body.
    #[allow(
        clippy::too_many_arguments,
        reason = "a generated exchange is exactly these fields; a struct would only rename them"
    )]
    fn icmp(
        &mut self,
        t: f64,
        src: IpAddr,
        dst: IpAddr,
        ty: u8,
        code: u8,
        rest: [u8; 4],
        body: &[u8],
    ) {
        let mut m = Vec::with_capacity(8 + body.len());
        m.extend_from_slice(&[ty, code, 0, 0]);
        m.extend_from_slice(&rest);
        m.extend_from_slice(body);
        let c = internet_checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        let len = m.len();
        self.ipv4(t, src, dst, 1, &m, len);
    }

    fn raw(&mut self, t: f64, src: IpAddr, dst: IpAddr, proto: u8, payload: &[u8]) {
        self.ipv4(t, src, dst, proto, payload, payload.len());
    }

    fn write(mut self, path: &Path) -> Result<(), pcap::Error> {
        // Stable: frames at the same microsecond keep generation order.
        self.recs.sort_by_key(|r| r.us);
        let mut w = PcapWriter::create(path, LinkType::ETHERNET)?;
        for r in &self.recs {
            let frame = &self.arena[r.off..r.off + usize::from(r.cap)];
            w.write_with_wire_len(Timestamp::from_micros(r.us), frame, r.wire);
        }
        w.finish()
    }
}

/// One TCP connection with true sequence numbers.
struct Conn {
    c: (IpAddr, u16),
    s: (IpAddr, u16),
    cseq: u32,
    sseq: u32,
    rtt: f64,
}

impl Conn {
    fn seg(&mut self, cap: &mut Capture, t: f64, from_client: bool, flags: u8, len: usize) {
        let (seq, ack) = if from_client {
            (self.cseq, self.sseq)
        } else {
            (self.sseq, self.cseq)
        };
        let (a, b) = if from_client {
            (self.c, self.s)
        } else {
            (self.s, self.c)
        };
        cap.tcp(t, a, b, seq, ack, flags, len);
        let adv = len as u32 + u32::from(flags & 0x03 != 0);
        if from_client {
            self.cseq = self.cseq.wrapping_add(adv);
        } else {
            self.sseq = self.sseq.wrapping_add(adv);
        }
    }

    /// One segment carrying `data` (PSH+ACK), captured whole.
    fn send(&mut self, cap: &mut Capture, t: f64, from_client: bool, data: &[u8]) {
        let (seq, ack) = if from_client {
            (self.cseq, self.sseq)
        } else {
            (self.sseq, self.cseq)
        };
        let (a, b) = if from_client {
            (self.c, self.s)
        } else {
            (self.s, self.c)
        };
        cap.tcp_data(t, a, b, seq, ack, 0x18, data);
        let adv = data.len() as u32;
        if from_client {
            self.cseq = self.cseq.wrapping_add(adv);
        } else {
            self.sseq = self.sseq.wrapping_add(adv);
        }
    }

    /// `bytes` from one side in full segments spread over `dur`, the other
    /// side acknowledging every [`ACK_EVERY`] segments. Returns the end.
    fn bulk(&mut self, cap: &mut Capture, t: f64, from_client: bool, bytes: u64, dur: f64) -> f64 {
        if bytes == 0 {
            return t;
        }
        let n = bytes.div_ceil(MSS);
        let step = dur / n as f64;
        let mut left = bytes;
        let mut now = t;
        for i in 0..n {
            let len = left.min(MSS);
            left -= len;
            let flags = if left == 0 { 0x18 } else { 0x10 };
            self.seg(cap, now, from_client, flags, len as usize);
            if (i + 1) % ACK_EVERY == 0 || left == 0 {
                self.seg(cap, now + self.rtt / 2.0, !from_client, 0x10, 0);
            }
            now += step;
        }
        now
    }
}

// ---------------------------------------------------------------------------
// DNS

/// A query for `name` and its answer: one `rtype` record with `rdata`
/// when `rcode` is 0 (NOERROR), none otherwise.
fn dns_exchange(
    id: u16,
    name: &str,
    qtype: u16,
    rtype: u16,
    rcode: u8,
    ttl: u32,
    rdata: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let query = DnsMessage::query(id, name, qtype);
    let mut answer = query.clone().response(rcode);
    if rcode == 0 {
        answer = answer.answer(rtype, ttl, rdata);
    }
    (query.encode(), answer.encode())
}

const B32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
const ALNUM: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

fn random_label(rng: &mut Rng, alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| char::from(alphabet[rng.below(alphabet.len() as u64) as usize]))
        .collect()
}

/// The zone a name belongs to (last two labels), for picking its server.
fn zone(name: &str) -> &str {
    let mut dots = name.rmatch_indices('.');
    match (dots.next(), dots.next()) {
        (Some(_), Some((i, _))) => &name[i + 1..],
        _ => name,
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn reverse_name(a: IpAddr) -> String {
    let o = oct(a);
    format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0])
}

// ---------------------------------------------------------------------------
// The generator

const SITE_WORDS: [&str; 20] = [
    "news", "docs", "crm", "portal", "shop", "travel", "bank", "weather", "maps", "wiki", "video",
    "social", "tickets", "payroll", "learn", "forum", "code", "cloud", "office", "mail",
];
const TLDS: [&str; 3] = ["example.com", "example.net", "example.org"];

struct Gen {
    cap: Capture,
    rng: Rng,
    o: Office,
    ports: HashMap<IpAddr, u16>,
    dns_cache: HashMap<String, f64>,
    dns_id: u16,
    site_names: Vec<String>,
    mail_domains: Vec<String>,
}

impl Gen {
    fn new(seed: u64, o: Office) -> Self {
        let mut rng = Rng::new(seed ^ 0x5DEE_CE66_D1CE_4E5B);
        let site_names = (0..o.web_sites.len())
            .map(|i| {
                let w = SITE_WORDS[(i + rng.below(3) as usize) % SITE_WORDS.len()];
                format!("www.{w}{}.{}", i, TLDS[i % TLDS.len()])
            })
            .collect();
        let mail_domains = (0..o.mail_exchangers.len())
            .map(|i| format!("partner{i}.{}", TLDS[(i + 1) % TLDS.len()]))
            .collect();
        Gen {
            cap: Capture::new(),
            rng,
            o,
            ports: HashMap::new(),
            dns_cache: HashMap::new(),
            dns_id: 0,
            site_names,
            mail_domains,
        }
    }

    fn eport(&mut self, host: IpAddr) -> u16 {
        let seed = 49152 + self.rng.below(12000) as u16;
        let p = self.ports.entry(host).or_insert(seed);
        *p = if *p >= 65000 { 49152 } else { *p + 1 };
        *p
    }

    fn rtt(&mut self, a: IpAddr, b: IpAddr) -> f64 {
        if self.o.is_inside(a) && self.o.is_inside(b) {
            self.rng.range(0.0002, 0.001)
        } else {
            self.rng.range(0.01, 0.09)
        }
    }

    fn open(&mut self, t: f64, c: IpAddr, s: IpAddr, sport: u16) -> Conn {
        let cport = self.eport(c);
        let rtt = self.rtt(c, s);
        let mut k = Conn {
            c: (c, cport),
            s: (s, sport),
            cseq: self.rng.next_u64() as u32,
            sseq: self.rng.next_u64() as u32,
            rtt,
        };
        k.seg(&mut self.cap, t, true, 0x02, 0);
        k.seg(&mut self.cap, t + rtt, false, 0x12, 0);
        k.seg(&mut self.cap, t + rtt * 1.05, true, 0x10, 0);
        k
    }

    fn close(&mut self, k: &mut Conn, t: f64, client_first: bool) -> f64 {
        k.seg(&mut self.cap, t, client_first, 0x11, 0);
        k.seg(&mut self.cap, t + k.rtt, !client_first, 0x11, 0);
        k.seg(&mut self.cap, t + k.rtt * 1.05, client_first, 0x10, 0);
        t + k.rtt * 1.05
    }

    /// A whole TCP session: request `up` bytes, response `down` bytes,
    /// spread over about `dur` seconds. Returns its end.
    #[allow(
        clippy::too_many_arguments,
        reason = "a generated exchange is exactly these fields; a struct would only rename them"
    )]
    fn session(
        &mut self,
        t: f64,
        c: IpAddr,
        s: IpAddr,
        sport: u16,
        up: u64,
        down: u64,
        dur: f64,
    ) -> f64 {
        let mut k = self.open(t, c, s, sport);
        let total = (up + down).max(1) as f64;
        let body = (dur - 3.0 * k.rtt).max(0.001);
        let mut now = t + k.rtt * 1.1;
        now = k.bulk(&mut self.cap, now, true, up, body * up as f64 / total);
        now += k.rtt;
        now = k.bulk(&mut self.cap, now, false, down, body * down as f64 / total);
        let fin = now + k.rtt;
        self.close(&mut k, fin, true)
    }

    /// An interactive session (SSH, RDP): small exchanges for `dur` seconds.
    fn interactive(&mut self, t: f64, c: IpAddr, s: IpAddr, sport: u16, dur: f64, gap: f64) -> f64 {
        let mut k = self.open(t, c, s, sport);
        let mut now = t + k.rtt * 2.0;
        // Key exchange / connection setup.
        k.seg(&mut self.cap, now, false, 0x18, 1200);
        now = k.bulk(&mut self.cap, now + k.rtt, true, 2400, 0.05);
        k.seg(&mut self.cap, now + k.rtt, false, 0x18, 900);
        now += 0.5;
        let end = t + dur;
        while now < end {
            let up = self.rng.int(36, 120) as usize;
            k.seg(&mut self.cap, now, true, 0x18, up);
            let down = if self.rng.chance(0.2) {
                self.rng.int(400, 1400)
            } else {
                self.rng.int(36, 200)
            } as usize;
            k.seg(&mut self.cap, now + k.rtt, false, 0x18, down);
            k.seg(&mut self.cap, now + k.rtt * 1.5, true, 0x10, 0);
            now += self.rng.exp(gap).max(0.05);
        }
        self.close(&mut k, end.max(now), true)
    }

    /// The first message of each side of `speaks`, in its order, one
    /// round trip apart. Returns the time after the last.
    fn greet(&mut self, k: &mut Conn, t: f64, speaks: Speaks) -> f64 {
        let mut now = t;
        for (msg, from_client) in speaks.first_messages() {
            k.send(&mut self.cap, now, from_client, &msg);
            now += k.rtt;
        }
        now
    }

    /// A logged-in session of `speaks` lasting about `secs`: the first
    /// messages, then 60 exchanges carrying the protocol's login volume.
    fn login(
        &mut self,
        t: f64,
        c: IpAddr,
        s: IpAddr,
        sport: u16,
        speaks: Speaks,
        secs: f64,
    ) -> f64 {
        let mut k = self.open(t, c, s, sport);
        let start = t + k.rtt * 2.0;
        let mut now = self.greet(&mut k, start, speaks);
        let (up, down) = speaks.login_volume();
        let n = 60u64;
        let gap = (secs / n as f64).max(0.01);
        for _ in 0..n {
            let u = (up / n).max(1) as usize;
            k.seg(&mut self.cap, now, true, 0x18, u);
            now = k.bulk(
                &mut self.cap,
                now + k.rtt,
                false,
                (down / n).max(1),
                gap / 2.0,
            );
            k.seg(&mut self.cap, now + k.rtt / 2.0, true, 0x10, 0);
            now += gap / 2.0;
        }
        self.close(&mut k, now, true)
    }

    fn next_dns_id(&mut self) -> u16 {
        self.dns_id = self.dns_id.wrapping_add(1 + self.rng.below(7) as u16);
        self.dns_id
    }

    /// `client` asks `server` for `name`; answered after `delay`.
    #[allow(
        clippy::too_many_arguments,
        reason = "a generated exchange is exactly these fields; a struct would only rename them"
    )]
    fn dns_pair(
        &mut self,
        t: f64,
        client: IpAddr,
        server: IpAddr,
        name: &str,
        qtype: u16,
        rcode: u8,
        rdata: &[u8],
        delay: f64,
    ) {
        let id = self.next_dns_id();
        let port = self.eport(client);
        let (q, a) = dns_exchange(id, name, qtype, qtype, rcode, 300, rdata);
        self.cap.udp(t, (client, port), (server, 53), &q);
        self.cap.udp(t + delay, (server, 53), (client, port), &a);
    }

    /// A lookup through the inside resolver, forwarded to an outside
    /// authoritative server on a cache miss. Returns when it is answered.
    #[allow(
        clippy::too_many_arguments,
        reason = "a generated exchange is exactly these fields; a struct would only rename them"
    )]
    fn lookup(
        &mut self,
        t: f64,
        client: IpAddr,
        name: &str,
        qtype: u16,
        rcode: u8,
        rdata: &[u8],
        ttl: f64,
    ) -> f64 {
        let resolver = self.o.resolver;
        let fresh = self.dns_cache.get(name).is_some_and(|exp| *exp > t);
        let mut delay = self.rng.range(0.0003, 0.002);
        if !fresh {
            let auths = &self.o.authoritative;
            let auth = auths[(fnv(zone(name)) % auths.len() as u64) as usize];
            let rtt = self.rng.range(0.01, 0.08);
            self.dns_pair(t + 0.0002, resolver, auth, name, qtype, rcode, rdata, rtt);
            delay += rtt;
            self.dns_cache.insert(name.to_string(), t + ttl);
        }
        self.dns_pair(t, client, resolver, name, qtype, rcode, rdata, delay);
        t + delay
    }

    fn benign(&mut self, end: f64, rate: f64) {
        if end <= 0.0 {
            return;
        }
        self.tunnels(end);
        self.monitoring(end);
        self.backups(end);
        for w in self.o.workstations.clone() {
            self.browsing(w, end, rate);
            self.file_share(w, end, rate);
        }
        self.updates(end);
        self.admins(end);
        self.mail_out(end, rate);
        self.mail_in(end, rate);
        self.web_clients(end, rate);
    }

    /// GRE and ESP between the routers, up from the first second.
    fn tunnels(&mut self, end: f64) {
        let [a, b] = self.o.routers;
        let mut t = self.rng.range(0.0, 0.5);
        let mut esp_seq = [1u32, 1u32];
        while t < end {
            let n = self.rng.int(60, 400) as usize;
            let mut gre = vec![0u8; 4 + n];
            gre[2..4].copy_from_slice(&0x0800u16.to_be_bytes());
            self.cap.raw(t, a, b, 47, &gre);
            self.cap.raw(t + 0.0004, b, a, 47, &gre[..4 + n / 2]);
            for (i, (x, y)) in [(a, b), (b, a)].into_iter().enumerate() {
                let m = self.rng.int(80, 400) as usize;
                let mut esp = vec![0u8; 8 + m];
                esp[0..4].copy_from_slice(&(0x1000_0001u32 + i as u32).to_be_bytes());
                esp[4..8].copy_from_slice(&esp_seq[i].to_be_bytes());
                esp_seq[i] += 1;
                for byte in esp[8..].iter_mut() {
                    *byte = self.rng.next_u64() as u8;
                }
                self.cap.raw(t + 0.3 + 0.1 * i as f64, x, y, 50, &esp);
            }
            t += self.rng.range(1.0, 3.0);
        }
    }

    /// Ping and TCP check of every inside host each minute.
    fn monitoring(&mut self, end: f64) {
        let m = self.o.monitor;
        let targets: Vec<(IpAddr, u16)> = services(&self.o)
            .into_iter()
            .filter(|(h, _)| *h != m)
            .map(|(h, p)| (h, p[p.len() - 1]))
            .collect();
        let mut round = 0u16;
        let mut t = 5.0;
        while t < end {
            round = round.wrapping_add(1);
            for (i, (h, port)) in targets.iter().enumerate() {
                let at = t + i as f64 * 0.1;
                let rest = [0x0b, 0xad, (round >> 8) as u8, round as u8];
                let body = [0x61u8; 48];
                self.cap.icmp(at, m, *h, 8, 0, rest, &body);
                self.cap.icmp(at + 0.0004, *h, m, 0, 0, rest, &body);
                let mut k = self.open(at + 0.05, m, *h, *port);
                self.close(&mut k, at + 0.052, true);
            }
            t += 60.0;
        }
    }

    /// Hourly backup upload of 90 to 150 MB to the outside backup server.
    fn backups(&mut self, end: f64) {
        let (b, dst) = (self.o.backup_host, self.o.backup_server);
        let mut t = self.rng.range(300.0, 900.0);
        while t < end {
            let bytes = self.rng.int(90_000_000, 150_000_000);
            let dur = bytes as f64 / self.rng.range(3e6, 6e6);
            self.lookup(
                t - 0.1,
                b,
                "vault.backup-example.net",
                1,
                0,
                &oct(dst),
                300.0,
            );
            let down = self.rng.int(20_000, 80_000);
            self.session(t, b, dst, 443, bytes, down, dur);
            t += 3600.0 + self.rng.range(-30.0, 30.0);
        }
    }

    fn cdn_name(&mut self) -> String {
        match self.rng.below(3) {
            0 => format!(
                "e{}.dsc{}.edgekey-cdn.example.net",
                self.rng.int(1000, 99999),
                self.rng.below(9)
            ),
            1 => {
                let l = random_label(&mut self.rng, ALNUM, 14);
                format!("d{l}.cloudfront-cdn.example.com")
            }
            _ => {
                let a = random_label(&mut self.rng, ALNUM, 8);
                let b = random_label(&mut self.rng, ALNUM, 22);
                format!("{b}.r{}---sn-{a}.video-cdn.example.com", self.rng.below(9))
            }
        }
    }

    /// DNS then HTTPS, Poisson arrivals; downloads far larger than uploads.
    fn browsing(&mut self, w: IpAddr, end: f64, rate: f64) {
        let mut t = self.rng.range(1.0, 60.0);
        while t < end {
            let i = self.rng.popular(self.o.web_sites.len());
            let (ip, name) = (self.o.web_sites[i], self.site_names[i].clone());
            let qt = if self.rng.chance(0.3) { 28 } else { 1 };
            let rdata: Vec<u8> = if qt == 28 {
                let mut v = vec![0x20, 0x01, 0x0d, 0xb8];
                v.resize(16, i as u8);
                v
            } else {
                oct(ip).to_vec()
            };
            let t1 = self.lookup(t, w, &name, qt, 0, &rdata, 300.0);
            let up = self.rng.int(600, 4000);
            let down = self.rng.log_uniform(3e3, 2.5e5) as u64;
            let dur = self.rng.range(0.3, 8.0);
            self.session(t1 + 0.001, w, ip, 443, up, down, dur);
            if self.rng.chance(0.15) {
                let cname = self.cdn_name();
                let node = self.rng.pick(&self.o.cdn_nodes);
                let t2 = self.lookup(t1 + 0.2, w, &cname, 1, 0, &oct(node), 60.0);
                let down = self.rng.log_uniform(2e4, 6e5) as u64;
                let dur = self.rng.range(0.5, 6.0);
                self.session(t2 + 0.001, w, node, 443, 1500, down, dur);
            }
            if self.rng.chance(0.05) {
                // A reverse lookup (e.g. a tool resolving a peer).
                let peer = self.rng.pick(&self.o.web_sites);
                let name = format!("{}.in-addr.arpa", reverse_name(peer));
                self.lookup(t + 0.5, w, &name, 12, 3, &[], 3600.0);
            }
            t += self.rng.exp(75.0 / rate);
        }
    }

    /// Workstations open documents on the file server (SMB).
    fn file_share(&mut self, w: IpAddr, end: f64, rate: f64) {
        let fs = self.o.file_server;
        let mut t = self.rng.range(10.0, 900.0);
        while t < end {
            let down = self.rng.log_uniform(2e4, 2e6) as u64;
            let up = self.rng.int(2000, 20_000);
            let dur = self.rng.range(0.5, 5.0);
            self.session(t, w, fs, 445, up, down, dur);
            t += self.rng.exp(1800.0 / rate);
        }
    }

    /// A few workstations download a software update during the run.
    fn updates(&mut self, end: f64) {
        let (u, ws) = (self.o.update_server, self.o.workstations.clone());
        for w in ws {
            if !self.rng.chance(0.25) || end < 600.0 {
                continue;
            }
            let t = self.rng.range(60.0, end - 300.0);
            let t1 = self.lookup(t, w, "download.updates-example.com", 1, 0, &oct(u), 300.0);
            let bytes = self.rng.int(10_000_000, 40_000_000);
            let dur = bytes as f64 / self.rng.range(2e6, 8e6);
            self.session(t1 + 0.001, w, u, 443, 3000, bytes, dur);
        }
    }

    /// Admins log in to servers from inside (SSH, RDP).
    fn admins(&mut self, end: f64) {
        let o = self.o.clone();
        let ssh = [
            o.web_server,
            o.mail_server,
            o.file_server,
            o.backup_host,
            o.build_server,
            o.wiki,
            o.routers[0],
            o.resolver,
        ];
        let rdp = [o.rdp_server, o.domain_controller];
        for a in o.admins.iter() {
            let mut t = self.rng.range(30.0, 600.0);
            while t < end {
                let dur = self.rng.range(60.0, 900.0);
                let end_s = if self.rng.chance(0.3) {
                    let s = self.rng.pick(&rdp);
                    self.interactive(t, *a, s, 3389, dur, 1.5)
                } else {
                    let s = self.rng.pick(&ssh);
                    self.interactive(t, *a, s, 22, dur, 4.0)
                };
                t = end_s + self.rng.exp(1200.0);
            }
        }
    }

    /// The mail server delivers to many outside mail servers.
    fn mail_out(&mut self, end: f64, rate: f64) {
        let ms = self.o.mail_server;
        let mut t = self.rng.range(1.0, 30.0);
        while t < end {
            let i = self.rng.popular(self.o.mail_exchangers.len());
            let domain = self.mail_domains[i].clone();
            let mx = self.o.mail_exchangers[i];
            let mut rd = vec![0, 10];
            encode_name(&mut rd, &format!("mx.{domain}"));
            let t1 = self.lookup(t, ms, &domain, 15, 0, &rd, 3600.0);
            let t2 = self.lookup(
                t1 + 0.001,
                ms,
                &format!("mx.{domain}"),
                1,
                0,
                &oct(mx),
                3600.0,
            );
            let up = self.rng.log_uniform(2e3, 2e5) as u64;
            let port = if self.rng.chance(0.1) { 587 } else { 25 };
            let down = self.rng.int(300, 900);
            let dur = self.rng.range(0.5, 3.0);
            self.session(t2 + 0.001, ms, mx, port, up, down, dur);
            t += self.rng.exp(40.0 / rate);
        }
    }

    /// Outside senders deliver to the mail server, which checks each with
    /// a reverse lookup and a DNSBL query first.
    fn mail_in(&mut self, end: f64, rate: f64) {
        let ms = self.o.mail_server;
        let senders: Vec<IpAddr> = (0..60)
            .map(|_| {
                v4([
                    198,
                    19,
                    self.rng.int(0, 255) as u8,
                    self.rng.int(1, 254) as u8,
                ])
            })
            .collect();
        let mut t = self.rng.range(1.0, 60.0);
        while t < end {
            let s = self.rng.pick(&senders);
            let rev = reverse_name(s);
            let listed = self.rng.chance(0.05);
            self.lookup(t, ms, &format!("{rev}.in-addr.arpa"), 12, 3, &[], 3600.0);
            let rd = if listed { vec![127, 0, 0, 2] } else { vec![] };
            let rcode = if listed { 0 } else { 3 };
            self.lookup(
                t + 0.05,
                ms,
                &format!("{rev}.zen.spamhaus.org"),
                1,
                rcode,
                &rd,
                900.0,
            );
            if listed {
                let mut k = self.open(t + 0.1, s, ms, 25);
                k.seg(&mut self.cap, t + 0.2, false, 0x18, 90);
                self.close(&mut k, t + 0.3, false);
            } else {
                let up = self.rng.log_uniform(2e3, 3e5) as u64;
                let dur = self.rng.range(0.5, 4.0);
                self.session(t + 0.1, s, ms, 25, up, 600, dur);
            }
            t += self.rng.exp(90.0 / rate);
        }
    }

    /// About 200 outside clients of the public web server; some also try
    /// port 80 first (redirected to 443).
    fn web_clients(&mut self, end: f64, rate: f64) {
        let web = self.o.web_server;
        let n = ((200.0 * rate.min(1.0)) as usize).max(1);
        for _ in 0..n {
            let c = v4([
                198,
                18,
                self.rng.int(0, 255) as u8,
                self.rng.int(1, 254) as u8,
            ]);
            let visits = 1 + self.rng.below((4.0 * rate).ceil() as u64);
            let plain = self.rng.chance(0.3);
            for _ in 0..visits {
                let t = self.rng.range(0.0, end.max(1.0));
                let mut t0 = t;
                if plain {
                    t0 = self.session(t, c, web, 80, 400, 350, 0.2) + 0.05;
                }
                let down = self.rng.log_uniform(1e4, 3e5) as u64;
                let up = self.rng.int(800, 4000);
                let dur = self.rng.range(0.5, 6.0);
                self.session(t0, c, web, 443, up, down, dur);
            }
        }
    }

    // -----------------------------------------------------------------------
    // Attacks

    fn attack(&mut self, a: &Attack) -> Label {
        match a.clone() {
            Attack::ExfilHttps {
                at_secs,
                host,
                dest,
                bytes,
                dur_secs,
            } => {
                let end = self.session(at_secs, host, dest, 443, bytes, 40_000, dur_secs.max(0.01));
                label(
                    "exfiltration",
                    host,
                    Some(dest),
                    at_secs,
                    end,
                    format!("HTTPS upload of {bytes} bytes in {dur_secs} s"),
                )
            }
            Attack::SlowExfil {
                at_secs,
                host,
                dest,
                bytes_per_hour,
                hours,
            } => {
                let sessions = ((hours * 12.0).ceil() as u64).max(1);
                let each = bytes_per_hour / 12;
                let mut end = at_secs;
                for i in 0..sessions {
                    let t = at_secs + i as f64 * 300.0 + self.rng.range(0.0, 20.0);
                    let dur = each as f64 / 1.5e6;
                    end = self.session(t, host, dest, 443, each, 5_000, dur.max(0.5));
                }
                label("exfiltration", host, Some(dest), at_secs, end, format!("{sessions} HTTPS uploads of {each} bytes, one every 5 min ({bytes_per_hour} bytes/h)"))
            }
            Attack::DnsTunnel {
                at_secs,
                host,
                resolver,
                domain,
                queries,
                qtype,
                interval_secs,
            } => self.dns_tunnel(
                at_secs,
                host,
                resolver,
                &domain,
                queries,
                qtype,
                interval_secs,
            ),
            Attack::InternalStaging {
                at_secs,
                collector,
                sources,
                bytes_each,
            } => {
                let mut t = at_secs;
                for s in &sources {
                    let dur = bytes_each as f64 / self.rng.range(40e6, 90e6);
                    t = self.session(t, collector, *s, 445, 20_000, bytes_each, dur) + 2.0;
                }
                let dest = if sources.len() == 1 {
                    sources.first().copied()
                } else {
                    None
                };
                label(
                    "data_collection",
                    collector,
                    dest,
                    at_secs,
                    t - 2.0,
                    format!(
                        "SMB pulls of {bytes_each} bytes from each of {} inside hosts",
                        sources.len()
                    ),
                )
            }
            Attack::TorOutbound {
                at_secs,
                host,
                exit,
            } => {
                let end = self.session(at_secs, host, exit, 9001, 400_000, 2_500_000, 600.0);
                label(
                    "tor",
                    host,
                    Some(exit),
                    at_secs,
                    end,
                    "10-minute session to a Tor exit on 9001".into(),
                )
            }
            Attack::TorInbound {
                at_secs,
                exit,
                server,
                port,
            } => {
                let end = self.session(at_secs, exit, server, port, 5_000, 120_000, 20.0);
                label(
                    "tor",
                    exit,
                    Some(server),
                    at_secs,
                    end,
                    format!("Tor exit connects to {server}:{port}"),
                )
            }
            Attack::PortScan {
                at_secs,
                scanner,
                targets,
                ports,
                proto,
                interval_secs,
                kind,
            } => {
                let kind = if proto == 17 { ScanKind::Udp } else { kind };
                let end = self.port_scan(at_secs, scanner, &targets, &ports, interval_secs, kind);
                let dest = if targets.len() == 1 {
                    targets.first().copied()
                } else {
                    None
                };
                label(
                    "port_scan",
                    scanner,
                    dest,
                    at_secs,
                    end,
                    format!(
                        "{kind:?} scan of {} ports on {} hosts",
                        ports.len(),
                        targets.len()
                    ),
                )
            }
            Attack::PingSweep {
                at_secs,
                scanner,
                targets,
                interval_secs,
            } => {
                let known = self.o.inside_hosts();
                let mut t = at_secs;
                for (i, h) in targets.iter().enumerate() {
                    let rest = [0x4a, 0x11, (i >> 8) as u8, i as u8];
                    self.cap.icmp(t, scanner, *h, 8, 0, rest, &[0u8; 32]);
                    if known.contains(h) {
                        self.cap
                            .icmp(t + 0.0005, *h, scanner, 0, 0, rest, &[0u8; 32]);
                    }
                    t += interval_secs;
                }
                let dest = if targets.len() == 1 {
                    targets.first().copied()
                } else {
                    None
                };
                label(
                    "port_scan",
                    scanner,
                    dest,
                    at_secs,
                    t,
                    format!("ICMP echo sweep of {} hosts", targets.len()),
                )
            }
            Attack::Spambot {
                at_secs,
                host,
                mail_servers,
                mails,
                port,
            } => {
                let mut t = at_secs;
                for i in 0..mails as usize {
                    let Some(s) = mail_servers.get(i % mail_servers.len().max(1)).copied() else {
                        break;
                    };
                    let port = port.unwrap_or(if i % 3 == 2 { 587 } else { 25 });
                    if self.rng.chance(0.2) {
                        let mut k = self.open(t, host, s, port);
                        k.seg(&mut self.cap, t + 0.1, false, 0x18, 80); // 554 banner
                        self.close(&mut k, t + 0.2, false);
                    } else {
                        // Greeting and EHLO, then the mail.
                        let up = self.rng.int(3000, 12_000);
                        let mut k = self.open(t, host, s, port);
                        let start = t + k.rtt * 2.0;
                        let now = self.greet(&mut k, start, Speaks::Smtp);
                        let now = k.bulk(&mut self.cap, now, true, up, 1.0);
                        k.seg(&mut self.cap, now + k.rtt, false, 0x18, 120);
                        let fin = now + k.rtt * 2.0;
                        self.close(&mut k, fin, true);
                    }
                    t += self.rng.range(2.0, 10.0);
                }
                let dest = if mail_servers.len() == 1 {
                    mail_servers.first().copied()
                } else {
                    None
                };
                label(
                    "spambot",
                    host,
                    dest,
                    at_secs,
                    t,
                    format!(
                        "{mails} SMTP sessions to {} outside servers",
                        mail_servers.len()
                    ),
                )
            }
            Attack::UnusualProtocol {
                at_secs,
                client,
                server,
                proto,
            } => {
                let mut t = at_secs;
                for _ in 0..40 {
                    let n = self.rng.int(60, 600) as usize;
                    let p = vec![0u8; n];
                    self.cap.raw(t, client, server, proto, &p);
                    self.cap.raw(t + 0.001, server, client, proto, &p[..n / 2]);
                    t += self.rng.range(0.5, 3.0);
                }
                label(
                    "unusual_protocol",
                    client,
                    Some(server),
                    at_secs,
                    t,
                    format!("IP protocol {proto}, 40 exchanges"),
                )
            }
            Attack::ExternalBruteForce {
                at_secs,
                attacker,
                server,
                port,
                attempts,
                interval_secs,
                speaks,
            } => {
                let mut t = at_secs;
                let mut end = t;
                for _ in 0..attempts {
                    let mut k = self.open(t, attacker, server, port);
                    let mut now = t + k.rtt * 2.0;
                    match speaks {
                        Some(p) => now = self.greet(&mut k, now, p),
                        None => k.seg(&mut self.cap, now, false, 0x18, 40),
                    }
                    k.seg(&mut self.cap, now + k.rtt, true, 0x18, 1100);
                    now += k.rtt * 2.0;
                    k.seg(&mut self.cap, now, false, 0x18, 1080);
                    k.seg(&mut self.cap, now + k.rtt, true, 0x18, 120);
                    now += self.rng.range(1.0, 2.5);
                    k.seg(&mut self.cap, now, false, 0x18, 60); // failure
                    end = self.close(&mut k, now + 0.01, false);
                    t += interval_secs;
                }
                label(
                    "external_login",
                    attacker,
                    Some(server),
                    at_secs,
                    end,
                    format!("{attempts} failed login sessions on port {port} ({speaks:?})"),
                )
            }
            Attack::ExternalLoginSuccess {
                at_secs,
                attacker,
                server,
                port,
                speaks,
                secs,
            } => {
                let (end, what) = match speaks {
                    Some(p) => (
                        self.login(at_secs, attacker, server, port, p, secs),
                        format!("{secs} s {p:?} login"),
                    ),
                    None => (
                        self.interactive(at_secs, attacker, server, port, 1200.0, 2.0),
                        "20-minute interactive session".to_string(),
                    ),
                };
                label(
                    "external_login",
                    attacker,
                    Some(server),
                    at_secs,
                    end,
                    format!("{what} on port {port}"),
                )
            }
        }
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "a generated exchange is exactly these fields; a struct would only rename them"
    )]
    fn dns_tunnel(
        &mut self,
        at: f64,
        host: IpAddr,
        resolver: IpAddr,
        domain: &str,
        queries: u32,
        qtype: u16,
        interval: f64,
    ) -> Label {
        let forward = self.o.is_inside(resolver);
        let ns = v4([203, 0, 113, 53]);
        let mut t = at;
        let room = 240usize.saturating_sub(domain.len() + 6);
        for i in 0..queries {
            let mut name = String::new();
            let labels = self.rng.int(2, 4) as usize;
            for _ in 0..labels {
                let len = (self.rng.int(40, 63) as usize).min(room.saturating_sub(name.len() + 1));
                if len < 8 {
                    break;
                }
                name.push_str(&random_label(&mut self.rng, B32, len));
                name.push('.');
            }
            name.push_str(&format!("{i:04x}.{domain}"));
            let rdata: Vec<u8> = match qtype {
                16 => {
                    let n = self.rng.int(100, 220) as usize;
                    let mut v = vec![n as u8];
                    v.extend(random_label(&mut self.rng, ALNUM, n).bytes());
                    v
                }
                10 => (0..self.rng.int(100, 220))
                    .map(|_| self.rng.next_u64() as u8)
                    .collect(),
                5 => {
                    let mut v = Vec::new();
                    let l = random_label(&mut self.rng, B32, 50);
                    encode_name(&mut v, &format!("{l}.{domain}"));
                    v
                }
                _ => vec![10, 0, (i >> 8) as u8, i as u8],
            };
            let rtype = if matches!(qtype, 16 | 10 | 5) {
                qtype
            } else {
                1
            };
            let mut delay = self.rng.range(0.0005, 0.002);
            if forward {
                let rtt = self.rng.range(0.03, 0.09);
                let id = self.next_dns_id();
                let port = self.eport(resolver);
                let (q, a) = dns_exchange(id, &name, qtype, rtype, 0, 0, &rdata);
                self.cap.udp(t + 0.0002, (resolver, port), (ns, 53), &q);
                self.cap
                    .udp(t + 0.0002 + rtt, (ns, 53), (resolver, port), &a);
                delay += rtt;
            }
            let id = self.next_dns_id();
            let port = self.eport(host);
            let (q, a) = dns_exchange(id, &name, qtype, rtype, 0, 0, &rdata);
            self.cap.udp(t, (host, port), (resolver, 53), &q);
            self.cap.udp(t + delay, (resolver, 53), (host, port), &a);
            t += interval;
        }
        let note = format!(
            "{queries} type-{qtype} queries for unique base32 subdomains of {domain}{}",
            if forward {
                "; the inside resolver forwards each to 203.0.113.53"
            } else {
                ""
            }
        );
        label("exfiltration", host, Some(resolver), at, t, note)
    }

    fn port_scan(
        &mut self,
        at: f64,
        scanner: IpAddr,
        targets: &[IpAddr],
        ports: &[u16],
        interval: f64,
        kind: ScanKind,
    ) -> f64 {
        let known = self.o.inside_hosts();
        let sport = self.eport(scanner);
        let mut t = at;
        for port in ports {
            for h in targets {
                let answers = known.contains(h);
                let open = self.o.open_tcp_ports(*h).contains(port);
                let seq = self.rng.next_u64() as u32;
                let (c, s) = ((scanner, sport), (*h, *port));
                let rtt = 0.0004;
                match kind {
                    ScanKind::Udp => {
                        self.cap.udp(t, c, s, &[]);
                        if answers && !udp_open(&self.o, *h, *port) {
                            // ICMP port unreachable quoting the probe.
                            let mut quote =
                                ipv4_header(oct(scanner), oct(*h), 17, 28, 0, 64).to_vec();
                            quote.extend_from_slice(&sport.to_be_bytes());
                            quote.extend_from_slice(&port.to_be_bytes());
                            quote.extend_from_slice(&[0, 8, 0, 0]);
                            self.cap.icmp(t + rtt, *h, scanner, 3, 3, [0; 4], &quote);
                        }
                    }
                    ScanKind::Syn | ScanKind::Connect => {
                        self.cap.tcp(t, c, s, seq, 0, 0x02, 0);
                        if answers && open {
                            let sseq = self.rng.next_u64() as u32;
                            self.cap
                                .tcp(t + rtt, s, c, sseq, seq.wrapping_add(1), 0x12, 0);
                            if kind == ScanKind::Connect {
                                self.cap.tcp(
                                    t + rtt * 1.1,
                                    c,
                                    s,
                                    seq.wrapping_add(1),
                                    sseq.wrapping_add(1),
                                    0x10,
                                    0,
                                );
                                self.cap.tcp(
                                    t + rtt * 1.2,
                                    c,
                                    s,
                                    seq.wrapping_add(1),
                                    sseq.wrapping_add(1),
                                    0x14,
                                    0,
                                );
                            } else {
                                self.cap
                                    .tcp(t + rtt * 1.1, c, s, seq.wrapping_add(1), 0, 0x04, 0);
                            }
                        } else if answers {
                            self.cap.tcp(t + rtt, s, c, 0, seq.wrapping_add(1), 0x14, 0);
                        }
                    }
                    ScanKind::Fin | ScanKind::Null | ScanKind::Xmas => {
                        let flags = match kind {
                            ScanKind::Fin => 0x01,
                            ScanKind::Null => 0x00,
                            _ => 0x29,
                        };
                        self.cap.tcp(t, c, s, seq, 0, flags, 0);
                        if answers && !open {
                            let ack = seq.wrapping_add(u32::from(flags & 0x01));
                            self.cap.tcp(t + rtt, s, c, 0, ack, 0x14, 0);
                        }
                    }
                }
                t += interval;
            }
        }
        t
    }
}

fn label(
    category: &'static str,
    src_ip: IpAddr,
    dest_ip: Option<IpAddr>,
    start_secs: f64,
    end_secs: f64,
    note: String,
) -> Label {
    Label {
        category,
        src_ip,
        dest_ip,
        start_secs,
        end_secs,
        note,
    }
}
