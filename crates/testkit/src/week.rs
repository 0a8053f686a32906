//! A benign week of a 50-200-host office, generated as a stream: working
//! hours and nights, a weekend, heavy-tailed file-server use, updates,
//! cloud-sync uploads, video calls, developers pushing to remote git hosts,
//! nightly and hourly backups with an off-site push, a mail server, a
//! public web server, VPN users, printers, admins and DNS through an inside
//! resolver. Nothing in it is an attack: every alert a sensor raises on it
//! is a false alert. Each host has a [`Role`] (and [`Traits`]) so false
//! alerts can be counted per role.
//!
//! ```no_run
//! use tapsentry_testkit::week::{Week, WeekSpec};
//!
//! let spec = WeekSpec { hosts: 60, days: 3.0, ..WeekSpec::default() };
//! let mut week = Week::new(&spec);
//! for h in week.hosts() {
//!     println!("{} {}", h.ip, h.role.name());
//! }
//! week.write_pcap("/tmp/week.pcap".as_ref())?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! **Streaming.** [`Week`] yields frames in capture-time order from a heap
//! of *habits* (one per host and habit: when it fires it may start
//! sessions) and *active sessions* (state machines that build their next
//! frame on demand), keyed by the time of their next event. Memory is the
//! habits plus at most [`MAX_SESSIONS`] sessions, whatever the length of
//! the capture; a habit that fires with the table full skips (counted in
//! [`Week::skipped_sessions`]).
//!
//! **Frames.** IPv4 over Ethernet, built by hand (`wire.rs`, shared with
//! the three-hour office). Bulk segments are captured cut after their TCP
//! or UDP header while the IP total length and the pcap wire length state
//! the full packet (1460-byte TCP payloads; 8960 on the server LAN's backup
//! service, which uses jumbo frames), so volumes are true per packet
//! and a gigabyte costs about 50 MB of file. Each direction's first
//! message is captured whole with real bytes ([`crate::hello`]): TLS
//! ClientHello with SNI and ServerHello, SMB2 NEGOTIATE, SSH banners, HTTP
//! request and response heads, SMTP greeting and EHLO, RDP connection
//! requests, WireGuard handshakes, IPP, and DNS messages.
//!
//! **Density knobs.** [`WeekSpec::density`] multiplies the rate of every
//! human habit (sessions per hour); volumes per session are not scaled.
//! Packets per session follow from the bytes (one segment per 1460 bytes,
//! an ACK per 32 segments); UDP media send 20-50 packets per second each
//! way. Measured numbers are in `docs/detections.md`.
//!
//! Time starts at midnight of [`WeekSpec::start_weekday`] (plus
//! [`WeekSpec::start_hour`]) in the first week of 2024, so capture
//! timestamps carry the true weekday; the schedule knows no time zone.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use tapsentry_types::{LinkType, Timestamp};

use crate::hello;
use crate::raw_pcap::PcapFormat;
use crate::rng::Rng;
use crate::wire::{push_ipv4_frame, tcp_segment, udp_datagram, TcpFields};
use crate::DnsMessage;

/// Most sessions open at once; the bound on the generator's memory.
pub const MAX_SESSIONS: usize = 6000;

/// Monday 2024-01-01T00:00:00Z, the week's calendar origin.
const MONDAY_SECS: i64 = 1_704_067_200;
const US: u64 = 1_000_000;
const HOUR: u64 = 3600 * US;
const DAY: u64 = 24 * HOUR;
const MSS: u64 = 1460;
/// TCP payload of a jumbo frame (9000-byte IP packets): the server LAN's
/// backup service uses them, as backup networks often do.
const JUMBO_MSS: u64 = 8960;
/// The inside backup service's port.
const BACKUP_PORT: u16 = 8443;
const ACK_EVERY: u32 = 32;

/// Days of the week, Monday first.
pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// What to generate.
#[derive(Debug, Clone)]
pub struct WeekSpec {
    /// Seed of every random choice: the same spec gives the same bytes.
    pub seed: u64,
    /// Inside hosts (servers, printers, workstations and VPN pool
    /// addresses); the issue's offices have 50 to 200. At least 20.
    pub hosts: usize,
    /// Length in days (fractions allowed: `2.0 / 24.0` is two hours).
    pub days: f64,
    /// Weekday of the first day, 0 = Monday ... 6 = Sunday.
    pub start_weekday: u8,
    /// Hour of the first day the capture starts at (0 = midnight).
    pub start_hour: f64,
    /// Multiplier on the rate of human habits (1.0 standard).
    pub density: f64,
    /// Multiplier on the bytes of every bulk transfer and the packet rate
    /// of media and tunnels (1.0 standard; tests that only need the
    /// sessions' shape use a small value to stay fast).
    pub volume: f64,
}

impl Default for WeekSpec {
    /// Seed 1, 60 hosts, 7 days from Thursday midnight, density 1.
    fn default() -> Self {
        WeekSpec {
            seed: 1,
            hosts: 60,
            days: 7.0,
            start_weekday: 3,
            start_hour: 0.0,
            density: 1.0,
            volume: 1.0,
        }
    }
}

/// Parses a weekday name (`mon`, `Thursday`, ...; the first three letters
/// decide) into 0 = Monday ... 6 = Sunday.
pub fn parse_weekday(s: &str) -> Option<u8> {
    let s = s.to_ascii_lowercase();
    let p = s.get(..3)?;
    WEEKDAYS.iter().position(|d| *d == p).map(|i| i as u8)
}

/// What a host is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// An office workstation (browsing, files, mail, calls, updates).
    Workstation,
    /// A developer's workstation (also pushes to remote git hosts).
    Developer,
    /// An administrator's workstation (also SSH/RDP to the servers).
    Admin,
    /// The inside resolver every host asks; forwards misses outside.
    Resolver,
    /// Domain controller (Kerberos, LDAP at logon and through the day).
    DomainController,
    /// SMB file server.
    FileServer,
    /// Inside backup server: takes nightly and hourly backups, pushes
    /// off-site every night.
    BackupServer,
    /// Database / application server backed up every hour.
    AppServer,
    /// Mail server: inbound and outbound SMTP, the workstations' IMAP.
    MailServer,
    /// Public web server: outside visitors, installers of 50+ MB.
    WebServer,
    /// VPN concentrator: remote workers' tunnels end here.
    VpnConcentrator,
    /// A remote worker's inside (pool) address behind the concentrator.
    VpnClient,
    /// A network printer.
    Printer,
}

impl Role {
    /// The role's name in labels.
    pub fn name(self) -> &'static str {
        match self {
            Role::Workstation => "workstation",
            Role::Developer => "developer",
            Role::Admin => "admin",
            Role::Resolver => "resolver",
            Role::DomainController => "domain_controller",
            Role::FileServer => "file_server",
            Role::BackupServer => "backup_server",
            Role::AppServer => "app_server",
            Role::MailServer => "mail_server",
            Role::WebServer => "web_server",
            Role::VpnConcentrator => "vpn_concentrator",
            Role::VpnClient => "vpn_client",
            Role::Printer => "printer",
        }
    }

    fn is_user(self) -> bool {
        matches!(
            self,
            Role::Workstation | Role::Developer | Role::Admin | Role::VpnClient
        )
    }
}

/// Habits that set a user apart from the others of its role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traits {
    /// Pulls large files (50 MB - 1 GB) from the file server often.
    pub heavy_files: bool,
    /// Uploads 50-400 MB to cloud storage on some days.
    pub cloud_uploader: bool,
    /// Works some hours at the weekend.
    pub weekend_worker: bool,
}

/// One inside host, as the labels describe it.
#[derive(Debug, Clone)]
pub struct HostLabel {
    /// Its address.
    pub ip: IpAddr,
    /// Its role.
    pub role: Role,
    /// Its user's habits (all false for servers).
    pub traits: Traits,
    /// For a VPN client: the remote worker's outside address.
    pub remote: Option<IpAddr>,
}

impl HostLabel {
    /// One JSON object (no trailing newline).
    pub fn json(&self) -> String {
        let mut t = Vec::new();
        if self.traits.heavy_files {
            t.push("\"heavy_files\"");
        }
        if self.traits.cloud_uploader {
            t.push("\"cloud_uploader\"");
        }
        if self.traits.weekend_worker {
            t.push("\"weekend_worker\"");
        }
        let remote = match self.remote {
            Some(r) => format!(",\"remote\":\"{r}\""),
            None => String::new(),
        };
        format!(
            "{{\"ip\":\"{}\",\"role\":\"{}\",\"traits\":[{}]{remote}}}",
            self.ip,
            self.role.name(),
            t.join(",")
        )
    }
}

// ---------------------------------------------------------------------------
// Addresses

type A4 = [u8; 4];

/// Inside: 10.30.0.0/16.
const RESOLVER: A4 = [10, 30, 0, 53];
const DC: A4 = [10, 30, 1, 60];
const FILE_SERVER: A4 = [10, 30, 1, 30];
const BACKUP_SERVER: A4 = [10, 30, 1, 20];
const APP_SERVER: A4 = [10, 30, 1, 40];
const MAIL_SERVER: A4 = [10, 30, 1, 25];
const WEB_SERVER: A4 = [10, 30, 1, 10];
const VPN: A4 = [10, 30, 1, 5];
/// Outside (documentation and benchmarking ranges only).
const OFFSITE: A4 = [198, 51, 100, 200];

fn outside(pool: &[u8; 3], lo: u8, n: u8, i: usize) -> A4 {
    [pool[0], pool[1], pool[2], lo + (i % usize::from(n)) as u8]
}
fn web_site(i: usize) -> A4 {
    outside(&[192, 0, 2], 10, 80, i)
}
fn cdn(i: usize) -> A4 {
    outside(&[203, 0, 113], 128, 32, i)
}
fn mirror(i: usize) -> A4 {
    outside(&[203, 0, 113], 80, 10, i)
}
fn cloud(i: usize) -> A4 {
    outside(&[203, 0, 113], 100, 10, i)
}
fn sfu(i: usize) -> A4 {
    outside(&[203, 0, 113], 160, 10, i)
}
fn git_host(i: usize) -> A4 {
    outside(&[192, 0, 2], 200, 4, i)
}
fn authoritative(i: usize) -> A4 {
    outside(&[198, 51, 100], 1, 30, i)
}
fn mail_exchanger(i: usize) -> A4 {
    outside(&[198, 51, 100], 100, 40, i)
}

const SITE_WORDS: [&str; 16] = [
    "news", "docs", "crm", "portal", "shop", "travel", "bank", "weather", "maps", "wiki", "video",
    "social", "tickets", "payroll", "learn", "forum",
];

fn site_name(i: usize) -> String {
    let tld = ["example.com", "example.net", "example.org"][i % 3];
    format!("www.{}{i}.{tld}", SITE_WORDS[i % SITE_WORDS.len()])
}

// ---------------------------------------------------------------------------
// Hosts and habits

#[derive(Debug, Clone)]
struct Host {
    ip: A4,
    role: Role,
    traits: Traits,
    /// Hours the user usually arrives and leaves.
    arrive: f64,
    leave: f64,
    /// Next ephemeral port.
    port: u16,
    /// For a VPN client, the remote worker's outside address and tunnel.
    remote: Option<(A4, Tunnel)>,
}

/// How a remote worker's tunnel is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tunnel {
    WireGuard,
    OpenVpn,
    Ipsec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HabitKind {
    Browse,
    FileBurst,
    MailClient,
    Logon,
    Print,
    Update,
    CloudSync,
    VideoCall,
    GitPush,
    AdminLogin,
    NightlyBackup,
    HourlyBackup,
    OffsitePush,
    MailIn,
    MailOut,
    WebVisitors,
    Installers,
    ServerUpdate,
    Tunnel,
}

/// Habits are first woken within this span of the capture start.
const FIRST_WAKE: u64 = 600 * US;

/// Habits that act once a day at their hour.
const DAILY: [HabitKind; 6] = [
    HabitKind::Update,
    HabitKind::ServerUpdate,
    HabitKind::NightlyBackup,
    HabitKind::OffsitePush,
    HabitKind::Tunnel,
    HabitKind::Installers,
];

struct Habit {
    host: usize,
    kind: HabitKind,
}

// ---------------------------------------------------------------------------
// Sessions

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Syn,
    SynAck,
    Ack,
    FirstC,
    FirstS,
    Up,
    UpAck,
    Down,
    DownAck,
    InterC,
    InterS,
    FinC,
    FinS,
    LastAck,
}

/// A TCP connection: handshake, each side's first message, `up` bytes
/// from the client, `down` from the server, then (interactive) small
/// exchanges until `inter_end`, and an orderly close.
struct Tcp {
    c: (A4, u16),
    s: (A4, u16),
    cseq: u32,
    sseq: u32,
    rtt: u64,
    mss: u64,
    first_c: Vec<u8>,
    first_s: Vec<u8>,
    up: u64,
    down: u64,
    up_step: u64,
    down_step: u64,
    /// Interactive span after the bulk, and its end once started.
    inter_span: u64,
    inter_end: u64,
    inter_gap: u64,
    phase: Phase,
    n: u32,
    next_data: u64,
    rng: Rng,
}

/// How datagrams of a [`Dgram`] flow are carried and what header their
/// captured part shows.
#[derive(Debug, Clone, Copy)]
enum Carrier {
    /// RTP over UDP (video call media).
    Rtp { ssrc: u32 },
    /// WireGuard transport data over UDP.
    WireGuard { index: u32 },
    /// OpenVPN data over UDP (P_DATA_V2 opcode byte and peer id).
    OpenVpn { peer: u32 },
    /// IPsec ESP (IP protocol 50): SPI and sequence number.
    Esp { spi: u32 },
    /// UDP with nothing but its first messages captured (IKE).
    Plain,
}

/// A two-way datagram flow: `a` sends every `gap_ab`, `b` every `gap_ba`,
/// until `end` or until the byte budgets are spent.
struct Dgram {
    a: (A4, u16),
    b: (A4, u16),
    carrier: Carrier,
    /// Handshake messages sent whole before the data, in turn from
    /// whichever side is due (so `next_ab` < `next_ba` makes `a` start).
    first: Vec<Vec<u8>>,
    end: u64,
    next_ab: u64,
    next_ba: u64,
    gap_ab: u64,
    gap_ba: u64,
    size_ab: (u64, u64),
    size_ba: (u64, u64),
    left_ab: u64,
    left_ba: u64,
    count: u64,
    rng: Rng,
}

/// A few prepared small datagrams (a DNS lookup and its forwarding).
struct Script {
    items: Vec<(u64, A4, u16, A4, u16, Vec<u8>)>,
    at: usize,
}

enum Session {
    Tcp(Box<Tcp>),
    Dgram(Box<Dgram>),
    Script(Script),
}

enum Slot {
    Habit(Habit),
    Session(Session),
    Free,
}

/// Parameters of a new TCP session.
struct TcpPlan {
    c: A4,
    s: (A4, u16),
    first_c: Vec<u8>,
    first_s: Vec<u8>,
    up: u64,
    down: u64,
    /// Seconds the bulk takes.
    secs: f64,
    /// Interactive exchanges for this long after the bulk (0: none).
    inter_secs: f64,
    inter_gap: f64,
}

/// The capture, frame by frame. See the module documentation.
pub struct Week {
    rng: Rng,
    hosts: Vec<Host>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    heap: BinaryHeap<Reverse<(u64, u64, u32)>>,
    seq: u64,
    end: u64,
    origin_us: i64,
    /// Seconds from Monday 00:00 to the capture start.
    week_offset: u64,
    density: f64,
    volume: f64,
    ip_id: u16,
    dns_id: u16,
    sessions: usize,
    peak_sessions: usize,
    peak_queue: usize,
    skipped: u64,
    scratch: Vec<u8>,
    frames: u64,
    wire_bytes: u64,
}

/// One generated frame, owned (see [`Week::next_into`] for the borrowing
/// form without an allocation per frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeekFrame {
    /// Capture time.
    pub ts: Timestamp,
    /// Length on the wire (the IP total length plus 14).
    pub wire_len: u32,
    /// The captured bytes.
    pub data: Vec<u8>,
}

fn ip(a: A4) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn secs(s: f64) -> u64 {
    (s.max(0.0) * 1e6) as u64
}

impl Week {
    /// The office of `spec`, positioned at its first frame.
    pub fn new(spec: &WeekSpec) -> Week {
        let mut rng = Rng::new(spec.seed ^ 0x3EE7_0FF1_CE00_A11D);
        let hosts = build_hosts(spec.hosts.max(20), &mut rng);
        let start_h = if spec.start_hour.is_finite() {
            spec.start_hour.clamp(0.0, 23.99)
        } else {
            0.0
        };
        let week_offset = u64::from(spec.start_weekday % 7) * 86_400 + (start_h * 3600.0) as u64;
        let days = if spec.days.is_finite() {
            spec.days.max(0.0)
        } else {
            0.0
        };
        let density = if spec.density.is_finite() && spec.density > 0.0 {
            spec.density
        } else {
            1.0
        };
        let mut w = Week {
            rng,
            hosts,
            slots: Vec::new(),
            free: Vec::new(),
            heap: BinaryHeap::new(),
            seq: 0,
            end: secs(days * 86_400.0),
            origin_us: (MONDAY_SECS + week_offset as i64) * 1_000_000,
            week_offset,
            density,
            volume: if spec.volume.is_finite() && spec.volume > 0.0 {
                spec.volume
            } else {
                1.0
            },
            ip_id: 1,
            dns_id: 1,
            sessions: 0,
            peak_sessions: 0,
            peak_queue: 0,
            skipped: 0,
            scratch: Vec::with_capacity(2048),
            frames: 0,
            wire_bytes: 0,
        };
        w.plant_habits();
        w
    }

    /// Every inside host with its role.
    pub fn hosts(&self) -> Vec<HostLabel> {
        self.hosts
            .iter()
            .map(|h| HostLabel {
                ip: ip(h.ip),
                role: h.role,
                traits: h.traits,
                remote: h.remote.map(|(r, _)| ip(r)),
            })
            .collect()
    }

    /// The capture time of the first instant of the capture.
    pub fn start(&self) -> Timestamp {
        Timestamp::from_micros(self.origin_us)
    }

    /// Entries in the event queue now (habits plus open sessions).
    pub fn queue_len(&self) -> usize {
        self.heap.len()
    }

    /// The most entries the queue has held so far.
    pub fn peak_queue_len(&self) -> usize {
        self.peak_queue
    }

    /// The most sessions open at once so far (at most [`MAX_SESSIONS`]).
    pub fn peak_sessions(&self) -> usize {
        self.peak_sessions
    }

    /// Sessions not started because [`MAX_SESSIONS`] were open.
    pub fn skipped_sessions(&self) -> u64 {
        self.skipped
    }

    /// Frames generated so far and their wire bytes.
    pub fn generated(&self) -> (u64, u64) {
        (self.frames, self.wire_bytes)
    }

    /// The bound on [`Week::queue_len`]: one entry per habit plus
    /// [`MAX_SESSIONS`].
    pub fn queue_bound(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::Habit(_)))
            .count()
            + MAX_SESSIONS
    }

    /// Writes the next frame into `buf` (cleared first) and returns its
    /// capture time in microseconds since the Unix epoch and its wire
    /// length; None at the end of the capture.
    pub fn next_into(&mut self, buf: &mut Vec<u8>) -> Option<(i64, u32)> {
        loop {
            let Reverse((t, _, slot)) = self.heap.pop()?;
            if t >= self.end {
                // Everything left is due after the end: stop for good.
                self.heap.clear();
                return None;
            }
            let i = slot as usize;
            match std::mem::replace(&mut self.slots[i], Slot::Free) {
                Slot::Habit(h) => {
                    let next = self.fire(&h, t);
                    self.slots[i] = Slot::Habit(h);
                    self.push(next.max(t + 1), slot);
                }
                Slot::Session(mut s) => {
                    buf.clear();
                    let (wire, next) = self.step(&mut s, t, buf);
                    match next {
                        Some(n) => {
                            self.slots[i] = Slot::Session(s);
                            self.push(n.max(t), slot);
                        }
                        None => {
                            self.free.push(slot);
                            self.sessions -= 1;
                        }
                    }
                    self.frames += 1;
                    self.wire_bytes += u64::from(wire);
                    return Some((self.origin_us + t as i64, wire));
                }
                Slot::Free => {}
            }
        }
    }

    /// Writes the whole capture to `path` as a microsecond pcap (written
    /// directly through a large buffer, like the bench capture) and returns
    /// the frames and wire bytes written.
    pub fn write_pcap(&mut self, path: &Path) -> io::Result<(u64, u64)> {
        let mut out = BufWriter::with_capacity(4 << 20, File::create(path)?);
        let format = PcapFormat::micros(LinkType::ETHERNET);
        out.write_all(&format.file_header())?;
        let mut buf = Vec::with_capacity(2048);
        let (f0, b0) = self.generated();
        while let Some((ts, wire)) = self.next_into(&mut buf) {
            let secs = ts.div_euclid(1_000_000) as u32;
            let frac = ts.rem_euclid(1_000_000) as u32;
            out.write_all(&format.record_header(secs, frac, buf.len() as u32, wire))?;
            out.write_all(&buf)?;
        }
        out.flush()?;
        let (f1, b1) = self.generated();
        Ok((f1 - f0, b1 - b0))
    }

    fn push(&mut self, t: u64, slot: u32) {
        self.seq += 1;
        self.heap.push(Reverse((t, self.seq, slot)));
        self.peak_queue = self.peak_queue.max(self.heap.len());
    }

    fn alloc(&mut self, s: Slot) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = s;
                i
            }
            None => {
                self.slots.push(s);
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn start_session(&mut self, t: u64, s: Session) {
        if self.sessions >= MAX_SESSIONS {
            self.skipped += 1;
            return;
        }
        self.sessions += 1;
        self.peak_sessions = self.peak_sessions.max(self.sessions);
        let slot = self.alloc(Slot::Session(s));
        self.push(t, slot);
    }

    // -----------------------------------------------------------------------
    // Calendar

    /// (day index, weekday 0 = Monday, hour of day) of capture time `t`.
    fn clock(&self, t: u64) -> (u64, u8, f64) {
        let abs = self.week_offset * US + t;
        let day = abs / DAY;
        let hour = (abs % DAY) as f64 / HOUR as f64;
        (day, (day % 7) as u8, hour)
    }

    /// Capture time of `hour` on the day after the one holding `t`.
    fn next_day_at(&self, t: u64, hour: f64) -> u64 {
        let abs = self.week_offset * US + t;
        let next = (abs / DAY + 1) * DAY + secs(hour * 3600.0);
        next.saturating_sub(self.week_offset * US)
    }

    /// Capture time of `hour` today if still ahead, else tomorrow.
    fn at_hour(&self, t: u64, hour: f64) -> u64 {
        let abs = self.week_offset * US + t;
        let today = (abs / DAY) * DAY + secs(hour * 3600.0);
        if today > abs {
            today - self.week_offset * US
        } else {
            self.next_day_at(t, hour)
        }
    }

    /// How busy a user is at `t`, 0..1: 1 in working hours, less at lunch,
    /// near nothing at night and at the weekend (unless a weekend worker).
    fn presence(&self, h: &Host, t: u64) -> f64 {
        let (_, wd, hour) = self.clock(t);
        if wd >= 5 {
            return if h.traits.weekend_worker && (10.0..15.0).contains(&hour) {
                0.5
            } else {
                0.004
            };
        }
        if hour >= h.arrive && hour < h.leave {
            if (12.0..13.0).contains(&hour) {
                0.4
            } else {
                1.0
            }
        } else if hour >= h.arrive - 1.0 && hour < h.leave + 2.0 {
            0.08
        } else {
            0.004
        }
    }

    /// Outside demand on public services: low at night, high in the day,
    /// lower at the weekend.
    fn public_demand(&self, t: u64) -> f64 {
        let (_, wd, hour) = self.clock(t);
        let day = if (7.0..20.0).contains(&hour) {
            1.0
        } else {
            0.25
        };
        if wd >= 5 {
            day * 0.4
        } else {
            day
        }
    }

    // -----------------------------------------------------------------------
    // Habits

    fn plant_habits(&mut self) {
        use HabitKind::*;
        let mut plan: Vec<(usize, HabitKind)> = Vec::new();
        for (i, h) in self.hosts.iter().enumerate() {
            let kinds: &[HabitKind] = match h.role {
                Role::Workstation => &[
                    Browse, FileBurst, MailClient, Logon, Print, Update, CloudSync, VideoCall,
                ],
                Role::Developer => &[
                    Browse, FileBurst, MailClient, Logon, Update, CloudSync, VideoCall, GitPush,
                ],
                Role::Admin => &[
                    Browse, FileBurst, MailClient, Logon, Update, VideoCall, AdminLogin,
                ],
                Role::VpnClient => &[Tunnel, FileBurst, MailClient, Logon, VideoCall],
                Role::FileServer | Role::MailServer => &[NightlyBackup, ServerUpdate],
                Role::AppServer => &[NightlyBackup, HourlyBackup, ServerUpdate],
                Role::BackupServer => &[OffsitePush, ServerUpdate],
                Role::WebServer => &[WebVisitors, Installers, NightlyBackup, ServerUpdate],
                Role::DomainController | Role::Resolver | Role::VpnConcentrator => &[ServerUpdate],
                Role::Printer => &[],
            };
            for k in kinds {
                plan.push((i, *k));
            }
            if h.role == Role::MailServer {
                plan.push((i, MailIn));
                plan.push((i, MailOut));
            }
        }
        for (host, kind) in plan {
            let first = self.rng.below(FIRST_WAKE);
            let slot = self.alloc(Slot::Habit(Habit { host, kind }));
            self.push(first, slot);
        }
    }

    /// Runs habit `h` at `t`; returns when it fires next.
    fn fire(&mut self, h: &Habit, t: u64) -> u64 {
        if t < FIRST_WAKE && DAILY.contains(&h.kind) {
            // A daily habit's first wake only finds its hour: a capture
            // starting at midnight does not open with every backup.
            return self.daily_first(h, t);
        }
        let host = self.hosts[h.host].clone();
        let p = self.presence(&host, t);
        let d = self.density;
        let r = &mut self.rng;
        // A Poisson habit wakes at its full rate and acts with the user's
        // presence as probability (thinning), so its rate follows the day.
        let poisson = |r: &mut Rng, mean_s: f64| t + secs(r.exp(mean_s / d)).max(1);
        match h.kind {
            HabitKind::Browse => {
                let next = poisson(r, 120.0);
                // Besides the user's browsing, background telemetry and
                // update checks, day and night.
                if self.rng.chance(p) || self.rng.chance(0.01) {
                    self.browse(h.host, &host, t);
                }
                next
            }
            HabitKind::FileBurst => {
                let next = poisson(r, 7200.0);
                if self.rng.chance(p) {
                    self.file_burst(h.host, &host, t);
                }
                next
            }
            HabitKind::MailClient => {
                let next = poisson(r, 600.0);
                if self.rng.chance(p.max(0.02)) {
                    let down = self.rng.log_uniform(2e3, 3e6) as u64;
                    let up = self.rng.log_uniform(5e2, 2e4) as u64;
                    let plan = TcpPlan {
                        c: host.ip,
                        s: (MAIL_SERVER, 993),
                        first_c: hello::tls_client_hello(
                            "mail.office.example",
                            self.rng.next_u64(),
                        ),
                        first_s: hello::tls_server_hello(self.rng.next_u64()),
                        up,
                        down,
                        secs: self.rng.range(0.3, 4.0),
                        inter_secs: 0.0,
                        inter_gap: 1.0,
                    };
                    self.tcp(h.host, t, plan);
                }
                next
            }
            HabitKind::Logon => {
                let next = poisson(r, 3600.0);
                let (_, wd, _) = self.clock(t);
                if wd < 5 && self.rng.chance(p) {
                    // Kerberos and LDAP with the domain controller, and a
                    // group-policy read over SMB.
                    for (port, up, down) in
                        [(88, 1500, 1800), (389, 900, 6000), (445, 2500, 60_000)]
                    {
                        let first_c = if port == 445 {
                            hello::smb2_negotiate_request(self.rng.next_u64())
                        } else {
                            Vec::new()
                        };
                        let first_s = if port == 445 {
                            hello::smb2_negotiate_response(self.rng.next_u64())
                        } else {
                            Vec::new()
                        };
                        let plan = TcpPlan {
                            c: host.ip,
                            s: (DC, port),
                            first_c,
                            first_s,
                            up,
                            down,
                            secs: 0.3,
                            inter_secs: 0.0,
                            inter_gap: 1.0,
                        };
                        self.tcp(h.host, t, plan);
                    }
                }
                next
            }
            HabitKind::Print => {
                let next = poisson(r, 7200.0);
                if self.rng.chance(p) {
                    let printers: Vec<usize> = (0..self.hosts.len())
                        .filter(|i| self.hosts[*i].role == Role::Printer)
                        .collect();
                    if !printers.is_empty() {
                        let pr = self.hosts[printers[h.host % printers.len()]].ip;
                        let bytes = self.rng.log_uniform(5e4, 2e7) as u64;
                        let name = format!("printer{}.office.example", pr[3]);
                        let plan = TcpPlan {
                            c: host.ip,
                            s: (pr, 631),
                            first_c: hello::ipp_request(&name),
                            first_s: Vec::new(),
                            up: bytes,
                            down: 400,
                            secs: bytes as f64 / 2e6,
                            inter_secs: 0.0,
                            inter_gap: 1.0,
                        };
                        self.tcp(h.host, t, plan);
                    }
                }
                next
            }
            HabitKind::Update => {
                // Once a day, during the day: a software update (5-100 MB),
                // sometimes an OS update (200 MB - 1 GB), from a mirror.
                let hour = self.rng.range(8.0, 18.0);
                let next = self.next_day_at(t, hour);
                if self.clock(t).1 < 5 || host.traits.weekend_worker {
                    if self.rng.chance(0.4) {
                        self.download(h.host, t, 5e6, 1e8, "download.updates-example.com");
                    }
                    if self.rng.chance(0.08) {
                        self.download(h.host, t + secs(60.0), 2e8, 1e9, "mirror.os-example.org");
                    }
                }
                next
            }
            HabitKind::ServerUpdate => {
                let hour = self.rng.range(2.0, 5.0);
                let next = self.next_day_at(t, hour);
                if self.rng.chance(0.15) {
                    self.download(h.host, t, 1e7, 4e8, "mirror.os-example.org");
                }
                next
            }
            HabitKind::CloudSync => {
                let next = poisson(r, 5400.0);
                if self.rng.chance(p) {
                    // Small syncs all day; an uploader's big upload on
                    // about one working day in four.
                    let big = host.traits.cloud_uploader && self.rng.chance(0.07);
                    let bytes = if big {
                        self.rng.log_uniform(5e7, 4e8)
                    } else {
                        self.rng.log_uniform(2e5, 1.5e7)
                    } as u64;
                    let i = self.rng.below(10) as usize;
                    let plan = TcpPlan {
                        c: host.ip,
                        s: (cloud(i), 443),
                        first_c: hello::tls_client_hello(
                            "upload.cloud-sync-example.com",
                            self.rng.next_u64(),
                        ),
                        first_s: hello::tls_server_hello(self.rng.next_u64()),
                        up: bytes,
                        down: (bytes / 50).max(4000),
                        secs: bytes as f64 / self.rng.range(2e6, 1.2e7),
                        inter_secs: 0.0,
                        inter_gap: 1.0,
                    };
                    self.dns(h.host, t, "upload.cloud-sync-example.com", cloud(i));
                    self.tcp(h.host, t + secs(0.05), plan);
                }
                next
            }
            HabitKind::VideoCall => {
                let next = poisson(r, 28_800.0);
                if self.rng.chance(p) {
                    self.video_call(h.host, &host, t);
                }
                next
            }
            HabitKind::GitPush => {
                let next = poisson(r, 7200.0);
                if self.rng.chance(p) {
                    let big = self.rng.chance(0.05);
                    let up = if big {
                        self.rng.log_uniform(5e7, 3e8)
                    } else {
                        self.rng.log_uniform(5e4, 5e6)
                    } as u64;
                    let down = self.rng.log_uniform(1e5, 5e7) as u64;
                    let g = self.rng.below(4) as usize;
                    self.dns(h.host, t, "git.codehost-example.com", git_host(g));
                    // A fetch then a push, over SSH.
                    for (u, dn) in [(30_000, down), (up, 20_000)] {
                        let plan = TcpPlan {
                            c: host.ip,
                            s: (git_host(g), 22),
                            first_c: hello::ssh_banner("OpenSSH_9.6p1 Ubuntu-3ubuntu13"),
                            first_s: hello::ssh_banner("babeld-8405f9f3"),
                            up: u,
                            down: dn,
                            secs: (u + dn) as f64 / self.rng.range(3e6, 1e7),
                            inter_secs: 0.0,
                            inter_gap: 1.0,
                        };
                        self.tcp(h.host, t + secs(0.1), plan);
                    }
                }
                next
            }
            HabitKind::AdminLogin => {
                let next = poisson(r, 4000.0);
                if self.rng.chance(p.max(0.01)) {
                    self.admin_login(h.host, &host, t);
                }
                next
            }
            HabitKind::NightlyBackup => {
                let hour = 1.0 + self.rng.range(0.0, 1.5);
                let next = self.at_hour(t, hour);
                {
                    let (lo, hi) = match host.role {
                        Role::FileServer => (3e8, 2e9),
                        Role::MailServer => (2e8, 1e9),
                        _ => (1e8, 5e8),
                    };
                    let bytes = self.rng.log_uniform(lo, hi) as u64;
                    self.backup(h.host, t, BACKUP_SERVER, bytes, None);
                }
                next
            }
            HabitKind::HourlyBackup => {
                let next = t + HOUR + secs(self.rng.range(-60.0, 60.0));
                let bytes = self.rng.log_uniform(2e7, 8e7) as u64;
                self.backup(h.host, t, BACKUP_SERVER, bytes, None);
                next
            }
            HabitKind::OffsitePush => {
                let hour = 3.5 + self.rng.range(0.0, 0.5);
                let next = self.at_hour(t, hour);
                {
                    let bytes = self.rng.log_uniform(5e8, 2e9) as u64;
                    self.dns(h.host, t, "vault.offsite-backup-example.net", OFFSITE);
                    self.backup(
                        h.host,
                        t + secs(0.05),
                        OFFSITE,
                        bytes,
                        Some("vault.offsite-backup-example.net"),
                    );
                }
                next
            }
            HabitKind::MailIn => {
                let next = poisson(r, 45.0);
                if self.rng.chance(self.public_demand(t)) {
                    self.mail_in(h.host, t);
                }
                next
            }
            HabitKind::MailOut => {
                let next = poisson(r, 60.0);
                let office = self.presence(&self.hosts[0].clone(), t).max(0.1);
                if self.rng.chance(office) {
                    self.mail_out(h.host, t);
                }
                next
            }
            HabitKind::WebVisitors => {
                let next = poisson(r, 20.0);
                if self.rng.chance(self.public_demand(t)) {
                    self.web_visit(h.host, t, false);
                }
                next
            }
            HabitKind::Tunnel => {
                // The remote worker's tunnel comes up at arrival and stays
                // up (keepalives) until they leave.
                let next = self.at_hour(t, host.arrive);
                let (_, wd, _) = self.clock(t);
                if wd < 5 || host.traits.weekend_worker {
                    self.tunnel_up(&host, t);
                }
                next
            }
            HabitKind::Installers => {
                // 2-8 installer downloads a day, mostly in the day.
                let next = poisson(r, 4.0 * 3600.0);
                if self.rng.chance(self.public_demand(t)) {
                    self.web_visit(h.host, t, true);
                }
                next
            }
        }
    }

    /// The first wake of a daily habit: when it acts first.
    fn daily_first(&mut self, h: &Habit, t: u64) -> u64 {
        let arrive = self.hosts[h.host].arrive;
        let hour = match h.kind {
            HabitKind::Update => self.rng.range(8.0, 18.0),
            HabitKind::ServerUpdate => self.rng.range(2.0, 5.0),
            HabitKind::NightlyBackup => 1.0 + self.rng.range(0.0, 1.5),
            HabitKind::OffsitePush => 3.5 + self.rng.range(0.0, 0.5),
            HabitKind::Tunnel => arrive,
            _ => return t + secs(self.rng.exp(4.0 * 3600.0)),
        };
        self.at_hour(t, hour)
    }

    fn eport(&mut self, host: usize) -> u16 {
        let p = &mut self.hosts[host].port;
        *p = if *p >= 60999 { 49152 } else { *p + 1 };
        *p
    }

    fn rtt(&mut self, a: A4, b: A4) -> u64 {
        if a[0] == 10 && b[0] == 10 {
            secs(self.rng.range(0.0002, 0.001))
        } else {
            secs(self.rng.range(0.01, 0.09))
        }
    }

    /// Starts a TCP session from inside host `ci` (its ephemeral port).
    fn tcp(&mut self, ci: usize, t: u64, plan: TcpPlan) {
        let cport = self.eport(ci);
        self.tcp_from(t, (plan.c, cport), plan);
    }

    /// `bytes` scaled by [`WeekSpec::volume`] (at least one).
    fn vol(&self, bytes: u64) -> u64 {
        if self.volume == 1.0 {
            bytes
        } else {
            ((bytes as f64 * self.volume) as u64).max(1)
        }
    }

    fn tcp_from(&mut self, t: u64, c: (A4, u16), mut plan: TcpPlan) {
        let rtt = self.rtt(c.0, plan.s.0);
        plan.up = self.vol(plan.up);
        plan.down = self.vol(plan.down);
        let mss = if plan.s.1 == BACKUP_PORT && plan.s.0[0] == 10 {
            JUMBO_MSS
        } else {
            MSS
        };
        let up_n = plan.up.div_ceil(mss).max(1);
        let down_n = plan.down.div_ceil(mss).max(1);
        let total = (up_n + down_n) as f64;
        let body = secs(plan.secs).max(1);
        let s = Tcp {
            c,
            s: plan.s,
            cseq: self.rng.next_u64() as u32,
            sseq: self.rng.next_u64() as u32,
            rtt,
            mss,
            first_c: plan.first_c,
            first_s: plan.first_s,
            up: plan.up,
            down: plan.down,
            up_step: ((body as f64 * up_n as f64 / total) / up_n as f64).max(1.0) as u64,
            down_step: ((body as f64 * down_n as f64 / total) / down_n as f64).max(1.0) as u64,
            inter_span: secs(plan.inter_secs),
            inter_end: 0,
            inter_gap: secs(plan.inter_gap).max(1000),
            phase: Phase::Syn,
            n: 0,
            next_data: 0,
            rng: Rng::new(self.rng.next_u64()),
        };
        self.start_session(t, Session::Tcp(Box::new(s)));
    }

    /// A lookup of `name` through the inside resolver, which forwards it
    /// to an outside authoritative server on a cache miss (about a third).
    fn dns(&mut self, ci: usize, t: u64, name: &str, answer: A4) {
        let client = self.hosts[ci].ip;
        let cport = self.eport(ci);
        self.dns_id = self.dns_id.wrapping_add(1 + self.rng.below(5) as u16);
        let id = self.dns_id;
        let q = DnsMessage::query(id, name, 1);
        let a = q.clone().response(0).answer(1, 300, &answer).encode();
        let q = q.encode();
        let mut items = vec![(t, client, cport, RESOLVER, 53, q.clone())];
        let mut delay = secs(self.rng.range(0.0003, 0.002));
        if self.rng.chance(0.35) {
            let auth = authoritative(name.len() * 7 + usize::from(name.as_bytes()[0]));
            let rtt = secs(self.rng.range(0.01, 0.08));
            let port = 30000 + self.rng.below(30000) as u16;
            items.push((t + 200, RESOLVER, port, auth, 53, q));
            items.push((t + 200 + rtt, auth, 53, RESOLVER, port, a.clone()));
            delay += rtt;
        }
        items.push((t + delay, RESOLVER, 53, client, cport, a));
        self.start_session(t, Session::Script(Script { items, at: 0 }));
    }

    fn browse(&mut self, hi: usize, host: &Host, t: u64) {
        let i = self.rng.popular(80);
        let name = site_name(i);
        self.dns(hi, t, &name, web_site(i));
        let up = self.rng.int(600, 4000);
        let down = self.rng.log_uniform(3e3, 2.5e5) as u64;
        let plan = TcpPlan {
            c: host.ip,
            s: (web_site(i), 443),
            first_c: hello::tls_client_hello(&name, self.rng.next_u64()),
            first_s: hello::tls_server_hello(self.rng.next_u64()),
            up,
            down,
            secs: self.rng.range(0.3, 8.0),
            inter_secs: 0.0,
            inter_gap: 1.0,
        };
        self.tcp(hi, t + secs(0.03), plan);
        if self.rng.chance(0.2) {
            let n = self.rng.below(32) as usize;
            let name = format!("d{n}x{}.cdn-example.net", i % 9);
            self.dns(hi, t + secs(0.2), &name, cdn(n));
            let down = self.rng.log_uniform(2e4, 3e6) as u64;
            let plan = TcpPlan {
                c: host.ip,
                s: (cdn(n), 443),
                first_c: hello::tls_client_hello(&name, self.rng.next_u64()),
                first_s: hello::tls_server_hello(self.rng.next_u64()),
                up: 1500,
                down,
                secs: down as f64 / self.rng.range(2e6, 2e7) + 0.2,
                inter_secs: 0.0,
                inter_gap: 1.0,
            };
            self.tcp(hi, t + secs(0.25), plan);
        }
    }

    /// A burst of SMB reads (and a few writes) from the file server: 1-6
    /// files of 1-50 MB, now and then one of 50 MB - 1 GB (heavy users
    /// more often). A VPN client's bytes also cross the tunnel.
    fn file_burst(&mut self, hi: usize, host: &Host, t: u64) {
        let files = self.rng.int(1, 4);
        let mut at = t;
        for _ in 0..files {
            let big_p = if host.traits.heavy_files { 0.2 } else { 0.03 };
            let bytes = if self.rng.chance(big_p) {
                self.rng.log_uniform(5e7, 1e9)
            } else {
                self.rng.log_uniform(2e5, 2e7)
            } as u64;
            let write = self.rng.chance(0.2);
            let (up, down) = if write {
                (bytes / 4, 20_000)
            } else {
                (20_000, bytes)
            };
            // LAN speed for desks, the remote link's for VPN users.
            let rate = if host.role == Role::VpnClient {
                self.rng.range(2e6, 1.2e7)
            } else {
                self.rng.range(3e7, 1.1e8)
            };
            let dur = (up + down) as f64 / rate;
            let plan = TcpPlan {
                c: host.ip,
                s: (FILE_SERVER, 445),
                first_c: hello::smb2_negotiate_request(self.rng.next_u64()),
                first_s: hello::smb2_negotiate_response(self.rng.next_u64()),
                up,
                down,
                secs: dur,
                inter_secs: 0.0,
                inter_gap: 1.0,
            };
            self.tcp(hi, at, plan);
            if let Some((remote, tunnel)) = host.remote {
                self.tunnel_carry(remote, tunnel, at, up, down, dur);
            }
            at += secs(dur + self.rng.range(5.0, 120.0));
        }
    }

    /// The outer leg of a VPN client's transfer: the same bytes between the
    /// concentrator and the remote worker, plus tunnel overhead.
    fn tunnel_carry(&mut self, remote: A4, tunnel: Tunnel, t: u64, up: u64, down: u64, dur: f64) {
        let n_up = up.div_ceil(1380).max(1);
        let n_down = down.div_ceil(1380).max(1);
        let span = secs(dur).max(1000);
        let (carrier, rport, vport) = self.carrier(remote, tunnel);
        let d = Dgram {
            a: (VPN, vport),
            b: (remote, rport),
            carrier,
            first: Vec::new(),
            end: t + span + secs(1.0),
            next_ab: t,
            next_ba: t + 500,
            gap_ab: (span / self.vol(n_down)).max(1),
            gap_ba: (span / self.vol(n_up)).max(1),
            size_ab: (1420, 1420),
            size_ba: (1420, 1420),
            left_ab: self.vol(down + n_down * 60),
            left_ba: self.vol(up + n_up * 60),
            count: 0,
            rng: Rng::new(self.rng.next_u64()),
        };
        self.start_session(t, Session::Dgram(Box::new(d)));
    }

    /// A remote worker's tunnel handshake and keepalives for the day.
    fn tunnel_up(&mut self, host: &Host, t: u64) {
        let Some((remote, tunnel)) = host.remote else {
            return;
        };
        let (carrier, rport, vport) = self.carrier(remote, tunnel);
        let seed = self.rng.next_u64();
        let id = u32::from_be_bytes(remote);
        let first = match tunnel {
            Tunnel::WireGuard => vec![
                hello::wireguard_initiation(id, seed),
                hello::wireguard_response(!id, id, seed),
            ],
            Tunnel::OpenVpn => vec![
                hello::openvpn_hard_reset(true, seed),
                hello::openvpn_hard_reset(false, !seed),
            ],
            Tunnel::Ipsec => {
                let ike = Dgram {
                    a: (remote, 500),
                    b: (VPN, 500),
                    carrier: Carrier::Plain,
                    first: vec![
                        hello::ike_sa_init(seed, !seed, false),
                        hello::ike_sa_init(seed, !seed, true),
                    ],
                    end: t + secs(1.0),
                    next_ab: t,
                    next_ba: t + secs(0.04),
                    gap_ab: secs(0.1),
                    gap_ba: secs(0.1),
                    size_ab: (28, 28),
                    size_ba: (28, 28),
                    left_ab: 28,
                    left_ba: 28,
                    count: 0,
                    rng: Rng::new(seed),
                };
                self.start_session(t, Session::Dgram(Box::new(ike)));
                Vec::new()
            }
        };
        let hours = (host.leave - host.arrive).max(1.0);
        let start = t + secs(0.1);
        let keep = Dgram {
            a: (remote, rport),
            b: (VPN, vport),
            carrier,
            first,
            end: start + secs(hours * 3600.0),
            next_ab: start,
            next_ba: start + secs(0.04),
            gap_ab: secs(25.0),
            gap_ba: secs(25.0),
            size_ab: (32, 96),
            size_ba: (32, 96),
            left_ab: u64::MAX,
            left_ba: u64::MAX,
            count: 0,
            rng: Rng::new(seed ^ 1),
        };
        self.start_session(start, Session::Dgram(Box::new(keep)));
    }

    /// The carrier, remote port and concentrator port of a tunnel.
    fn carrier(&mut self, remote: A4, tunnel: Tunnel) -> (Carrier, u16, u16) {
        let id = u32::from_be_bytes(remote);
        match tunnel {
            Tunnel::WireGuard => (Carrier::WireGuard { index: id }, 51820, 51820),
            Tunnel::OpenVpn => (
                Carrier::OpenVpn {
                    peer: id & 0xff_ffff,
                },
                1194,
                1194,
            ),
            Tunnel::Ipsec => (Carrier::Esp { spi: id | 0x1000 }, 0, 0),
        }
    }

    fn download(&mut self, hi: usize, t: u64, lo: f64, hi_b: f64, name: &str) {
        let ip = self.hosts[hi].ip;
        let m = self.rng.below(10) as usize;
        self.dns(hi, t, name, mirror(m));
        let bytes = self.rng.log_uniform(lo, hi_b) as u64;
        let plan = TcpPlan {
            c: ip,
            s: (mirror(m), 443),
            first_c: hello::tls_client_hello(name, self.rng.next_u64()),
            first_s: hello::tls_server_hello(self.rng.next_u64()),
            up: (bytes / 200).max(3000),
            down: bytes,
            secs: bytes as f64 / self.rng.range(5e6, 4e7),
            inter_secs: 0.0,
            inter_gap: 1.0,
        };
        self.tcp(hi, t + secs(0.05), plan);
    }

    /// A video call: RTP both ways to a conferencing server for 10-60
    /// minutes, 300-800 kbit/s each way (audio and video), with the
    /// signalling connection's TLS hello first.
    fn video_call(&mut self, hi: usize, host: &Host, t: u64) {
        let s = self.rng.below(10) as usize;
        let minutes = self.rng.range(10.0, 40.0);
        self.dns(hi, t, "meet.video-example.net", sfu(s));
        let plan = TcpPlan {
            c: host.ip,
            s: (sfu(s), 443),
            first_c: hello::tls_client_hello("meet.video-example.net", self.rng.next_u64()),
            first_s: hello::tls_server_hello(self.rng.next_u64()),
            up: 20_000,
            down: 200_000,
            secs: 2.0,
            inter_secs: minutes * 60.0,
            inter_gap: 15.0,
        };
        self.tcp(hi, t + secs(0.05), plan);
        let port = self.eport(hi);
        // 80-250 kbit/s each way in packets of about 1000 bytes: a
        // modest call, kept to 9-35 packets per second each way.
        let kbps = self.rng.range(80.0, 250.0);
        let size = self.rng.int(900, 1150);
        let pps = kbps * 1000.0 / 8.0 / size as f64;
        let gap = secs(1.0 / pps / self.volume);
        let d = Dgram {
            a: (host.ip, port),
            b: (sfu(s), 3478),
            carrier: Carrier::Rtp {
                ssrc: self.rng.next_u64() as u32,
            },
            first: Vec::new(),
            end: t + secs(minutes * 60.0),
            next_ab: t + secs(0.5),
            next_ba: t + secs(0.52),
            gap_ab: gap,
            gap_ba: gap,
            size_ab: (size * 2 / 3, size * 4 / 3),
            size_ba: (size * 2 / 3, size * 4 / 3),
            left_ab: u64::MAX,
            left_ba: u64::MAX,
            count: 0,
            rng: Rng::new(self.rng.next_u64()),
        };
        self.start_session(t + secs(0.5), Session::Dgram(Box::new(d)));
        // A remote worker's call also crosses the tunnel.
        if let Some((remote, tunnel)) = host.remote {
            let bytes = secs(minutes * 60.0) / US * (kbps as u64) * 125;
            self.tunnel_carry(remote, tunnel, t + secs(0.5), bytes, bytes, minutes * 60.0);
        }
    }

    fn admin_login(&mut self, hi: usize, host: &Host, t: u64) {
        let servers: Vec<A4> = self
            .hosts
            .iter()
            .filter(|h| !h.role.is_user() && h.role != Role::Printer)
            .map(|h| h.ip)
            .collect();
        let s = servers[self.rng.below(servers.len() as u64) as usize];
        let rdp = s == DC && self.rng.chance(0.7);
        let minutes = self.rng.range(1.0, 30.0);
        let plan = if rdp {
            TcpPlan {
                c: host.ip,
                s: (s, 3389),
                first_c: hello::rdp_connection_request("admin"),
                first_s: Vec::new(),
                up: 40_000,
                down: 400_000,
                secs: 1.0,
                inter_secs: minutes * 60.0,
                inter_gap: 1.0,
            }
        } else {
            TcpPlan {
                c: host.ip,
                s: (s, 22),
                first_c: hello::ssh_banner("OpenSSH_9.6"),
                first_s: hello::ssh_banner("OpenSSH_8.9p1 Debian-3"),
                up: 3000,
                down: 4000,
                secs: 0.2,
                inter_secs: minutes * 60.0,
                inter_gap: 3.0,
            }
        };
        self.tcp(hi, t, plan);
    }

    /// A backup from host `hi` to `dest` over TLS at a few tens of MB/s
    /// inside, slower off-site.
    fn backup(&mut self, hi: usize, t: u64, dest: A4, bytes: u64, sni: Option<&str>) {
        let ip = self.hosts[hi].ip;
        let rate = if dest[0] == 10 {
            self.rng.range(2e7, 6e7)
        } else {
            self.rng.range(5e6, 1.5e7)
        };
        let plan = TcpPlan {
            c: ip,
            s: (dest, if dest[0] == 10 { BACKUP_PORT } else { 443 }),
            first_c: hello::tls_client_hello(sni.unwrap_or("backup.office.example"), t ^ 0xbac),
            first_s: hello::tls_server_hello(t ^ 0xbac5),
            up: bytes,
            down: (bytes / 500).max(10_000),
            secs: bytes as f64 / rate,
            inter_secs: 0.0,
            inter_gap: 1.0,
        };
        self.tcp(hi, t, plan);
    }

    fn mail_in(&mut self, hi: usize, t: u64) {
        let sender = [
            198,
            19,
            self.rng.below(64) as u8,
            self.rng.int(1, 254) as u8,
        ];
        let up = self.rng.log_uniform(2e3, 2e6) as u64;
        let port = 1024 + self.rng.below(60000) as u16;
        let plan = TcpPlan {
            c: sender,
            s: (self.hosts[hi].ip, 25),
            first_c: hello::smtp_ehlo(&format!("mx{}.sender-example.org", sender[3])),
            first_s: hello::smtp_greeting("mail.office.example"),
            up,
            down: 900,
            secs: self.rng.range(0.5, 4.0),
            inter_secs: 0.0,
            inter_gap: 1.0,
        };
        self.tcp_from(t, (sender, port), plan);
    }

    fn mail_out(&mut self, hi: usize, t: u64) {
        let i = self.rng.popular(40);
        let mx = mail_exchanger(i);
        self.dns(hi, t, &format!("mx.partner{i}.example.net"), mx);
        let up = self.rng.log_uniform(2e3, 2e6) as u64;
        let plan = TcpPlan {
            c: self.hosts[hi].ip,
            s: (mx, 25),
            first_c: hello::smtp_ehlo("mail.office.example"),
            first_s: hello::smtp_greeting(&format!("mx.partner{i}.example.net")),
            up,
            down: 900,
            secs: self.rng.range(0.5, 4.0),
            inter_secs: 0.0,
            inter_gap: 1.0,
        };
        self.tcp(hi, t + secs(0.05), plan);
    }

    /// An outside visitor of the public web server: pages over HTTPS (now
    /// and then plain HTTP), or an installer of 50-150 MB.
    fn web_visit(&mut self, hi: usize, t: u64, installer: bool) {
        let visitor = [
            198,
            18,
            self.rng.below(256) as u8,
            self.rng.int(1, 254) as u8,
        ];
        let port = 1024 + self.rng.below(60000) as u16;
        let web = self.hosts[hi].ip;
        let down = if installer {
            self.rng.log_uniform(5e7, 1.5e8)
        } else {
            self.rng.log_uniform(1e4, 1e6)
        } as u64;
        let plain = !installer && self.rng.chance(0.15);
        let (first_c, first_s, sport) = if plain {
            (
                hello::http_request("GET", "www.office.example", "/"),
                hello::http_response(200, "OK", down),
                80,
            )
        } else {
            (
                hello::tls_client_hello("www.office.example", self.rng.next_u64()),
                hello::tls_server_hello(self.rng.next_u64()),
                443,
            )
        };
        let plan = TcpPlan {
            c: visitor,
            s: (web, sport),
            first_c,
            first_s,
            up: self.rng.int(800, 4000),
            down,
            secs: down as f64 / self.rng.range(1e6, 1.5e7) + 0.3,
            inter_secs: 0.0,
            inter_gap: 1.0,
        };
        self.tcp_from(t, (visitor, port), plan);
    }

    // -----------------------------------------------------------------------
    // Frames

    fn step(&mut self, s: &mut Session, t: u64, buf: &mut Vec<u8>) -> (u32, Option<u64>) {
        match s {
            Session::Tcp(k) => self.tcp_step(k, t, buf),
            Session::Dgram(d) => self.dgram_step(d, t, buf),
            Session::Script(sc) => {
                let (_, src, sport, dst, dport, ref p) = sc.items[sc.at];
                let wire = self.udp_frame(buf, (src, sport), (dst, dport), p, p.len());
                sc.at += 1;
                (wire, sc.items.get(sc.at).map(|i| i.0))
            }
        }
    }

    fn next_id(&mut self) -> u16 {
        self.ip_id = self.ip_id.wrapping_add(1);
        self.ip_id
    }

    fn udp_frame(
        &mut self,
        buf: &mut Vec<u8>,
        a: (A4, u16),
        b: (A4, u16),
        captured: &[u8],
        wire_payload: usize,
    ) -> u32 {
        self.scratch.clear();
        udp_datagram(&mut self.scratch, a, b, captured, wire_payload);
        let id = self.next_id();
        push_ipv4_frame(buf, (a.0, b.0), 17, id, &self.scratch, 8 + wire_payload)
    }

    /// One TCP segment of `k` from the client (or the server) with flags,
    /// `captured` payload bytes kept of `len` on the wire.
    fn seg(
        &mut self,
        k: &mut Tcp,
        buf: &mut Vec<u8>,
        from_client: bool,
        flags: u8,
        captured: &[u8],
        len: u64,
    ) -> u32 {
        let (seq, ack) = if from_client {
            (k.cseq, k.sseq)
        } else {
            (k.sseq, k.cseq)
        };
        let (a, b) = if from_client { (k.c, k.s) } else { (k.s, k.c) };
        let len = len.max(captured.len() as u64) as usize;
        self.scratch.clear();
        tcp_segment(
            &mut self.scratch,
            &TcpFields {
                src: a,
                dst: b,
                seq,
                ack,
                flags,
            },
            captured,
            len,
        );
        let adv = len as u32 + u32::from(flags & 0x03 != 0);
        if from_client {
            k.cseq = k.cseq.wrapping_add(adv);
        } else {
            k.sseq = k.sseq.wrapping_add(adv);
        }
        let id = self.next_id();
        push_ipv4_frame(buf, (a.0, b.0), 6, id, &self.scratch, 20 + len)
    }

    /// The phase after the client's bulk (or from `after_first`).
    fn after_up(k: &Tcp) -> Phase {
        if k.down > 0 {
            Phase::Down
        } else if k.inter_span > 0 {
            Phase::InterC
        } else {
            Phase::FinC
        }
    }

    fn tcp_step(&mut self, k: &mut Tcp, t: u64, buf: &mut Vec<u8>) -> (u32, Option<u64>) {
        let rtt = k.rtt;
        let (wire, next_phase, next_t) = match k.phase {
            Phase::Syn => (self.seg(k, buf, true, 0x02, &[], 0), Phase::SynAck, t + rtt),
            Phase::SynAck => (
                self.seg(k, buf, false, 0x12, &[], 0),
                Phase::Ack,
                t + rtt / 20 + 1,
            ),
            Phase::Ack => {
                let w = self.seg(k, buf, true, 0x10, &[], 0);
                let next = if !k.first_c.is_empty() {
                    Phase::FirstC
                } else if !k.first_s.is_empty() {
                    Phase::FirstS
                } else if k.up > 0 {
                    Phase::Up
                } else {
                    Self::after_up(k)
                };
                (w, next, t + 200)
            }
            Phase::FirstC => {
                let m = std::mem::take(&mut k.first_c);
                let w = self.seg(k, buf, true, 0x18, &m, 0);
                k.up = k.up.saturating_sub(m.len() as u64);
                let next = if !k.first_s.is_empty() {
                    Phase::FirstS
                } else if k.up > 0 {
                    Phase::Up
                } else {
                    Self::after_up(k)
                };
                (w, next, t + rtt)
            }
            Phase::FirstS => {
                let m = std::mem::take(&mut k.first_s);
                let w = self.seg(k, buf, false, 0x18, &m, 0);
                k.down = k.down.saturating_sub(m.len() as u64);
                let next = if k.up > 0 {
                    Phase::Up
                } else {
                    Self::after_up(k)
                };
                (w, next, t + rtt)
            }
            Phase::Up | Phase::Down => {
                let up = k.phase == Phase::Up;
                let left = if up { k.up } else { k.down };
                let len = left.min(k.mss);
                let left = left - len;
                let flags = if left == 0 { 0x18 } else { 0x10 };
                let w = self.seg(k, buf, up, flags, &[], len);
                let step = if up { k.up_step } else { k.down_step };
                if up {
                    k.up = left;
                } else {
                    k.down = left;
                }
                k.n += 1;
                k.next_data = t + step;
                if k.n.is_multiple_of(ACK_EVERY) || left == 0 {
                    let ack_phase = if up { Phase::UpAck } else { Phase::DownAck };
                    (w, ack_phase, t + (step / 2).min(rtt / 2).max(1))
                } else {
                    (w, k.phase, k.next_data)
                }
            }
            Phase::UpAck | Phase::DownAck => {
                let up = k.phase == Phase::UpAck;
                let w = self.seg(k, buf, !up, 0x10, &[], 0);
                let left = if up { k.up } else { k.down };
                if left > 0 {
                    (w, if up { Phase::Up } else { Phase::Down }, k.next_data)
                } else {
                    k.n = 0;
                    let next = if up {
                        Self::after_up(k)
                    } else if k.inter_span > 0 {
                        Phase::InterC
                    } else {
                        Phase::FinC
                    };
                    (w, next, k.next_data.max(t + rtt))
                }
            }
            Phase::InterC => {
                if k.inter_end == 0 {
                    k.inter_end = t + k.inter_span;
                }
                let len = k.rng.int(36, 160);
                let w = self.seg(k, buf, true, 0x18, &[], len);
                (w, Phase::InterS, t + rtt)
            }
            Phase::InterS => {
                let len = if k.rng.chance(0.2) {
                    k.rng.int(400, 1400)
                } else {
                    k.rng.int(36, 200)
                };
                let w = self.seg(k, buf, false, 0x18, &[], len);
                let next = t + secs(k.rng.exp(k.inter_gap as f64 / 1e6)).max(20_000);
                if next >= k.inter_end {
                    (w, Phase::FinC, next.min(k.inter_end.max(t + 1)))
                } else {
                    (w, Phase::InterC, next)
                }
            }
            Phase::FinC => (self.seg(k, buf, true, 0x11, &[], 0), Phase::FinS, t + rtt),
            Phase::FinS => (
                self.seg(k, buf, false, 0x11, &[], 0),
                Phase::LastAck,
                t + rtt / 20 + 1,
            ),
            Phase::LastAck => return (self.seg(k, buf, true, 0x10, &[], 0), None),
        };
        k.phase = next_phase;
        (wire, Some(next_t))
    }

    fn dgram_step(&mut self, d: &mut Dgram, t: u64, buf: &mut Vec<u8>) -> (u32, Option<u64>) {
        let ab = d.next_ab <= d.next_ba;
        let (src, dst) = if ab { (d.a, d.b) } else { (d.b, d.a) };
        let (lo, hi) = if ab { d.size_ab } else { d.size_ba };
        let left = if ab { d.left_ab } else { d.left_ba };
        let size = d.rng.int(lo, hi.max(lo)).min(left).max(16);
        d.count += 1;
        let first = if d.first.is_empty() {
            None
        } else {
            Some(d.first.remove(0))
        };
        let mut hdr = [0u8; 16];
        let head: &[u8] = match &first {
            Some(m) => m,
            None => {
                let n = carrier_header(d.carrier, ab, d.count, size, &mut hdr);
                &hdr[..n]
            }
        };
        let wire_payload = (size as usize).max(head.len());
        let wire = match d.carrier {
            Carrier::Esp { .. } => {
                let id = self.next_id();
                push_ipv4_frame(buf, (src.0, dst.0), 50, id, head, wire_payload)
            }
            _ => self.udp_frame(buf, src, dst, head, wire_payload),
        };
        if ab {
            d.left_ab = d.left_ab.saturating_sub(size);
            d.next_ab = if d.left_ab == 0 {
                u64::MAX
            } else {
                t + d.gap_ab
            };
        } else {
            d.left_ba = d.left_ba.saturating_sub(size);
            d.next_ba = if d.left_ba == 0 {
                u64::MAX
            } else {
                t + d.gap_ba
            };
        }
        let next = d.next_ab.min(d.next_ba);
        if next >= d.end {
            (wire, None)
        } else {
            (wire, Some(next))
        }
    }
}

/// Writes the captured header of a data datagram of `carrier` into `hdr`
/// and returns its length.
fn carrier_header(carrier: Carrier, ab: bool, count: u64, size: u64, hdr: &mut [u8; 16]) -> usize {
    match carrier {
        Carrier::Rtp { ssrc } => {
            // Small packets are audio (Opus), large ones video.
            let pt = if size < 200 { 111 } else { 96 };
            let ssrc = if ab { ssrc } else { !ssrc };
            hdr[..12].copy_from_slice(&hello::rtp_header(
                pt,
                count as u16,
                (count * 3000) as u32,
                ssrc,
            ));
            12
        }
        Carrier::WireGuard { index } => {
            let idx = if ab { index } else { !index };
            *hdr = hello::wireguard_data_header(idx, count);
            16
        }
        Carrier::OpenVpn { peer } => {
            hdr[..8].copy_from_slice(&hello::openvpn_data_header(peer, count as u32));
            8
        }
        Carrier::Esp { spi } => {
            let spi = if ab { spi } else { spi ^ 0xffff };
            hdr[..4].copy_from_slice(&spi.to_be_bytes());
            hdr[4..8].copy_from_slice(&(count as u32).to_be_bytes());
            8
        }
        Carrier::Plain => 0,
    }
}

impl Iterator for Week {
    type Item = WeekFrame;

    fn next(&mut self) -> Option<WeekFrame> {
        let mut data = Vec::with_capacity(128);
        let (ts, wire_len) = self.next_into(&mut data)?;
        Some(WeekFrame {
            ts: Timestamp::from_micros(ts),
            wire_len,
            data,
        })
    }
}

/// The office's hosts for a size: the servers, a printer per 25 hosts, a
/// VPN pool address per 8, workstations for the rest (a fifth developers,
/// a few admins), each user with a schedule and habits.
fn build_hosts(n: usize, rng: &mut Rng) -> Vec<Host> {
    let server = |ip: A4, role: Role| Host {
        ip,
        role,
        traits: Traits::default(),
        arrive: 8.0,
        leave: 18.0,
        port: 49152,
        remote: None,
    };
    let mut v = vec![
        server(RESOLVER, Role::Resolver),
        server(DC, Role::DomainController),
        server(FILE_SERVER, Role::FileServer),
        server(BACKUP_SERVER, Role::BackupServer),
        server(APP_SERVER, Role::AppServer),
        server(MAIL_SERVER, Role::MailServer),
        server(WEB_SERVER, Role::WebServer),
        server(VPN, Role::VpnConcentrator),
    ];
    let printers = n.div_ceil(25);
    for i in 0..printers {
        v.push(server([10, 30, 3, 10 + i as u8], Role::Printer));
    }
    let remote = n / 8;
    let desks = n.saturating_sub(v.len() + remote);
    let admins = (desks / 25).max(2);
    let devs = desks / 5;
    let user = |ip: A4, role: Role, rng: &mut Rng| {
        let arrive = rng.range(7.0, 9.5);
        Host {
            ip,
            role,
            traits: Traits {
                heavy_files: rng.chance(0.1),
                cloud_uploader: rng.chance(0.25),
                weekend_worker: rng.chance(0.1),
            },
            arrive,
            leave: arrive + rng.range(8.0, 9.5),
            port: 49152 + rng.below(8000) as u16,
            remote: None,
        }
    };
    for i in 0..desks {
        let role = if i < admins {
            Role::Admin
        } else if i < admins + devs {
            Role::Developer
        } else {
            Role::Workstation
        };
        let ip = [10, 30, 10 + (i / 200) as u8, 11 + (i % 200) as u8];
        v.push(user(ip, role, rng));
    }
    for i in 0..remote {
        let mut h = user([10, 30, 250, 10 + i as u8], Role::VpnClient, rng);
        let tunnel = match i % 3 {
            0 => Tunnel::WireGuard,
            1 => Tunnel::OpenVpn,
            _ => Tunnel::Ipsec,
        };
        h.remote = Some(([192, 0, 2, 100 + i as u8], tunnel));
        v.push(h);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> WeekSpec {
        WeekSpec {
            seed,
            hosts: 20,
            days: 2.0 / 24.0,
            start_weekday: 3,
            start_hour: 9.0,
            density: 1.0,
            volume: 0.05,
        }
    }

    fn digest(w: &mut Week, n: usize) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut buf = Vec::new();
        for _ in 0..n {
            let Some((ts, wire)) = w.next_into(&mut buf) else {
                break;
            };
            for b in ts
                .to_le_bytes()
                .iter()
                .chain(wire.to_le_bytes().iter())
                .chain(buf.iter())
            {
                h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
            }
        }
        h
    }

    #[test]
    fn same_seed_same_frames_other_seed_other_frames() {
        let a = digest(&mut Week::new(&small(5)), 200_000);
        let b = digest(&mut Week::new(&small(5)), 200_000);
        let c = digest(&mut Week::new(&small(6)), 200_000);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn frames_come_in_time_order_and_within_the_span() {
        let mut w = Week::new(&small(2));
        let start = w.start().micros();
        let end = start + 2 * 3600 * 1_000_000;
        let mut last = start;
        let mut n = 0u64;
        let mut buf = Vec::new();
        while let Some((ts, wire)) = w.next_into(&mut buf) {
            assert!(ts >= last, "frame {n} goes back in time");
            assert!(ts < end);
            assert!(wire as usize >= buf.len());
            last = ts;
            n += 1;
        }
        assert!(n > 20_000, "{n} frames");
    }

    #[test]
    fn queue_stays_bounded_over_weeks() {
        // Four weeks at a tenth of the density: the queue holds habits and
        // open sessions only, never the past or the future.
        let spec = WeekSpec {
            hosts: 60,
            days: 28.0,
            density: 0.1,
            volume: 0.001,
            ..WeekSpec::default()
        };
        let mut w = Week::new(&spec);
        let habits = w.queue_bound() - MAX_SESSIONS;
        let mut buf = Vec::new();
        let mut frames = 0u64;
        while w.next_into(&mut buf).is_some() {
            frames += 1;
        }
        assert!(frames > 100_000, "{frames}");
        assert!(w.peak_queue_len() <= w.queue_bound());
        // Far below the cap, so the bound is the office's, not the cap's.
        assert!(w.peak_sessions() < 2000, "{}", w.peak_sessions());
        assert!(w.peak_queue_len() < habits + 2000);
        assert_eq!(w.skipped_sessions(), 0);
    }

    #[test]
    fn every_role_is_present() {
        let w = Week::new(&WeekSpec::default());
        let hosts = w.hosts();
        assert_eq!(hosts.len(), 60);
        for role in [
            Role::Workstation,
            Role::Developer,
            Role::Admin,
            Role::Resolver,
            Role::DomainController,
            Role::FileServer,
            Role::BackupServer,
            Role::AppServer,
            Role::MailServer,
            Role::WebServer,
            Role::VpnConcentrator,
            Role::VpnClient,
            Role::Printer,
        ] {
            assert!(hosts.iter().any(|h| h.role == role), "{role:?}");
        }
        assert!(hosts.iter().any(|h| h.traits.heavy_files));
        assert!(hosts.iter().any(|h| h.traits.cloud_uploader));
        let json = hosts[0].json();
        assert!(json.starts_with("{\"ip\":\"10.30.0.53\",\"role\":\"resolver\""));
        for n in [50, 200] {
            assert_eq!(
                Week::new(&WeekSpec {
                    hosts: n,
                    ..WeekSpec::default()
                })
                .hosts()
                .len(),
                n
            );
        }
    }

    #[test]
    fn weekdays_parse() {
        assert_eq!(parse_weekday("thu"), Some(3));
        assert_eq!(parse_weekday("Sunday"), Some(6));
        assert_eq!(parse_weekday("x"), None);
    }
}
